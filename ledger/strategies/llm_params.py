"""The LLM agent's ``--param`` keys: parsed, checked, and written back as recorded strings.

Every key below is recorded in ``RunStarted.params`` (so in the run's config hash and id); the
API key never is: it comes from the environment, or from the encrypted key store when
``key_label`` names it (``ledger.adapters.openai_chat``). The key file is not a parameter (a
path would make the run id depend on where the file lies): it is ``$TRADELEDGER_KEYS``, else
``~/.tradeledger/keys.enc``, opened with ``$TRADELEDGER_KEYS_PASSPHRASE``. A replay serves the
recorded answers and opens no key store.

=============  =========  ===================================================================
key            default    meaning
=============  =========  ===================================================================
base_url       required   the server, up to ``/v1`` (``http://127.0.0.1:11434/v1`` for Ollama)
model          required   the model name the server knows
every          60         decide at bars closing on a multiple of this many bar intervals
history        30         bars shown to the model (the decision bar and those before it)
temperature    0          sampling temperature, 0 to 2
max_tokens     400        the answer's token limit
seed           (none)     sampling seed, sent only when given (servers that honour it repeat)
timeout_s      60         one attempt's limit, connecting included (0.1 to 600)
retries        2          extra attempts after a 429, a 5xx or a failed connection (0 to 10)
backoff_s      1          the first retry's wait, doubling each time (0 to 60)
limit_orders   false      let the model set price_limit (null: a market order)
limit_band     0.02       a limit price must lie within this fraction of the close (0 to 0.5]
key_label      (none)     the API key's label in the key store (``tradeledger keys add
                          --exchange llm``); without it, ``$TRADELEDGER_LLM_API_KEY``, else
                          ``$OPENAI_API_KEY``, else no key
=============  =========  ===================================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ledger.domain.errors import ParameterError
from ledger.domain.numbers import ZERO

_DEFAULTS = {
    "every": "60",
    "history": "30",
    "temperature": "0",
    "max_tokens": "400",
    "timeout_s": "60",
    "retries": "2",
    "backoff_s": "1",
    "limit_orders": "false",
    "limit_band": "0.02",
}
_KEYS = frozenset({"base_url", "model", "seed", "key_label", *_DEFAULTS})
_SECRET_KEYS = frozenset({"api_key", "key", "token", "secret", "password"})
# Why 500: a prompt of 500 one-minute bars is about 40k characters, near what small local
# models take as context; more history belongs in features, not raw rows.
HISTORY_MAX = 500
TIMEOUT_S_MAX = Decimal(600)
TIMEOUT_S_MIN = Decimal("0.1")
RETRIES_MAX = 10
BACKOFF_S_MAX = Decimal(60)
TEMPERATURE_MAX = Decimal(2)
LIMIT_BAND_MAX = Decimal("0.5")
MAX_TOKENS_MIN = 16


@dataclass(frozen=True, kw_only=True)
class LlmParams:
    """The agent's validated settings."""

    base_url: str
    model: str
    every: int
    history: int
    temperature: Decimal
    max_tokens: int
    seed: int | None
    timeout_s: Decimal
    retries: int
    backoff_s: Decimal
    limit_orders: bool
    limit_band: Decimal
    key_label: str | None

    @property
    def timeout_ms(self) -> int:
        """Return ``timeout_s`` in whole milliseconds."""
        return int(self.timeout_s * 1000)

    @property
    def backoff_ms(self) -> int:
        """Return ``backoff_s`` in whole milliseconds."""
        return int(self.backoff_s * 1000)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> LlmParams:
        """Return the settings ``params`` give (defaults in the module doc).

        Raises:
            ParameterError: a missing or unknown key, a secret passed as a parameter, or a
                value out of its range.
        """
        _check_keys(params)
        values = {**_DEFAULTS, **params}
        base_url = values["base_url"].strip()
        if not base_url.startswith(("http://", "https://")):
            msg = f"--param base_url={base_url}: give the server's URL, e.g. http://127.0.0.1:11434/v1"
            raise ParameterError(msg)
        if not values["model"].strip():
            msg = "--param model: give the model name the server knows, e.g. llama3.1:8b"
            raise ParameterError(msg)
        limit_orders = values["limit_orders"].lower()
        if limit_orders not in {"true", "false"}:
            msg = f"--param limit_orders={values['limit_orders']}: write true or false"
            raise ParameterError(msg)
        seed = values.get("seed")
        key_label = values.get("key_label")
        if key_label is not None and not key_label.strip():
            msg = (
                "--param key_label: give the label of a key added with `tradeledger keys add --exchange llm`"
            )
            raise ParameterError(msg)
        return cls(
            base_url=base_url,
            model=values["model"].strip(),
            every=_whole("every", values, 1, None),
            history=_whole("history", values, 1, HISTORY_MAX),
            temperature=_decimal("temperature", values, ZERO, TEMPERATURE_MAX),
            max_tokens=_whole("max_tokens", values, MAX_TOKENS_MIN, None),
            seed=None if seed is None else _whole("seed", values, 0, None),
            timeout_s=_decimal("timeout_s", values, TIMEOUT_S_MIN, TIMEOUT_S_MAX),
            retries=_whole("retries", values, 0, RETRIES_MAX),
            backoff_s=_decimal("backoff_s", values, ZERO, BACKOFF_S_MAX),
            limit_orders=limit_orders == "true",
            limit_band=_band(values),
            key_label=None if key_label is None else key_label.strip(),
        )

    def as_strings(self) -> dict[str, str]:
        """Return every setting as the string ``parse`` reads back to the same settings."""
        strings = {
            "base_url": self.base_url,
            "model": self.model,
            "every": str(self.every),
            "history": str(self.history),
            "temperature": str(self.temperature),
            "max_tokens": str(self.max_tokens),
            "timeout_s": str(self.timeout_s),
            "retries": str(self.retries),
            "backoff_s": str(self.backoff_s),
            "limit_orders": "true" if self.limit_orders else "false",
            "limit_band": str(self.limit_band),
        }
        if self.seed is not None:
            strings["seed"] = str(self.seed)
        if self.key_label is not None:
            strings["key_label"] = self.key_label
        return strings


def _check_keys(params: Mapping[str, str]) -> None:
    secret = sorted(set(params) & _SECRET_KEYS)
    if secret:
        msg = (
            f"--param {secret[0]}: parameters are recorded in the ledger, so a secret is never one; "
            "set $TRADELEDGER_LLM_API_KEY (or $OPENAI_API_KEY), or store it with "
            "`tradeledger keys add --exchange llm` and pass --param key_label=LABEL"
        )
        raise ParameterError(msg)
    unknown = sorted(set(params) - _KEYS)
    if unknown:
        msg = f"--param {unknown[0]}: the llm strategy takes {', '.join(sorted(_KEYS))}"
        raise ParameterError(msg)
    for required in ("base_url", "model"):
        if required not in params:
            example = "--param base_url=http://127.0.0.1:11434/v1 --param model=NAME"
            msg = f"--param {required}: the llm strategy needs it, e.g. {example}"
            raise ParameterError(msg)


def _whole(name: str, values: Mapping[str, str], low: int, high: int | None) -> int:
    text = values[name]
    try:
        value = int(text)
    except ValueError as e:
        msg = f"--param {name}={text}: give a whole number"
        raise ParameterError(msg) from e
    if value < low or (high is not None and value > high):
        bound = f"at least {low}" if high is None else f"from {low} to {high}"
        msg = f"--param {name}={text}: give a whole number {bound}"
        raise ParameterError(msg)
    return value


def _decimal(name: str, values: Mapping[str, str], low: Decimal, high: Decimal) -> Decimal:
    text = values[name]
    try:
        value = Decimal(text)
    except InvalidOperation as e:
        msg = f"--param {name}={text}: give a decimal number from {low} to {high}"
        raise ParameterError(msg) from e
    if not value.is_finite() or not low <= value <= high:
        msg = f"--param {name}={text}: give a decimal number from {low} to {high}"
        raise ParameterError(msg)
    return value


def _band(values: Mapping[str, str]) -> Decimal:
    band = _decimal("limit_band", values, ZERO, LIMIT_BAND_MAX)
    if band == ZERO:
        msg = f"--param limit_band={values['limit_band']}: give a fraction above 0, e.g. 0.02"
        raise ParameterError(msg)
    return band

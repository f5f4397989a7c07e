"""The backtest's fill options: validated into ``FillSettings``, recorded, read back, and a TOML file.

Every option is checked here with one sentence naming it and the fix; the settings are then
recorded as ``RunStarted.fill_model`` (``FillSettings.describe()``), and an audit replay turns
that text back into the same options (``request_fields``), so a re-run uses exactly them.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from ledger.domain.errors import BadInputError, ParameterError
from ledger.domain.fill_models import (
    LIMIT_TIMEOUT_S_DEFAULT,
    FillModel,
    FillSettings,
    SlippageModel,
    parse_described,
)

# Why these bounds: 10 % is the cap of --fee (no venue charges more); an impact beyond 10 bar
# ranges, a spread over 10 %, a latency over a day or a queue over 100 bars of volume is a typo.
FEE_RATE_MAX = Decimal("0.1")
IMPACT_MAX = Decimal(10)
SPREAD_BPS_MAX = Decimal(1000)
LATENCY_MS_MAX = 86_400_000
QUEUE_AHEAD_MAX = Decimal(100)
LIMIT_TIMEOUT_S_MAX = 30 * 86_400


@dataclass(frozen=True, kw_only=True)
class FillOptions:
    """The fill options besides the model's name, as a user writes them (CLI, file or API)."""

    slippage: str = SlippageModel.NONE.value
    impact: str = "1"
    spread_bps: str | None = None
    latency_ms: int = 0
    failure_rate: str = "0"
    maker_fee: str | None = None
    queue_ahead: str | None = None
    limit_timeout_s: int = LIMIT_TIMEOUT_S_DEFAULT


def fill_settings(fill_model: str, options: FillOptions) -> FillSettings:
    """Return the validated settings of the model named ``fill_model`` with ``options``.

    Raises:
        ParameterError: an unknown model name or a value out of range (named, with the fix).
    """
    model = FillModel(_choice("fill-model", fill_model, FillModel))
    slippage = SlippageModel(_choice("slippage", options.slippage, SlippageModel))
    if model is FillModel.ORDERBOOK and slippage is not SlippageModel.NONE:
        msg = (
            f"--slippage {slippage.value}: the orderbook model takes its slippage from the book walk; "
            "use --slippage none with it, or --fill-model next-open"
        )
        raise ParameterError(msg)
    _whole("latency-ms", options.latency_ms, LATENCY_MS_MAX)
    _whole("limit-timeout-s", options.limit_timeout_s, LIMIT_TIMEOUT_S_MAX, low=1)
    return FillSettings(
        model=model,
        slippage=slippage,
        impact=_decimal("impact", options.impact, IMPACT_MAX),
        spread_bps=_optional("spread-bps", options.spread_bps, SPREAD_BPS_MAX),
        latency_ms=options.latency_ms,
        failure_rate=_decimal("failure-rate", options.failure_rate, Decimal(1)),
        maker_fee=_optional("maker-fee", options.maker_fee, FEE_RATE_MAX),
        queue_ahead=_optional("queue-ahead", options.queue_ahead, QUEUE_AHEAD_MAX),
        limit_timeout_s=options.limit_timeout_s,
    )


def recorded_options(recorded: str) -> tuple[str, FillOptions]:
    """Return the model name and options that ``FillSettings.describe()`` wrote as ``recorded``.

    Raises:
        ParameterError: the text names an option this code does not know.
    """
    try:
        found = parse_described(recorded)
    except ValueError as e:
        msg = f"RunStarted.fill_model {recorded!r} cannot be read ({e}); it was not written by tradeledger"
        raise ParameterError(msg) from e
    model = found.pop("model")
    fields: dict[str, Any] = {}
    known = set(FillOptions.__dataclass_fields__)
    for key, value in found.items():
        if key not in known:
            msg = (
                f"RunStarted.fill_model names {key!r}, unknown to this tradeledger; "
                "replay with the version that ran it"
            )
            raise ParameterError(msg)
        fields[key] = int(value) if key in {"latency_ms", "limit_timeout_s"} else value
    return model, FillOptions(**fields)


class BacktestConfig(BaseModel):
    """``backtest --config FILE``: the command's options by their names (TOML, all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data: str | None = None  # a file (relative to the config file) or a ccxt: source
    symbol: str | None = None
    strategy: str | None = None
    params: dict[str, str] | None = None
    cash: str | None = None
    fee: str | None = None
    seed: int | None = None
    fill_model: str | None = None
    slippage: str | None = None
    impact: str | None = None
    spread_bps: str | None = None
    latency_ms: int | None = None
    failure_rate: str | None = None
    maker_fee: str | None = None
    queue_ahead: str | None = None
    limit_timeout_s: int | None = None


def load_backtest_config(path: Path) -> BacktestConfig:
    """Read and validate a backtest config (TOML).

    Raises:
        BadInputError: the file is missing or not TOML, or a key is unknown or of the wrong type.
    """
    try:
        raw = tomllib.loads(path.read_text())
    except (FileNotFoundError, IsADirectoryError) as e:
        msg = f"--config: no file at {path}; give a TOML file with backtest options (README, Fill models)"
        raise BadInputError(msg) from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        msg = f"--config {path}: not valid TOML ({e}); fix the syntax"
        raise BadInputError(msg) from e
    try:
        config = BacktestConfig.model_validate(_numbers_as_text(raw))
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        fix = "remove it or check its spelling" if first["type"] == "extra_forbidden" else "fix its value"
        msg = f"--config {path}: {where}: {first['msg']}; {fix}"
        raise BadInputError(msg) from e
    return config


# Why: TOML numbers like fee = 0.001 are floats; ledger amounts are read from their text, and
# a float's repr is that text for every value TOML can write with up to 15 significant digits.
_AMOUNT_KEYS = frozenset({"cash", "fee", "impact", "spread_bps", "failure_rate", "maker_fee", "queue_ahead"})


def _numbers_as_text(raw: Mapping[str, Any]) -> dict[str, Any]:
    converted = dict(raw)
    for key in _AMOUNT_KEYS & converted.keys():
        value = converted[key]
        if isinstance(value, int | float) and not isinstance(value, bool):
            converted[key] = repr(value)
    params = converted.get("params")
    if isinstance(params, dict):
        converted["params"] = {k: v if isinstance(v, str) else _scalar_text(v) for k, v in params.items()}
    return converted


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, int | float) else value


def _choice(option: str, text: str, kind: type[FillModel] | type[SlippageModel]) -> str:
    try:
        return str(kind(text).value)
    except ValueError as e:
        names = ", ".join(m.value for m in kind)
        msg = f"--{option}: {text!r} is not a model; use one of {names}"
        raise ParameterError(msg) from e


def _whole(option: str, value: int, high: int, *, low: int = 0) -> None:
    if isinstance(value, bool) or not low <= value <= high:
        msg = f"--{option}: {value} is out of range; use a whole number from {low} to {high}"
        raise ParameterError(msg)


def _decimal(option: str, text: str, high: Decimal) -> Decimal:
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError) as e:
        msg = f"--{option}: {text!r} is not a decimal number; write it like 0.5"
        raise ParameterError(msg) from e
    if not value.is_finite() or not Decimal(0) <= value <= high:
        msg = f"--{option}: {text} is out of range; use a number from 0 to {high}"
        raise ParameterError(msg)
    return value


def _optional(option: str, text: str | None, high: Decimal) -> Decimal | None:
    return None if text is None else _decimal(option, text, high)

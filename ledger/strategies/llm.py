"""An LLM agent: asks an OpenAI-compatible chat model for one decision every N bars.

At each candidate bar the agent writes one chat-completions request: a system message (the
rules of the answer), a user message (the market state and the last ``history`` bars as
canonical JSON), ``response_format`` ``{"type": "json_schema", "json_schema": {"name",
"strict": true, "schema"}}`` with the JSON Schema of ``AgentAnswer`` (OpenAI structured
outputs; vLLM, llama.cpp's server and Ollama accept the same field), ``temperature`` and
``max_tokens``. The request is serialised once, canonically (sorted keys, no spaces,
decimals as exact JSON numbers); its sha256 is the decision's ``input_digest`` and those exact
bytes are what the transport sends.

The answer is checked by ``ledger.strategies.llm_answer.interpret``; anything wrong with it,
or no answer at all (timeout, HTTP error, refusal), is a ``DecisionRejection`` with its reason,
recorded as ``DecisionRejected`` and never an order. Every answer is on the record with its
raw text, so ``tradeledger replay`` re-runs an agent backtest from the record alone
(``ledger.strategies.chat.RecordedChat``), without calling the model.

Candidate bars are the bars whose close time is a multiple of ``every`` bar intervals (every
60 one-minute bars: on the hour), once ``history`` bars are available; the same rule picks the
same wall-clock times in a backtest and in a session's rolling window.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, DecisionRejection, MarketContext
from ledger.strategies.chat import ChatConnector, ChatEndpoint, ChatFailedError, ChatTransport, request_digest
from ledger.strategies.llm_answer import AgentAnswer, AgentLimitAnswer, interpret, response_schema
from ledger.strategies.llm_params import LlmParams

_ENCODER = msgspec.json.Encoder(decimal_format="number", order="sorted")


@dataclass
class LlmAgent:
    """The agent: its parameters (recorded in RunStarted) and a chat transport (never recorded)."""

    settings: LlmParams
    transport: ChatTransport
    name: str = "llm"
    _candles: Candles | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_params(cls, params: Mapping[str, str], chat: ChatConnector) -> LlmAgent:
        """Build from ``--param`` strings, connecting through ``chat``.

        Raises:
            ParameterError: a missing, unknown or invalid parameter (``LlmParams.parse``).
            BadInputError: ``chat`` cannot open the API key ``key_label`` names (the HTTP
                connector reads it from the key store; a recorded one needs none).
        """
        settings = LlmParams.parse(params)
        endpoint = ChatEndpoint(
            base_url=settings.base_url,
            timeout_ms=settings.timeout_ms,
            retries=settings.retries,
            backoff_ms=settings.backoff_ms,
            key_label=settings.key_label,
        )
        return cls(settings=settings, transport=chat(endpoint))

    def params(self) -> dict[str, str]:
        """Return the parameters as strings: endpoint, model and sampling, never the API key."""
        return self.settings.as_strings()

    def candidate_bars(self, candles: Candles) -> npt.NDArray[np.int64]:
        """Return the bars closing on the ``every``-bar grid with ``history`` bars behind them."""
        self._candles = candles
        period_ms = self.settings.every * candles.interval_ms
        on_grid = (candles.open_time_ms + candles.interval_ms) % period_ms == 0
        on_grid[: self.settings.history - 1] = False
        return np.flatnonzero(on_grid).astype(np.int64)

    async def decide(self, context: MarketContext) -> Decision | DecisionRejection:
        """Ask the model about ``context`` and return its checked decision or the rejection."""
        body = self.request_body(context)
        digest = request_digest(body)
        try:
            content = await self.transport.complete(body)
        except ChatFailedError as e:
            return DecisionRejection(
                instrument=context.instrument,
                reason=e.reason,
                detail=e.detail,
                input_digest=digest,
                output=e.output,
            )
        return interpret(
            content,
            context,
            model=self._answer_model(),
            limit_band=self.settings.limit_band,
            input_digest=digest,
        )

    def request_body(self, context: MarketContext) -> bytes:
        """Return the exact chat-completions request for ``context``, canonically serialised."""
        model = self._answer_model()
        body: dict[str, Any] = {
            "model": self.settings.model,
            "messages": [
                {"role": "system", "content": system_prompt(self.settings)},
                {"role": "user", "content": self._user_prompt(context)},
            ],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "trade_decision", "strict": True, "schema": response_schema(model)},
            },
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": False,
        }
        if self.settings.seed is not None:
            body["seed"] = self.settings.seed
        return _ENCODER.encode(body)

    def _answer_model(self) -> type[AgentAnswer]:
        return AgentLimitAnswer if self.settings.limit_orders else AgentAnswer

    def _user_prompt(self, context: MarketContext) -> str:
        candles = self._candles
        if candles is None:  # a programmer error: the run loop calls candidate_bars first
            msg = "LlmAgent.decide() before candidate_bars()"
            raise RuntimeError(msg)
        state = {
            "instrument": context.instrument,
            "bar_close_at": candles.close_at(context.bar).isoformat(),
            "price_close": str(context.price_close),
            "position_qty": str(context.qty_open),
            "quote_free": str(context.quote_free),
            "base_free": str(context.base_free),
            "equity": str(context.equity),
            "pnl_realized": str(context.pnl_realized),
            "fills_so_far": context.fills,
            "open_orders": context.open_orders,
            "recent_bars": _recent_bars(candles, context.bar, self.settings.history),
        }
        state_json = _ENCODER.encode(state).decode()
        return f"Market state at the close of the latest bar (JSON):\n{state_json}\nAnswer with one decision."


def system_prompt(settings: LlmParams) -> str:
    """Return the system message: the task and the rules of the answer."""
    lines = [
        "You are a trading agent for one spot instrument; you may only be long or flat.",
        "Answer with one JSON object and nothing else, with exactly these fields:",
        "instrument: the instrument symbol exactly as given;",
        "action: buy, sell or hold;",
        "qty: base-asset quantity to buy or sell, or null;",
        "qty_quote: quote-asset amount to spend on a buy, or null (buys only);",
        "weight_target: the share of equity to hold in the instrument, 0 to 1, or null;",
        "for buy and sell set exactly one of qty, qty_quote, weight_target; for hold set all three to null;",
        "confidence: 0 to 1;",
        "rationale: one or two sentences on why.",
        "Never spend more than quote_free nor sell more than base_free; prefer weight_target.",
    ]
    if settings.limit_orders:
        lines.append(
            f"price_limit: a limit price within {settings.limit_band} (as a fraction) of the close, "
            "or null for a market order."
        )
    return "\n".join(lines)


def _recent_bars(candles: Candles, bar: int, history: int) -> dict[str, Any]:
    first = max(0, bar - history + 1)
    columns = ["close_at", "open", "high", "low", "close"]
    with_volume = candles.volume is not None
    if with_volume:
        columns.append("volume")
    rows = []
    for i in range(first, bar + 1):
        row = [
            candles.close_at(i).isoformat(),
            *(
                str(candles.price(series[i]))
                for series in (candles.open, candles.high, candles.low, candles.close)
            ),
        ]
        if with_volume:
            row.append(str(candles.volume_at(i)))
        rows.append(row)
    return {"columns": columns, "rows": rows}

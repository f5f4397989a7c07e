"""The agent's answer: its pydantic model (whose JSON Schema the model is asked to follow) and checks.

An answer text becomes a ``Decision`` only if it passes, in order:

1. ``malformed_json`` -- it parses as JSON (numbers parsed as exact ``Decimal``; NaN and
   Infinity refused);
2. ``schema_violation`` -- it validates against ``AgentAnswer`` (or ``AgentLimitAnswer`` when
   limit orders are on): every field present, no extra field, ``action`` one of buy, sell,
   hold, numbers as JSON numbers or decimal strings, exactly one size for buy and sell (none
   for hold), ``qty_quote`` for buys only;
3. ``unknown_symbol`` -- ``instrument`` is the run's instrument, spelled exactly;
4. ``out_of_bounds`` -- the bounds below.

Bounds (long-only spot, no leverage):

- every number has at most 18 decimal places and is below 10^15 (nothing real is larger, and
  it keeps the ledger's 50-digit arithmetic exact);
- ``confidence`` in [0, 1]; ``weight_target`` in [0, 1]; ``qty``, ``qty_quote`` and
  ``price_limit`` above 0;
- a buy spends at most the free quote balance: ``qty_quote <= quote_free``, or
  ``qty x (price_limit or close) <= quote_free``;
- a sell sells at most the free base balance: ``qty <= base_free``;
- ``price_limit`` within ``limit_band`` of the close: ``|price_limit / close - 1| <= band``.

The exchange rules (step, minimum notional), the kill switch and the mode gates still apply
afterwards, to every order, exactly as for rule-based strategies.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation, localcontext
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator, ValidationError, WithJsonSchema, model_validator

from ledger.domain.decisions import Decision, DecisionRejection, MarketContext
from ledger.domain.events import DecisionAction
from ledger.domain.numbers import LEDGER_CONTEXT, ONE, ZERO

MALFORMED_JSON = "malformed_json"
SCHEMA_VIOLATION = "schema_violation"
UNKNOWN_SYMBOL = "unknown_symbol"
OUT_OF_BOUNDS = "out_of_bounds"

_DECIMAL_TEXT = r"^-?[0-9]+(\.[0-9]+)?$"
# Why 18 places and 10^15: no price, quantity or amount needs more, and within them every sum
# and product stays exact in LEDGER_CONTEXT's 50 digits.
PLACES_MAX = 18
MAGNITUDE_LIMIT = Decimal(10) ** 15
# Why: enough of the validation errors to name what is wrong, short enough for a table cell.
DETAIL_ERRORS_MAX = 3


def _exact(value: object) -> Decimal:
    # JSON numbers arrive as Decimal (parse_float) or int; strings must be plain decimals.
    if isinstance(value, bool):
        msg = "expected a number, not true/false"
        raise ValueError(msg)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, Decimal) and value.is_finite():
        return value
    if isinstance(value, str) and re.fullmatch(_DECIMAL_TEXT, value):
        return Decimal(value)
    msg = 'expected a decimal number, e.g. 0.25 or "0.25"'
    raise ValueError(msg)


def _exact_or_none(value: object) -> Decimal | None:
    return None if value is None else _exact(value)


_NUMBER_SCHEMA: dict[str, Any] = {"type": "number"}
_TEXT_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _DECIMAL_TEXT}
Number = Annotated[Decimal, PlainValidator(_exact), WithJsonSchema({"anyOf": [_NUMBER_SCHEMA, _TEXT_SCHEMA]})]
OptionalNumber = Annotated[
    Decimal | None,
    PlainValidator(_exact_or_none),
    WithJsonSchema({"anyOf": [_NUMBER_SCHEMA, _TEXT_SCHEMA, {"type": "null"}]}),
]


class AgentAnswer(BaseModel):
    """One decision for one instrument, sized by exactly one of qty, qty_quote, weight_target."""

    # Every field is required (null where unused), as OpenAI's strict structured outputs demand.
    model_config = ConfigDict(extra="forbid", frozen=True, title="trade_decision")

    instrument: str
    action: Literal["buy", "sell", "hold"]
    qty: OptionalNumber
    qty_quote: OptionalNumber
    weight_target: OptionalNumber
    confidence: Number
    rationale: str

    @model_validator(mode="after")
    def _one_size(self) -> AgentAnswer:
        sizes = [n for n in ("qty", "qty_quote", "weight_target") if getattr(self, n) is not None]
        if self.action == "hold" and sizes:
            msg = f"hold takes no size, but {sizes[0]} is set"
            raise ValueError(msg)
        if self.action != "hold" and len(sizes) != 1:
            msg = f"{self.action} takes exactly one of qty, qty_quote, weight_target; {len(sizes)} set"
            raise ValueError(msg)
        if self.action == "sell" and self.qty_quote is not None:
            msg = "qty_quote sizes buys only; size a sell with qty or weight_target"
            raise ValueError(msg)
        return self

    def limit(self) -> Decimal | None:
        """Return the limit price (market orders only in this model)."""
        return None


class AgentLimitAnswer(AgentAnswer):
    """An answer that may also set a limit price (null for a market order)."""

    price_limit: OptionalNumber

    def limit(self) -> Decimal | None:
        """Return the limit price, or None for a market order."""
        return self.price_limit


def response_schema(model: type[AgentAnswer]) -> dict[str, Any]:
    """Return ``model``'s JSON Schema, as sent in ``response_format``."""
    return model.model_json_schema()


def interpret(
    content: str,
    context: MarketContext,
    *,
    model: type[AgentAnswer],
    limit_band: Decimal,
    input_digest: str,
) -> Decision | DecisionRejection:
    """Return the decision ``content`` states, or why it must not become an order (module doc)."""

    def rejected(reason: str, detail: str) -> DecisionRejection:
        return DecisionRejection(
            instrument=context.instrument,
            reason=reason,
            detail=detail,
            input_digest=input_digest,
            output=content,
        )

    try:
        data = json.loads(content, parse_float=Decimal, parse_constant=_refuse_constant)
    except (ValueError, InvalidOperation) as e:
        return rejected(MALFORMED_JSON, f"the answer is not JSON: {e}")
    try:
        answer = model.model_validate(data)
    except ValidationError as e:
        return rejected(SCHEMA_VIOLATION, _errors(e))
    if answer.instrument != context.instrument:
        detail = f"instrument {answer.instrument!r} is not this run's {context.instrument!r}"
        return rejected(UNKNOWN_SYMBOL, detail)
    problem = bounds_problem(answer, context, limit_band)
    if problem is not None:
        return rejected(OUT_OF_BOUNDS, problem)
    return Decision(
        instrument=context.instrument,
        action=DecisionAction(answer.action),
        qty=answer.qty,
        qty_quote=answer.qty_quote,
        weight_target=answer.weight_target,
        price_limit=answer.limit(),
        confidence=answer.confidence,
        rationale=answer.rationale,
        input_digest=input_digest,
        output=content,
    )


def bounds_problem(answer: AgentAnswer, context: MarketContext, limit_band: Decimal) -> str | None:
    """Return what in ``answer`` is out of bounds at ``context``, or None (see the module doc)."""
    numbers = {
        "qty": answer.qty,
        "qty_quote": answer.qty_quote,
        "weight_target": answer.weight_target,
        "price_limit": answer.limit(),
        "confidence": answer.confidence,
    }
    for name, value in numbers.items():
        if value is None:
            continue
        if _places(value) > PLACES_MAX or abs(value) >= MAGNITUDE_LIMIT:
            return f"{name} {value} has more than {PLACES_MAX} decimal places or is 10^15 or more"
    for name in ("confidence", "weight_target"):
        value = numbers[name]
        if value is not None and not ZERO <= value <= ONE:
            return f"{name} {value} is outside [0, 1]"
    for name in ("qty", "qty_quote", "price_limit"):
        value = numbers[name]
        if value is not None and value <= ZERO:
            return f"{name} {value} must be above 0"
    return _balance_problem(answer, context) or _limit_problem(answer.limit(), context, limit_band)


def _balance_problem(answer: AgentAnswer, context: MarketContext) -> str | None:
    with localcontext(LEDGER_CONTEXT):
        if answer.action == "sell" and answer.qty is not None and answer.qty > context.base_free:
            return f"sell qty {answer.qty} exceeds the free base balance {context.base_free}"
        if answer.action != "buy":
            return None
        if answer.qty_quote is not None and answer.qty_quote > context.quote_free:
            return f"buy qty_quote {answer.qty_quote} exceeds the free quote balance {context.quote_free}"
        limit = answer.limit()
        price = context.price_close if limit is None else limit
        if answer.qty is not None and answer.qty * price > context.quote_free:
            cost = answer.qty * price
            return f"buy qty {answer.qty} at {price} costs {cost}, above the free quote {context.quote_free}"
    return None


def _limit_problem(limit: Decimal | None, context: MarketContext, band: Decimal) -> str | None:
    if limit is None:
        return None
    with localcontext(LEDGER_CONTEXT):
        distance = abs(limit / context.price_close - ONE)
    if distance > band:
        return f"price_limit {limit} is more than {band} away from the close {context.price_close}"
    return None


def _places(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else PLACES_MAX + 1


def _refuse_constant(name: str) -> Decimal:
    msg = f"{name} is not a number JSON allows"
    raise ValueError(msg)


def _errors(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:DETAIL_ERRORS_MAX]:
        where = ".".join(str(p) for p in item["loc"]) or "answer"
        parts.append(f"{where}: {item['msg']}")
    more = error.error_count() - DETAIL_ERRORS_MAX
    if more > 0:
        parts.append(f"and {more} more")
    return "; ".join(parts)

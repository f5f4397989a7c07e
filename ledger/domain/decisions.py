"""What a decision source returns: an intent the engine turns into an order, or a refusal."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.domain.events import DecisionAction


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A decision source's intent for one instrument, with its reasons.

    A source sizes the order in exactly one way: ``qty`` (base quantity), ``qty_quote`` (quote
    amount to spend, buys only) or ``weight_target`` (the instrument's target share of equity,
    0 to 1, which the engine turns into a buy or sell of the difference). HOLD needs none.
    """

    instrument: str
    action: DecisionAction
    qty: Decimal | None = None
    qty_quote: Decimal | None = None
    weight_target: Decimal | None = None
    price_limit: Decimal | None = None
    confidence: Decimal | None = None
    rationale: str = ""
    input_digest: str = ""
    output: str = ""  # the source's raw answer (canonical JSON for rule-based sources)


@dataclass(frozen=True, kw_only=True)
class DecisionRejection:
    """A source's answer that must never become an order, and why (recorded as DecisionRejected)."""

    instrument: str
    reason: str  # machine-readable, e.g. malformed_json, schema_violation, timeout
    detail: str
    input_digest: str = ""
    output: str = ""  # the raw answer, empty when none arrived


@dataclass(frozen=True, kw_only=True)
class MarketContext:
    """What a decision source sees at a bar close: prices and the ledger's projections.

    ``equity`` is quote cash plus open positions at ``price_close``; ``pnl_realized`` and
    ``fills`` summarise the run's record so far; ``open_orders`` counts orders still working.
    """

    bar: int
    instrument: str
    price_close: Decimal
    qty_open: Decimal
    quote_free: Decimal
    base_free: Decimal
    equity: Decimal
    pnl_realized: Decimal
    fills: int
    open_orders: int

"""What a decision source returns: an intent the engine turns into an order."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.domain.events import DecisionAction


@dataclass(frozen=True, kw_only=True)
class Decision:
    """A decision source's intent for one instrument, with its reasons."""

    instrument: str
    action: DecisionAction
    qty: Decimal | None = None  # base quantity
    qty_quote: Decimal | None = None  # quote amount to spend
    price_limit: Decimal | None = None
    confidence: Decimal | None = None
    rationale: str = ""
    input_digest: str = ""
    output: str = ""  # the source's raw answer (canonical JSON for rule-based sources)


@dataclass(frozen=True, kw_only=True)
class MarketContext:
    """What a decision source sees at a bar close: prices and the ledger's projections."""

    bar: int
    instrument: str
    price_close: Decimal
    qty_open: Decimal
    quote_free: Decimal
    base_free: Decimal

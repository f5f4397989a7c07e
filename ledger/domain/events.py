"""Domain events: immutable facts, named in the past tense.

Every event is a frozen, keyword-only dataclass with flat scalar fields. Money and quantities
are ``Decimal`` (built from strings), times are UTC-aware, and ``class_version`` is the schema
version stored with each event; ``upcast_vN_vN+1`` static methods lift old stored states.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID


class Side(enum.Enum):
    """Direction of an order or fill; values are stored, so never change them."""

    BUY = "buy"
    SELL = "sell"


class OrderType(enum.Enum):
    """How an order is priced; values are stored."""

    MARKET = "market"
    LIMIT = "limit"


class TradingMode(enum.Enum):
    """Where a run's orders go; values are stored."""

    BACKTEST = "backtest"
    PAPER = "paper"
    LIVE = "live"


class DecisionAction(enum.Enum):
    """What a decision source asked for; values are stored."""

    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


def _require_aware(value: datetime, name: str) -> None:
    if value.utcoffset() is None:
        msg = f"{name} must be timezone-aware, was {value!r}"
        raise ValueError(msg)


def _require_positive(value: Decimal | None, name: str) -> None:
    if value is not None and not value > 0:
        msg = f"{name} must be positive, was {value}"
        raise ValueError(msg)


def _require_non_negative(value: Decimal, name: str) -> None:
    if value < 0:
        msg = f"{name} must not be negative, was {value}"
        raise ValueError(msg)


# Per event class, the names of its Decimal fields (annotations are strings here).
_DECIMAL_FIELDS: dict[type, tuple[str, ...]] = {}


def _decimal_fields(cls: type) -> tuple[str, ...]:
    names = _DECIMAL_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in fields(cls) if str(f.type).startswith("Decimal"))
        _DECIMAL_FIELDS[cls] = names
    return names


def _require_finite_decimals(event: object) -> None:
    # Ledger amounts are finite Decimals: a float, bool or int would be stored as a JSON number
    # and come back as a different value; an infinity would poison every projection.
    for name in _decimal_fields(type(event)):
        value = getattr(event, name)
        if value is None:
            continue
        if type(value) is not Decimal or not value.is_finite():
            msg = f"{name} must be a finite Decimal, was {value!r}"
            raise TypeError(msg) if type(value) is not Decimal else ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class _Event:
    originator_id: UUID
    originator_version: int
    occurred_at: datetime
    run_id: UUID

    def __post_init__(self) -> None:
        _require_aware(self.occurred_at, "occurred_at")
        if type(self.originator_version) is not int or self.originator_version < 1:
            msg = f"originator_version starts at 1 (an int), was {self.originator_version!r}"
            raise ValueError(msg)
        _require_finite_decimals(self)


@dataclass(frozen=True, kw_only=True)
class RunStarted(_Event):
    """The engine started a run with the inputs needed to reproduce it."""

    # Version 2 added fill_model, so a backtest can be re-run from its RunStarted alone;
    # version-1 runs were all filled at the next bar's open (the only model then).
    class_version: ClassVar[int] = 2

    mode: TradingMode
    seed: int
    venue: str
    instrument: str
    base_asset: str
    quote_asset: str
    cash_initial: Decimal
    fee_rate: Decimal
    strategy: str
    params: str  # canonical JSON of the strategy parameters (flat scalar rule)
    data_source: str
    data_digest: str
    config_hash: str
    code_version: str
    # The fill model and every setting that differs from its default, canonical text such as
    # "next-open slippage=sqrt latency_ms=250" (fill_models.FillSettings.describe); plain
    # next-open is "next-open", so the schema did not change when the settings came.
    fill_model: str

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive(self.cash_initial, "cash_initial")
        _require_non_negative(self.fee_rate, "fee_rate")

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Lift a version-1 start: next-bar-open was the only fill model."""
        state["fill_model"] = "next-open"


@dataclass(frozen=True, kw_only=True)
class RunEnded(_Event):
    """The engine ended a run and recorded its final equity."""

    class_version: ClassVar[int] = 1

    reason: str
    equity_final: Decimal
    price_mark: Decimal | None


@dataclass(frozen=True, kw_only=True)
class RunCheckpointed(_Event):
    """The engine recorded its own projection of the run so far, for audit replays to check."""

    class_version: ClassVar[int] = 1

    events: int  # the run's events before this one
    fills: int
    positions: str  # canonical JSON {instrument: {qty_open, price_avg, pnl_realized, fee_total}}
    balances: str  # canonical JSON {asset: {total, reserved}}
    equity: Decimal  # quote-asset equity at the last marks


@dataclass(frozen=True, kw_only=True)
class MarketTapePruned(_Event):
    """The operator's retention policy removed a run's market-data tape file."""

    class_version: ClassVar[int] = 1

    tape: str
    digest: str  # sha256 of the file removed
    reason: str


@dataclass(frozen=True, kw_only=True)
class SlippageEstimated(_Event):
    """The engine walked the venue's order book for an order before placing it."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    instrument: str
    side: Side
    price_best: Decimal
    price_avg: Decimal  # the average price the visible book would fill the order at
    slippage_bps: Decimal  # price_avg against price_best; positive is worse
    slippage_bps_adjusted: Decimal  # x (1 + volatility of the last 60 closes)
    impact: str  # negligible, low, moderate or high (order size against the depth used)
    insufficient_depth: bool
    levels_used: int


@dataclass(frozen=True, kw_only=True)
class VenueReconciled(_Event):
    """The engine compared the venue's balances and open orders with the ledger at start-up."""

    class_version: ClassVar[int] = 1

    venue: str
    balances_venue: str  # canonical JSON {asset: total at the venue}
    balances_ledger: str  # canonical JSON {asset: total the ledger expected}
    differences: str  # canonical JSON {asset: venue - ledger}, only the assets that differ
    orders_unknown: str  # canonical JSON [client order ids open at the venue, unknown here]


@dataclass(frozen=True, kw_only=True)
class MarketTapeRecorded(_Event):
    """A paper or live session recorded the market data it saw (its tape) in a file."""

    class_version: ClassVar[int] = 1

    tape: str  # file name under the ledger's tape folder
    digest: str  # sha256 of the tape file
    bars: int


@dataclass(frozen=True, kw_only=True)
class PriceMarked(_Event):
    """The engine observed a market price used to mark open positions."""

    class_version: ClassVar[int] = 1

    instrument: str
    price: Decimal

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive(self.price, "price")


@dataclass(frozen=True, kw_only=True)
class DecisionMade(_Event):
    """A decision source decided on an action from the market state it saw."""

    class_version: ClassVar[int] = 1

    decision_id: str
    source: str
    instrument: str
    action: DecisionAction
    qty: Decimal | None
    qty_quote: Decimal | None
    price_limit: Decimal | None
    confidence: Decimal | None
    rationale: str
    input_digest: str
    output: str


@dataclass(frozen=True, kw_only=True)
class DecisionRejected(_Event):
    """A decision source's answer was refused before it could become an order.

    ``reason`` is machine-readable (``malformed_json``, ``schema_violation``, ``unknown_symbol``,
    ``out_of_bounds``, ``timeout``, ``http_error``, ...); ``output`` is the raw answer, empty
    when none arrived.
    """

    class_version: ClassVar[int] = 1

    decision_id: str
    source: str
    instrument: str
    reason: str
    detail: str
    input_digest: str
    output: str


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(_Event):
    """The engine placed an order, with its client order id, before any venue saw it."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    decision_id: str | None
    instrument: str
    side: Side
    order_type: OrderType
    qty: Decimal | None  # base quantity; None when the order spends a quote amount
    qty_quote: Decimal | None  # quote amount to spend (Binance quoteOrderQty)
    price_limit: Decimal | None
    price_expected: Decimal | None  # the market price when the order was decided

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.qty is None) == (self.qty_quote is None):
            msg = "an order has exactly one of qty and qty_quote"
            raise ValueError(msg)
        _require_positive(self.qty, "qty")
        _require_positive(self.qty_quote, "qty_quote")
        _require_positive(self.price_limit, "price_limit")
        if self.order_type is OrderType.LIMIT and self.price_limit is None:
            msg = "a limit order needs price_limit"
            raise ValueError(msg)


@dataclass(frozen=True, kw_only=True)
class OrderDenied(_Event):
    """A pre-trade rule refused an order before it left the process."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    reason: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class OrderSubmitted(_Event):
    """The engine sent an order to a venue."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    venue: str


@dataclass(frozen=True, kw_only=True)
class OrderAccepted(_Event):
    """A venue acknowledged an order and gave it a venue order id."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    venue_order_id: str


@dataclass(frozen=True, kw_only=True)
class OrderRejected(_Event):
    """A venue refused an order."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    reason: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class OrderFilled(_Event):
    """A venue reported a full or partial execution of one of our orders."""

    # Version 2 added price_expected (the market price when the order was decided), so
    # every fill records its slippage; version-1 fills upcast to None (not recorded).
    class_version: ClassVar[int] = 2

    client_order_id: str
    venue: str
    instrument: str
    venue_trade_id: str
    side: Side
    qty: Decimal
    price: Decimal
    fee: Decimal
    fee_asset: str
    price_expected: Decimal | None

    def __post_init__(self) -> None:
        super().__post_init__()
        _require_positive(self.qty, "qty")
        _require_positive(self.price, "price")
        _require_non_negative(self.fee, "fee")

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Lift a version-1 fill: no expected price was recorded then."""
        state["price_expected"] = None


@dataclass(frozen=True, kw_only=True)
class OrderCancelRequested(_Event):
    """The engine asked a venue to cancel the rest of an order."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class OrderCanceled(_Event):
    """A venue confirmed that the rest of an order was canceled."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class OrderExpired(_Event):
    """A venue reported that an order expired unfilled or partly filled."""

    class_version: ClassVar[int] = 1

    client_order_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class TradingModeSwitched(_Event):
    """The operator or engine switched a run's trading mode."""

    class_version: ClassVar[int] = 1

    mode_from: TradingMode
    mode_to: TradingMode
    reason: str


@dataclass(frozen=True, kw_only=True)
class TradingModeRefused(_Event):
    """A mode switch was refused: the run's record failed the promotion gates.

    Recorded in the stream of the run whose record was judged; ``criteria`` is canonical JSON
    of every gate with what it requires, what was measured and whether it passed.
    """

    class_version: ClassVar[int] = 1

    mode_from: TradingMode
    mode_to: TradingMode
    criteria: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class KillSwitchEngaged(_Event):
    """The operator or an automatic trigger engaged the kill switch."""

    # Version 2 added liquidate (flatten positions at market); version-1 engagements did not.
    class_version: ClassVar[int] = 2

    reason: str
    actor: str
    liquidate: bool

    @staticmethod
    def upcast_v1_v2(state: dict[str, Any]) -> None:
        """Lift a version-1 engagement: nothing was liquidated then."""
        state["liquidate"] = False


@dataclass(frozen=True, kw_only=True)
class KillSwitchActed(_Event):
    """A session carried out one kill-switch action and recorded its outcome."""

    class_version: ClassVar[int] = 1

    action: str  # cancel, liquidate or stop
    client_order_id: str  # the order canceled or sent ("" for stop)
    outcome: str


@dataclass(frozen=True, kw_only=True)
class ExchangeHealthChecked(_Event):
    """A session checked that its venue answers, and how fast."""

    class_version: ClassVar[int] = 1

    venue: str
    ok: bool
    latency_ms: Decimal | None  # None when it did not answer
    failures: int  # consecutive failed checks, this one included
    detail: str  # "ok", "slow: ...", or the error


@dataclass(frozen=True, kw_only=True)
class ExchangeOutageDetected(_Event):
    """A session found its venue down (consecutive failed health checks) and ran the outage procedure."""

    class_version: ClassVar[int] = 1

    venue: str
    failures: int
    detail: str


@dataclass(frozen=True, kw_only=True)
class SymbolHalted(_Event):
    """A session found a symbol's market halted: an empty book, or no volume with a wide spread."""

    class_version: ClassVar[int] = 1

    instrument: str
    reason: str
    price_last: Decimal | None


@dataclass(frozen=True, kw_only=True)
class SymbolResumed(_Event):
    """A halted symbol's market came back; a large gap is flagged for review."""

    class_version: ClassVar[int] = 1

    instrument: str
    price_before: Decimal | None
    price_after: Decimal | None
    gap: Decimal | None  # |after - before| / before
    review: bool  # the gap is beyond the review threshold (10 %)


@dataclass(frozen=True, kw_only=True)
class MaintenanceApproached(_Event):
    """A session acted ahead of a venue's maintenance window."""

    class_version: ClassVar[int] = 1

    venue: str
    window_start: datetime
    window_end: datetime
    action: str  # no_new_positions or flatten


@dataclass(frozen=True, kw_only=True)
class AdminPassphraseSet(_Event):
    """The operator set the admin passphrase; only its scrypt hash is recorded."""

    class_version: ClassVar[int] = 1

    kdf: str  # "scrypt"
    n: int
    r: int
    p: int
    salt: str  # hex
    digest: str  # hex


@dataclass(frozen=True, kw_only=True)
class KillSwitchReleased(_Event):
    """The operator released the kill switch with the admin passphrase."""

    class_version: ClassVar[int] = 1

    reason: str
    actor: str


LedgerEvent = (
    RunStarted
    | RunEnded
    | RunCheckpointed
    | MarketTapeRecorded
    | VenueReconciled
    | SlippageEstimated
    | MarketTapePruned
    | PriceMarked
    | DecisionMade
    | DecisionRejected
    | OrderPlaced
    | OrderDenied
    | OrderSubmitted
    | OrderAccepted
    | OrderRejected
    | OrderFilled
    | OrderCancelRequested
    | OrderCanceled
    | OrderExpired
    | TradingModeSwitched
    | TradingModeRefused
    | KillSwitchEngaged
    | KillSwitchReleased
    | KillSwitchActed
    | AdminPassphraseSet
    | ExchangeHealthChecked
    | ExchangeOutageDetected
    | SymbolHalted
    | SymbolResumed
    | MaintenanceApproached
)

EVENT_TYPES: tuple[type[LedgerEvent], ...] = (
    RunStarted,
    RunEnded,
    RunCheckpointed,
    MarketTapeRecorded,
    VenueReconciled,
    SlippageEstimated,
    MarketTapePruned,
    PriceMarked,
    DecisionMade,
    DecisionRejected,
    OrderPlaced,
    OrderDenied,
    OrderSubmitted,
    OrderAccepted,
    OrderRejected,
    OrderFilled,
    OrderCancelRequested,
    OrderCanceled,
    OrderExpired,
    TradingModeSwitched,
    TradingModeRefused,
    KillSwitchEngaged,
    KillSwitchReleased,
    KillSwitchActed,
    AdminPassphraseSet,
    ExchangeHealthChecked,
    ExchangeOutageDetected,
    SymbolHalted,
    SymbolResumed,
    MaintenanceApproached,
)

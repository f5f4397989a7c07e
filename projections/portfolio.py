"""The portfolio read model: per run, positions, balances, open orders and the equity curve.

One fold keeps all four because each needs the others at the same point of the log: equity is
balances marked at the latest price, reservations follow the open orders. Every field is exact
``Decimal``; statistics live in ``performance.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import assert_never
from uuid import UUID

from ledger.domain.errors import RunNotFoundError
from ledger.domain.events import (
    AdminPassphraseSet,
    DecisionMade,
    DecisionRejected,
    ExchangeHealthChecked,
    ExchangeOutageDetected,
    KillSwitchActed,
    KillSwitchEngaged,
    KillSwitchReleased,
    LedgerEvent,
    MaintenanceApproached,
    MarketTapePruned,
    MarketTapeRecorded,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPlaced,
    OrderRejected,
    OrderSubmitted,
    PriceMarked,
    RunCheckpointed,
    RunEnded,
    RunStarted,
    Side,
    SlippageEstimated,
    SymbolHalted,
    SymbolResumed,
    TradingModeRefused,
    TradingModeSwitched,
    VenueReconciled,
)
from ledger.domain.numbers import LEDGER_CONTEXT, ONE, ZERO
from projections.base import decode_state, encode_state
from projections.positions import Position, apply_fill

# Why 1e-8 bps: slippage is a ratio (a division); a fixed exponent keeps replays identical.
SLIPPAGE_EXPONENT = Decimal("1e-8")
MINUS_ONE = Decimal(-1)


# One-operation sums use LEDGER_CONTEXT's own methods (LEDGER_CONTEXT.add(a, b) is the same number
# as a + b inside localcontext(LEDGER_CONTEXT)), which skip the context copy and swap that
# localcontext() costs on every call; the fold runs once per event.
# Balance and OpenOrder are mutable and updated in place: they are private rows of one
# RunView, and copying them per event (dataclasses.replace) was half of the rebuild's time.
@dataclass(kw_only=True)
class Balance:
    """One asset's balance: total, and the part reserved by open orders."""

    total: Decimal = ZERO
    reserved: Decimal = ZERO

    @property
    def free(self) -> Decimal:
        """Return what new orders may spend."""
        return LEDGER_CONTEXT.subtract(self.total, self.reserved)


@dataclass(kw_only=True)
class OpenOrder:
    """An order that is still working (placed and not terminal)."""

    client_order_id: str
    instrument: str
    side: Side
    qty: Decimal | None
    qty_quote: Decimal | None
    price_limit: Decimal | None
    price_expected: Decimal | None
    status: str
    qty_filled: Decimal = ZERO
    reserved: Decimal = ZERO  # what this order still holds in its spend asset


@dataclass(frozen=True, kw_only=True)
class EquityPoint:
    """Equity (quote asset) at a moment, and whether a position was open then."""

    at: datetime
    equity: Decimal
    exposed: bool


@dataclass(kw_only=True)
class RunView:
    """Everything the read side knows about one run."""

    run_id: UUID
    started: RunStarted
    ended: RunEnded | None = None
    events: int = 0
    decisions: int = 0
    decisions_rejected: int = 0
    orders: int = 0
    denied: int = 0
    rejected: int = 0
    fills: int = 0
    mode: str = ""
    positions: dict[str, Position] = field(default_factory=dict)
    balances: dict[str, Balance] = field(default_factory=dict)
    open_orders: dict[str, OpenOrder] = field(default_factory=dict)
    equity: list[EquityPoint] = field(default_factory=list)
    closes: list[Decimal] = field(default_factory=list)  # realized PnL of each reducing fill
    slippage_bps: dict[str, list[Decimal]] = field(default_factory=dict)
    last_at: datetime | None = None

    def balance(self, asset: str) -> Balance:
        """Return the balance of ``asset`` (zero when never touched); do not mutate it."""
        return self.balances.get(asset, Balance())

    def balance_entry(self, asset: str) -> Balance:
        """Return the stored balance row of ``asset``, creating it (for in-place updates)."""
        balance = self.balances.get(asset)
        if balance is None:
            balance = self.balances[asset] = Balance()
        return balance

    def equity_now(self, marks: dict[str, Decimal] | None = None) -> Decimal:
        """Return quote-asset equity: quote balance plus open quantities at their marks."""
        quote = self.started.quote_asset
        with localcontext(LEDGER_CONTEXT):
            total = self.balance(quote).total
            for instrument, position in self.positions.items():
                mark = (marks or {}).get(instrument, position.price_last)
                if position.qty_open != ZERO and mark is not None:
                    total += position.qty_open * mark
            return total


@dataclass(kw_only=True)
class _State:
    runs: list[RunView]  # in log order; a list because canonical JSON needs string keys
    kill_switch_engaged: bool


class PortfolioProjection:
    """Fold ledger events into one ``RunView`` per run."""

    name = "portfolio"
    version = 1  # bump to force a rebuild from seq 0

    def __init__(self) -> None:
        """Start empty: no runs seen."""
        self.runs: dict[UUID, RunView] = {}
        self.kill_switch_engaged = False

    def snapshot(self) -> bytes:
        """Return the whole state as canonical bytes (for checkpoints and comparisons)."""
        return encode_state(
            _State(runs=list(self.runs.values()), kill_switch_engaged=self.kill_switch_engaged)
        )

    def restore(self, state: bytes) -> None:
        """Replace the state with one produced by ``snapshot``."""
        decoded = decode_state(state, _State)
        self.runs = {run.run_id: run for run in decoded.runs}
        self.kill_switch_engaged = decoded.kill_switch_engaged

    def find_run(self, text: str | None) -> RunView:
        """Return the run named by a full id or a unique prefix (default: the newest run).

        Raises:
            RunNotFoundError: no run, or the prefix matches none or several.
        """
        runs = list(self.runs.values())
        if not runs:
            msg = "the ledger holds no runs yet; run `tradeledger backtest` first"
            raise RunNotFoundError(msg)
        if text is None:
            return runs[-1]
        wanted = text.replace("-", "").lower()
        matches = [r for r in runs if r.run_id.hex.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            msg = f"RUN: no run {text!r} in this ledger; list them with `tradeledger sessions`"
        else:
            msg = f"RUN: {text!r} matches {len(matches)} runs; give more characters of the run id"
        raise RunNotFoundError(msg)

    def apply(self, event: LedgerEvent) -> None:  # noqa: C901, PLR0912 - one case per event type
        """Update the read model with one event, in log order."""
        if isinstance(event, RunStarted):
            self._start(event)
            return
        if isinstance(event, KillSwitchEngaged | KillSwitchReleased):
            self.kill_switch_engaged = isinstance(event, KillSwitchEngaged)
            return
        if isinstance(event, AdminPassphraseSet):
            return  # the control stream's own record; no run
        run = self.runs.get(event.run_id)
        if run is None:
            return  # events of a run whose start is not in this log (never written by us)
        run.events += 1
        run.last_at = event.occurred_at
        # Cases in the order a run's log is made of (each order: a decision, placed, submitted,
        # accepted, filled; then the hourly marks): a class pattern is one isinstance check.
        match event:
            case OrderFilled():
                self._fill(run, event)
            case DecisionMade():
                run.decisions += 1
            case OrderPlaced():
                run.orders += 1
                self._place(run, event)
            case OrderSubmitted():
                self._set_status(run, event.client_order_id, "submitted")
            case OrderAccepted():
                self._accept(run, event)
            case PriceMarked():
                self._mark(run, event.instrument, event.price, event.occurred_at)
            case OrderCancelRequested():
                self._set_status(run, event.client_order_id, "cancel_requested")
            case OrderDenied():
                run.denied += 1
                self._close_order(run, event.client_order_id)
            case OrderRejected():
                run.rejected += 1
                self._close_order(run, event.client_order_id)
            case OrderCanceled() | OrderExpired():
                self._close_order(run, event.client_order_id)
            case DecisionRejected():
                run.decisions_rejected += 1
            case (
                RunCheckpointed()
                | MarketTapeRecorded()
                | MarketTapePruned()
                | VenueReconciled()
                | SlippageEstimated()
                | KillSwitchActed()
                | ExchangeHealthChecked()
                | ExchangeOutageDetected()
                | SymbolHalted()
                | SymbolResumed()
                | MaintenanceApproached()
                | TradingModeRefused()
            ):
                pass  # audit records (the run's own figures, its market tape): nothing to fold
            case RunEnded():
                run.ended = event
                if event.price_mark is not None:
                    self._mark(run, run.started.instrument, event.price_mark, event.occurred_at)
            case TradingModeSwitched():
                run.mode = event.mode_to.value
            case _:  # RunStarted and the kill switch were handled above
                assert_never(event)

    def _start(self, event: RunStarted) -> None:
        run = RunView(
            run_id=event.run_id, started=event, events=1, mode=event.mode.value, last_at=event.occurred_at
        )
        run.balances[event.quote_asset] = Balance(total=event.cash_initial)
        run.equity.append(EquityPoint(at=event.occurred_at, equity=event.cash_initial, exposed=False))
        self.runs[event.run_id] = run

    @staticmethod
    def _place(run: RunView, event: OrderPlaced) -> None:
        run.open_orders[event.client_order_id] = OpenOrder(
            client_order_id=event.client_order_id,
            instrument=event.instrument,
            side=event.side,
            qty=event.qty,
            qty_quote=event.qty_quote,
            price_limit=event.price_limit,
            price_expected=event.price_expected,
            status="placed",
        )

    @staticmethod
    def _set_status(run: RunView, client_order_id: str, status: str) -> None:
        order = run.open_orders.get(client_order_id)
        if order is not None:
            order.status = status

    def _accept(self, run: RunView, event: OrderAccepted) -> None:
        order = run.open_orders.get(event.client_order_id)
        if order is None:
            return
        asset, amount = _reservation(run, order)
        balance = run.balance_entry(asset)
        balance.reserved = LEDGER_CONTEXT.add(balance.reserved, amount)
        order.status = "accepted"
        order.reserved = amount

    def _close_order(self, run: RunView, client_order_id: str) -> None:
        order = run.open_orders.pop(client_order_id, None)
        if order is None or order.reserved == ZERO:
            return
        balance = run.balance_entry(_spend_asset(run, order))
        balance.reserved = LEDGER_CONTEXT.subtract(balance.reserved, order.reserved)

    def _fill(self, run: RunView, event: OrderFilled) -> None:
        run.fills += 1
        quote = run.started.quote_asset
        base = _base_asset(event.instrument)
        fee_in_quote = event.fee_asset == quote
        position = run.positions.get(event.instrument)
        if position is None:
            position = Position(instrument=event.instrument)
        position, close = apply_fill(position, event, fee_in_quote=fee_in_quote)
        run.positions[event.instrument] = position
        if close is not None:
            run.closes.append(close.pnl)
        with localcontext(LEDGER_CONTEXT):
            notional = event.qty * event.price
            sign = ONE if event.side is Side.BUY else MINUS_ONE
            self._post(run, quote, -sign * notional)
            self._post(run, base, sign * event.qty)
            self._post(run, event.fee_asset, -event.fee)
            spent = notional + (event.fee if fee_in_quote else ZERO) if event.side is Side.BUY else event.qty
            self._release(run, event, spent)
            if event.price_expected is not None:
                bps = sign * (event.price - event.price_expected) / event.price_expected * 10000
                run.slippage_bps.setdefault(event.instrument, []).append(bps.quantize(SLIPPAGE_EXPONENT))

    @staticmethod
    def _post(run: RunView, asset: str, amount: Decimal) -> None:
        run.balance_entry(asset).total += amount

    def _release(self, run: RunView, event: OrderFilled, spent: Decimal) -> None:
        order = run.open_orders.get(event.client_order_id)
        if order is None:
            return
        release = min(order.reserved, spent)
        qty_filled = order.qty_filled + event.qty
        order.qty_filled = qty_filled
        order.reserved -= release
        order.status = "partially_filled"
        run.balance_entry(_spend_asset(run, order)).reserved -= release
        # A quote-sized market order is done after its fill; a sized order when fully filled.
        if order.qty is None or qty_filled >= order.qty:
            self._close_order(run, event.client_order_id)

    @staticmethod
    def _mark(run: RunView, instrument: str, price: Decimal, at: datetime) -> None:
        position = run.positions.get(instrument)
        run.positions[instrument] = (
            Position(instrument=instrument, price_last=price) if position is None else position.marked(price)
        )
        exposed = any(p.qty_open != ZERO for p in run.positions.values())
        run.equity.append(EquityPoint(at=at, equity=run.equity_now(), exposed=exposed))


def _spend_asset(run: RunView, order: OpenOrder) -> str:
    # Buys spend the run's quote asset, sells the base asset of the order's own instrument.
    return run.started.quote_asset if order.side is Side.BUY else _base_asset(order.instrument)


def _base_asset(instrument: str) -> str:
    return instrument.split("/", 1)[0]


def _reservation(run: RunView, order: OpenOrder) -> tuple[str, Decimal]:
    asset = _spend_asset(run, order)
    if order.side is Side.SELL:
        return asset, order.qty if order.qty is not None else ZERO
    if order.qty_quote is not None:
        return asset, order.qty_quote
    price = order.price_limit if order.price_limit is not None else order.price_expected
    if price is None or order.qty is None:
        return asset, ZERO
    return asset, LEDGER_CONTEXT.multiply(order.qty, price)

"""Object mothers: one function per ledger event, every field defaulted, ids deterministic.

Import them as ``from factories import a_fill`` (``tests/`` is on ``sys.path`` through the
root conftest). Every default is a pure function of the arguments, so two calls with the same
arguments build equal events, and a test only names the fields its scenario is about::

    placed = an_order_placed(qty="1.5", price_expected="100")
    fill = a_fill(side=Side.SELL, qty="0.5", price="110.5", trade=2)

Conventions:

* Numbers are given as ``str`` or ``int`` (or ``Decimal``) and built with ``D()``; pass
  ``None`` where the field is optional and should be absent. A float is refused by ``D()``.
* ``order=N`` picks the client order (``tl-test-000000N``) and so the order stream;
  ``trade=N`` picks the venue trade id (``t-N``) of a fill.
* Stream versions follow the backtest's layout: placed 1, submitted 2, accepted 3, then one
  version per fill (``3 + trade``). Run-stream events default to version 1; pass ``version``.
* Kill-switch events belong to the ledger-wide control stream (``CONTROL_RUN_ID``).
* Defaults use ``is None`` checks, never ``x or default``: ``D("0")`` is falsy.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

from ledger.domain.decisions import MarketContext
from ledger.domain.events import (
    AdminPassphraseSet,
    DecisionAction,
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
    OrderType,
    PriceMarked,
    RunCheckpointed,
    RunEnded,
    RunStarted,
    Side,
    SlippageEstimated,
    SymbolHalted,
    SymbolResumed,
    TradingMode,
    TradingModeRefused,
    TradingModeSwitched,
    VenueReconciled,
)
from ledger.domain.identifiers import CONTROL_RUN_ID, order_stream_id, run_id_for, run_stream_id
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import D
from ledger.domain.order import FillReport

Number = str | int | Decimal

RUN_ID = run_id_for("tests.factories:run-1")
OTHER_RUN_ID = run_id_for("tests.factories:run-2")
INSTRUMENT = "BTC/USDT"
VENUE = "backtest"
T0 = datetime(2025, 5, 20, tzinfo=UTC)


def at(minutes: int = 0) -> datetime:
    """Return ``T0`` plus ``minutes`` (UTC-aware)."""
    return T0 + timedelta(minutes=minutes)


def client_order_id(order: int = 1) -> str:
    """Return the deterministic client order id of the ``order``-th test order."""
    return f"tl-test-{order:07d}"


def _number(value: Number | None) -> Decimal | None:
    return None if value is None else D(value)


def _run(run_id: UUID | None) -> UUID:
    return RUN_ID if run_id is None else run_id


def _when(occurred_at: datetime | None) -> datetime:
    return T0 if occurred_at is None else occurred_at


def _order_stream(originator_id: UUID | None, order: int) -> UUID:
    return order_stream_id(client_order_id(order)) if originator_id is None else originator_id


def _run_stream(originator_id: UUID | None, run_id: UUID) -> UUID:
    return run_stream_id(run_id) if originator_id is None else originator_id


# -- instruments and venue reports --------------------------------------------------------------


def an_instrument(
    *,
    symbol: str = INSTRUMENT,
    base_asset: str = "BTC",
    quote_asset: str = "USDT",
    qty_step: Number = "0.00001",
    price_tick: Number = "0.01",
    qty_min: Number = "0.00001",
    notional_min: Number = "5",
) -> Instrument:
    """Return an instrument; defaults are Binance spot BTC/USDT's filters."""
    return Instrument(
        symbol=symbol,
        base_asset=base_asset,
        quote_asset=quote_asset,
        qty_step=D(qty_step),
        price_tick=D(price_tick),
        qty_min=D(qty_min),
        notional_min=D(notional_min),
    )


def a_fill_report(
    *,
    order: int = 1,
    trade: int = 1,
    side: Side = Side.BUY,
    qty: Number = "1",
    price: Number = "100",
    fee: Number = "0.1",
    fee_asset: str = "USDT",
    venue: str = VENUE,
    venue_trade_id: str | None = None,
    occurred_at: datetime | None = None,
) -> FillReport:
    """Return a venue's fill report for the ``order``-th test order."""
    return FillReport(
        client_order_id=client_order_id(order),
        venue=venue,
        venue_trade_id=f"t-{trade}" if venue_trade_id is None else venue_trade_id,
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_asset=fee_asset,
        occurred_at=at(trade) if occurred_at is None else occurred_at,
    )


# -- the run stream -----------------------------------------------------------------------------


def a_run_started(
    *,
    run_id: UUID | None = None,
    version: int = 1,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    mode: TradingMode = TradingMode.BACKTEST,
    seed: int = 0,
    venue: str = VENUE,
    instrument: str = INSTRUMENT,
    base_asset: str = "BTC",
    quote_asset: str = "USDT",
    cash_initial: Number = "10000",
    fee_rate: Number = "0.001",
    strategy: str = "sma",
    params: dict[str, str] | None = None,
    data_source: str = "factories",
    data_digest: str | None = None,
    config_hash: str | None = None,
    code_version: str = "0.1.0",
    fill_model: str = "next-open",
) -> RunStarted:
    """Return the first event of a run."""
    run = _run(run_id)
    return RunStarted(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        mode=mode,
        seed=seed,
        venue=venue,
        instrument=instrument,
        base_asset=base_asset,
        quote_asset=quote_asset,
        cash_initial=D(cash_initial),
        fee_rate=D(fee_rate),
        strategy=strategy,
        params=json.dumps({"fast": "10", "slow": "30"} if params is None else params, sort_keys=True),
        data_source=data_source,
        data_digest="d" * 64 if data_digest is None else data_digest,
        config_hash="c" * 64 if config_hash is None else config_hash,
        code_version=code_version,
        fill_model=fill_model,
    )


def a_run_ended(
    *,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "data exhausted",
    equity_final: Number = "10000",
    price_mark: Number | None = "100",
) -> RunEnded:
    """Return the last event of a run."""
    run = _run(run_id)
    return RunEnded(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        reason=reason,
        equity_final=D(equity_final),
        price_mark=_number(price_mark),
    )


def a_run_checkpointed(
    *,
    run_id: UUID | None = None,
    version: int = 3,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    events: int = 2,
    fills: int = 0,
    positions: str = "{}",
    balances: str = '{"USDT":{"reserved":"0","total":"10000"}}',
    equity: Number = "10000",
) -> RunCheckpointed:
    """Return the run's own record of its figures at one point."""
    run = _run(run_id)
    return RunCheckpointed(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        events=events,
        fills=fills,
        positions=positions,
        balances=balances,
        equity=D(equity),
    )


def a_price_marked(
    *,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    instrument: str = INSTRUMENT,
    price: Number = "100",
) -> PriceMarked:
    """Return a market price observation on the run stream."""
    run = _run(run_id)
    return PriceMarked(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        instrument=instrument,
        price=D(price),
    )


def a_decision_made(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    decision_id: str | None = None,
    source: str = "sma",
    instrument: str = INSTRUMENT,
    action: DecisionAction = DecisionAction.BUY,
    qty: Number | None = None,
    qty_quote: Number | None = "1000",
    price_limit: Number | None = None,
    confidence: Number | None = "1",
    rationale: str = "a test decided so",
    input_digest: str | None = None,
    output: str = "{}",
) -> DecisionMade:
    """Return the decision behind the ``order``-th test order (run stream)."""
    run = _run(run_id)
    return DecisionMade(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        decision_id=f"{client_order_id(order)}-d" if decision_id is None else decision_id,
        source=source,
        instrument=instrument,
        action=action,
        qty=_number(qty),
        qty_quote=_number(qty_quote),
        price_limit=_number(price_limit),
        confidence=_number(confidence),
        rationale=rationale,
        input_digest="i" * 64 if input_digest is None else input_digest,
        output=output,
    )


def a_trading_mode_switch(
    *,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    mode_from: TradingMode = TradingMode.PAPER,
    mode_to: TradingMode = TradingMode.LIVE,
    reason: str = "promotion gates passed",
) -> TradingModeSwitched:
    """Return a trading-mode switch on the run stream."""
    run = _run(run_id)
    return TradingModeSwitched(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        mode_from=mode_from,
        mode_to=mode_to,
        reason=reason,
    )


def a_kill_switch_engaged(
    *,
    version: int = 1,
    run_id: UUID | None = None,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "operator",
    actor: str = "cli",
) -> KillSwitchEngaged:
    """Return an engagement of the ledger-wide kill switch (control stream by default)."""
    run = CONTROL_RUN_ID if run_id is None else run_id
    return KillSwitchEngaged(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        reason=reason,
        actor=actor,
        liquidate=False,
    )


def a_kill_switch_released(
    *,
    version: int = 2,
    run_id: UUID | None = None,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "operator",
    actor: str = "cli",
) -> KillSwitchReleased:
    """Return a release of the ledger-wide kill switch (control stream by default)."""
    run = CONTROL_RUN_ID if run_id is None else run_id
    return KillSwitchReleased(
        originator_id=_run_stream(originator_id, run),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=run,
        reason=reason,
        actor=actor,
    )


# -- the order stream ---------------------------------------------------------------------------


def an_order_placed(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 1,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    decision_id: str | None = None,
    instrument: str = INSTRUMENT,
    side: Side = Side.BUY,
    order_type: OrderType = OrderType.MARKET,
    qty: Number | None = "1",
    qty_quote: Number | None = None,
    price_limit: Number | None = None,
    price_expected: Number | None = "100",
) -> OrderPlaced:
    """Return the first event of the ``order``-th test order (a 1 BTC market buy)."""
    return OrderPlaced(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        decision_id=decision_id,
        instrument=instrument,
        side=side,
        order_type=order_type,
        qty=_number(qty),
        qty_quote=_number(qty_quote),
        price_limit=_number(price_limit),
        price_expected=_number(price_expected),
    )


def an_order_denied(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "kill_switch",
    detail: str = "the kill switch is engaged; release it first",
) -> OrderDenied:
    """Return a pre-trade denial of the ``order``-th test order."""
    return OrderDenied(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        reason=reason,
        detail=detail,
    )


def an_order_submitted(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 2,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    venue: str = VENUE,
) -> OrderSubmitted:
    """Return the submission of the ``order``-th test order."""
    return OrderSubmitted(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        venue=venue,
    )


def an_order_accepted(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 3,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    venue_order_id: str | None = None,
) -> OrderAccepted:
    """Return the venue's acknowledgement of the ``order``-th test order."""
    return OrderAccepted(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        venue_order_id=f"v-{order}" if venue_order_id is None else venue_order_id,
    )


def an_order_rejected(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 3,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "insufficient_funds",
    detail: str = "Account has insufficient balance for requested action.",
) -> OrderRejected:
    """Return the venue's refusal of the ``order``-th test order."""
    return OrderRejected(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        reason=reason,
        detail=detail,
    )


def a_fill(
    *,
    order: int = 1,
    trade: int = 1,
    run_id: UUID | None = None,
    version: int | None = None,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    venue: str = VENUE,
    instrument: str = INSTRUMENT,
    venue_trade_id: str | None = None,
    side: Side = Side.BUY,
    qty: Number = "1",
    price: Number = "100",
    fee: Number = "0.1",
    fee_asset: str = "USDT",
    price_expected: Number | None = None,
) -> OrderFilled:
    """Return the ``trade``-th fill of the ``order``-th test order (version ``3 + trade``)."""
    return OrderFilled(
        originator_id=_order_stream(originator_id, order),
        originator_version=3 + trade if version is None else version,
        occurred_at=at(trade) if occurred_at is None else occurred_at,
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        venue=venue,
        instrument=instrument,
        venue_trade_id=f"t-{trade}" if venue_trade_id is None else venue_trade_id,
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_asset=fee_asset,
        price_expected=_number(price_expected),
    )


def a_cancel_requested(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 4,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "timeout",
) -> OrderCancelRequested:
    """Return a cancel request for the rest of the ``order``-th test order."""
    return OrderCancelRequested(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        reason=reason,
    )


def an_order_canceled(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 5,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "timeout",
) -> OrderCanceled:
    """Return the venue's confirmation that the ``order``-th test order was canceled."""
    return OrderCanceled(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        reason=reason,
    )


def an_order_expired(
    *,
    order: int = 1,
    run_id: UUID | None = None,
    version: int = 4,
    originator_id: UUID | None = None,
    occurred_at: datetime | None = None,
    reason: str = "no liquidity",
) -> OrderExpired:
    """Return the venue's report that the ``order``-th test order expired."""
    return OrderExpired(
        originator_id=_order_stream(originator_id, order),
        originator_version=version,
        occurred_at=_when(occurred_at),
        run_id=_run(run_id),
        client_order_id=client_order_id(order),
        reason=reason,
    )


# -- whole histories ----------------------------------------------------------------------------


def one_of_each_event(run_id: UUID | None = None) -> list[LedgerEvent]:
    """Return one event of every type, with stream versions that fit one append.

    The run stream holds RunStarted(1), DecisionMade(2), PriceMarked(3), TradingModeSwitched(4),
    MarketTapeRecorded(5), VenueReconciled(6), SlippageEstimated(7), MarketTapePruned(8),
    KillSwitchActed(9), ExchangeHealthChecked(10), ExchangeOutageDetected(11), SymbolHalted(12),
    SymbolResumed(13), MaintenanceApproached(14), DecisionRejected(15), TradingModeRefused(16),
    RunCheckpointed(17), RunEnded(18); order 1 is placed,
    submitted, accepted, filled twice, cancel-requested and canceled; order 2 is denied; order 3
    is rejected; order 4 expires; the control stream is engaged, released and given an admin
    passphrase. Thirty event types.
    """
    run = _run(run_id)
    return [
        a_run_started(run_id=run),
        a_decision_made(run_id=run, version=2, qty=None, qty_quote="1000", confidence="0.75"),
        an_order_placed(run_id=run, order=1, order_type=OrderType.LIMIT, qty="2", price_limit="101.5"),
        an_order_submitted(run_id=run, order=1),
        an_order_accepted(run_id=run, order=1),
        a_fill(run_id=run, order=1, trade=1, qty="0.5", price="100.25", price_expected="100"),
        a_fill(run_id=run, order=1, trade=2, qty="0.25", price="101", fee="0", fee_asset="BNB"),
        a_cancel_requested(run_id=run, order=1, version=6),
        an_order_canceled(run_id=run, order=1, version=7),
        a_price_marked(run_id=run, version=3, price="99.99"),
        an_order_placed(run_id=run, order=2, side=Side.SELL, qty="1", price_expected=None),
        an_order_denied(
            run_id=run, order=2, reason="insufficient_balance", detail="sell 1 exceeds free 0 BTC"
        ),
        an_order_placed(run_id=run, order=3, qty=None, qty_quote="50"),
        an_order_submitted(run_id=run, order=3),
        an_order_rejected(run_id=run, order=3),
        an_order_placed(run_id=run, order=4),
        an_order_submitted(run_id=run, order=4),
        an_order_accepted(run_id=run, order=4),
        an_order_expired(run_id=run, order=4),
        a_trading_mode_switch(
            run_id=run, version=4, mode_from=TradingMode.BACKTEST, mode_to=TradingMode.PAPER
        ),
        a_kill_switch_engaged(version=1),
        a_kill_switch_released(version=2),
        AdminPassphraseSet(
            originator_id=run_stream_id(CONTROL_RUN_ID),
            originator_version=3,
            occurred_at=_when(None),
            run_id=CONTROL_RUN_ID,
            kdf="scrypt",
            n=2**15,
            r=8,
            p=1,
            salt="00" * 16,
            digest="11" * 32,
        ),
        MarketTapeRecorded(
            originator_id=run_stream_id(run),
            originator_version=5,
            occurred_at=_when(None),
            run_id=run,
            tape=f"{run}.jsonl",
            digest="e" * 64,
            bars=3,
        ),
        VenueReconciled(
            originator_id=run_stream_id(run),
            originator_version=6,
            occurred_at=_when(None),
            run_id=run,
            venue="binance",
            balances_venue='{"BTC":"0.5","USDT":"10000"}',
            balances_ledger='{"USDT":"10000"}',
            differences='{"BTC":"0.5"}',
            orders_unknown='["manual-1"]',
        ),
        SlippageEstimated(
            originator_id=run_stream_id(run),
            originator_version=7,
            occurred_at=_when(None),
            run_id=run,
            client_order_id="tl-estimated-0000001",
            instrument=INSTRUMENT,
            side=Side.BUY,
            price_best=D("100"),
            price_avg=D("100.05"),
            slippage_bps=D("5"),
            slippage_bps_adjusted=D("5.01"),
            impact="low",
            insufficient_depth=False,
            levels_used=2,
        ),
        MarketTapePruned(
            originator_id=run_stream_id(run),
            originator_version=8,
            occurred_at=_when(None),
            run_id=run,
            tape=f"{run}.jsonl",
            digest="e" * 64,
            reason="retention: older than 30 days",
        ),
        KillSwitchActed(
            originator_id=run_stream_id(run),
            originator_version=9,
            occurred_at=_when(None),
            run_id=run,
            action="cancel",
            client_order_id="tl-canceled-0000001",
            outcome="canceled at the venue",
        ),
        ExchangeHealthChecked(
            originator_id=run_stream_id(run),
            originator_version=10,
            occurred_at=_when(None),
            run_id=run,
            venue="binance",
            ok=False,
            latency_ms=None,
            failures=3,
            detail="RequestTimeout: binance GET /api/v3/time",
        ),
        ExchangeOutageDetected(
            originator_id=run_stream_id(run),
            originator_version=11,
            occurred_at=_when(None),
            run_id=run,
            venue="binance",
            failures=3,
            detail="RequestTimeout",
        ),
        SymbolHalted(
            originator_id=run_stream_id(run),
            originator_version=12,
            occurred_at=_when(None),
            run_id=run,
            instrument=INSTRUMENT,
            reason="the book has no bids",
            price_last=D("100"),
        ),
        SymbolResumed(
            originator_id=run_stream_id(run),
            originator_version=13,
            occurred_at=_when(None),
            run_id=run,
            instrument=INSTRUMENT,
            price_before=D("100"),
            price_after=D("112"),
            gap=D("0.12"),
            review=True,
        ),
        MaintenanceApproached(
            originator_id=run_stream_id(run),
            originator_version=14,
            occurred_at=_when(None),
            run_id=run,
            venue="binance",
            window_start=_when(None),
            window_end=_when(None),
            action="flatten",
        ),
        DecisionRejected(
            originator_id=run_stream_id(run),
            originator_version=15,
            occurred_at=_when(None),
            run_id=run,
            decision_id=f"{run}-n2",
            source="llm",
            instrument=INSTRUMENT,
            reason="schema_violation",
            detail="action: Input should be 'buy', 'sell' or 'hold'",
            input_digest="f" * 64,
            output='{"action": "short"}',
        ),
        TradingModeRefused(
            originator_id=run_stream_id(run),
            originator_version=16,
            occurred_at=_when(None),
            run_id=run,
            mode_from=TradingMode.PAPER,
            mode_to=TradingMode.LIVE,
            criteria='[{"measured": "3", "name": "trades", "passed": false, "required": ">= 100"}]',
            detail="trades 3 (needs >= 100)",
        ),
        a_run_checkpointed(run_id=run, version=17, events=33, fills=2, equity="9999.5"),
        a_run_ended(run_id=run, version=18, price_mark=None, equity_final="9999.5"),
    ]


def a_market_context(qty_open: str, quote_free: str, price: str = "100000", bar: int = 0) -> MarketContext:
    """Return what a decision source sees at a close: ``qty_open`` BTC held, ``quote_free`` USDT free."""
    return MarketContext(
        bar=bar,
        instrument=INSTRUMENT,
        price_close=D(price),
        qty_open=D(qty_open),
        quote_free=D(quote_free),
        base_free=D(qty_open),
        equity=D(quote_free) + D(qty_open) * D(price),
        pnl_realized=D(0),
        fills=0,
        open_orders=0,
    )

"""The session's order path with scripted venues (fakes of the session's ports, real SQLite store).

Bars are the first minutes of the bundled real BTC/USDT sample; the decision source decides on
every bar from a script, so each test states exactly what was decided and what the venue did.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import pytest

from ledger.adapters.candles_csv import load_candles
from ledger.adapters.ids import SeededIds
from ledger.adapters.store import LedgerStore, open_store
from ledger.application.candles import Bar, Candles
from ledger.application.market_watch import MaintenanceWindow
from ledger.application.session import (
    OrderBook,
    SessionSpec,
    SessionWiring,
    TradingSession,
    VenueOrderAbsentError,
    VenueOrderUnknownError,
    VenueRejectedError,
)
from ledger.bootstrap import bundled_sample
from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.errors import FillConflictError
from ledger.domain.events import (
    DecisionAction,
    DecisionMade,
    LedgerEvent,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderDenied,
    OrderFilled,
    OrderPlaced,
    OrderRejected,
    OrderSubmitted,
    Side,
    SlippageEstimated,
    TradingMode,
)
from ledger.domain.instruments import BUILTIN_INSTRUMENTS
from ledger.domain.market_rules import MarketRules
from ledger.domain.numbers import D
from ledger.domain.order import FillReport, OrderEnded, VenueAck
from ledger.domain.partial_fills import PartialFillPolicy

INSTRUMENT = BUILTIN_INSTRUMENTS["BTC/USDT"]
RULES = MarketRules(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    qty_step=D("0.00001"),
    qty_min=D("0.00001"),
    price_tick=D("0.01"),
    notional_min=D("5"),
)
RUN = UUID("00000000-0000-4000-8000-00000000abcd")


def _bars(n: int) -> list[Bar]:
    candles = load_candles(bundled_sample())
    return [
        Bar(
            open_ms=int(candles.open_time_ms[i]),
            open=candles.price(candles.open[i]),
            high=candles.price(candles.high[i]),
            low=candles.price(candles.low[i]),
            close=candles.price(candles.close[i]),
            volume=D(0),
        )
        for i in range(n)
    ]


BARS = _bars(40)


class Clock:
    def __init__(self) -> None:
        self.t = datetime(2026, 11, 25, tzinfo=UTC)

    def now(self) -> datetime:
        self.t += timedelta(milliseconds=1)
        return self.t


class Feed:
    """History of 30 bars, then one new bar per step; a scripted order book (or none)."""

    def __init__(self, book: OrderBook | None = None) -> None:
        self.shown = 30
        self.book = book

    async def order_book(self, depth: int) -> OrderBook | None:  # noqa: ARG002 - the port's signature
        return self.book

    async def ping(self) -> str | None:
        return None

    async def closed_bars(self, since_ms: int | None) -> list[Bar]:
        if since_ms is None:
            return BARS[: self.shown]
        self.shown += 1
        return [b for b in BARS[: self.shown] if b.open_ms >= since_ms]


class Tape:
    def __init__(self) -> None:
        self.bars: list[Bar] = []

    def write(self, bar: Bar, seen_at: datetime, *, history: bool = False) -> None:  # noqa: ARG002
        self.bars.append(bar)

    def close(self) -> tuple[str, str, int]:
        return "tape.jsonl", "0" * 64, len(self.bars)


@dataclass
class Script:
    """Decides the next scripted decision on every bar."""

    decisions: list[Decision]
    name: str = "script"

    def params(self) -> dict[str, str]:
        return {}

    def candidate_bars(self, candles: Candles) -> np.ndarray:
        return np.arange(len(candles), dtype=np.int64)

    async def decide(self, context: MarketContext) -> Decision | None:  # noqa: ARG002 - scripted
        return self.decisions.pop(0) if self.decisions else None


@dataclass
class Venue:
    """Answers each submission with the next scripted outcome; records what it saw."""

    store: LedgerStore
    outcomes: list[object]
    lookups: list[object] = field(default_factory=list)
    reports: list[FillReport | OrderEnded] = field(default_factory=list)
    sent: list[OrderPlaced] = field(default_factory=list)
    canceled: list[str] = field(default_factory=list)
    recorded_before_sending: list[bool] = field(default_factory=list)
    venue: str = "scripted"

    def on_bar(self, bar: Bar) -> None:
        pass

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        stream = self.store.read_stream(order.originator_id)
        self.recorded_before_sending.append(any(isinstance(e, OrderSubmitted) for e in stream))
        self.sent.append(order)
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return VenueAck(client_order_id=order.client_order_id, venue_order_id=str(outcome))

    async def recover(self, client_order_id: str) -> VenueAck:
        outcome = self.lookups.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return VenueAck(client_order_id=client_order_id, venue_order_id=str(outcome))

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        reports, self.reports = self.reports, []
        return reports

    async def cancel(self, client_order_id: str) -> None:
        self.canceled.append(client_order_id)
        self.reports.append(
            OrderEnded(
                client_order_id=client_order_id, reason="venue status canceled", occurred_at=Clock().now()
            )
        )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[LedgerStore]:
    s = open_store(str(tmp_path / "s.db"), create=True)
    yield s
    s.close()


def _session(
    store: LedgerStore,
    venue: Venue,
    decisions: list[Decision],
    *,
    halted: bool = False,
    book: OrderBook | None = None,
    policy: PartialFillPolicy | None = None,
    maintenance: tuple[MaintenanceWindow, ...] = (),
) -> TradingSession:
    spec = SessionSpec(
        mode=TradingMode.LIVE,
        instrument=INSTRUMENT,
        rules=RULES,
        cash_initial=D("10000"),
        fee_rate=D("0.001"),
        seed=0,
        config_hash="c" * 64,
        code_version="test",
        interval_ms=60_000,
        data_source="scripted:BTC/USDT:1m",
        halted=halted,
        partial_fills=policy or PartialFillPolicy(),
        maintenance=maintenance,
    )
    wiring = SessionWiring(
        store=store, venue=venue, feed=Feed(book), ids=SeededIds(0), clock=Clock(), tape=Tape()
    )
    return TradingSession(spec=spec, strategy=Script(decisions), wiring=wiring, run_id=RUN)


def _buy(quote: str) -> Decision:
    return Decision(instrument="BTC/USDT", action=DecisionAction.BUY, qty_quote=D(quote), rationale="script")


async def _steps(session: TradingSession, n: int) -> list[LedgerEvent]:
    feed = session.ports.feed
    assert isinstance(feed, Feed)

    def stop() -> bool:  # after n steps, each of which shows one new bar
        return feed.shown >= 30 + n

    await session.run(stop=stop, poll_s=0.001)
    return [e for _, e in session.ports.store.read_log(0, 10_000)]


def _only(events: list[LedgerEvent], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.anyio
async def test_the_order_is_on_record_before_the_venue_sees_it_and_rounded_down_to_the_step(store) -> None:
    venue = Venue(store, outcomes=["v-1"])

    events = await _steps(_session(store, venue, [_buy("1000")]), 1)

    assert venue.recorded_before_sending == [True]
    [placed] = _only(events, OrderPlaced)
    price = BARS[30].close
    # 1000 / close, rounded down to the 0.00001 step, never up
    assert placed.qty == (D("1000") / price).quantize(D("0.00001"), rounding="ROUND_DOWN")
    assert placed.qty * price <= D("1000")
    assert [e.venue_order_id for e in _only(events, OrderAccepted)] == ["v-1"]


@pytest.mark.anyio
async def test_an_order_below_the_exchange_minimum_is_denied_and_never_sent(store) -> None:
    venue = Venue(store, outcomes=[])

    events = await _steps(_session(store, venue, [_buy("4.99")]), 1)

    [denied] = _only(events, OrderDenied)
    assert denied.reason == "notional_below_min"
    assert "below the minimum 5" in denied.detail
    assert venue.sent == []


@pytest.mark.anyio
async def test_an_engaged_kill_switch_denies_before_the_venue(store) -> None:
    venue = Venue(store, outcomes=[])

    events = await _steps(_session(store, venue, [_buy("1000")], halted=True), 1)

    assert [d.reason for d in _only(events, OrderDenied)] == ["kill_switch"]
    assert venue.sent == []


@pytest.mark.anyio
async def test_a_maintenance_window_ahead_denies_a_buy_on_the_very_first_bar(store) -> None:
    start = Clock().t + timedelta(minutes=30)  # within the hour before: no new positions
    window = MaintenanceWindow(start=start, end=start + timedelta(hours=1))
    venue = Venue(store, outcomes=["v-1"])

    events = await _steps(_session(store, venue, [_buy("1000")], maintenance=(window,)), 1)

    assert [d.reason for d in _only(events, OrderDenied)] == ["maintenance"]
    assert venue.sent == []


@pytest.mark.anyio
async def test_a_refusal_by_the_venue_is_an_order_rejected_with_its_reason(store) -> None:
    venue = Venue(
        store, outcomes=[VenueRejectedError("insufficient_balance", "Account has insufficient balance")]
    )

    events = await _steps(_session(store, venue, [_buy("1000")]), 1)

    [rejected] = _only(events, OrderRejected)
    assert rejected.reason == "insufficient_balance"
    assert _only(events, OrderAccepted) == []


@pytest.mark.anyio
async def test_a_lost_answer_is_looked_up_again_on_the_next_step_not_resent(store) -> None:
    venue = Venue(
        store, outcomes=[VenueOrderUnknownError("timeout")], lookups=[VenueOrderUnknownError("still"), "v-9"]
    )

    events = await _steps(_session(store, venue, [_buy("1000")]), 3)

    assert len(venue.sent) == 1
    assert [e.venue_order_id for e in _only(events, OrderAccepted)] == ["v-9"]


@pytest.mark.anyio
async def test_an_order_the_venue_says_it_never_had_is_rejected_not_at_venue(store) -> None:
    venue = Venue(store, outcomes=[VenueOrderAbsentError("no such order, 5 times")])

    events = await _steps(_session(store, venue, [_buy("1000")]), 1)

    assert [r.reason for r in _only(events, OrderRejected)] == ["not_at_venue"]
    assert len(venue.sent) == 1


def _report(cid: str, trade: str, qty: str, price: str) -> FillReport:
    return FillReport(
        client_order_id=cid,
        venue="scripted",
        venue_trade_id=trade,
        side=Side.BUY,
        qty=D(qty),
        price=D(price),
        fee=D("0.00000100"),
        fee_asset="BTC",
        occurred_at=datetime(2026, 11, 25, 0, 0, 1, tzinfo=UTC),
    )


@pytest.mark.anyio
async def test_a_repeated_fill_report_is_recorded_once(store) -> None:
    venue = Venue(store, outcomes=["v-1"])
    session = _session(store, venue, [_buy("1000")])
    await _steps(session, 1)
    [placed] = _only([e for _, e in store.read_log(0, 100)], OrderPlaced)
    venue.reports = [_report(placed.client_order_id, "t-1", "0.004", "105000")] * 2

    await session.settle()
    venue.reports = [_report(placed.client_order_id, "t-1", "0.004", "105000")]
    await session.settle()

    fills = _only([e for _, e in store.read_log(0, 100)], OrderFilled)
    assert [(f.venue_trade_id, f.qty) for f in fills] == [("t-1", D("0.004"))]


@pytest.mark.anyio
async def test_a_conflicting_repeat_halts_with_an_invariant_violation(store) -> None:
    venue = Venue(store, outcomes=["v-1"])
    session = _session(store, venue, [_buy("1000")])
    await _steps(session, 1)
    [placed] = _only([e for _, e in store.read_log(0, 100)], OrderPlaced)
    venue.reports = [_report(placed.client_order_id, "t-1", "0.004", "105000")]
    await session.settle()
    before = store.max_seq()

    venue.reports = [_report(placed.client_order_id, "t-1", "0.004", "105001")]
    with pytest.raises(FillConflictError, match="t-1"):
        await session.settle()

    assert store.max_seq() == before
    assert Decimal(0) < placed.qty


# A thin book around the bars' prices (about 105,000): a 1,000 USDT buy takes two levels.
ASKS = [(D("105100.00"), D("0.004")), (D("105100.50"), D("0.01")), (D("105101.00"), D("0.3"))]
BIDS = [(D("105099.99"), D("0.5")), (D("105099.00"), D("1.0"))]


@pytest.mark.anyio
async def test_every_order_is_estimated_on_the_book_before_it_is_placed(store) -> None:
    venue = Venue(store, outcomes=["v-1"])

    events = await _steps(_session(store, venue, [_buy("1000")], book=OrderBook(bids=BIDS, asks=ASKS)), 1)

    [estimate] = _only(events, SlippageEstimated)
    [placed] = _only(events, OrderPlaced)
    assert estimate.client_order_id == placed.client_order_id
    assert estimate.price_best == D("105100.00")
    # placed.qty BTC takes 0.004 at the best ask and the rest at 105,100.50
    rest = placed.qty - D("0.004")
    assert D("0") < rest < D("0.01")
    expected = (D("0.004") * D("105100.00") + rest * D("105100.50")) / placed.qty
    assert abs(estimate.price_avg - expected) < D("1e-10")
    assert estimate.slippage_bps > 0
    assert estimate.levels_used == 2
    assert not estimate.insufficient_depth
    assert events.index(estimate) < events.index(placed)


@pytest.mark.anyio
async def test_a_market_order_the_book_cannot_fill_is_denied_insufficient_depth(store) -> None:
    venue = Venue(store, outcomes=[])
    thin = OrderBook(bids=BIDS, asks=[(D("105100.00"), D("0.001"))])

    events = await _steps(_session(store, venue, [_buy("1000")], book=thin), 1)

    assert [d.reason for d in _only(events, OrderDenied)] == ["insufficient_depth"]
    assert venue.sent == []


def _limit_buy(qty: str, price: Decimal) -> Decision:
    return Decision(
        instrument="BTC/USDT", action=DecisionAction.BUY, qty=D(qty), price_limit=price, rationale="script"
    )


EVERY_STEP = PartialFillPolicy(check_every_s=0)


@pytest.mark.anyio
async def test_a_limit_order_filled_80_percent_is_canceled_and_finished_at_market(store) -> None:
    close = BARS[30].close  # the decision bar's close, also the limit
    venue = Venue(store, outcomes=["v-1", "v-2"])
    session = _session(store, venue, [_limit_buy("0.01", close)], policy=EVERY_STEP)
    await _steps(session, 1)
    [placed] = _only([e for _, e in store.read_log(0, 100)], OrderPlaced)
    venue.reports = [_report(placed.client_order_id, "t-1", "0.0085", str(close))]

    events = await _steps(session, 3)

    cancel = _only(events, OrderCancelRequested)
    canceled = _only(events, OrderCanceled)
    assert [c.client_order_id for c in cancel] == [placed.client_order_id] == venue.canceled
    assert "85.00% filled" in cancel[0].reason
    assert [c.client_order_id for c in canceled] == [placed.client_order_id]
    finish = venue.sent[1]
    assert (finish.order_type.value, finish.side, finish.qty) == ("market", placed.side, D("0.0015"))
    made = _only(events, DecisionMade)
    assert made[-1].source == "partial_fill_policy"


@pytest.mark.anyio
async def test_a_limit_order_the_market_left_behind_is_canceled_without_a_new_order(store) -> None:
    far = (BARS[30].close * D("0.97")).quantize(D("0.01"))  # 3 % under the market
    venue = Venue(store, outcomes=["v-1"])

    events = await _steps(_session(store, venue, [_limit_buy("0.01", far)], policy=EVERY_STEP), 3)

    [cancel] = _only(events, OrderCancelRequested)
    assert "more than 2" in cancel.reason
    assert [type(e).__name__ for e in events].count("OrderCanceled") == 1
    assert len(venue.sent) == 1  # canceled, not finished


@pytest.mark.anyio
async def test_a_limit_order_is_canceled_after_the_timeout(store) -> None:
    close = BARS[30].close
    venue = Venue(store, outcomes=["v-1"])
    quick = PartialFillPolicy(check_every_s=0, timeout_s=0.005)  # the fake clock ticks 1 ms a call

    events = await _steps(_session(store, venue, [_limit_buy("0.01", close)], policy=quick), 4)

    [cancel] = _only(events, OrderCancelRequested)
    assert "working for" in cancel.reason
    assert len(venue.sent) == 1

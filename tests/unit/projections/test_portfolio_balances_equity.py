"""The portfolio fold: balances (total / reserved / free), open orders and the equity curve.

Reservation rules (STYLE §15.4): an accepted order reserves what it may spend, quote for a
buy (its quote amount, or qty x limit / expected price), base for a sell (its qty); a fill
releases what it spent, and a cancel, reject or expiry releases the rest. free = total - reserved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid5

from factories import a_run_started
from ledger.domain.events import (
    DecisionAction,
    DecisionMade,
    KillSwitchEngaged,
    KillSwitchReleased,
    LedgerEvent,
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
    RunEnded,
    RunStarted,
    Side,
    TradingMode,
    TradingModeSwitched,
)
from ledger.domain.numbers import D
from projections.portfolio import PortfolioProjection, RunView

RUN = UUID("00000000-0000-5000-8000-0000000000aa")
T0 = datetime(2025, 5, 20, tzinfo=UTC)


@dataclass
class Scenario:
    """Builds one run's events with consistent stream versions and feeds them to the fold."""

    run_id: UUID = RUN
    projection: PortfolioProjection = field(default_factory=PortfolioProjection)
    minute: int = 0
    run_version: int = 0
    versions: dict[str, int] = field(default_factory=dict)
    trades: int = 0

    def _at(self) -> datetime:
        self.minute += 1
        return T0 + timedelta(minutes=self.minute)

    def _run(self) -> dict[str, Any]:
        self.run_version += 1
        return {
            "originator_id": uuid5(self.run_id, "run"),
            "originator_version": self.run_version,
            "occurred_at": self._at(),
            "run_id": self.run_id,
        }

    def _order(self, client_order_id: str) -> dict[str, Any]:
        self.versions[client_order_id] = self.versions.get(client_order_id, 0) + 1
        return {
            "originator_id": uuid5(self.run_id, client_order_id),
            "originator_version": self.versions[client_order_id],
            "occurred_at": self._at(),
            "run_id": self.run_id,
            "client_order_id": client_order_id,
        }

    def apply(self, event: LedgerEvent) -> LedgerEvent:
        self.projection.apply(event)
        return event

    @property
    def view(self) -> RunView:
        return self.projection.runs[self.run_id]

    def start(self, cash: str = "10000") -> RunStarted:
        run = self._run()
        event = a_run_started(
            run_id=run["run_id"],
            originator_id=run["originator_id"],
            version=run["originator_version"],
            occurred_at=run["occurred_at"],
            cash_initial=cash,
        )
        self.apply(event)
        return event

    def place(
        self,
        cid: str,
        side: Side,
        *,
        qty: str | None = None,
        qty_quote: str | None = None,
        price_limit: str | None = None,
        price_expected: str | None = "100000",
    ) -> None:
        self.apply(
            OrderPlaced(
                **self._order(cid),
                decision_id=None,
                instrument="BTC/USDT",
                side=side,
                order_type=OrderType.MARKET if price_limit is None else OrderType.LIMIT,
                qty=None if qty is None else D(qty),
                qty_quote=None if qty_quote is None else D(qty_quote),
                price_limit=None if price_limit is None else D(price_limit),
                price_expected=None if price_expected is None else D(price_expected),
            )
        )

    def accept(self, cid: str) -> None:
        self.apply(OrderSubmitted(**self._order(cid), venue="test"))
        self.apply(OrderAccepted(**self._order(cid), venue_order_id=f"v-{cid}"))

    def fill(
        self,
        cid: str,
        side: Side,
        qty: str,
        price: str,
        fee: str,
        *,
        fee_asset: str = "USDT",
        price_expected: str | None = None,
    ) -> None:
        self.trades += 1
        self.apply(
            OrderFilled(
                **self._order(cid),
                venue="test",
                instrument="BTC/USDT",
                venue_trade_id=f"t-{self.trades}",
                side=side,
                qty=D(qty),
                price=D(price),
                fee=D(fee),
                fee_asset=fee_asset,
                price_expected=None if price_expected is None else D(price_expected),
            )
        )

    def cancel(self, cid: str) -> None:
        self.apply(OrderCancelRequested(**self._order(cid), reason="test"))
        self.apply(OrderCanceled(**self._order(cid), reason="test"))

    def reject(self, cid: str) -> None:
        self.apply(OrderRejected(**self._order(cid), reason="insufficient_funds", detail="test"))

    def expire(self, cid: str) -> None:
        self.apply(OrderExpired(**self._order(cid), reason="test"))

    def deny(self, cid: str) -> None:
        self.apply(OrderDenied(**self._order(cid), reason="qty_min", detail="test"))

    def mark(self, price: str) -> PriceMarked:
        event = PriceMarked(**self._run(), instrument="BTC/USDT", price=D(price))
        self.apply(event)
        return event

    def end(self, equity_final: str, price_mark: str | None) -> RunEnded:
        event = RunEnded(
            **self._run(),
            reason="data exhausted",
            equity_final=D(equity_final),
            price_mark=None if price_mark is None else D(price_mark),
        )
        self.apply(event)
        return event


def balances(scenario: Scenario, asset: str) -> tuple[Decimal, Decimal, Decimal]:
    balance = scenario.view.balance(asset)
    return balance.total, balance.reserved, balance.free


def test_run_started_credits_the_initial_cash_and_starts_the_equity_curve() -> None:
    s = Scenario()
    started = s.start("10000")

    assert balances(s, "USDT") == (D("10000"), D("0"), D("10000"))
    assert balances(s, "BTC") == (D("0"), D("0"), D("0"))
    assert [(p.at, p.equity, p.exposed) for p in s.view.equity] == [(started.occurred_at, D("10000"), False)]


def test_placed_order_reserves_nothing_until_the_venue_accepts_it() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")

    assert balances(s, "USDT") == (D("10000"), D("0"), D("10000"))
    assert s.view.open_orders["b1"].status == "placed"


def test_quote_sized_buy_reserves_its_quote_amount_and_a_fill_releases_it_all() -> None:
    """Accept a 1,000 USDT market buy: reserved 1000, free 10000 - 1000 = 9000.

    Fill 0.01 @ 99000 fee 0.99: notional 990, spent 990 + 0.99 = 990.99.
    USDT total = 10000 - 990 - 0.99 = 9009.01; the order is done (quote-sized), so the
    remaining 1000 - 990.99 = 9.01 is released too: reserved 0, free 9009.01. BTC total 0.01.
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")

    assert balances(s, "USDT") == (D("10000"), D("1000"), D("9000"))
    assert s.view.open_orders["b1"].reserved == D("1000")

    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")

    assert balances(s, "USDT") == (D("9009.01"), D("0"), D("9009.01"))
    assert balances(s, "BTC") == (D("0.01"), D("0"), D("0.01"))
    assert "b1" not in s.view.open_orders


def test_sell_reserves_base_and_partial_fills_release_as_they_go_then_cancel_releases_the_rest() -> None:
    """Hold 0.01 BTC; accept a sell of 0.01: BTC reserved 0.01, free 0.

    Partial fill 0.004 @ 100000 fee 0.4 releases 0.004: reserved 0.006, total 0.006, free 0.
    USDT: 9009.01 + 400 - 0.4 = 9408.61. Cancel releases the other 0.006: reserved 0, free 0.006.
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")
    s.place("s1", Side.SELL, qty="0.01")
    s.accept("s1")

    assert balances(s, "BTC") == (D("0.01"), D("0.01"), D("0"))

    s.fill("s1", Side.SELL, "0.004", "100000", "0.4")

    assert balances(s, "BTC") == (D("0.006"), D("0.006"), D("0"))
    assert balances(s, "USDT") == (D("9408.61"), D("0"), D("9408.61"))
    assert s.view.open_orders["s1"].qty_filled == D("0.004")
    assert s.view.open_orders["s1"].status == "partially_filled"

    s.cancel("s1")

    assert balances(s, "BTC") == (D("0.006"), D("0"), D("0.006"))
    assert s.view.open_orders == {}


def test_sized_sell_filled_in_full_closes_the_order_and_releases_everything() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")
    s.place("s1", Side.SELL, qty="0.01")
    s.accept("s1")
    s.fill("s1", Side.SELL, "0.004", "100000", "0.4")
    s.fill("s1", Side.SELL, "0.006", "100000", "0.6")

    assert balances(s, "BTC") == (D("0.000"), D("0.000"), D("0.000"))
    assert s.view.open_orders == {}
    assert s.view.positions["BTC/USDT"].qty_open == D("0")


def test_limit_buy_reserves_qty_times_limit_and_a_reject_releases_it() -> None:
    """A buy of 0.02 limited at 90000 reserves 0.02 x 90000 = 1800 USDT; rejected: back to 0."""
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty="0.02", price_limit="90000")
    s.accept("b1")

    assert balances(s, "USDT") == (D("10000"), D("1800"), D("8200"))

    s.reject("b1")

    assert balances(s, "USDT") == (D("10000"), D("0"), D("10000"))
    assert s.view.rejected == 1
    assert s.view.open_orders == {}


def test_sized_market_buy_reserves_qty_times_expected_price_and_expiry_releases_it() -> None:
    """0.01 x expected 100000 = 1000 reserved; an expiry releases all of it."""
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty="0.01", price_expected="100000")
    s.accept("b1")

    assert balances(s, "USDT") == (D("10000"), D("1000"), D("9000"))

    s.expire("b1")

    assert balances(s, "USDT") == (D("10000"), D("0"), D("10000"))


def test_limit_buy_filled_below_its_limit_releases_the_unspent_rest() -> None:
    """Reserve 0.01 x 90000 = 900; the fill spends less and the rest comes back.

    Fill 0.01 @ 89000 fee 0.89 spends 890.89 and releases it; the order is complete, so the
    other 900 - 890.89 = 9.11 is released as well.
    USDT total 10000 - 890 - 0.89 = 9109.11, all free.
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty="0.01", price_limit="90000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "89000", "0.89")

    assert balances(s, "USDT") == (D("9109.11"), D("0"), D("9109.11"))


def test_buy_filled_above_its_reservation_never_leaves_a_negative_reservation() -> None:
    """Reserve 0.01 x 100000 = 1000; the fill spends more than was reserved.

    Fill @ 101000 fee 1.01 spends 1011.01 > 1000: release is capped at the 1000 held, so
    reserved ends at 0, not -11.01.
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty="0.01", price_expected="100000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "101000", "1.01")

    assert balances(s, "USDT") == (D("8988.99"), D("0"), D("8988.99"))


def test_two_open_orders_reserve_independently() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.place("b2", Side.BUY, qty_quote="2500")
    s.accept("b1")
    s.accept("b2")

    assert balances(s, "USDT") == (D("10000"), D("3500"), D("6500"))

    s.cancel("b1")

    assert balances(s, "USDT") == (D("10000"), D("2500"), D("7500"))
    assert list(s.view.open_orders) == ["b2"]


def test_denied_order_is_counted_and_never_reserves() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1")
    s.deny("b1")

    assert s.view.denied == 1
    assert s.view.orders == 1
    assert s.view.open_orders == {}
    assert balances(s, "USDT") == (D("10000"), D("0"), D("10000"))


def test_price_marked_and_run_ended_append_equity_points() -> None:
    """Buy 0.01 @ 99000 fee 0.99 -> USDT 9009.01, BTC 0.01.

    mark 100000: equity = 9009.01 + 0.01 x 100000 = 10009.01 (exposed)
    mark  98000: equity = 9009.01 + 980 = 9989.01 (exposed)
    sell 0.01 @ 98500 fee 0.985: USDT = 9009.01 + 985 - 0.985 = 9993.025, flat
    end marked at 97000: equity = 9993.025 (nothing open, not exposed)
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")
    m1 = s.mark("100000")
    m2 = s.mark("98000")
    s.place("s1", Side.SELL, qty="0.01")
    s.accept("s1")
    s.fill("s1", Side.SELL, "0.01", "98500", "0.985")
    ended = s.end("9993.025", "97000")

    points = [(p.at, p.equity, p.exposed) for p in s.view.equity]
    assert points[1:] == [
        (m1.occurred_at, D("10009.01"), True),
        (m2.occurred_at, D("9989.01"), True),
        (ended.occurred_at, D("9993.025"), False),
    ]
    assert s.view.ended == ended
    assert s.view.equity_now() == D("9993.025")


def test_fills_do_not_add_equity_points_only_marks_do() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")

    assert len(s.view.equity) == 1


def test_equity_now_uses_caller_marks_over_last_price() -> None:
    """USDT 9009.01 + 0.01 x 120000 = 10209.01; with no mark the fill price: 9009.01 + 990 = 9999.01."""
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")

    assert s.view.equity_now({"BTC/USDT": D("120000")}) == D("10209.01")
    assert s.view.equity_now() == D("9999.01")


def test_fill_records_signed_slippage_in_bps_against_the_expected_price() -> None:
    """Slippage is signed so that positive is worse for us.

    Buy expected 100000, filled 100010: +(100010 - 100000) / 100000 x 10000 = +1 bps (worse).
    Sell expected 100000, filled 99990: -(99990 - 100000) / 100000 x 10000 = +1 bps (worse).
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.009", "100010", "0.90009", price_expected="100000")
    s.place("s1", Side.SELL, qty="0.009")
    s.accept("s1")
    s.fill("s1", Side.SELL, "0.009", "99990", "0.89991", price_expected="100000")

    assert s.view.slippage_bps["BTC/USDT"] == [D("1"), D("1")]


def test_closes_record_each_reducing_fill_net_of_fees() -> None:
    """Each reducing fill realizes against the average, net of its own fee.

    Buy 0.01 @ 99000 fee 0.99: avg (990 + 0.99) / 0.01 = 99099.
    Sell 0.004 @ 100000 fee 0.4: (100000 - 99099) x 0.004 - 0.4 = 3.604 - 0.4 = 3.204.
    Sell 0.006 @ 98000 fee 0.588: (98000 - 99099) x 0.006 - 0.588 = -6.594 - 0.588 = -7.182.
    """
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99")
    s.place("s1", Side.SELL, qty="0.01")
    s.accept("s1")
    s.fill("s1", Side.SELL, "0.004", "100000", "0.4")
    s.fill("s1", Side.SELL, "0.006", "98000", "0.588")

    assert s.view.closes == [D("3.204"), D("-7.182")]
    assert s.view.positions["BTC/USDT"].pnl_realized == D("-3.978")
    assert s.view.fills == 3


def test_counters_mode_and_kill_switch() -> None:
    s = Scenario()
    s.start()
    s.apply(
        DecisionMade(
            **s._run(),
            decision_id="d1",
            source="hand",
            instrument="BTC/USDT",
            action=DecisionAction.HOLD,
            qty=None,
            qty_quote=None,
            price_limit=None,
            confidence=None,
            rationale="",
            input_digest="",
            output="{}",
        )
    )
    s.apply(
        TradingModeSwitched(
            **s._run(), mode_from=TradingMode.BACKTEST, mode_to=TradingMode.PAPER, reason="test"
        )
    )
    s.apply(KillSwitchEngaged(**s._run(), reason="test", actor="op", liquidate=False))

    assert s.view.decisions == 1
    assert s.view.mode == "paper"
    assert s.projection.kill_switch_engaged is True

    s.apply(KillSwitchReleased(**s._run(), reason="test", actor="op"))

    assert s.projection.kill_switch_engaged is False


def test_events_of_an_unknown_run_are_ignored() -> None:
    s = Scenario()
    s.mark("100")

    assert s.projection.runs == {}


def test_snapshot_restore_round_trips_byte_for_byte() -> None:
    s = Scenario()
    s.start()
    s.place("b1", Side.BUY, qty_quote="1000")
    s.accept("b1")
    s.fill("b1", Side.BUY, "0.01", "99000", "0.99", price_expected="98999.99")
    s.place("s1", Side.SELL, qty="0.01")
    s.accept("s1")
    s.mark("100000")
    snapshot = s.projection.snapshot()

    restored = PortfolioProjection()
    restored.restore(snapshot)

    assert restored.snapshot() == snapshot
    assert restored.runs[RUN].balance("BTC").reserved == D("0.01")

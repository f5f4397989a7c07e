from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import anyio
import pytest

from factories import (
    RUN_ID,
    T0,
    a_fill,
    a_kill_switch_engaged,
    a_kill_switch_released,
    a_price_marked,
    a_run_ended,
    a_run_started,
    an_order_placed,
    an_order_rejected,
    one_of_each_event,
)
from ledger.application.alert_dispatch import AlertDispatcher, DispatchPolicy
from ledger.application.alert_feed import AlertFeed
from ledger.application.alerts import (
    Alert,
    AlertKind,
    NotifierError,
    NotifierRateLimited,
    alert_from_json,
    alerts_for,
)
from ledger.domain.events import LedgerEvent, Side, TradingMode, VenueReconciled
from ledger.domain.identifiers import CONTROL_RUN_ID, run_stream_id

DAY2 = T0 + timedelta(days=1)


def kinds(alerts: list[Alert]) -> list[AlertKind]:
    return [a.kind for a in alerts]


def reconciled(differences: str = "{}", unknown: str = "[]") -> VenueReconciled:
    return VenueReconciled(
        originator_id=run_stream_id(RUN_ID),
        originator_version=2,
        occurred_at=T0,
        run_id=RUN_ID,
        venue="binance",
        balances_venue="{}",
        balances_ledger="{}",
        differences=differences,
        orders_unknown=unknown,
    )


@dataclass(frozen=True, kw_only=True)
class ExchangeOutageDetected:
    originator_id: UUID
    originator_version: int
    occurred_at: datetime
    run_id: UUID
    venue: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class SymbolHaltedByVenue:
    occurred_at: datetime
    run_id: UUID
    instrument: str


# --- the pure mapping ------------------------------------------------------------------------------
def test_a_fill_is_one_line_with_side_quantity_instrument_price_and_fee():
    fill = a_fill(side=Side.SELL, qty="0.50", price="100.250", fee="0.1", fee_asset="USDT")
    [alert] = alerts_for(7, fill)
    assert alert.kind is AlertKind.ORDER_FILLED
    assert alert.text == "SELL 0.5 BTC/USDT @ 100.25, fee 0.1 USDT"
    assert (alert.seq, alert.run_id, alert.occurred_at) == (7, RUN_ID, fill.occurred_at)


def test_kill_switch_engaged_and_released_name_reason_and_actor():
    engaged = alerts_for(1, a_kill_switch_engaged(reason="drawdown 12 %", actor="risk"))
    released = alerts_for(2, a_kill_switch_released(reason="reviewed", actor="cli"))
    assert kinds(engaged) == [AlertKind.KILL_SWITCH_ENGAGED]
    assert engaged[0].text == "drawdown 12 % (by risk)"
    assert engaged[0].run_id == CONTROL_RUN_ID
    assert kinds(released) == [AlertKind.KILL_SWITCH_RELEASED]


def test_a_rejection_names_the_order_and_the_venue_reason():
    [alert] = alerts_for(3, an_order_rejected(reason="insufficient_funds", detail="no USDT"))
    assert alert.kind is AlertKind.ORDER_REJECTED
    assert alert.text == "tl-test-0000001: insufficient_funds (no USDT)"


def test_a_reconciliation_alerts_only_when_the_venue_differs():
    assert alerts_for(1, reconciled()) == []
    [alert] = alerts_for(1, reconciled('{"BTC":"0.5","ETH":"-1"}', '["manual-1"]'))
    assert alert.kind is AlertKind.VENUE_MISMATCH
    assert alert.text == (
        "balances (venue - ledger): BTC 0.5, ETH -1; open orders unknown to the ledger: manual-1"
    )


def test_run_ended_and_quiet_events():
    [alert] = alerts_for(9, a_run_ended(reason="stopped", equity_final="10012.50", price_mark="110"))
    assert alert.text == "stopped; final equity 10012.5, marked at 110"
    assert alerts_for(1, an_order_placed()) == []
    assert alerts_for(1, a_price_marked()) == []


def test_one_of_each_event_raises_the_alerts_it_should():
    raised = [a.kind for seq, e in enumerate(one_of_each_event(), 1) for a in alerts_for(seq, e)]
    assert sorted(k.value for k in raised) == sorted(
        k.value
        for k in [
            AlertKind.ORDER_FILLED,
            AlertKind.ORDER_FILLED,
            AlertKind.ORDER_REJECTED,
            AlertKind.KILL_SWITCH_ENGAGED,
            AlertKind.KILL_SWITCH_ENGAGED,  # the session's KillSwitchActed (an action's outcome)
            AlertKind.KILL_SWITCH_RELEASED,
            AlertKind.VENUE_MISMATCH,
            AlertKind.RUN_ENDED,
            AlertKind.OUTAGE,  # ExchangeOutageDetected, through the name-prefix hook
            AlertKind.HALT,  # SymbolHalted, likewise
        ]
    )


def test_future_outage_and_halt_events_alert_by_type_name_prefix():
    outage = ExchangeOutageDetected(
        originator_id=RUN_ID,
        originator_version=1,
        occurred_at=T0,
        run_id=RUN_ID,
        venue="binance",
        detail="503",
    )
    [a] = alerts_for(4, outage)
    assert (a.kind, a.title, a.text) == (
        AlertKind.OUTAGE,
        "Exchange outage: ExchangeOutageDetected",
        "venue=binance, detail=503",
    )
    [h] = alerts_for(5, SymbolHaltedByVenue(occurred_at=T0, run_id=RUN_ID, instrument="BTC/USDT"))
    assert (h.kind, h.text) == (AlertKind.HALT, "instrument=BTC/USDT")
    assert alerts_for(6, object()) == []


def test_an_alert_round_trips_through_json_and_reads_as_plain_text():
    [alert] = alerts_for(7, a_fill())
    assert alert_from_json(json.loads(json.dumps(alert.to_json()))) == alert
    origin = f"(run {str(RUN_ID)[:8]}, seq 7, {alert.occurred_at.isoformat()})"
    assert alert.message() == f"Order filled\nBUY 1 BTC/USDT @ 100, fee 0.1 USDT\n{origin}"


# --- the feed: muting, run and daily summaries ------------------------------------------------------
def paper_day() -> list[LedgerEvent]:
    """A paper run on T0's day: buy 1 @ 100 (fee 0.1), sell 1 @ 110 (fee 0.11), end.

    Average cost includes the buy fee: 100.1. The sale realizes (110 - 100.1) x 1 - 0.11 = 9.79
    USDT. Fees 0.1 + 0.11 = 0.21 USDT. The next day the kill switch is engaged.
    """
    return [
        a_run_started(mode=TradingMode.PAPER),
        a_fill(order=1, trade=1, side=Side.BUY, qty="1", price="100", fee="0.1"),
        a_fill(order=2, trade=2, side=Side.SELL, qty="1", price="110", fee="0.11"),
        a_run_ended(occurred_at=T0 + timedelta(hours=23), equity_final="10009.79"),
        a_kill_switch_engaged(occurred_at=DAY2),
    ]


def fold(feed: AlertFeed, events: Sequence[object], first_seq: int = 1) -> list[Alert]:
    return [alert for seq, e in enumerate(events, first_seq) for alert in feed.apply(seq, e)]


def test_daily_summary_is_raised_by_the_first_event_of_the_next_utc_day():
    alerts = fold(AlertFeed(), paper_day())
    assert kinds(alerts) == [
        AlertKind.ORDER_FILLED,
        AlertKind.ORDER_FILLED,
        AlertKind.RUN_ENDED,
        AlertKind.DAILY_SUMMARY,
        AlertKind.KILL_SWITCH_ENGAGED,
    ]
    run_ended, summary = alerts[2], alerts[3]
    assert (
        run_ended.text
        == "data exhausted; final equity 10009.79, marked at 100\nfills 2, realized PnL 9.79 USDT"
    )
    assert summary.title == "Daily summary 2025-05-20 (UTC)"
    assert summary.text == "fills 2, runs ended 1\nrealized PnL 9.79 USDT\nfees 0.21 USDT"
    assert (summary.seq, summary.run_id) == (5, None)
    assert summary.occurred_at == datetime(2025, 5, 21, tzinfo=UTC)


def test_a_late_event_counts_into_the_current_day_without_a_summary():
    feed = AlertFeed()
    fold(feed, [a_kill_switch_engaged(occurred_at=DAY2), a_fill(occurred_at=T0)])
    assert feed.today is not None
    assert (feed.today.day, feed.today.fills) == (DAY2.date(), 1)


def test_backtest_runs_are_muted_until_they_end():
    events = [a_run_started(mode=TradingMode.BACKTEST), a_fill(), a_run_ended(), a_fill(trade=2)]
    assert kinds(fold(AlertFeed(), events)) == [AlertKind.ORDER_FILLED]  # the fill after the end
    assert len(fold(AlertFeed(alert_backtests=True), events)) == 3


def test_a_restored_feed_continues_exactly_as_the_original():
    events = paper_day()
    whole = fold(AlertFeed(), events)
    first = AlertFeed()
    head = fold(first, events[:2])
    second = AlertFeed()
    second.restore(json.loads(json.dumps(first.snapshot())))
    assert head + fold(second, events[2:], first_seq=3) == whole


# --- the dispatcher over fakes -------------------------------------------------------------------------
class MemoryLog:
    def __init__(self, events: Sequence[LedgerEvent]) -> None:
        self.events = list(events)
        self.checkpoints: dict[str, tuple[int, int, bytes]] = {}

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        return [(s, e) for s, e in enumerate(self.events, 1) if s > after_seq][:limit]

    def max_seq(self) -> int:
        return len(self.events)

    def load_checkpoint(self, name: str) -> tuple[int, int, bytes] | None:
        return self.checkpoints.get(name)

    def save_checkpoint(self, name, version, last_seq, state, *, expected_seq) -> None:
        saved = self.checkpoints.get(name)
        assert (None if saved is None else saved[1]) == expected_seq
        self.checkpoints[name] = (version, last_seq, state)


class ScriptedNotifier:
    """Fail the next sends as scripted (an exception each), then deliver."""

    def __init__(self, *failures: Exception) -> None:
        self.failures = list(failures)
        self.calls = 0
        self.delivered: list[tuple[int, AlertKind]] = []

    async def send(self, alert: Alert) -> None:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append((alert.seq, alert.kind))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


FILLS: list[LedgerEvent] = [a_fill(trade=n, occurred_at=T0) for n in range(1, 5)]
POLICY = DispatchPolicy(from_beginning=True, alert_backtests=True, backoff_s_initial=1, backoff_s_max=4)


@pytest.mark.anyio
async def test_a_failed_alert_is_retried_with_capped_backoff_and_later_alerts_wait_behind_it():
    log, clock = MemoryLog(FILLS[:2]), Clock()
    flaky = ScriptedNotifier(*[NotifierError("down")] * 4)
    steady = ScriptedNotifier()
    dispatcher = AlertDispatcher(log, log, {"flaky": flaky, "steady": steady}, monotonic=clock, policy=POLICY)
    report = await dispatcher.step()
    assert (report.sent, report.failed, report.pending) == (2, 1, 2)
    assert steady.delivered == [(1, AlertKind.ORDER_FILLED), (2, AlertKind.ORDER_FILLED)]
    waits = []
    for _ in range(6):  # backoff 1, 2, 4, 4 (capped), then delivered
        before = flaky.calls
        await dispatcher.step()
        assert flaky.calls == before  # not due yet: no call
        due = dispatcher._pending["flaky"][0].due_at
        waits.append(due - clock.now)
        clock.now = due
        if (await dispatcher.step()).pending == 0:
            break
    assert waits == [1, 2, 4, 4]
    assert flaky.delivered == [(1, AlertKind.ORDER_FILLED), (2, AlertKind.ORDER_FILLED)]


@pytest.mark.anyio
async def test_a_rate_limit_waits_retry_after_and_a_restart_retries_the_saved_queue():
    log, clock = MemoryLog(FILLS[:1]), Clock()
    limited = ScriptedNotifier(NotifierRateLimited("429", retry_after_s=30), NotifierError("down"))
    first = AlertDispatcher(log, log, {"chat": limited}, monotonic=clock, policy=POLICY)
    await first.step()
    assert first._pending["chat"][0].due_at == clock.now + 30
    await first.step()  # the failure is saved; a new process starts
    assert limited.calls == 1
    again = ScriptedNotifier()
    second = AlertDispatcher(log, log, {"chat": again}, monotonic=clock, policy=POLICY)
    report = await second.step()
    assert again.delivered == [(1, AlertKind.ORDER_FILLED)]
    assert (report.events, report.pending) == (0, 0)


@pytest.mark.anyio
async def test_a_hung_notifier_is_cut_off_by_the_send_timeout():
    class Hung:
        async def send(self, alert: Alert) -> None:  # noqa: ARG002 - the port's signature
            await anyio.sleep(10)

    log = MemoryLog(FILLS[:1])
    policy = DispatchPolicy(from_beginning=True, alert_backtests=True, send_timeout_s=0.05)
    with anyio.fail_after(2):
        report = await AlertDispatcher(log, log, {"hung": Hung()}, policy=policy).step()
    assert (report.failed, report.pending) == (1, 1)
    assert "timed out after 0.05 s" in report.errors[0]


@pytest.mark.anyio
async def test_a_full_queue_pauses_reading_instead_of_dropping():
    log = MemoryLog(FILLS)
    policy = DispatchPolicy(from_beginning=True, alert_backtests=True, pending_max=2)
    down = ScriptedNotifier(*[NotifierError("down")] * 10)
    dispatcher = AlertDispatcher(log, log, {"down": down}, monotonic=Clock(), policy=policy)
    report = await dispatcher.step()
    assert (report.events, report.pending, report.blocked, report.last_seq) == (2, 2, True, 2)


@pytest.mark.anyio
async def test_without_a_checkpoint_it_starts_at_the_end_unless_asked_for_the_history():
    log = MemoryLog(FILLS[:2])
    quiet = ScriptedNotifier()
    report = await AlertDispatcher(log, log, {"n": quiet}, policy=DispatchPolicy(alert_backtests=True)).step()
    assert (report.events, quiet.calls, report.last_seq) == (0, 0, 2)
    log.events.append(FILLS[2])
    again = AlertDispatcher(log, log, {"n": quiet}, policy=DispatchPolicy(alert_backtests=True))
    await again.step()
    assert quiet.delivered == [(3, AlertKind.ORDER_FILLED)]

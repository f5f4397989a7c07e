"""Halt, gap and maintenance rules (SPEC §7 defaults), with worked numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ledger.application.market_watch import MaintenanceWindow, WatchPolicy, gap, halt_reason, maintenance_step
from ledger.domain.numbers import D

POLICY = WatchPolicy()
NORMAL = [D("10")] * 60
BIDS = [(D("100"), D("1"))]
ASKS = [(D("100.1"), D("1"))]
WIDE_ASKS = [(D("106"), D("1"))]  # spread 6 / 103 = 5.83 %


def test_an_empty_side_is_a_halt_whatever_the_volume() -> None:
    assert halt_reason(POLICY, volumes=[*NORMAL, D("10")], bids=[], asks=ASKS) == "the book has no bids"
    assert halt_reason(POLICY, volumes=[*NORMAL, D("10")], bids=BIDS, asks=[]) == "the book has no asks"


def test_dead_volume_with_a_wide_spread_is_a_halt() -> None:
    # average 10, last 0.9 < 10 % of it, spread 5.83 % > 5 %
    reason = halt_reason(POLICY, volumes=[*NORMAL, D("0.9")], bids=BIDS, asks=WIDE_ASKS)

    assert reason is not None
    assert "volume 0.9" in reason
    assert "5.83%" in reason


def test_either_condition_alone_is_not_a_halt() -> None:
    assert halt_reason(POLICY, volumes=[*NORMAL, D("0.9")], bids=BIDS, asks=ASKS) is None  # tight spread
    assert halt_reason(POLICY, volumes=[*NORMAL, D("1")], bids=BIDS, asks=WIDE_ASKS) is None  # exactly 10 %


def test_the_gap_after_a_halt() -> None:
    assert gap(D("100"), D("111")) == D("0.11")
    assert gap(D("100"), D("95")) == D("0.05")
    assert gap(None, D("1")) is None


def test_maintenance_steps_one_hour_and_ten_minutes_ahead() -> None:
    start = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    windows = [MaintenanceWindow(start=start, end=start + timedelta(hours=1))]

    def step(minutes_before: float) -> str | None:
        found = maintenance_step(POLICY, start - timedelta(minutes=minutes_before), windows)
        return None if found is None else found[1]

    assert step(61) is None
    assert step(60) == "no_new_positions"
    assert step(10.5) == "no_new_positions"
    assert step(10) == "flatten"
    assert step(-30) == "flatten"  # during the window
    assert maintenance_step(POLICY, start + timedelta(hours=1), windows) is None  # over

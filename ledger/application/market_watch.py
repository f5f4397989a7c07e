"""Exchange health, symbol halts and maintenance windows (C11): the rules, with the seed's defaults.

The session applies them; every step it takes is an event. Defaults (SPEC §7): health checked
every 30 s, slower than 1,000 ms warns, 3 consecutive failures run the outage procedure; a
symbol is halted when its book is empty, or when its volume fell below 10 % of its average and
its spread is wider than 5 %; resumption is checked every 10 s and a gap over 10 % is flagged
for review; no new positions from 1 h before a maintenance window, flat 10 min before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT, ZERO


@dataclass(frozen=True, kw_only=True)
class WatchPolicy:
    """The thresholds; the defaults are the seed's."""

    health_every_s: float = 30.0
    slow_ms: Decimal = Decimal(1000)
    failures_for_outage: int = 3
    volume_ratio: Decimal = Decimal("0.1")
    volume_window: int = 60
    spread_max: Decimal = Decimal("0.05")
    resume_every_s: float = 10.0
    gap_review: Decimal = Decimal("0.10")
    no_new_positions_before: timedelta = timedelta(hours=1)
    flatten_before: timedelta = timedelta(minutes=10)


@dataclass(frozen=True, kw_only=True)
class MaintenanceWindow:
    """A venue's announced maintenance, UTC."""

    start: datetime
    end: datetime


def halt_reason(
    policy: WatchPolicy,
    *,
    volumes: Sequence[Decimal],
    bids: Sequence[tuple[Decimal, Decimal]],
    asks: Sequence[tuple[Decimal, Decimal]],
) -> str | None:
    """Return why the symbol looks halted, or None.

    ``volumes`` are the recent bars' volumes, the last one the newest.
    """
    if not bids or not asks:
        side = "bids" if not bids else "asks"
        return f"the book has no {side}"
    with localcontext(LEDGER_CONTEXT):
        mid = (bids[0][0] + asks[0][0]) / 2
        spread = (asks[0][0] - bids[0][0]) / mid
        history = list(volumes[-policy.volume_window - 1 : -1])
        if not history or spread <= policy.spread_max:
            return None
        average = sum(history, ZERO) / len(history)
        if average > ZERO and volumes[-1] < policy.volume_ratio * average:
            shown_average = average.quantize(Decimal("0.0001"))
            shown_spread = (spread * 100).quantize(Decimal("0.01"))
            return (
                f"volume {volumes[-1]} is under {policy.volume_ratio * 100}% of its average "
                f"{shown_average} and the spread is {shown_spread}%"
            )
    return None


def gap(before: Decimal | None, after: Decimal | None) -> Decimal | None:
    """Return |after - before| / before, or None when either is unknown."""
    if before is None or after is None or before == ZERO:
        return None
    with localcontext(LEDGER_CONTEXT):
        return abs(after - before) / before


def maintenance_step(
    policy: WatchPolicy, now: datetime, windows: Sequence[MaintenanceWindow]
) -> tuple[MaintenanceWindow, str] | None:
    """Return the window ahead and what it asks for now (``flatten`` or ``no_new_positions``)."""
    for window in windows:
        if now >= window.end:
            continue
        if now >= window.start - policy.flatten_before:
            return window, "flatten"
        if now >= window.start - policy.no_new_positions_before:
            return window, "no_new_positions"
    return None

"""Missing bars in a candle series: find them, report them, and refuse or allow them.

A series' interval is its smallest step between bar open times (``Candles.interval_ms``). A
*gap* is a step longer than that; it hides ``step / interval - 1`` missing bars. A step that is
not a whole number of intervals means the bars are not aligned to one grid (a 1m series with a
bar opening at 00:01:30), which no policy accepts.

The policies:

- ``refuse`` (the default): a series with any gap is refused with its count and largest gap.
  Backtests then never run, unawares, across an exchange halt: the bar after a gap opens hours
  later, and a fill "at the next open" would be at a price the strategy never saw coming.
- ``allow``: run on the bars as recorded (missing bars stay missing, never filled); the gaps
  are reported so the caller can print them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

from ledger.application.candles import EPOCH, Candles
from ledger.domain.errors import DataFileError, ParameterError

_MS_PER_MINUTE = 60_000
_MS_PER_HOUR = 3_600_000
_MS_PER_DAY = 86_400_000


class GapPolicy(enum.Enum):
    """What a backtest does with missing bars; values are the ``--gaps`` option's words."""

    REFUSE = "refuse"
    ALLOW = "allow"


@dataclass(frozen=True, kw_only=True)
class GapReport:
    """The missing bars of one series.

    ``largest_missing_ms`` is the time the largest gap leaves without bars (its step minus one
    interval); ``largest_after_ms`` is the open time of the bar before it (None without gaps).
    """

    bars: int
    interval_ms: int
    gaps: int
    missing_bars: int
    largest_missing_ms: int
    largest_after_ms: int | None

    def summary(self) -> str:
        """Return one sentence: bars, interval, and the gaps with the largest one's place."""
        head = f"{self.bars} bars of {duration(self.interval_ms)}"
        if self.gaps == 0 or self.largest_after_ms is None:
            return f"{head}, no gaps"
        return (
            f"{head}, {self.gaps} gap(s) with {self.missing_bars} missing bar(s); the largest is "
            f"{duration(self.largest_missing_ms)} after the bar opening {utc_text(self.largest_after_ms)}"
        )

    def as_dict(self) -> dict[str, int | None]:
        """Return the report as JSON-ready integers."""
        return {
            "bars": self.bars,
            "interval_ms": self.interval_ms,
            "gaps": self.gaps,
            "missing_bars": self.missing_bars,
            "largest_gap_ms": self.largest_missing_ms,
            "largest_gap_after_ms": self.largest_after_ms,
        }


def gap_policy(text: str) -> GapPolicy:
    """Return the policy named ``text`` (the ``--gaps`` option).

    Raises:
        ParameterError: not one of the policies.
    """
    try:
        return GapPolicy(text)
    except ValueError as e:
        names = "|".join(p.value for p in GapPolicy)
        msg = f"--gaps: {text!r} is not a gap policy; use {names}"
        raise ParameterError(msg) from e


def gap_report(path: Path, candles: Candles) -> GapReport:
    """Return the gaps of ``candles`` (read from ``path``, named in errors).

    Raises:
        DataFileError: a step between two bars is not a whole number of intervals.
    """
    steps = np.diff(candles.open_time_ms)
    interval = candles.interval_ms
    off_grid = np.flatnonzero(steps % interval)
    if off_grid.size:
        bar = int(off_grid[0]) + 1
        msg = (
            f"{path}: the bar opening at {int(candles.open_time_ms[bar])} ms "
            f"({utc_text(int(candles.open_time_ms[bar]))}) is {int(steps[bar - 1])} ms after the "
            f"previous one, not a whole number of the series' {duration(interval)} interval; "
            "align every bar's open time to one interval"
        )
        raise DataFileError(msg)
    missing = steps // interval - 1
    gapped = np.flatnonzero(missing)
    if gapped.size == 0:
        return GapReport(
            bars=len(candles),
            interval_ms=interval,
            gaps=0,
            missing_bars=0,
            largest_missing_ms=0,
            largest_after_ms=None,
        )
    widest = int(np.argmax(missing))
    return GapReport(
        bars=len(candles),
        interval_ms=interval,
        gaps=int(gapped.size),
        missing_bars=int(missing.sum()),
        largest_missing_ms=int(missing[widest]) * interval,
        largest_after_ms=int(candles.open_time_ms[widest]),
    )


def apply_gap_policy(path: Path, candles: Candles, policy: GapPolicy) -> GapReport:
    """Return the gap report of ``candles`` when ``policy`` accepts it.

    Raises:
        DataFileError: the series has gaps and the policy is ``refuse``, or bars off the grid.
    """
    report = gap_report(path, candles)
    if report.gaps and policy is GapPolicy.REFUSE:
        msg = (
            f"{path}: {report.summary()}; pass --gaps allow to run on the bars as recorded, "
            "or choose a range without gaps"
        )
        raise DataFileError(msg)
    return report


def duration(ms: int) -> str:
    """Return ``ms`` in the largest whole unit that divides it: ``90m``, ``33h``, ``2d``, ``1500ms``."""
    for unit, name in ((_MS_PER_DAY, "d"), (_MS_PER_HOUR, "h"), (_MS_PER_MINUTE, "m"), (1000, "s")):
        if ms >= unit and ms % unit == 0:
            return f"{ms // unit}{name}"
    return f"{ms}ms"


def utc_text(ms: int) -> str:
    """Return epoch milliseconds as ``YYYY-MM-DD HH:MM UTC`` (seconds when not whole minutes)."""
    moment = EPOCH + timedelta(milliseconds=ms)
    pattern = "%Y-%m-%d %H:%M UTC" if ms % _MS_PER_MINUTE == 0 else "%Y-%m-%d %H:%M:%S UTC"
    return moment.strftime(pattern)

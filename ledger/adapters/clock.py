"""Clocks: the only module allowed to read the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime


class SystemClock:
    """The wall clock, for live and paper runs."""

    def now(self) -> datetime:
        """Return the current UTC time."""
        return datetime.now(tz=UTC)


class SimulatedClock:
    """A clock the backtest moves bar by bar."""

    def __init__(self, start: datetime) -> None:
        """Start the clock at ``start`` (UTC-aware)."""
        if start.utcoffset() is None:
            msg = f"the simulated clock needs an aware start time, was {start!r}"
            raise ValueError(msg)
        self._now = start

    def now(self) -> datetime:
        """Return the simulated time."""
        return self._now

    def set(self, moment: datetime) -> None:
        """Move the clock to ``moment``; time never goes backwards."""
        if moment < self._now:
            msg = f"the simulated clock cannot go back from {self._now} to {moment}"
            raise ValueError(msg)
        self._now = moment

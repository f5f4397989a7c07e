"""Keep the DuckDB analytics projection current while writers append (``tradeledger sync``).

The follower folds the portfolio in memory from the last saved checkpoint and then only the new
events of each poll; every poll that finds new events appends them to the DuckDB file in one
transaction with the position reached (exactly once, resumable: a restarted follower continues
from the file's own ``tracking`` row). It never writes to the ledger.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ledger.adapters.store import LedgerStore
from projections import analytics
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner


@dataclass(frozen=True, kw_only=True)
class SyncStep:
    """One poll: how far the log and the DuckDB file are, and what the step applied."""

    log_seq: int
    synced_seq: int
    applied: int


class AnalyticsFollower:
    """Fold new events into the portfolio and the DuckDB file, poll by poll."""

    def __init__(self, store: LedgerStore, path: Path) -> None:
        """Start from the portfolio's last saved checkpoint (read only)."""
        self.path = path
        self._store = store
        self._runner = ProjectionRunner(store, store, PortfolioProjection())
        self._runner.load()

    def step(self) -> SyncStep:
        """Catch up with every event committed so far; return what was done."""
        self._runner.catch_up(save=False)
        upto = self._runner.last_seq
        projection = self._runner.projection
        assert isinstance(projection, PortfolioProjection)  # noqa: S101 - constructed above
        applied = analytics.sync(self.path, self._store, projection, upto=upto)
        return SyncStep(log_seq=upto, synced_seq=upto, applied=applied)

    def follow(
        self,
        *,
        interval_s: float,
        duration_s: float | None,
        on_step: Callable[[SyncStep], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> int:
        """Poll every ``interval_s`` until ``duration_s`` has passed (None: until interrupted).

        Returns the number of events applied.
        """
        deadline = None if duration_s is None else monotonic() + duration_s
        applied = 0
        while True:
            step = self.step()
            applied += step.applied
            if on_step is not None and step.applied:
                on_step(step)
            if deadline is not None and monotonic() >= deadline:
                return applied
            sleep(interval_s)

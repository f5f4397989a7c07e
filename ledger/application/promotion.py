"""Measuring a paper run's record for the promotion gates (exactly, from the projection)."""

from __future__ import annotations

import json
from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT, ZERO
from ledger.domain.promotion import Criterion, PaperRecord
from projections.portfolio import RunView

SECONDS_PER_DAY = Decimal(86_400)


def paper_record(run: RunView) -> PaperRecord:
    """Return ``run``'s record: closing fills, winners, deepest drawdown and days run.

    The drawdown is ``max((peak - equity) / peak)`` over the run's equity points in order,
    with ``peak`` the highest equity so far; days run from the start to the last event.
    """
    deepest = ZERO
    peak: Decimal | None = None
    with localcontext(LEDGER_CONTEXT):
        for point in run.equity:
            if peak is None or point.equity > peak:
                peak = point.equity
            if peak > ZERO:
                deepest = max(deepest, (peak - point.equity) / peak)
        last = run.last_at or run.started.occurred_at
        elapsed = last - run.started.occurred_at
        seconds = Decimal(elapsed.days * 86_400 + elapsed.seconds) + Decimal(elapsed.microseconds) / 10**6
        days = seconds / SECONDS_PER_DAY
    return PaperRecord(
        trades=len(run.closes),
        wins=sum(1 for close in run.closes if close > ZERO),
        drawdown_max=deepest,
        days=days,
    )


def criteria_json(criteria: list[Criterion]) -> str:
    """Return the criteria as canonical JSON (recorded in the mode-switch events)."""
    return json.dumps(
        [
            {"name": c.name, "required": c.required, "measured": c.measured, "passed": c.passed}
            for c in criteria
        ],
        sort_keys=True,
    )

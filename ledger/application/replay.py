"""Audit replay comparisons: recorded history against a rebuild and against a re-run.

Pure functions over events; the composition root (``ledger.bootstrap.replay``) reads the store,
re-runs backtests and calls these. Each returns the *first* divergence, named by the store
position (``seq``) of the recorded event, its type and the field, so an auditor can open the
log at that row.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from ledger.domain.events import LedgerEvent, RunCheckpointed, RunEnded
from ledger.domain.numbers import plain
from projections.checkpoints import differences, figures, recorded_figures
from projections.portfolio import PortfolioProjection


@dataclass(frozen=True, kw_only=True)
class Divergence:
    """The first place where a replay disagrees with the record."""

    check: str  # chain, checkpoint, projection, analytics or rerun
    seq: int | None  # store position of the recorded event (None: not tied to one row)
    event: str  # the recorded event's type, or what is missing
    field: str
    recorded: str
    replayed: str


@dataclass(frozen=True, kw_only=True)
class CheckpointResult:
    """What the rebuild from zero found at the run's own checkpoints."""

    checked: int  # RunCheckpointed and RunEnded events compared
    divergence: Divergence | None
    projection: PortfolioProjection  # the rebuild, for the next checks


def render(value: object) -> str:
    """Return a field value as the text a divergence report shows (exact, unambiguous)."""
    if value is None:
        return "null"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | UUID | int | str | bool):
        return str(value)
    return repr(value)


def rebuild_against_checkpoints(events: Iterable[tuple[int, LedgerEvent]], run_id: UUID) -> CheckpointResult:
    """Fold the run's events from zero; compare with every checkpoint the run recorded.

    A ``RunCheckpointed`` holds the run's figures *before* it; ``RunEnded`` holds the final
    equity at its mark price. Both are compared with the fresh fold at that point.
    """
    projection = PortfolioProjection()
    checked = 0
    for seq, event in events:
        run = projection.runs.get(run_id)
        if run is not None and isinstance(event, RunCheckpointed):
            checked += 1
            diffs = differences(recorded_figures(event), figures(run))
            if diffs:
                first = diffs[0]
                return CheckpointResult(
                    checked=checked,
                    divergence=Divergence(
                        check="checkpoint",
                        seq=seq,
                        event="RunCheckpointed",
                        field=first.field,
                        recorded=first.recorded,
                        replayed=first.rebuilt,
                    ),
                    projection=projection,
                )
        if run is not None and isinstance(event, RunEnded):
            checked += 1
            marks = {} if event.price_mark is None else {run.started.instrument: event.price_mark}
            rebuilt = run.equity_now(marks)
            if rebuilt != event.equity_final:
                return CheckpointResult(
                    checked=checked,
                    divergence=Divergence(
                        check="checkpoint",
                        seq=seq,
                        event="RunEnded",
                        field="equity_final",
                        recorded=plain(event.equity_final),
                        replayed=plain(rebuilt),
                    ),
                    projection=projection,
                )
        projection.apply(event)
    return CheckpointResult(checked=checked, divergence=None, projection=projection)


def first_event_divergence(
    recorded: Sequence[tuple[int, LedgerEvent]],
    replayed: Sequence[LedgerEvent],
    *,
    ignore: frozenset[str] = frozenset(),
) -> Divergence | None:
    """Return where a re-run's events first differ from the recorded ones, field by field.

    ``ignore`` names fields (``"RunStarted.code_version"``) whose difference is expected and
    reported elsewhere. Values compare by exact rendering: ``1.50`` and ``1.5`` differ, as they
    would in the stored bytes.
    """
    for (seq, old), new in zip(recorded, replayed, strict=False):
        name = type(old).__name__
        if type(old) is not type(new):
            return Divergence(
                check="rerun", seq=seq, event=name, field="type", recorded=name, replayed=type(new).__name__
            )
        for spec in fields(old):
            if f"{name}.{spec.name}" in ignore:
                continue
            a, b = render(getattr(old, spec.name)), render(getattr(new, spec.name))
            if a != b:
                return Divergence(check="rerun", seq=seq, event=name, field=spec.name, recorded=a, replayed=b)
    if len(recorded) > len(replayed):
        seq, old = recorded[len(replayed)]
        return Divergence(
            check="rerun",
            seq=seq,
            event=type(old).__name__,
            field="presence",
            recorded=f"event {len(replayed) + 1} of {len(recorded)}",
            replayed=f"the re-run ended after {len(replayed)} events",
        )
    if len(replayed) > len(recorded):
        extra = replayed[len(recorded)]
        return Divergence(
            check="rerun",
            seq=None,
            event=type(extra).__name__,
            field="presence",
            recorded=f"the run ended after {len(recorded)} events",
            replayed=f"event {len(recorded) + 1} of {len(replayed)}",
        )
    return None

"""Run checkpoints: the figures a run records about itself, and how a replay compares them.

A run records ``RunCheckpointed`` events (daily and before it ends) holding its own projection
of positions, balances and equity at that point of its log. An audit replay rebuilds the
projection from zero with today's code and compares, field by field, at every checkpoint, so a
divergence is reported at the first checkpoint that disagrees rather than only at the end
(the role of Beancount's ``balance`` directive).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ledger.domain.events import RunCheckpointed
from ledger.domain.numbers import plain
from projections.portfolio import RunView


@dataclass(frozen=True, kw_only=True)
class CheckpointFigures:
    """A run's projection at one point of its log, as canonical strings."""

    events: int
    fills: int
    positions: dict[str, dict[str, str]]
    balances: dict[str, dict[str, str]]
    equity: str

    def positions_json(self) -> str:
        """Return the positions as the canonical JSON stored in the event."""
        return json.dumps(self.positions, sort_keys=True, separators=(",", ":"))

    def balances_json(self) -> str:
        """Return the balances as the canonical JSON stored in the event."""
        return json.dumps(self.balances, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class FigureDifference:
    """One field where the recorded and the rebuilt figures disagree."""

    field: str  # e.g. "positions.BTC/USDT.price_avg"
    recorded: str
    rebuilt: str


def figures(run: RunView) -> CheckpointFigures:
    """Return the checkpoint figures of ``run`` as the projection holds it now."""
    return CheckpointFigures(
        events=run.events,
        fills=run.fills,
        positions={
            instrument: {
                "qty_open": plain(p.qty_open),
                "price_avg": plain(p.price_avg),
                "pnl_realized": plain(p.pnl_realized),
                "fee_total": plain(p.fee_total),
            }
            for instrument, p in sorted(run.positions.items())
        },
        balances={
            asset: {"total": plain(b.total), "reserved": plain(b.reserved)}
            for asset, b in sorted(run.balances.items())
        },
        equity=plain(run.equity_now()),
    )


def recorded_figures(event: RunCheckpointed) -> CheckpointFigures:
    """Return the figures a ``RunCheckpointed`` event recorded."""
    return CheckpointFigures(
        events=event.events,
        fills=event.fills,
        positions=json.loads(event.positions),
        balances=json.loads(event.balances),
        equity=plain(event.equity),
    )


def differences(recorded: CheckpointFigures, rebuilt: CheckpointFigures) -> list[FigureDifference]:
    """Return every field where ``rebuilt`` differs from ``recorded``, in a stable order."""
    found: list[FigureDifference] = []
    for name in ("events", "fills", "equity"):
        a, b = str(getattr(recorded, name)), str(getattr(rebuilt, name))
        if a != b:
            found.append(FigureDifference(field=name, recorded=a, rebuilt=b))
    for group in ("positions", "balances"):
        left: dict[str, dict[str, str]] = getattr(recorded, group)
        right: dict[str, dict[str, str]] = getattr(rebuilt, group)
        for key in sorted(left.keys() | right.keys()):
            row_a, row_b = left.get(key, {}), right.get(key, {})
            for column in sorted(row_a.keys() | row_b.keys()):
                a, b = row_a.get(column, "missing"), row_b.get(column, "missing")
                if a != b:
                    found.append(FigureDifference(field=f"{group}.{key}.{column}", recorded=a, rebuilt=b))
    return found

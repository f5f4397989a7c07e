"""Plain-data views of the read model for tables and ``--json`` output."""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal
from typing import Any

from ledger.application.session import Reconciliation
from ledger.bootstrap.replay import ReplayReport
from ledger.bootstrap.tapes import TapeInfo, TapeReplayReport
from ledger.domain.numbers import plain
from ledger.domain.trading_session import KillSwitchState
from projections.performance import metrics
from projections.portfolio import PortfolioProjection, RunView


def resolve_run(portfolio: PortfolioProjection, text: str | None) -> RunView:
    """Return the run named by a full id or a unique prefix (default: the newest run).

    Raises:
        RunNotFoundError: no run, or the prefix matches none or several.
    """
    return portfolio.find_run(text)


def session_row(run: RunView) -> dict[str, Any]:
    """Return one run as a `sessions` row."""
    return {
        "run_id": str(run.run_id),
        "mode": run.mode,
        "started_at": run.started.occurred_at.isoformat(),
        "events": run.events,
        "instrument": run.started.instrument,
        "strategy": run.started.strategy,
        "status": "ended" if run.ended is not None else "open",
        "equity_final": None if run.ended is None else plain(run.ended.equity_final),
    }


def positions_view(run: RunView, marks: dict[str, Decimal]) -> dict[str, Any]:
    """Return positions, balances, open orders and PnL of a run at the given marks."""
    positions = []
    for instrument, p in sorted(run.positions.items()):
        mark = marks.get(instrument, p.price_last)
        positions.append(
            {
                "instrument": instrument,
                "qty_open": plain(p.qty_open),
                "price_avg": plain(p.price_avg),
                "price_mark": None if mark is None else plain(mark),
                "pnl_realized": plain(p.pnl_realized),
                "pnl_unrealized": plain(p.pnl_unrealized(mark)),
                "fee_total": plain(p.fee_total),
            }
        )
    balances = [
        {"asset": asset, "total": plain(b.total), "reserved": plain(b.reserved), "free": plain(b.free)}
        for asset, b in sorted(run.balances.items())
    ]
    open_orders = [
        {
            "client_order_id": o.client_order_id,
            "instrument": o.instrument,
            "side": o.side.value,
            "status": o.status,
            "qty": None if o.qty is None else plain(o.qty),
            "qty_quote": None if o.qty_quote is None else plain(o.qty_quote),
            "qty_filled": plain(o.qty_filled),
        }
        for o in run.open_orders.values()
    ]
    return {
        "run_id": str(run.run_id),
        "positions": positions,
        "balances": balances,
        "open_orders": open_orders,
        "equity": plain(run.equity_now(marks)),
    }


def backtest_summary(run: RunView, chain_head: str) -> dict[str, Any]:
    """Return the `backtest --json` object."""
    stats = metrics(run)
    return {
        "run_id": str(run.run_id),
        "mode": run.mode,
        "events": run.events,
        "decisions": run.decisions,
        "orders": run.orders,
        "fills": run.fills,
        "denied": run.denied,
        "equity_final": plain(run.ended.equity_final) if run.ended is not None else plain(run.equity_now()),
        "pnl_realized": plain(Decimal(stats["pnl_realized"])),
        "fees": plain(Decimal(stats["fees"])),
        "chain_head": chain_head,
        "metrics": stats,
    }


def replay_view(report: ReplayReport) -> dict[str, Any]:
    """Return a replay report as the ``replay --json`` object."""
    divergence = report.divergence
    return {
        "run_id": str(report.run_id),
        "mode": report.mode,
        "events": report.events,
        "ok": report.ok,
        "code_version": {
            "recorded": report.code_version_recorded,
            "replaying": report.code_version_replaying,
        },
        "checks": [{"name": c.name, "status": c.status, "detail": c.detail} for c in report.checks],
        "divergence": None if divergence is None else asdict(divergence),
    }


def reconciliation_view(reconciled: Reconciliation) -> dict[str, Any]:
    """Return a live start-up's venue-against-ledger comparison as rows and lists."""
    differences = reconciled.differences()
    assets = sorted(reconciled.venue.keys() | reconciled.ledger.keys())
    return {
        "rows": [
            {
                "asset": asset,
                "venue": plain(reconciled.venue.get(asset, Decimal(0))),
                "ledger": plain(reconciled.ledger.get(asset, Decimal(0))),
                "difference": plain(differences.get(asset, Decimal(0))),
            }
            for asset in assets
        ],
        "differences": {asset: plain(d) for asset, d in differences.items()},
        "orders_unknown": list(reconciled.orders_unknown),
    }


def tape_replay_view(report: TapeReplayReport) -> dict[str, Any]:
    """Return ``replay --as-backtest`` as one JSON-able object."""
    shown = asdict(report)
    shown["run_id"] = str(report.run_id)
    return shown


def tape_row(info: TapeInfo) -> dict[str, Any]:
    """Return one tape as a `tapes list` row."""
    return {
        "run_id": str(info.run_id),
        "tape": info.tape,
        "bars": info.bars,
        "recorded_at": info.recorded_at.isoformat(),
        "present": info.present,
        "pruned": info.pruned,
    }


def kill_switch_view(state: KillSwitchState) -> dict[str, Any]:
    """Return the kill switch as `kill --status` shows it."""
    return {
        "engaged": state.engaged,
        "reason": state.reason or None,
        "actor": state.actor or None,
        "since": None if state.since is None else state.since.isoformat(),
        "liquidate": state.liquidate,
    }

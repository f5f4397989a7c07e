"""The stateful side of alerting: backtest muting, run summaries and daily summaries.

``AlertFeed`` folds the log, event by event, into the alerts to deliver. Its state is small and
serialisable, so the dispatcher saves it with its log position (exactly once across restarts):

* Backtest runs are muted (their fills are simulated history, often thousands of them); a run
  is muted from its ``RunStarted`` to its ``RunEnded``.
* Per UTC day (of ``occurred_at``) it counts fills, fees per asset, realized PnL per quote asset
  (average cost, ``projections.positions.apply_fill``) and runs ended. The first event of a
  later day emits the summary of the day before, ahead of that event's own alerts. An event
  dated before the current day (a late venue report) counts into the current day.
* ``RunEnded`` alerts carry the run's fills and realized PnL since the feed started.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, localcontext
from typing import Any
from uuid import UUID

from ledger.application.alerts import Alert, AlertKind, alerts_for
from ledger.domain.events import OrderFilled, RunEnded, RunStarted, TradingMode
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, plain
from projections.positions import Position, apply_fill


@dataclass(kw_only=True)
class DayTally:
    """What happened on one UTC day, for its summary."""

    day: date
    fills: int = 0
    runs_ended: int = 0
    fees: dict[str, Decimal] = field(default_factory=dict)  # by fee asset
    pnl_realized: dict[str, Decimal] = field(default_factory=dict)  # by quote asset


def daily_summary(tally: DayTally, seq: int) -> Alert:
    """Return the summary alert of ``tally``'s day, raised by the event at ``seq``."""
    lines = [f"fills {tally.fills}, runs ended {tally.runs_ended}"]
    if tally.pnl_realized:
        lines.append("realized PnL " + _amounts(tally.pnl_realized))
    if tally.fees:
        lines.append("fees " + _amounts(tally.fees))
    return Alert(
        kind=AlertKind.DAILY_SUMMARY,
        title=f"Daily summary {tally.day.isoformat()} (UTC)",
        text="\n".join(lines),
        run_id=None,
        seq=seq,
        occurred_at=datetime.combine(tally.day + timedelta(days=1), time(), tzinfo=UTC),
    )


def _amounts(by_asset: dict[str, Decimal]) -> str:
    return ", ".join(f"{plain(amount)} {asset}" for asset, amount in sorted(by_asset.items()))


def _add(by_asset: dict[str, Decimal], asset: str, amount: Decimal) -> None:
    with localcontext(LEDGER_CONTEXT):
        by_asset[asset] = by_asset.get(asset, ZERO) + amount


@dataclass(kw_only=True)
class _RunTally:
    fills: int = 0
    pnl_realized: dict[str, Decimal] = field(default_factory=dict)


class AlertFeed:
    """Fold the log into alerts; ``snapshot``/``restore`` carry its state across restarts."""

    def __init__(self, *, alert_backtests: bool = False) -> None:
        """Start with no day, no positions and nothing muted.

        Args:
            alert_backtests: also alert on backtest runs (tests and demos only).
        """
        self._alert_backtests = alert_backtests
        self.today: DayTally | None = None
        self._muted: set[UUID] = set()
        self._runs: dict[UUID, _RunTally] = {}
        self._positions: dict[tuple[UUID, str], Position] = {}

    def apply(self, seq: int, event: object) -> list[Alert]:
        """Return the alerts the event at ``seq`` raises, given everything folded before it."""
        run_id: UUID | None = getattr(event, "run_id", None)
        if isinstance(event, RunStarted) and event.mode is TradingMode.BACKTEST and not self._alert_backtests:
            self._muted.add(event.run_id)
        if run_id in self._muted:
            if isinstance(event, RunEnded):
                self._muted.discard(event.run_id)
            return []
        alerts = self._roll_day(seq, event)
        own = alerts_for(seq, event)
        if isinstance(event, OrderFilled):
            self._count_fill(event)
        elif isinstance(event, RunEnded):
            own = [self._run_summary(alert, event) for alert in own]
        return alerts + own

    def _roll_day(self, seq: int, event: object) -> list[Alert]:
        occurred_at: datetime | None = getattr(event, "occurred_at", None)
        if occurred_at is None:
            return []
        day = occurred_at.astimezone(UTC).date()
        if self.today is None:
            self.today = DayTally(day=day)
            return []
        if day <= self.today.day:
            return []
        ended = self.today
        self.today = DayTally(day=day)
        return [daily_summary(ended, seq)]

    def _count_fill(self, fill: OrderFilled) -> None:
        key = (fill.run_id, fill.instrument)
        _, _, quote = fill.instrument.partition("/")
        before = self._positions.get(key, Position(instrument=fill.instrument))
        self._positions[key], close = apply_fill(before, fill, fee_in_quote=fill.fee_asset == quote)
        run = self._runs.setdefault(fill.run_id, _RunTally())
        run.fills += 1
        if self.today is not None:
            self.today.fills += 1
            _add(self.today.fees, fill.fee_asset, fill.fee)
        if close is not None and quote:
            _add(run.pnl_realized, quote, close.pnl)
            if self.today is not None:
                _add(self.today.pnl_realized, quote, close.pnl)

    def _run_summary(self, alert: Alert, event: RunEnded) -> Alert:
        # The run is over: its tallies and positions are no longer needed (bounds the state).
        run = self._runs.pop(event.run_id, _RunTally())
        for key in [k for k in self._positions if k[0] == event.run_id]:
            del self._positions[key]
        if self.today is not None:
            self.today.runs_ended += 1
        pnl = "" if not run.pnl_realized else f", realized PnL {_amounts(run.pnl_realized)}"
        return replace(alert, text=f"{alert.text}\nfills {run.fills}{pnl}")

    def snapshot(self) -> dict[str, Any]:
        """Return the state as a JSON-ready dict (Decimals as strings)."""
        today = self.today
        return {
            "today": None if today is None else _tally_json(today),
            "muted": sorted(str(run_id) for run_id in self._muted),
            "runs": {
                str(run_id): {"fills": run.fills, "pnl_realized": _decimals_json(run.pnl_realized)}
                for run_id, run in self._runs.items()
            },
            "positions": [
                [
                    str(run_id),
                    p.instrument,
                    str(p.qty_open),
                    str(p.price_avg),
                    str(p.pnl_realized),
                    str(p.fee_total),
                ]
                for (run_id, _), p in self._positions.items()
            ],
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replace the state with one ``snapshot`` returned."""
        today = state["today"]
        self.today = None if today is None else _tally_from_json(today)
        self._muted = {UUID(run_id) for run_id in state["muted"]}
        self._runs = {
            UUID(run_id): _RunTally(fills=int(run["fills"]), pnl_realized=_decimals(run["pnl_realized"]))
            for run_id, run in state["runs"].items()
        }
        self._positions = {
            (UUID(run_id), instrument): Position(
                instrument=instrument,
                qty_open=Decimal(qty_open),
                price_avg=Decimal(price_avg),
                pnl_realized=Decimal(pnl_realized),
                fee_total=Decimal(fee_total),
            )
            for run_id, instrument, qty_open, price_avg, pnl_realized, fee_total in state["positions"]
        }


def _decimals_json(by_asset: dict[str, Decimal]) -> dict[str, str]:
    return {asset: str(amount) for asset, amount in by_asset.items()}


def _decimals(by_asset: dict[str, str]) -> dict[str, Decimal]:
    return {asset: Decimal(amount) for asset, amount in by_asset.items()}


def _tally_json(tally: DayTally) -> dict[str, Any]:
    return {
        "day": tally.day.isoformat(),
        "fills": tally.fills,
        "runs_ended": tally.runs_ended,
        "fees": _decimals_json(tally.fees),
        "pnl_realized": _decimals_json(tally.pnl_realized),
    }


def _tally_from_json(data: dict[str, Any]) -> DayTally:
    return DayTally(
        day=date.fromisoformat(data["day"]),
        fills=int(data["fills"]),
        runs_ended=int(data["runs_ended"]),
        fees=_decimals(data["fees"]),
        pnl_realized=_decimals(data["pnl_realized"]),
    )


def dumps(state: dict[str, Any]) -> bytes:
    """Return canonical JSON bytes of a state dict (sorted keys, no spaces)."""
    return json.dumps(state, sort_keys=True, separators=(",", ":")).encode()

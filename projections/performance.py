"""Performance statistics of a run: the only module where floats and numpy appear.

Statistics are ratios computed from the exact read model; they are never written back into
events or Decimal read models. Crypto trades around the clock, so annualisation uses 365 days.
"""

from __future__ import annotations

import math
from decimal import localcontext
from typing import Any

import numpy as np

from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, plain
from projections.portfolio import RunView

SECONDS_PER_YEAR = 365 * 24 * 3600


def metrics(run: RunView) -> dict[str, Any]:
    """Return the run's statistics: returns, risk, trade quality, fees, slippage, exposure.

    Money (``fees``, ``pnl_realized``, ``equity_final``) stays a decimal string; ratios are
    floats (None when undefined, e.g. a Sharpe ratio with no variance).
    """
    equity = np.array([float(p.equity) for p in run.equity], dtype=np.float64)
    times = np.array([p.at.timestamp() for p in run.equity], dtype=np.float64)
    stats: dict[str, Any] = {}
    stats.update(_returns(equity, times, float(run.started.cash_initial)))
    stats.update(_trades(run))
    stats["exposure"] = _exposure(run, times)
    with localcontext(LEDGER_CONTEXT):
        fees = sum((p.fee_total for p in run.positions.values()), ZERO)
        pnl = sum((p.pnl_realized for p in run.positions.values()), ZERO)
    stats["fees"] = plain(fees)
    stats["pnl_realized"] = plain(pnl)
    stats["slippage_bps"] = {
        instrument: {"avg": _finite(float(np.mean([float(v) for v in values]))), "max": str(max(values))}
        for instrument, values in sorted(run.slippage_bps.items())
        if values
    }
    return stats


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _annualize(total: float, span_s: float) -> float | None:
    # Compounded over a 365-day year; undefined for an empty span or a total loss, and None
    # (not inf) when a short, lucky run would compound beyond a float.
    if span_s <= 0 or total <= -1:
        return None
    try:
        return math.expm1(math.log1p(total) * SECONDS_PER_YEAR / span_s)
    except OverflowError:
        return None


def _returns(equity: np.ndarray, times: np.ndarray, cash_initial: float) -> dict[str, Any]:
    empty = {
        "return_total": None,
        "return_annualized": None,
        "volatility": None,
        "sharpe": None,
        "sortino": None,
        "drawdown_max": None,
    }
    if equity.size < 2:  # noqa: PLR2004 - two points make one return
        return empty
    total = equity[-1] / cash_initial - 1.0
    span_s = float(times[-1] - times[0])
    returns = np.diff(equity) / equity[:-1]
    spacing = float(np.median(np.diff(times))) if times.size > 1 else 0.0
    periods = SECONDS_PER_YEAR / spacing if spacing > 0 else 0.0
    annualized = _annualize(float(total), span_s)
    std = float(np.std(returns, ddof=1)) if returns.size > 1 else 0.0
    mean = float(np.mean(returns))
    downside = float(np.sqrt(np.mean(np.minimum(returns, 0.0) ** 2)))
    peaks = np.maximum.accumulate(equity)
    return {
        "return_total": _finite(total),
        "return_annualized": None if annualized is None else _finite(annualized),
        "volatility": _finite(std * math.sqrt(periods)) if std > 0 else None,
        "sharpe": _finite(mean / std * math.sqrt(periods)) if std > 0 else None,
        "sortino": _finite(mean / downside * math.sqrt(periods)) if downside > 0 else None,
        "drawdown_max": _finite(float(np.min(equity / peaks - 1.0))),
    }


def _trades(run: RunView) -> dict[str, Any]:
    closes = [float(c) for c in run.closes]
    wins = [c for c in closes if c > 0]
    losses = [c for c in closes if c < 0]
    gross_loss = -sum(losses)
    return {
        "trades": len(closes),
        "win_rate": len(wins) / len(closes) if closes else None,
        "profit_factor": sum(wins) / gross_loss if gross_loss > 0 else None,
        "win_avg": sum(wins) / len(wins) if wins else None,
        "loss_avg": sum(losses) / len(losses) if losses else None,
    }


def _exposure(run: RunView, times: np.ndarray) -> float | None:
    # Time-weighted: each equity point's exposure holds until the next point.
    if times.size < 2:  # noqa: PLR2004
        return None
    weights = np.diff(times)
    exposed = np.array([p.exposed for p in run.equity[:-1]], dtype=np.float64)
    total = float(weights.sum())
    return float((weights * exposed).sum() / total) if total > 0 else None


def equity_series(run: RunView) -> list[float]:
    """Return the equity curve as floats, for charts only (the read model stays Decimal)."""
    return [float(p.equity) for p in run.equity]


def drawdown_series(run: RunView) -> list[float]:
    """Return the drawdown (fraction below the running peak) at each equity point."""
    equity = np.array([float(p.equity) for p in run.equity], dtype=np.float64)
    if equity.size == 0:
        return []
    return [float(x) for x in equity / np.maximum.accumulate(equity) - 1.0]

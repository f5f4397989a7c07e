"""``projections.performance.metrics`` on hand-built equity series.

The statistics are floats by design (STYLE §6.3); ledger money inside them (fees, realized
PnL) stays a decimal string. Cases are chosen so that the interesting numbers are exact in
binary floating point, and the rest is recomputed independently with the standard library.
"""

from __future__ import annotations

import math
import statistics
import warnings
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from factories import a_run_started
from ledger.domain.numbers import D
from projections.performance import SECONDS_PER_YEAR, drawdown_series, metrics
from projections.portfolio import EquityPoint, RunView
from projections.positions import Position

RUN = UUID("00000000-0000-5000-8000-0000000000bb")
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def a_run(
    equity: list[tuple[str, bool]],
    *,
    step: timedelta = timedelta(days=1),
    cash: str = "100",
    closes: tuple[str, ...] = (),
) -> RunView:
    started = a_run_started(run_id=RUN, originator_id=RUN, occurred_at=T0, cash_initial=cash)
    return RunView(
        run_id=RUN,
        started=started,
        equity=[
            EquityPoint(at=T0 + i * step, equity=D(value), exposed=exposed)
            for i, (value, exposed) in enumerate(equity)
        ],
        closes=[D(c) for c in closes],
    )


def test_drawdown_return_exposure_and_trade_quality_on_a_small_case() -> None:
    """Equity 100, 200, 100, 400, 300, one point a day; closes +10, -4, +6, -1.

    return_total  = 300 / 100 - 1 = 2
    peaks         = 100, 200, 200, 400, 400 -> drawdowns 0, 0, -0.5, 0, -0.25 -> max -0.5
    exposure      = exposed on days 2 and 3 of 4 intervals (flags F, T, T, F; last ignored) = 0.5
    win_rate      = 2 wins / 4 closes = 0.5
    profit_factor = (10 + 6) / (4 + 1) = 3.2 ; win_avg = 16 / 2 = 8 ; loss_avg = -5 / 2 = -2.5
    """
    run = a_run(
        [("100", False), ("200", True), ("100", True), ("400", False), ("300", True)],
        closes=("10", "-4", "6", "-1"),
    )

    stats = metrics(run)

    assert stats["return_total"] == 2.0
    assert stats["drawdown_max"] == -0.5
    assert drawdown_series(run) == [0.0, 0.0, -0.5, 0.0, -0.25]
    assert stats["exposure"] == 0.5
    assert stats["trades"] == 4
    assert stats["win_rate"] == 0.5
    assert stats["profit_factor"] == 3.2
    assert stats["win_avg"] == 8.0
    assert stats["loss_avg"] == -2.5


def test_risk_ratios_match_an_independent_computation() -> None:
    """Daily returns 1, -0.5, 3, -0.25 annualized with 365 periods a year (24/7 markets).

    mean = 3.25 / 4 = 0.8125; sample std from the squared deviations 7.671875 / 3;
    downside deviation = sqrt((0.5^2 + 0.25^2) / 4) = sqrt(0.078125);
    annualized return = 3 ** (365 / 4) - 1 over the 4-day span.
    """
    run = a_run([("100", False), ("200", True), ("100", True), ("400", False), ("300", True)])
    returns = [1.0, -0.5, 3.0, -0.25]
    std = statistics.stdev(returns)

    stats = metrics(run)

    assert std == pytest.approx(math.sqrt(7.671875 / 3))
    assert stats["volatility"] == pytest.approx(std * math.sqrt(365))
    assert stats["sharpe"] == pytest.approx(0.8125 / std * math.sqrt(365))
    assert stats["sortino"] == pytest.approx(0.8125 / math.sqrt(0.078125) * math.sqrt(365))
    assert stats["return_annualized"] == pytest.approx(3.0 ** (SECONDS_PER_YEAR / (4 * 86400)) - 1.0)


def test_money_in_metrics_stays_decimal_strings_summed_over_positions() -> None:
    """Fees 1.5 + 0.25 = 1.75 and realized PnL 11 + (-0.5) = 10.5, summed exactly."""
    run = a_run([("100", False), ("101", False)])
    run.positions["BTC/USDT"] = Position(instrument="BTC/USDT", fee_total=D("1.5"), pnl_realized=D("11"))
    run.positions["ETH/USDT"] = Position(instrument="ETH/USDT", fee_total=D("0.25"), pnl_realized=D("-0.5"))

    stats = metrics(run)

    assert stats["fees"] == "1.75"
    assert stats["pnl_realized"] == "10.5"


def test_slippage_reports_average_and_worst_per_symbol() -> None:
    run = a_run([("100", False), ("101", False)])
    run.slippage_bps["BTC/USDT"] = [D("1.00000000"), D("3.00000000"), D("-1.00000000")]

    stats = metrics(run)

    assert stats["slippage_bps"] == {"BTC/USDT": {"avg": 1.0, "max": "3.00000000"}}


def test_undefined_statistics_are_none() -> None:
    """One equity point has no return; no closes has no win rate; a flat curve has no Sharpe."""
    assert metrics(a_run([("100", False)]))["return_total"] is None
    flat = metrics(a_run([("100", False), ("100", False), ("100", False)]))
    assert flat["return_total"] == 0.0
    assert flat["sharpe"] is None
    assert flat["volatility"] is None
    assert flat["sortino"] is None
    assert flat["drawdown_max"] == 0.0
    assert flat["win_rate"] is None
    assert flat["profit_factor"] is None
    assert flat["exposure"] == 0.0


def test_only_losses_give_zero_win_rate_and_zero_profit_factor() -> None:
    stats = metrics(a_run([("100", False), ("99", False)], closes=("-1", "-2")))

    assert stats["win_rate"] == 0.0
    assert stats["profit_factor"] == 0.0
    assert stats["win_avg"] is None
    assert stats["loss_avg"] == -1.5


def test_exposure_is_time_weighted() -> None:
    """Exposed for the first interval (1 h) of a 1 h + 3 h curve: 1 / 4 = 0.25."""
    run = a_run([("100", True), ("100", False), ("100", False)])
    run.equity[2] = EquityPoint(at=T0 + timedelta(hours=4), equity=D("100"), exposed=False)
    run.equity[1] = EquityPoint(at=T0 + timedelta(hours=1), equity=D("100"), exposed=False)

    assert metrics(run)["exposure"] == 0.25


def test_annualized_return_of_a_short_high_return_run_is_none_without_warnings() -> None:
    """Tripling in 4 hours annualizes to 3 ** 2190, which no float holds: the answer is None."""
    run = a_run([("100", False), ("200", True), ("300", False)], step=timedelta(hours=2))

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stats = metrics(run)

    assert stats["return_annualized"] is None
    assert stats["return_total"] == 2.0

"""`tradeledger sweep`: many backtests over a parameter grid, in parallel, then a comparison.

The runs are ordinary runs of the ledger (`sessions`, `verify`, `replay RUN`, `export` work on
them); how they are computed and written is in ``ledger.bootstrap.sweep``. The comparison is
sorted by final equity, highest first (every run starts with the same cash, so this is also
total return), ties kept in grid order; ``--json`` prints the list in the same order.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ledger import bootstrap
from ledger.application.sweep_grid import describe
from ledger.bootstrap.fill_options import BacktestConfig
from ledger.bootstrap.sweep import SweepRequest, SweepResult, jobs_default, run_sweep
from ledger.domain.numbers import D
from ledger.entrypoints import backtest_options, data_options, views
from projections.portfolio import PortfolioProjection

SORTED_BY = "equity_final, highest first"


def sweep(  # noqa: PLR0913, PLR0917 - the CLI contract's options plus the backtest's
    grid: Annotated[
        list[str],
        typer.Option(help="a parameter and its values, K=V1,V2,... (repeatable; all combinations run)"),
    ],
    data: data_options.DataOption = None,
    symbol: Annotated[str | None, typer.Option(help="instrument; default BTC/USDT")] = None,
    strategy: Annotated[str | None, typer.Option(help="decision source: sma; default sma")] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="a strategy parameter K=V every run shares (repeatable)")
    ] = None,
    cash: Annotated[str | None, typer.Option(help="starting quote cash; default 10000")] = None,
    fee: Annotated[str | None, typer.Option(help="taker fee rate per side; default 0.001")] = None,
    fill_model: backtest_options.FillModelOption = None,
    slippage: backtest_options.SlippageOption = None,
    latency_ms: backtest_options.LatencyOption = None,
    failure_rate: backtest_options.FailureOption = None,
    seed: Annotated[int | None, typer.Option(help="seed of every id and random draw; default 0")] = None,
    config: backtest_options.ConfigOption = None,
    jobs: Annotated[
        int | None, typer.Option(help=f"worker processes [default: one per CPU, {jobs_default()} here]")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of run summaries")] = False,
    gaps: data_options.GapsOption = "refuse",
    exchange_url: data_options.ExchangeUrlOption = None,
    maker_fee: backtest_options.MakerFeeOption = None,
    impact: backtest_options.ImpactOption = None,
    spread_bps: backtest_options.SpreadOption = None,
    queue_ahead: backtest_options.QueueOption = None,
    limit_timeout_s: backtest_options.TimeoutOption = None,
) -> None:
    """Run a backtest for every combination of the --grid values and compare them.

    Every combination is validated before anything is written. Runs are computed in parallel
    worker processes and written by this process, each exactly as `tradeledger backtest` would
    write it (same run id, same events). Every backtest option applies to every run.
    """
    # cli registers this command; the global --ledger option and the read side live there.
    from ledger.entrypoints import cli  # noqa: PLC0415 - cli imports this module

    fixed = cli.params_option(param or [])
    given = BacktestConfig(
        data=data,
        symbol=symbol,
        strategy=strategy,
        params=fixed,
        cash=cash,
        fee=fee,
        seed=seed,
        fill_model=fill_model,
        slippage=slippage,
        impact=impact,
        spread_bps=spread_bps,
        latency_ms=latency_ms,
        failure_rate=failure_rate,
        maker_fee=maker_fee,
        queue_ahead=queue_ahead,
        limit_timeout_s=limit_timeout_s,
    )
    merged = backtest_options.merge(given, config)
    choice = data_options.resolve(merged.data, gaps, exchange_url)
    base = bootstrap.BacktestRequest(
        ledger_url=cli.STATE.ledger,
        data_path=choice.path,
        data_label=choice.label,
        gaps=gaps,
        **merged.request,
    )
    request = SweepRequest(base=base, grid=tuple(grid), jobs=jobs, fixed=fixed)
    with cli.progress_bar("sweep") as progress:
        result = run_sweep(request, progress)
    rows = sweep_summaries(result, result.portfolio)
    data_summary = data_options.report_gaps(result.data_report, choice)  # a note on stderr if gapped
    for row in rows:  # each row is the run's `backtest --json` object, data included
        row["data"] = data_summary
    if as_json:
        cli.print_json(rows)
        return
    cli.print_table(
        f"sweep: {len(rows)} runs, {result.jobs} job(s), sorted by {SORTED_BY}",
        [_table_row(row) for row in rows],
    )


def sweep_summaries(result: SweepResult, portfolio: PortfolioProjection) -> list[dict[str, Any]]:
    """Return each run's `backtest --json` object plus its params, in comparison order."""
    rows = []
    for run in result.runs:
        view = portfolio.runs[run.run_id]
        summary = views.backtest_summary(view, result.store.chain_head(run.run_id).hash)
        summary["params"] = dict(run.request.params)
        summary["grid"] = dict(run.values)
        rows.append(summary)
    # sorted() is stable: equal final equity keeps grid order.
    return sorted(rows, key=lambda row: D(row["equity_final"]), reverse=True)


def _percent(statistic: Any) -> str:
    # A ratio from projections.performance (statistics are floats there, never ledger values).
    return "" if statistic is None else f"{100 * statistic:.2f}"


def _table_row(summary: dict[str, Any]) -> dict[str, Any]:
    stats = summary["metrics"]
    return {
        "params": describe(summary["grid"]),
        "fills": summary["fills"],
        "equity_final": summary["equity_final"],
        "return_%": _percent(stats.get("return_total")),
        "drawdown_max_%": _percent(stats.get("drawdown_max")),
        "sharpe": stats.get("sharpe"),
        "win_rate_%": _percent(stats.get("win_rate")),
        "fees": summary["fees"],
        "run_id": summary["run_id"],
    }

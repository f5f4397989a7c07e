"""The `tradeledger` command line: parse, call the Python API, print; nothing else.

Why typer + rich: typer gives typed options, `--help` on every command and shell completion
on top of click (the most used Python CLI library); rich draws the tables and the progress
bar (on stderr, only when it is a terminal).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ledger import bootstrap
from ledger.adapters import audit
from ledger.adapters.candles_gaps import GapReport
from ledger.adapters.keystore import KeyRefusedError
from ledger.adapters.store import LedgerStore, PayloadCipher, StoreError, is_postgres_url, new_cipher_key
from ledger.bootstrap import safety
from ledger.bootstrap.fill_options import BacktestConfig
from ledger.bootstrap.follow import AnalyticsFollower, SyncStep
from ledger.bootstrap.promotion import judge
from ledger.bootstrap.replay import replay_run
from ledger.bootstrap.tapes import list_tapes, prune_tapes, replay_as_backtest
from ledger.domain.errors import (
    BadInputError,
    InvariantViolationError,
    LedgerError,
    PromotionRefusedError,
    RunNotFoundError,
    TradingHaltedError,
)
from ledger.domain.events import TradingMode
from ledger.domain.numbers import plain
from ledger.domain.promotion import PromotionGates
from ledger.entrypoints import backtest_options, data_options, sweep_cli, views
from ledger.entrypoints.keys_cli import keys_app
from projections import analytics
from projections.portfolio import PortfolioProjection

EXIT_BAD_INPUT = 2
EXIT_INTEGRITY = 3
EXIT_REFUSED = 4

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Event-sourced trading ledger engine.",
)
# Why a fixed width off a terminal: piped output should not squeeze ids and amounts.
out = Console() if sys.stdout.isatty() else Console(width=200)
err = Console(stderr=True) if sys.stderr.isatty() else Console(stderr=True, width=200)


class _State:
    ledger: str = "tradeledger.db"


STATE = _State()


@app.callback()
def _global(
    ledger: Annotated[
        str | None,
        typer.Option(
            "--ledger",
            help="SQLite file or postgresql:// DSN [default: $TRADELEDGER_LEDGER or ./tradeledger.db]",
        ),
    ] = None,
) -> None:
    STATE.ledger = ledger or os.environ.get("TRADELEDGER_LEDGER") or "tradeledger.db"


def _fail(message: str, code: int) -> NoReturn:
    _say(message)
    raise typer.Exit(code)


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None] | None]:
    if not sys.stderr.isatty():
        yield None
        return
    with Progress(
        TextColumn(label),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=1)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=max(total, 1))

        yield update


def _analytics_path(ledger: str) -> Path:
    if is_postgres_url(ledger):
        return Path(os.environ.get("TRADELEDGER_ANALYTICS", "tradeledger-analytics.duckdb"))
    return Path(ledger).with_suffix(".duckdb")


def _read_side(store: LedgerStore, *, save: bool = False) -> tuple[PortfolioProjection, Path]:
    # Readers fold the log in memory and bring the DuckDB projection file to the same position;
    # they never write to the ledger itself.
    with _progress("projections") as progress:
        portfolio, last_seq = bootstrap.read_portfolio(store, progress, save=save)
    path = _analytics_path(STATE.ledger)
    analytics.sync(path, store, portfolio, upto=last_seq)
    return portfolio, path


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, sort_keys=True, default=str) + "\n")


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    if not rows:
        out.print(f"{title}: none")
        return
    table = Table(title=title)
    for column in rows[0]:
        table.add_column(
            column, justify="right" if column not in {"run_id", "asset", "instrument"} else "left"
        )
    for row in rows:
        table.add_row(
            *("" if v is None else (f"{v:.6g}" if isinstance(v, float) else str(v)) for v in row.values())
        )
    out.print(table)


def _params(values: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            _fail(f"--param {item!r}: write parameters as KEY=VALUE, e.g. --param fast=10", EXIT_BAD_INPUT)
        params[key.strip()] = value.strip()
    return params


@app.command()
def backtest(  # noqa: PLR0913 - the CLI contract's options
    data: data_options.DataOption = None,
    symbol: Annotated[str | None, typer.Option(help="instrument; default BTC/USDT")] = None,
    strategy: Annotated[
        str | None, typer.Option(help="decision source: sma, rebalance or llm; default sma")
    ] = None,
    param: Annotated[list[str] | None, typer.Option(help="strategy parameter K=V (repeatable)")] = None,
    cash: Annotated[str | None, typer.Option(help="starting quote cash; default 10000")] = None,
    fee: Annotated[str | None, typer.Option(help="taker fee rate per side; default 0.001")] = None,
    fill_model: backtest_options.FillModelOption = None,
    slippage: backtest_options.SlippageOption = None,
    latency_ms: backtest_options.LatencyOption = None,
    failure_rate: backtest_options.FailureOption = None,
    seed: Annotated[int | None, typer.Option(help="seed of every id and random draw; default 0")] = None,
    config: backtest_options.ConfigOption = None,
    report: Annotated[Path | None, typer.Option(help="also write the HTML report here")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    gaps: data_options.GapsOption = "refuse",
    exchange_url: data_options.ExchangeUrlOption = None,
    maker_fee: backtest_options.MakerFeeOption = None,
    impact: backtest_options.ImpactOption = None,
    spread_bps: backtest_options.SpreadOption = None,
    queue_ahead: backtest_options.QueueOption = None,
    limit_timeout_s: backtest_options.TimeoutOption = None,
) -> None:
    """Run one backtest into the ledger and print its metrics (fill models: README)."""
    given = BacktestConfig(
        data=data,
        symbol=symbol,
        strategy=strategy,
        params=_params(param or []),
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
    request = bootstrap.BacktestRequest(
        ledger_url=STATE.ledger,
        data_path=choice.path,
        data_label=choice.label,
        gaps=gaps,
        **merged.request,
    )
    gap_reports: list[GapReport] = []
    with _progress("backtest") as progress:
        result, store = bootstrap.run_backtest_request(request, progress, data_report=gap_reports.append)
    # The writer saves the portfolio checkpoint; the DuckDB file catches up when it is next
    # read (query, report, sync, replay), as it does after any writer.
    portfolio, last_seq = bootstrap.save_portfolio_after(store, result)
    run = portfolio.runs[result.run_id]
    summary = views.backtest_summary(run, store.chain_head(result.run_id).hash)
    data_summary = data_options.report_gaps(gap_reports[0], choice)
    if report is not None:
        path = _analytics_path(STATE.ledger)
        analytics.sync(path, store, portfolio, upto=last_seq)
        _write_report(run, path, report)
    if as_json:
        _print_json({**summary, "data": data_summary})
        return
    stats = summary.pop("metrics")
    _table("run", [summary])
    _table("metrics", [{k: v for k, v in stats.items() if not isinstance(v, dict)}])
    if report is not None:
        out.print(f"report written to {report}")


# `sweep` lives in sweep_cli; these are the helpers it shares with the commands here.
params_option, progress_bar = _params, _progress
print_json, print_table = _print_json, _table
app.command("sweep")(sweep_cli.sweep)


def _write_report(run: Any, path: Path, out_path: Path) -> None:
    # plotly is imported only by the commands that draw (a twentieth of a second otherwise).
    from ledger.entrypoints import report as report_page  # noqa: PLC0415

    report_page.write_report(run, _fills(path, run.run_id), out_path)


def _fills(path: Path, run_id: Any) -> list[dict[str, Any]]:
    columns, rows = analytics.query(
        path,
        f"SELECT occurred_at, side, qty, price, fee FROM fills WHERE run_id = '{run_id}' ORDER BY seq",  # noqa: S608
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def _store() -> LedgerStore:
    return bootstrap.open_ledger(STATE.ledger, create=False)


@app.command()
def sessions(as_json: Annotated[bool, typer.Option("--json", help="print a JSON list")] = False) -> None:
    """List the runs in the ledger, newest first."""
    portfolio, _ = _read_side(_store())
    rows = [views.session_row(run) for run in reversed(portfolio.runs.values())]
    if as_json:
        _print_json(rows)
    else:
        _table("sessions", rows)


@app.command()
def positions(
    run: Annotated[str | None, typer.Argument(help="run id or unique prefix; default: newest")] = None,
    mark: Annotated[list[str] | None, typer.Option(help="mark price SYMBOL=PRICE (repeatable)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show a run's positions, balances, open orders and PnL."""
    portfolio, _ = _read_side(_store())
    view = views.positions_view(views.resolve_run(portfolio, run), _marks(mark or []))
    if as_json:
        _print_json(view)
        return
    _table("positions", view["positions"])
    _table("balances", view["balances"])
    _table("open orders", view["open_orders"])
    out.print(f"equity: {view['equity']}")


@app.command()
def gates(
    run: Annotated[str | None, typer.Argument(help="paper run id or unique prefix; default: newest")] = None,
    config: Annotated[
        Path | None, typer.Option(help="session config whose [promotion] gates to apply; default: the seed's")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show how a paper run's record measures against the paper -> live promotion gates.

    Read-only: nothing is recorded. `tradeledger live` applies the same gates at start-up and
    records the switch or the refusal; this exits 4 when the record would be refused.
    """
    from ledger.bootstrap.session import load_session_config  # noqa: PLC0415 - ccxt loads for sessions only

    thresholds = PromotionGates() if config is None else load_session_config(config).promotion.gates()
    portfolio, _ = _read_side(_store())
    view = views.resolve_run(portfolio, run)
    criteria = [asdict(c) for c in judge(view, thresholds)]
    if as_json:
        _print_json(
            {"run_id": str(view.run_id), "passed": all(c["passed"] for c in criteria), "criteria": criteria}
        )
    else:
        _table(f"promotion gates: run {view.run_id}", criteria)
    if not all(c["passed"] for c in criteria):
        sys.exit(EXIT_REFUSED)


def _marks(values: list[str]) -> dict[str, Decimal]:
    marks: dict[str, Decimal] = {}
    for item in values:
        symbol, _, text = item.partition("=")
        try:
            price = Decimal(text)
        except InvalidOperation:
            _fail(
                f"--mark {item!r}: write SYMBOL=PRICE with a decimal price, e.g. BTC/USDT=105000.5",
                EXIT_BAD_INPUT,
            )
        if not price.is_finite() or price <= 0:
            _fail(f"--mark {item!r}: the price must be a positive finite number", EXIT_BAD_INPUT)
        marks[symbol] = price
    return marks


@app.command()
def verify(
    run: Annotated[str | None, typer.Argument(help="run id or prefix; default: every run")] = None,
) -> None:
    """Recompute the hash chain of one run or all; exit 3 at the first bad event."""
    store = _store()
    run_id = None
    if run is not None:
        portfolio, _ = bootstrap.read_portfolio(store)
        run_id = views.resolve_run(portfolio, run).run_id
    result = audit.verify(store, run_id)
    for fault in result.faults:
        seq = "end of log" if fault.seq is None else f"seq {fault.seq}"
        _say(f"run {fault.run_id}: first bad event at {seq} (chain position {fault.n}): {fault.reason}")
    if not result.ok:
        raise typer.Exit(EXIT_INTEGRITY)
    out.print(f"verified {result.events} events in {len(result.runs)} run(s): chain intact")


@app.command()
def replay(
    run: Annotated[str, typer.Argument(help="run id or unique prefix")],
    data: Annotated[
        Path | None,
        typer.Option(help="the backtest's data file, when it is not where the run read it"),
    ] = None,
    as_backtest: Annotated[
        bool, typer.Option("--as-backtest", help="paper/live: simulate the run on its market-data tape")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Audit a run: verify its chain, rebuild and compare projections, re-run a backtest.

    Exits 3 and names the first divergent event and field when anything disagrees. With
    --as-backtest, a paper or live run is simulated on the bars it saw and compared with what
    happened (a report: live and simulated prices differ by nature).
    """
    store = _store()
    run_id = views.resolve_run(bootstrap.read_portfolio(store)[0], run).run_id
    if as_backtest:
        from ledger.bootstrap.session import tapes_folder  # noqa: PLC0415 - ccxt loads for sessions only

        tape_report = replay_as_backtest(store, run_id, tapes_folder(STATE.ledger))
        shown = views.tape_replay_view(tape_report)
        if as_json:
            _print_json(shown)
            return
        pairs = shown.pop("pairs")
        _table(
            "live against simulated",
            [{k: json.dumps(v) if isinstance(v, dict) else v for k, v in shown.items()}],
        )
        _table("fills, in order", pairs)
        return
    with _progress("replay"):
        found = replay_run(store, run_id, data_path=data, analytics_path=_analytics_path(STATE.ledger))
    if as_json:
        _print_json(views.replay_view(found))
    else:
        _table("replay", [{"check": c.name, "status": c.status, "detail": c.detail} for c in found.checks])
    if found.divergence is not None:
        d = found.divergence
        where = "no single row" if d.seq is None else f"seq {d.seq}"
        _say(
            f"run {run_id}: first divergence ({d.check}) at {where}, {d.event}.{d.field}: "
            f"recorded {d.recorded!r}, replayed {d.replayed!r}"
        )
        raise typer.Exit(EXIT_INTEGRITY)
    if not as_json:
        out.print(f"replayed run {run_id}: {found.events} events, every check agrees")


app.add_typer(keys_app, name="keys")
admin_app = typer.Typer(
    help="Administration: the admin passphrase that releases the kill switch; payload cipher keys."
)
app.add_typer(admin_app, name="admin")


def _secret(variable: str, prompt: str) -> str:
    # Passphrases come from the environment or a hidden prompt; never from an option.
    value = os.environ.get(variable)
    if value is None:
        if not sys.stdin.isatty():
            _fail(f"{prompt}: set ${variable} or run in a terminal to be asked", EXIT_BAD_INPUT)
        value = typer.prompt(prompt, hide_input=True)
    return value


@admin_app.command("set-passphrase")
def admin_set_passphrase() -> None:
    """Store the scrypt hash of the admin passphrase ($TRADELEDGER_ADMIN_PASSPHRASE or a prompt).

    Changing it needs the current one ($TRADELEDGER_ADMIN_PASSPHRASE_CURRENT or a prompt).
    """
    store = bootstrap.open_ledger(STATE.ledger, create=True)
    current = None
    if safety.control_state(store).passphrase is not None:
        current = _secret("TRADELEDGER_ADMIN_PASSPHRASE_CURRENT", "current admin passphrase")
    safety.set_passphrase(
        store, _secret("TRADELEDGER_ADMIN_PASSPHRASE", "new admin passphrase"), current=current
    )
    out.print("admin passphrase set (its scrypt hash is in the ledger's control stream)")


@admin_app.command("new-cipher-key")
def admin_new_cipher_key() -> None:
    """Print a fresh AES-256 key for $TRADELEDGER_CIPHER_KEY (encrypted event payloads).

    The key goes to stdout alone, for `export TRADELEDGER_CIPHER_KEY=$(tradeledger admin
    new-cipher-key)`; a new ledger opened with it set is encrypted and needs it from then on.
    """
    key = new_cipher_key()
    sys.stdout.write(key + "\n")
    _say(
        f"new AES-256 key (key id {PayloadCipher(key).key_id[:16]}); keep a copy outside the "
        "ledger's machine: an encrypted ledger cannot be read without it"
    )


@app.command()
def kill(
    reason: Annotated[str, typer.Option(help="why; recorded with the engagement")] = "operator",
    liquidate: Annotated[bool, typer.Option(help="also flatten positions at market")] = False,
    status: Annotated[bool, typer.Option("--status", help="show the kill switch; change nothing")] = False,
    release_: Annotated[
        bool, typer.Option("--release", help="release it ($TRADELEDGER_ADMIN_PASSPHRASE or a prompt)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="with --status: one JSON object")] = False,
) -> None:
    """Engage the ledger-wide kill switch: running sessions cancel their orders and stop.

    While it is engaged every new order is denied, in every process on this ledger and after
    restarts, until it is released with the admin passphrase.
    """
    if status and release_:
        _fail("--status and --release: give one of them", EXIT_BAD_INPUT)
    if status:
        found = safety.control_state(_store()).kill_switch
        shown = views.kill_switch_view(found)
        if as_json:
            _print_json(shown)
        else:
            _table("kill switch", [shown])
        return
    if release_:
        store = _store()
        safety.release(
            store,
            passphrase=_secret("TRADELEDGER_ADMIN_PASSPHRASE", "admin passphrase"),
            reason=reason,
            actor="cli",
        )
        out.print("kill switch released")
        return
    store = bootstrap.open_ledger(STATE.ledger, create=True)
    safety.engage(store, reason=reason, actor="cli", liquidate=liquidate)
    then = " and flatten positions" if liquidate else ""
    out.print(f"kill switch engaged ({reason}): running sessions cancel their orders{then} and stop")


@app.command()
def alerts(
    follow: Annotated[bool, typer.Option(help="keep delivering alerts as events arrive")] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls with --follow")] = 1.0,
    duration: Annotated[
        float | None, typer.Option("--for", help="stop following after this many seconds")
    ] = None,
    log: Annotated[Path | None, typer.Option(help="append JSON alert lines here (default: stderr)")] = None,
    from_beginning: Annotated[
        bool, typer.Option(help="on the first start, alert on the whole history, not only what follows")
    ] = False,
) -> None:
    """Deliver alerts (kill switch, fills, rejections, reconciliations, run ends, daily summaries).

    To a log (file or stderr) and, when $TRADELEDGER_TELEGRAM_TOKEN and
    $TRADELEDGER_TELEGRAM_CHAT_ID are set, to Telegram. Each alert is sent once; a failing
    notifier is retried with backoff and never loses an alert or holds up trading.
    """
    if interval <= 0:
        _fail(f"--interval: {interval} must be a positive number of seconds", EXIT_BAD_INPUT)
    # Imported here: only this command talks to notifiers.
    from ledger.bootstrap.alerting import run_alerts  # noqa: PLC0415

    sent = run_alerts(
        _store(),
        follow=follow,
        interval_s=interval,
        duration_s=duration,
        log=log,
        from_beginning=from_beginning,
    )
    out.print(f"alerts: {sent} delivered")


config_app = typer.Typer(help="Config files.")
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(
    file: Annotated[Path, typer.Argument(help="a paper/live session config (TOML)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the validated config as JSON")] = False,
) -> None:
    """Validate a session config: exit 0, or 2 with one sentence naming the field and the fix."""
    from ledger.bootstrap.session import load_session_config  # noqa: PLC0415 - ccxt loads for sessions only

    config = load_session_config(file)
    if as_json:
        sys.stdout.write(config.model_dump_json() + "\n")
        return
    venue = config.venue.api_url or f"the real {config.venue.exchange}"
    out.print(f"{file}: valid ({config.session.symbol} with {config.session.strategy} on {venue})")


tapes_app = typer.Typer(help="Market-data tapes of paper and live runs, and their retention.")
app.add_typer(tapes_app, name="tapes")


@tapes_app.command("list")
def tapes_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the tapes the ledger recorded and whether each file is still there."""
    from ledger.bootstrap.session import tapes_folder  # noqa: PLC0415 - ccxt loads for sessions only

    rows = [views.tape_row(t) for t in list_tapes(_store(), tapes_folder(STATE.ledger))]
    if as_json:
        _print_json(rows)
    else:
        _table("tapes", rows)


@tapes_app.command("prune")
def tapes_prune(
    older_than_days: Annotated[
        float, typer.Option(help="remove tapes recorded more than this many days ago")
    ],
    dry_run: Annotated[bool, typer.Option(help="say what would be removed, remove nothing")] = False,
) -> None:
    """Remove old tape files; each removal is recorded in its run, so replays say so."""
    from ledger.bootstrap.session import tapes_folder  # noqa: PLC0415 - ccxt loads for sessions only

    if older_than_days < 0:
        _fail(f"--older-than-days: {older_than_days} is negative; give a number of days >= 0", EXIT_BAD_INPUT)
    chosen = prune_tapes(
        _store(), tapes_folder(STATE.ledger), older_than_days=older_than_days, dry_run=dry_run
    )
    verb = "would remove" if dry_run else "removed"
    for info in chosen:
        out.print(f"{verb} {info.tape}: `replay {info.run_id} --as-backtest` will no longer be possible")
    out.print(f"{verb} {len(chosen)} tape(s)")


@app.command()
def export(
    run: Annotated[str, typer.Argument(help="run id or unique prefix")],
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="file to write; jsonl defaults to stdout, parquet to RUN.parquet"),
    ] = None,
) -> None:
    """Export a run's events, canonical and in chain order (JSON lines or Parquet)."""
    if fmt not in {"jsonl", "parquet"}:
        _fail(f"--format: {fmt!r} is not a supported format; use jsonl or parquet", EXIT_BAD_INPUT)
    store = _store()
    run_id = views.resolve_run(bootstrap.read_portfolio(store)[0], run).run_id
    if fmt == "parquet":
        target = out_path if out_path is not None else Path(f"{run_id}.parquet")
        rows = analytics.export_parquet(audit.export_jsonl(store, run_id), target)
        out.print(f"exported {rows} events to {target}")
        return
    if out_path is None:
        for line in audit.export_jsonl(store, run_id):
            sys.stdout.buffer.write(line)
        sys.stdout.flush()
        return
    with out_path.open("wb") as handle:
        for line in audit.export_jsonl(store, run_id):
            handle.write(line)


@app.command()
def query(
    sql: Annotated[
        str,
        typer.Argument(help="DuckDB SQL over events, orders, fills, positions, balances, equity, decisions"),
    ],
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON list of row objects")] = False,
) -> None:
    """Run DuckDB SQL over the log's typed tables (read-only)."""
    store = _store()
    path = _analytics_path(STATE.ledger)
    if analytics.synced_seq(path, store) != store.max_seq():  # behind: fold and sync first
        _, path = _read_side(store)
    try:
        columns, rows = analytics.query(path, sql)
    except analytics.QueryError as e:
        _fail(str(e), EXIT_BAD_INPUT)
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    if as_json:
        _print_json([{k: _jsonable(v) for k, v in r.items()} for r in records])
    else:
        _table("query", [{k: _jsonable(v) for k, v in r.items()} for r in records])


def _jsonable(value: Any) -> Any:
    if isinstance(value, Decimal):
        return plain(value)  # DECIMAL(38,18) without its padding zeros; the value is unchanged
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


@app.command()
def sync(
    follow: Annotated[bool, typer.Option(help="keep polling the log and syncing new events")] = False,
    interval: Annotated[float, typer.Option(help="seconds between polls with --follow")] = 0.2,
    duration: Annotated[
        float | None, typer.Option("--for", help="stop following after this many seconds")
    ] = None,
) -> None:
    """Bring the DuckDB analytics file up to the log (with --follow, keep it current)."""
    if interval <= 0:
        _fail(f"--interval: {interval} must be a positive number of seconds, e.g. 0.2", EXIT_BAD_INPUT)
    if duration is not None and duration < 0:
        _fail(f"--for: {duration} must be a number of seconds >= 0", EXIT_BAD_INPUT)
    follower = AnalyticsFollower(_store(), _analytics_path(STATE.ledger))
    if not follow:
        step = follower.step()
        out.print(f"{follower.path}: {step.applied} new events, synced up to seq {step.synced_seq}")
        return

    synced = [0]

    def report(step: SyncStep) -> None:
        synced[0] += step.applied
        err.print(f"synced {step.applied} events, up to seq {step.synced_seq}")

    # Ctrl-C is how an open-ended --follow stops; every step before it is committed.
    with suppress(KeyboardInterrupt):
        follower.follow(interval_s=interval, duration_s=duration, on_step=report)
    out.print(f"{follower.path}: followed the log, {synced[0]} events synced")


def _session(config: Path, mode: TradingMode, *, as_json: bool) -> None:
    from ledger.bootstrap.session import run_session  # noqa: PLC0415 - ccxt loads for sessions only

    outcome = run_session(config, mode, STATE.ledger)
    store = _store()
    summary = views.backtest_summary(outcome.run, store.chain_head(outcome.run.run_id).hash)
    summary["recovered"] = outcome.recovered
    reconciled = outcome.reconciled
    summary["reconciliation"] = None if reconciled is None else views.reconciliation_view(reconciled)
    if as_json:
        _print_json(summary)
        return
    stats = summary.pop("metrics")
    recovered = summary.pop("recovered")
    reconciliation = summary.pop("reconciliation")
    _table(f"{mode.value} run", [summary])
    _table("metrics", [{k: v for k, v in stats.items() if not isinstance(v, dict)}])
    if recovered:
        _table("recovered at start-up", [{"client_order_id": k, "found": v} for k, v in recovered.items()])
    if reconciliation is not None:
        _table("venue against ledger at start-up", reconciliation["rows"])
        if reconciliation["orders_unknown"]:
            out.print(
                f"open at the venue, unknown to the ledger: {', '.join(reconciliation['orders_unknown'])}"
            )


@app.command()
def paper(
    config: Annotated[Path, typer.Option(help="session config (TOML): [session] and [venue]")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run a paper session: the venue's live bars, simulated fills (the backtest's model)."""
    _session(config, TradingMode.PAPER, as_json=as_json)


@app.command()
def live(
    config: Annotated[Path, typer.Option(help="session config (TOML): [session] and [venue]")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Run a live session: real orders through ccxt; API key and secret from the environment."""
    _session(config, TradingMode.LIVE, as_json=as_json)


@app.command("exchange-sim")
def exchange_sim(  # noqa: PLR0913 - the CLI contract's options
    port: Annotated[int, typer.Option(help="TCP port on 127.0.0.1")],
    api_key: Annotated[str, typer.Option(help="the API key clients must send (X-MBX-APIKEY)")],
    api_secret: Annotated[str, typer.Option(help="the secret requests are signed with (HMAC-SHA256)")],
    data: Annotated[
        Path | None, typer.Option(help="folder of binance_spot_<SYMBOL>_<interval>_*.csv[.gz] candle files")
    ] = None,
    faults: Annotated[
        str | None,
        typer.Option(help="seeded faults, e.g. latency=50,timeout_after_accept=0.1,http5xx=0.05,seed=7"),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="bars per bar interval of wall time (60: a 1m bar a second; 0: by hand)")
    ] = 1.0,
    start_bar: Annotated[int, typer.Option(help="first bar of the recorded candles to serve")] = 0,
) -> None:
    """Serve the local Binance-protocol spot exchange on 127.0.0.1 until interrupted."""
    # Imported here: the web server is only needed by this command.
    from ledger.adapters.exchange_sim import main_exchange_sim  # noqa: PLC0415

    main_exchange_sim(port, api_key, api_secret, data, faults, speed=speed, start_bar=start_bar)


@app.command()
def rebuild() -> None:
    """Drop every projection (saved portfolio state, DuckDB file) and rebuild it from the log.

    The event log itself is never touched: projections are derived data (retention, C17).
    """
    store = _store()
    store.drop_checkpoint(PortfolioProjection.name)
    path = _analytics_path(STATE.ledger)
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    portfolio, path = _read_side(store, save=True)
    out.print(f"rebuilt the portfolio ({len(portfolio.runs)} runs) and {path} from {store.max_seq()} events")


@app.command("report")
def report_command(
    run: Annotated[str | None, typer.Argument(help="run id or prefix; default: newest")] = None,
    out_path: Annotated[Path, typer.Option("--out", help="HTML file to write")] = Path("report.html"),
) -> None:
    """Write an offline HTML report: equity curve, drawdown, trades, metrics."""
    portfolio, path = _read_side(_store())
    view = views.resolve_run(portfolio, run)
    _write_report(view, path, out_path)
    out.print(f"report written to {out_path}")


def _say(message: str) -> None:
    # Errors go to stderr as one unwrapped line, whatever the terminal width.
    sys.stderr.write(" ".join(message.split()) + "\n")
    sys.stderr.flush()


def _usage_error(error: Exception) -> NoReturn:
    context = getattr(error, "ctx", None)
    if type(error).__name__ == "NoArgsIsHelpError" and context is not None:
        sys.stdout.write(context.get_help() + "\n")
        sys.exit(EXIT_BAD_INPUT)
    format_message = getattr(error, "format_message", None)
    message = format_message() if callable(format_message) else str(error)
    command = "" if context is None else f" {context.command_path}"
    _say(f"{message}; see `tradeledger{command.removeprefix(' tradeledger')} --help`")
    sys.exit(int(getattr(error, "exit_code", EXIT_BAD_INPUT)))


def main() -> None:
    """Run the CLI, mapping errors to the contract's exit codes with one sentence on stderr.

    Usage errors (unknown option, a value of the wrong type) exit 2 with click's message on one
    line; ``typer.Exit`` codes pass through; the ledger's errors are mapped here.
    """
    try:
        code = app(standalone_mode=False)
    except typer.Abort:
        sys.exit(1)
    except typer.TyperException as e:  # click's usage errors (typer vendors click)
        _usage_error(e)
    except (BadInputError, RunNotFoundError, StoreError, analytics.QueryError) as e:
        _say(str(e))
        sys.exit(EXIT_BAD_INPUT)
    except analytics.AnalyticsBusyError as e:
        _say(str(e))
        sys.exit(1)
    except InvariantViolationError as e:
        _say(f"integrity failure: {e}")
        sys.exit(EXIT_INTEGRITY)
    except (TradingHaltedError, KeyRefusedError, PromotionRefusedError) as e:
        _say(str(e))
        sys.exit(EXIT_REFUSED)
    except LedgerError as e:
        _say(f"error: {e}")
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - top-level supervisor: say it in one sentence, exit 1
        _say(f"unexpected error: {type(e).__name__}: {e}")
        sys.exit(1)
    # Without standalone mode, typer returns a typer.Exit code instead of exiting with it.
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()

"""`tradeledger sweep`: parallel backtests over a grid, written as ordinary, reproducible runs.

Real runs of the bundled sample's first day through the installed command (worker processes,
a SQLite or PostgreSQL ledger). Each sweep run must be byte-for-byte the run `tradeledger
backtest` makes of its combination, in another ledger; a bad grid must leave the ledger as it was.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import BacktestRequest, open_ledger, read_portfolio
from ledger.bootstrap.sweep import (
    EncodedRun,
    SweepRequest,
    SweepRunError,
    SweepTask,
    run_combination,
    run_sweep,
)
from sample_data import write_sample

EXIT_BAD_INPUT = 2
BARS = 1440
GRID = ["--grid", "fast=5,10", "--grid", "slow=30,60"]


@pytest.fixture(scope="module")
def first_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("data") / "first_day.csv", BARS)


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory, first_day: Path) -> tuple[Path, list[dict[str, Any]]]:
    """One sweep of 4 combinations with --jobs 2 into a new SQLite ledger, and its JSON."""
    from cli_runner import run_cli  # noqa: PLC0415 - module-scoped: the cli fixture is per test

    folder = tmp_path_factory.mktemp("sweep")
    ledger = folder / "sweep.db"
    code, out, err = run_cli(
        ["--ledger", ledger, "sweep", "--data", first_day, *GRID, "--jobs", "2", "--json"], cwd=folder
    )
    assert code == 0, err
    return ledger, json.loads(out)


def _backtest(cli, ledger: Path, data: Path, *params: str) -> dict[str, Any]:
    args = [arg for p in params for arg in ("--param", p)]
    code, out, err = cli("--ledger", ledger, "backtest", "--data", data, *args, "--json")
    assert code == 0, err
    summary: dict[str, Any] = json.loads(out)
    return summary


def test_every_combination_is_one_run_sorted_by_final_equity(swept) -> None:
    _, rows = swept
    assert sorted((r["grid"]["fast"], r["grid"]["slow"]) for r in rows) == [
        ("10", "30"),
        ("10", "60"),
        ("5", "30"),
        ("5", "60"),
    ]
    equities = [float(r["equity_final"]) for r in rows]
    assert equities == sorted(equities, reverse=True)
    for row in rows:
        assert row["params"] == row["grid"]
        assert row["mode"] == "backtest"
        assert {
            "run_id",
            "events",
            "orders",
            "fills",
            "fees",
            "pnl_realized",
            "chain_head",
            "metrics",
        } <= set(row)
    assert len({r["run_id"] for r in rows}) == 4


def test_a_sweep_run_is_byte_identical_to_the_backtest_of_its_combination(
    cli, tmp_path: Path, first_day: Path, swept
) -> None:
    ledger, rows = swept
    chosen = next(r for r in rows if r["grid"] == {"fast": "5", "slow": "60"})
    alone = _backtest(cli, tmp_path / "alone.db", first_day, "fast=5", "slow=60")
    assert alone["run_id"] == chosen["run_id"]  # the id backtest would give, decided before dispatch
    assert alone["chain_head"] == chosen["chain_head"]
    exported = []
    for source in (ledger, tmp_path / "alone.db"):
        code, out, err = cli("--ledger", source, "export", chosen["run_id"], "--format", "jsonl")
        assert code == 0, err
        exported.append(out)
    assert exported[0] == exported[1]
    assert len(exported[0].splitlines()) == chosen["events"]


def test_backtest_options_apply_to_every_run_as_backtest_applies_them(
    cli, tmp_path: Path, first_day: Path
) -> None:
    options = ["--slippage", "sqrt", "--latency-ms", "200", "--fee", "0.0005"]
    code, out, err = cli(
        "--ledger", tmp_path / "s.db", "sweep", "--data", first_day, "--grid", "fast=5,10", *options, "--json"
    )
    assert code == 0, err
    chosen = next(r for r in json.loads(out) if r["grid"] == {"fast": "10"})
    code, out, err = cli(
        "--ledger",
        tmp_path / "alone.db",
        "backtest",
        "--data",
        first_day,
        "--param",
        "fast=10",
        *options,
        "--json",
    )
    assert code == 0, err
    alone = json.loads(out)
    assert (alone["run_id"], alone["chain_head"]) == (chosen["run_id"], chosen["chain_head"])


def test_sweep_runs_are_ordinary_runs_for_sessions_verify_and_replay(cli, swept, first_day: Path) -> None:
    ledger, rows = swept
    code, out, err = cli("--ledger", ledger, "sessions", "--json")
    assert code == 0, err
    sessions = json.loads(out)
    assert {s["run_id"] for s in sessions} == {r["run_id"] for r in rows}
    assert all(s["status"] == "ended" for s in sessions)
    code, out, err = cli("--ledger", ledger, "verify")
    assert code == 0, err
    assert "in 4 run(s): chain intact" in out
    code, out, err = cli("--ledger", ledger, "replay", rows[-1]["run_id"], "--data", first_day, "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True
    assert {c["name"]: c["status"] for c in report["checks"]}["rerun"] == "ok"


def test_the_human_table_names_each_combination_and_the_sort_key(
    cli, tmp_path: Path, first_day: Path
) -> None:
    code, out, err = cli(
        "--ledger", tmp_path / "t.db", "sweep", "--data", first_day, "--grid", "slow=30,60", "--jobs", "2"
    )
    assert code == 0, err
    assert "sorted by equity_final, highest first" in out
    assert "slow=30" in out
    assert "slow=60" in out


@pytest.mark.slow
def test_identical_combinations_take_the_attempts_repeated_backtests_take(
    cli, tmp_path: Path, first_day: Path
) -> None:
    # A ledger that already holds fast=5: the sweep's two fast=5 runs are attempts 2 and 3.
    ledger, alone = tmp_path / "s.db", tmp_path / "alone.db"
    _backtest(cli, ledger, first_day, "fast=5")
    code, out, err = cli(
        "--ledger", ledger, "sweep", "--data", first_day, "--grid", "fast=5,5", "--jobs", "2", "--json"
    )
    assert code == 0, err
    swept_ids = {r["run_id"] for r in json.loads(out)}
    expected = [_backtest(cli, alone, first_day, "fast=5")["run_id"] for _ in range(3)]
    assert swept_ids == set(expected[1:])


def test_a_gapped_file_is_refused_or_swept_with_its_gaps_reported(
    cli, tmp_path: Path, first_day: Path
) -> None:
    rows = first_day.read_text().split("\n")
    del rows[101:106]  # five missing minutes after 2025-05-20 01:39
    gapped = tmp_path / "gapped.csv"
    gapped.write_text("\n".join(rows))

    refused = cli("--ledger", tmp_path / "r.db", "sweep", "--data", gapped, *GRID, "--jobs", "1")
    allowed = cli(
        "--ledger", tmp_path / "a.db", "sweep", "--data", gapped, *GRID,
        "--jobs", "1", "--gaps", "allow", "--json",
    )  # fmt: skip

    assert refused.returncode == EXIT_BAD_INPUT
    assert "1 gap(s) with 5 missing bar(s)" in refused.stderr
    assert not (tmp_path / "r.db").exists()
    assert allowed.returncode == 0, allowed.stderr
    assert "1 gap(s) with 5 missing bar(s)" in allowed.stderr
    runs = json.loads(allowed.stdout)
    assert len(runs) == 4
    assert {(r["data"]["gaps"], r["data"]["missing_bars"], r["data"]["bars"]) for r in runs} == {
        (1, 5, BARS - 5)
    }


@pytest.mark.parametrize(
    ("grid", "words"),
    [
        (["--grid", "fast"], "--grid 'fast': write a grid as KEY=V1,V2"),
        (["--grid", "colour=1,2"], "--grid colour=1,2: the combination colour=1 is refused: --param colour"),
        (
            ["--grid", "fast=5,40", "--grid", "slow=30"],
            "--grid fast=5,40 --grid slow=30: the combination fast=40 slow=30 is refused",
        ),
        (["--grid", "fast=5", "--jobs", "0"], "--jobs: 0 is out of range"),
    ],
)
def test_a_bad_grid_exits_2_with_one_sentence_and_leaves_the_ledger_as_it_was(
    cli, swept, tmp_path: Path, first_day: Path, grid: list[str], words: str
) -> None:
    existing = tmp_path / "existing.db"
    existing.write_bytes(swept[0].read_bytes())
    before = hashlib.sha256(existing.read_bytes()).hexdigest()
    for ledger in (tmp_path / "new.db", existing):
        code, out, err = cli("--ledger", ledger, "sweep", "--data", first_day, *grid)
        assert code == EXIT_BAD_INPUT
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert words in err
    assert not (tmp_path / "new.db").exists()
    assert hashlib.sha256(existing.read_bytes()).hexdigest() == before


def crash_at_fast_10(task: SweepTask) -> EncodedRun:
    """Run a combination as usual, except that fast=10 fails in its worker."""
    if task.request.params.get("fast") == "10":
        msg = "simulated worker crash"
        raise RuntimeError(msg)
    return run_combination(task)


def test_a_failing_worker_writes_nothing_of_its_run_and_stops_the_sweep(
    tmp_path: Path, first_day: Path
) -> None:
    ledger = str(tmp_path / "f.db")
    request = SweepRequest(
        base=BacktestRequest(ledger_url=ledger, data_path=first_day), grid=("fast=5,10,20",), jobs=2
    )
    with pytest.raises(SweepRunError, match=r"combination fast=10 \(run .*\) failed.*simulated worker crash"):
        run_sweep(request, worker=crash_at_fast_10)
    store = open_ledger(ledger)
    portfolio, _ = read_portfolio(store)
    runs = list(portfolio.runs.values())
    assert [json.loads(r.started.params)["fast"] for r in runs] == ["5"]  # grid order: only before
    assert all(r.ended is not None for r in runs)
    store.close()


@pytest.mark.postgres
def test_a_sweep_into_postgresql_writes_the_runs_backtest_would(
    cli, tmp_path: Path, first_day: Path, postgres_url: str
) -> None:
    code, out, err = cli(
        "--ledger",
        postgres_url,
        "sweep",
        "--data",
        first_day,
        "--grid",
        "slow=30,60",
        "--jobs",
        "2",
        "--json",
        env={"TRADELEDGER_ANALYTICS": str(tmp_path / "pg.duckdb")},
    )
    assert code == 0, err
    rows = {r["grid"]["slow"]: r for r in json.loads(out)}
    for slow, row in rows.items():
        alone = _backtest(cli, tmp_path / f"alone{slow}.db", first_day, f"slow={slow}")
        assert (alone["run_id"], alone["chain_head"], alone["events"]) == (
            row["run_id"],
            row["chain_head"],
            row["events"],
        )
    code, out, err = cli("--ledger", postgres_url, "verify")
    assert code == 0, err
    assert "in 2 run(s): chain intact" in out

"""The DuckDB analytics projection: incremental equals a rebuild, exactly once, resumable.

Histories are real backtests of the bundled sample's first day, appended into a fresh ledger in
pieces the way a running backtest commits them; the follower syncs after each piece.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import duckdb
import pytest

from ledger.adapters.store import LedgerStore, open_store
from ledger.bootstrap import BacktestRequest, read_portfolio, run_backtest_request
from ledger.bootstrap.follow import AnalyticsFollower
from ledger.domain.events import LedgerEvent
from ledger.domain.numbers import D
from projections import analytics
from sample_data import write_sample

BARS = 1440
REPLAYS = Path(__file__).resolve().parents[2] / "replays"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> list[LedgerEvent]:
    """The events of two backtests (seeds 0 and 1) of the first day, in log order."""
    work = tmp_path_factory.mktemp("runs")
    data = write_sample(work / "first_day.csv", BARS)
    ledger = str(work / "source.db")
    for seed in (0, 1):
        _, store = run_backtest_request(BacktestRequest(ledger_url=ledger, data_path=data, seed=seed))
        store.close()
    store = open_store(ledger, create=False)
    try:
        return [e for _, e in store.read_log(0, 100_000)]
    finally:
        store.close()


def _make_golden() -> ModuleType:
    # replays/ is not a package: load its builder by path, as tests/replay does.
    if "make_golden" not in sys.modules:
        spec = importlib.util.spec_from_file_location("make_golden", REPLAYS / "make_golden.py")
        assert spec is not None
        assert spec.loader is not None
        sys.modules["make_golden"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["make_golden"])
    return sys.modules["make_golden"]


def _tables(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in analytics.TABLES}
    finally:
        con.close()


def _rebuilt(store: LedgerStore, path: Path) -> Path:
    portfolio, last_seq = read_portfolio(store)
    analytics.sync(path, store, portfolio, upto=last_seq)
    return path


def test_syncing_piece_by_piece_equals_a_rebuild_from_zero(tmp_path: Path, two_runs) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    follower = AnalyticsFollower(store, tmp_path / "incremental.duckdb")
    cuts = sorted({0, 7, 130, 131, 400, len(two_runs) // 2, len(two_runs) - 3, len(two_runs)})
    applied = 0
    for start, end in itertools.pairwise(cuts):
        store.append(two_runs[start:end])
        step = follower.step()
        assert step.synced_seq == end
        applied += step.applied

    assert applied == len(two_runs)
    assert follower.step().applied == 0  # nothing new: nothing done, exactly once
    assert _tables(tmp_path / "incremental.duckdb") == _tables(_rebuilt(store, tmp_path / "zero.duckdb"))
    store.close()


def test_every_fill_carries_the_pnl_it_realized_and_they_sum_to_the_position(
    tmp_path: Path, two_runs
) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    store.append(two_runs)
    path = _rebuilt(store, tmp_path / "a.duckdb")

    by_fills = analytics.query(
        path, "SELECT run_id, instrument, sum(pnl_realized) FROM fills GROUP BY ALL ORDER BY ALL"
    )[1]
    by_positions = analytics.query(
        path, "SELECT run_id, instrument, pnl_realized FROM positions ORDER BY ALL"
    )[1]
    opening = analytics.query(path, "SELECT count(*) FROM fills WHERE side = 'buy' AND pnl_realized <> 0")[1]

    assert by_fills == by_positions
    assert len(by_fills) == 2
    assert opening == [(0,)]  # long-only: buys open, sells realize
    store.close()


def test_the_upcast_scenario_realizes_its_worked_example_on_the_sell(tmp_path: Path, cli) -> None:
    # replays/upcast_orderfilled_v1: two buys open 0.05 BTC at 100,095.996 average (fees in),
    # the sell of 0.02 at 101,000 realizes (101,000 - 100,095.996) x 0.02 - 2.02 = 16.06008.
    golden = _make_golden()
    golden.insert_rows(
        tmp_path / "l.db", golden.load_rows(REPLAYS / "upcast_orderfilled_v1" / "events.jsonl")
    )

    code, out, err = cli(
        "--ledger", tmp_path / "l.db", "query", "SELECT side, pnl_realized FROM fills ORDER BY seq", "--json"
    )

    assert code == 0, err
    rows = [(r["side"], D(r["pnl_realized"])) for r in json.loads(out)]
    assert rows == [("buy", D(0)), ("buy", D(0)), ("sell", D("16.06008"))]


def test_a_failed_sync_commits_nothing_and_the_next_one_resumes(tmp_path: Path, two_runs) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    half = len(two_runs) // 2
    store.append(two_runs[:half])
    path = tmp_path / "a.duckdb"
    AnalyticsFollower(store, path).step()
    store.append(two_runs[half:])
    portfolio, last_seq = read_portfolio(store)

    class FailingReader:
        def __init__(self) -> None:
            self.calls = 0

        def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:  # noqa: ARG002
            self.calls += 1
            if self.calls > 1:
                msg = "the disk went away"
                raise OSError(msg)
            return store.read_log(after_seq, 50)

        def max_seq(self) -> int:
            return store.max_seq()

    with pytest.raises(OSError, match="disk went away"):
        analytics.sync(path, FailingReader(), portfolio, upto=last_seq)

    assert analytics.query(path, "SELECT last_seq FROM tracking")[1] == [(half,)]
    assert analytics.query(path, "SELECT count(*) FROM events")[1] == [(half,)]
    assert AnalyticsFollower(store, path).step().applied == len(two_runs) - half
    assert _tables(path) == _tables(_rebuilt(store, tmp_path / "zero.duckdb"))
    store.close()


def test_a_file_written_by_the_previous_projection_version_is_rebuilt(tmp_path: Path, two_runs) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    store.append(two_runs)
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE tracking (projection VARCHAR PRIMARY KEY, last_seq BIGINT, version INTEGER)")
    con.execute("INSERT INTO tracking VALUES ('analytics', 5, 1)")
    con.execute("CREATE TABLE fills (seq BIGINT, run_id UUID, price DECIMAL(38,18))")  # no pnl_realized
    con.close()

    AnalyticsFollower(store, path).step()

    assert analytics.query(path, "SELECT version, last_seq FROM tracking")[1] == [
        (analytics.VERSION, len(two_runs))
    ]
    assert _tables(path) == _tables(_rebuilt(store, tmp_path / "zero.duckdb"))
    store.close()


def test_days_in_sql_are_utc_days(tmp_path: Path, two_runs) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    store.append(two_runs)
    path = _rebuilt(store, tmp_path / "a.duckdb")

    days = analytics.query(path, "SELECT DISTINCT date_trunc('day', occurred_at)::VARCHAR FROM fills")[1]

    assert days == [("2025-05-20 00:00:00+00",)]
    store.close()


def test_sync_follow_keeps_up_with_a_concurrent_writer(tmp_path: Path, two_runs, tradeledger_argv) -> None:
    ledger = tmp_path / "l.db"
    store = open_store(str(ledger), create=True)
    store.append(two_runs[:10])
    follower = subprocess.Popen(
        [*tradeledger_argv, "--ledger", str(ledger), "sync", "--follow", "--interval", "0.05", "--for", "6"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for start in range(10, len(two_runs), 100):
            store.append(two_runs[start : start + 100])
        out, err = follower.communicate(timeout=60)
    finally:
        follower.kill()
        store.close()

    assert follower.returncode == 0, err
    assert "followed the log" in out
    assert analytics.query(ledger.with_suffix(".duckdb"), "SELECT max(seq), count(*) FROM events")[1] == [
        (len(two_runs), len(two_runs))
    ]


def test_sync_rejects_a_non_positive_interval(cli, tmp_path: Path) -> None:
    code, _, err = cli("--ledger", tmp_path / "l.db", "sync", "--follow", "--interval", "0")

    assert code == 2
    assert "--interval" in err


HOLD_SCRIPT = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold_lock(path: Path, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_SCRIPT, str(path), str(seconds)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_a_sync_waits_for_another_process_holding_the_file(tmp_path: Path, two_runs) -> None:
    store = open_store(str(tmp_path / "l.db"), create=True)
    store.append(two_runs)
    path = tmp_path / "a.duckdb"
    holder = _hold_lock(path, 1.0)
    try:
        step = AnalyticsFollower(store, path).step()  # waits for the holder, then syncs
    finally:
        holder.communicate(timeout=30)
        store.close()

    assert step.applied == len(two_runs)


def test_a_file_held_too_long_is_one_clear_error(tmp_path: Path, two_runs, monkeypatch) -> None:
    monkeypatch.setattr(analytics, "LOCK_WAIT_S", 0.3)
    store = open_store(str(tmp_path / "l.db"), create=True)
    store.append(two_runs[:5])
    path = tmp_path / "a.duckdb"
    holder = _hold_lock(path, 3.0)
    try:
        with pytest.raises(analytics.AnalyticsBusyError, match="stayed locked by another process"):
            AnalyticsFollower(store, path).step()
    finally:
        holder.kill()
        holder.communicate(timeout=30)
        store.close()


def test_a_projection_file_left_by_a_deleted_ledger_is_rebuilt_not_served(
    tmp_path: Path, two_runs: list[LedgerEvent]
) -> None:
    path = tmp_path / "analytics.duckdb"
    first = open_store(str(tmp_path / "first.db"), create=True)
    first.append(two_runs)  # both runs
    _rebuilt(first, path)
    first.close()
    second = open_store(str(tmp_path / "second.db"), create=True)
    second.append([e for e in two_runs if e.run_id == two_runs[-1].run_id])  # the second run alone
    second_run = str(two_runs[-1].run_id)

    assert analytics.synced_seq(path, second) is None  # not this ledger's file
    _rebuilt(second, path)

    assert analytics.synced_seq(path, second) == second.max_seq()
    con = duckdb.connect(str(path), read_only=True)
    try:
        assert con.execute("SELECT DISTINCT run_id::VARCHAR FROM events").fetchall() == [(second_run,)]
        assert con.execute("SELECT count(*) FROM events").fetchone() == (second.max_seq(),)
    finally:
        con.close()
    second.close()

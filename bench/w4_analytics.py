"""W4 analytics: daily PnL per symbol over a 1,000,000-event log, and the DuckDB projection's lag.

The log is W3's (whole real backtests over the 130,708-bar BTC/USDT file, cached by
``w3_rebuild.py``), copied so the cache stays untouched.

1. **Query.** ``tradeledger query`` of daily realized PnL per symbol (``fills.pnl_realized``
   summed by UTC day and instrument) as a whole CLI process, with the projection current, timed
   ``--reps`` times, interleaved with its floors: the same SQL on the same DuckDB file through the
   ``duckdb`` module in a fresh ``python`` process (the floor for a process), and in this process
   on an open connection (the engine alone). Target (issue): the CLI under 1 s.
2. **Lag.** While a writer process appends one more real backtest (about 36,000 events, committed
   in chunks of about 1,000 as the engine flushes), this process follows the log with
   ``AnalyticsFollower`` polling every ``--interval`` s. A watcher thread polls the log's head
   every 5 ms on its own connection and notes when each new head was first seen; after every
   sync step, the lag of each head it covers is (step end - first seen). Detection adds at most
   the watcher's 5 ms plus one SQLite query. Target (issue): lag under 1 s. The baseline beside
   it is what an incremental projection saves: rebuilding the DuckDB file from zero.

    python bench/w4_analytics.py                  # 1,000,000 events (W3 builds its log first if needed)
    python bench/w4_analytics.py --events 200000
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
import w3_rebuild
from _util import median, percentile, say

from ledger import bootstrap
from ledger.bootstrap.follow import AnalyticsFollower

DAILY_PNL = (
    "SELECT instrument, date_trunc('day', occurred_at) AS day, sum(pnl_realized) AS pnl, "
    "sum(fee) AS fees, count(*) AS fills FROM fills GROUP BY ALL ORDER BY ALL"
)
CLI = str(Path(sys.executable).with_name("tradeledger"))


def _run(argv: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, done.stdout


def query_part(ledger: Path, duck: Path, reps: int) -> dict[str, float]:
    cli, proc, engine = [], [], []
    floor_script = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1], read_only=True); "
        "c.execute(\"SET TimeZone='UTC'\"); print(len(c.execute(sys.argv[2]).fetchall()))"
    )
    import duckdb  # noqa: PLC0415 - only this part needs it

    rows_cli = rows_floor = ""
    for rep in range(reps):
        t, rows_cli = _run([CLI, "--ledger", str(ledger), "query", DAILY_PNL, "--json"])
        cli.append(t)
        t, rows_floor = _run([sys.executable, "-c", floor_script, str(duck), DAILY_PNL])
        proc.append(t)
        con = duckdb.connect(str(duck), read_only=True)
        con.execute("SET TimeZone='UTC'")
        t0 = time.perf_counter()
        n = len(con.execute(DAILY_PNL).fetchall())
        engine.append(time.perf_counter() - t0)
        con.close()
        say(
            f"  rep {rep + 1}: CLI {cli[-1]:.3f} s, python+duckdb process {proc[-1]:.3f} s, engine {engine[-1] * 1e3:.1f} ms"
        )
    import json  # noqa: PLC0415

    assert len(json.loads(rows_cli)) == int(rows_floor) == n, (rows_floor, n)
    return {"cli": median(cli), "process": median(proc), "engine": median(engine), "rows": n}


class Watcher(threading.Thread):
    """Poll the log's head on its own connection; remember when each head was first seen."""

    def __init__(self, ledger: Path) -> None:
        super().__init__(daemon=True)
        self.ledger = ledger
        self.seen: list[tuple[int, float]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        con = sqlite3.connect(str(self.ledger))
        last = -1
        while not self.stop.is_set():
            (head,) = con.execute("SELECT coalesce(max(rowid), 0) FROM stored_events").fetchone()
            if head != last:
                self.seen.append((head, time.monotonic()))
                last = head
            time.sleep(0.005)
        con.close()


def lag_part(ledger: Path, duck: Path, interval: float) -> dict[str, float]:
    store = bootstrap.open_ledger(str(ledger))
    follower = AnalyticsFollower(store, duck)
    follower.step()  # current before the writer starts
    watcher = Watcher(ledger)
    watcher.start()
    writer = subprocess.Popen(
        [
            CLI,
            "--ledger",
            str(ledger),
            "backtest",
            "--data",
            str(_util.REAL_1M),
            "--param",
            "fast=10",
            "--param",
            "slow=31",
            "--seed",
            "7",
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lags: list[float] = []
    steps: list[float] = []
    applied = 0
    covered = 0
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        done = writer.poll() is not None
        t0 = time.monotonic()
        step = follower.step()
        t1 = time.monotonic()
        if step.applied:
            steps.append(t1 - t0)
            applied += step.applied
        for head, seen in watcher.seen[covered:]:
            if head > step.synced_seq:
                break
            lags.append(max(0.0, t1 - seen))
            covered += 1
        if done and covered == len(watcher.seen) and step.synced_seq == store.max_seq():
            break
        time.sleep(interval)
    watcher.stop.set()
    watcher.join()
    _, err = writer.communicate(timeout=60)
    assert writer.returncode == 0, err
    store.close()
    lags.sort()
    steps.sort()
    return {
        "heads": len(lags),
        "applied": applied,
        "lag_p50": percentile(lags, 0.5),
        "lag_p99": percentile(lags, 0.99),
        "lag_max": lags[-1],
        "step_p50": percentile(steps, 0.5),
        "step_max": steps[-1],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--interval", type=float, default=0.05, help="follower poll interval, seconds")
    ap.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / f"tradeledger-bench-w3-v{w3_rebuild.BUILD_VERSION}",
    )
    a = ap.parse_args()
    say(f"machine: {_util.machine_note()}")
    source, meta = w3_rebuild.cached_log(a.events, a.cache, force=False)
    with tempfile.TemporaryDirectory(prefix="tradeledger-w4-") as work:
        ledger = Path(work) / "w4.db"
        shutil.copyfile(source, ledger)
        duck = ledger.with_suffix(".duckdb")
        say(f"log: {meta['events']:,} events in {len(meta['runs'])} runs (copy of {source})")
        t_rebuild, _ = _run([CLI, "--ledger", str(ledger), "rebuild"])
        say(f"setup: `tradeledger rebuild` (portfolio checkpoint + DuckDB from zero): {t_rebuild:.1f} s")
        q = query_part(ledger, duck, a.reps)
        say("lag: following a writer that appends one more real backtest ...")
        lag = lag_part(ledger, duck, a.interval)
    say()
    say(
        _util.table(
            [
                [
                    "`tradeledger query` daily PnL per symbol (whole process)",
                    f"{q['cli']:.3f}",
                    f"{q['cli'] / q['process']:.2f}",
                ],
                ["floor: `python -c duckdb` same SQL, same file (process)", f"{q['process']:.3f}", "1.00"],
                [
                    "DuckDB engine alone (open connection)",
                    f"{q['engine']:.4f}",
                    f"{q['engine'] / q['process']:.3f}",
                ],
            ],
            [
                f"W4 query over {meta['events']:,} events ({a.reps} reps, medians; {q['rows']} rows)",
                "seconds",
                "ratio to process floor",
            ],
        )
    )
    say()
    say(
        _util.table(
            [
                ["lag behind the store, p50", f"{lag['lag_p50'] * 1e3:.0f}"],
                ["lag behind the store, p99", f"{lag['lag_p99'] * 1e3:.0f}"],
                ["lag behind the store, max", f"{lag['lag_max'] * 1e3:.0f}"],
                ["one incremental sync step, p50", f"{lag['step_p50'] * 1e3:.0f}"],
                ["one incremental sync step, max", f"{lag['step_max'] * 1e3:.0f}"],
                ["baseline: DuckDB rebuilt from zero (`tradeledger rebuild`)", f"{t_rebuild * 1e3:.0f}"],
            ],
            [
                f"W4 lag: {lag['applied']:,} events in {lag['heads']} commits, poll {a.interval * 1e3:.0f} ms",
                "ms",
            ],
        )
    )
    say()
    say(f"target (issue): query < 1 s -> {q['cli']:.3f} s: {'MET' if q['cli'] < 1 else 'MISSED'}")
    say(
        f"target (issue): lag < 1 s -> p99 {lag['lag_p99']:.3f} s, max {lag['lag_max']:.3f} s: {'MET' if lag['lag_max'] < 1 else 'MISSED'}"
    )


if __name__ == "__main__":
    main()

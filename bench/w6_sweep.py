"""Sweep: 12 SMA parameter sets with ``--jobs 1`` against ``--jobs 2`` (target: ratio <= 0.6).

Side by side in this one script, alternating so both see the machine in the same state:

* ``tradeledger --ledger NEW.db sweep --data FILE --grid fast=5,10,20 --grid slow=30,60,90,120
  --jobs N --json`` as a whole process, for N = 1 (the combinations one after another in one
  process: the baseline) and N = 2 (two worker processes, this process writing): wall time;
* the engine alone, in this process: ``ledger.bootstrap.sweep.run_sweep`` (validation, the
  runs, every append and the tracked portfolio after each run), without the CLI's start-up
  and its closing read side (DuckDB sync and the comparison table);
* with ``--cli-baseline``: the 12 combinations as 12 ``tradeledger backtest`` processes one
  after another (what a user without ``sweep`` runs).

Reported: medians of ``--reps`` repetitions and the ratio of the medians, jobs 2 / jobs 1.
Checks that both sweeps wrote byte-identical ledgers (same rows, same order).

    python bench/w6_sweep.py                  # bundled 30-day sample, 3 repetitions
    python bench/w6_sweep.py --data real      # the real 130,708-bar file
    python bench/w6_sweep.py --cli-baseline   # also 12 separate backtest processes
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
from _util import median, say

GRID = ("fast=5,10,20", "slow=30,60,90,120")  # 12 parameter sets


def _data(choice: str) -> Path:
    if choice == "real":
        return _util.REAL_1M
    from ledger.bootstrap import bundled_sample  # noqa: PLC0415 - after sys.path is set

    return bundled_sample() if choice == "sample" else Path(choice)


def cli_sweep(ledger: Path, data: Path, jobs: int) -> float:
    """Return the wall time of one whole `tradeledger sweep` process into a new ledger."""
    grid = [arg for g in GRID for arg in ("--grid", g)]
    command = ["tradeledger", "--ledger", str(ledger), "sweep", "--data", str(data), *grid]
    start = time.perf_counter()
    subprocess.run([*command, "--jobs", str(jobs), "--json"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def cli_backtests(ledger: Path, data: Path) -> float:
    """Return the wall time of the 12 combinations as 12 `tradeledger backtest` processes."""
    start = time.perf_counter()
    for fast in GRID[0].removeprefix("fast=").split(","):
        for slow in GRID[1].removeprefix("slow=").split(","):
            params = ["--param", f"fast={fast}", "--param", f"slow={slow}"]
            subprocess.run(
                ["tradeledger", "--ledger", str(ledger), "backtest", "--data", str(data), *params, "--json"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
    return time.perf_counter() - start


CPU_LOG = "TRADELEDGER_BENCH_W6_CPU_LOG"


def timed_worker(task: Any) -> Any:
    """Run one combination as the sweep's worker does; log the CPU seconds it took."""
    from ledger.bootstrap.sweep import run_combination  # noqa: PLC0415

    start = time.process_time()
    encoded = run_combination(task)
    with Path(os.environ[CPU_LOG]).open("a") as log:
        log.write(f"{time.process_time() - start}\n")
    return encoded


def engine_sweep(ledger: Path, data: Path, jobs: int) -> tuple[float, float, float]:
    """Return wall time, this process's CPU and the workers' CPU of ``run_sweep`` here.

    No CLI start-up; with jobs=1 every run is computed in this process (workers' CPU 0).
    """
    from ledger.bootstrap import BacktestRequest  # noqa: PLC0415
    from ledger.bootstrap.sweep import SweepRequest, run_sweep  # noqa: PLC0415

    request = SweepRequest(base=BacktestRequest(ledger_url=str(ledger), data_path=data), grid=GRID, jobs=jobs)
    # One log per bench process, set before the first worker server starts: the server (and
    # every worker forked from it) keeps the environment it started with.
    cpu_log = Path(os.environ.setdefault(CPU_LOG, str(ledger.parent / "workers.cpu")))
    cpu_log.write_text("")
    start, cpu = time.perf_counter(), time.process_time()
    result = run_sweep(request, worker=timed_worker)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    result.store.close()
    workers = sum(float(line) for line in cpu_log.read_text().split())
    return elapsed, cpu, workers


def rows(ledger: Path) -> list[tuple[object, ...]]:
    """Return every stored event row of a ledger in log order."""
    with sqlite3.connect(ledger) as c:
        return c.execute(
            "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
        ).fetchall()


def main() -> None:
    """Run the benchmark and print its table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="sample", help="sample (bundled), real, or a CSV path")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--cli-baseline", action="store_true", help="also 12 backtest processes")
    parser.add_argument("--no-engine", action="store_true", help="skip the in-process engine timing")
    args = parser.parse_args()
    data = _data(args.data)
    say(f"# Sweep bench: 12 parameter sets {' x '.join(GRID)} on {data.name}")
    say(f"# {_util.machine_note()}")
    times: dict[str, list[float]] = {}
    cpu: dict[int, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="tradeledger-bench-w6-") as tmp:
        folder = Path(tmp)
        for rep in range(args.reps):
            for jobs in (1, 2):
                ledger = folder / f"cli-j{jobs}-{rep}.db"
                times.setdefault(f"cli jobs={jobs}", []).append(cli_sweep(ledger, data, jobs))
            if rep == 0:
                same = rows(folder / "cli-j1-0.db") == rows(folder / "cli-j2-0.db")
                say(f"ledgers of jobs=1 and jobs=2 byte-identical: {same}")
                if not same:
                    sys.exit("the two sweeps wrote different ledgers")
            if not args.no_engine:
                for jobs in (1, 2):
                    ledger = folder / f"engine-j{jobs}-{rep}.db"
                    wall, parent, workers = engine_sweep(ledger, data, jobs)
                    times.setdefault(f"engine jobs={jobs}", []).append(wall)
                    cpu.setdefault(jobs, []).append((parent, workers))
            if args.cli_baseline:
                ledger = folder / f"backtests-{rep}.db"
                times.setdefault("12 x tradeledger backtest", []).append(cli_backtests(ledger, data))
            say(f"rep {rep + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    medians = {k: median(v) for k, v in times.items()}
    table = []
    for kind in ("cli", "engine"):
        one, two = medians.get(f"{kind} jobs=1"), medians.get(f"{kind} jobs=2")
        if one is not None and two is not None:
            table.append([kind, f"{one:.2f}", f"{two:.2f}", f"**{two / one:.3f}**"])
    say()
    say(_util.table(table, ["path", "jobs=1 median s", "jobs=2 median s", "ratio jobs2/jobs1"]))
    if "12 x tradeledger backtest" in medians:
        base = medians["12 x tradeledger backtest"]
        say(
            f"\n12 x tradeledger backtest: {base:.2f} s; sweep --jobs 2 / that: {medians['cli jobs=2'] / base:.3f}"
        )
    for jobs, pairs in cpu.items():
        parent, workers = median([p for p, _ in pairs]), median([w for _, w in pairs])
        say(
            f"engine jobs={jobs}: CPU s (medians) this process {parent:.2f}, workers' runs {workers:.2f}, "
            f"sum {parent + workers:.2f}; on two free cores the wall is at least "
            f"max(this process, sum / 2) = {max(parent, (parent + workers) / 2):.2f} s"
        )
    say(f"load average at the end: {os.getloadavg()}")
    say(
        "\nper repetition: " + "; ".join(f"{k}: {', '.join(f'{t:.2f}' for t in v)}" for k, v in times.items())
    )


if __name__ == "__main__":
    main()

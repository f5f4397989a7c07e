"""W1 backtest: SMA(10)/SMA(30) next-open on the synthetic 525,600-bar year and the real 130,708 bars.

For each data file, side by side in this one script:

* the project, whole: ``tradeledger --ledger NEW.db backtest --data FILE --symbol BTC/USDT
  --strategy sma --param fast=10 --param slow=30 --cash 10000 --fee 0.001 --json`` in a
  subprocess (new ledger each time): wall time, bars/s and the child's peak RSS (``wait4``);
* the project's engine, in this process: ``ledger.bootstrap.run_backtest_request`` with the
  candle load and the run loop (``BacktestRun.execute``: strategy, venue, in-memory portfolio
  and every append to a SQLite ledger) timed apart;
* the floor: the same rule (SPEC section 6, W1) as a plain numpy + Python loop, in integer
  tick units so it is exact: numpy computes the SMA sums and the sign of d = fast - slow, a
  Python loop walks the sign changes, buys floor(0.1 x free cash / next open) to the 0.00001
  step, sells all on the cross down, 0.1 % fee per side, marks the end at the last close.

Both must agree on the number of fills and the final equity, to the last digit.

The synthetic year comes from ``shared/data/tools/gen_synthetic_1m.py`` (needs pandas and
pyarrow), generated once into ``$TMPDIR/tradeledger-bench-w1/``.

    python bench/w1_year.py                # both files, 3 repetitions each
    python bench/w1_year.py --reps 1       # quicker
    python bench/w1_year.py --only real    # or --only synth
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np

try:
    import pandas as pd  # the floor's CSV reader (numpy.loadtxt without it); imported before timing
except ImportError:
    pd = None

import _util
from _util import median, say

CLI_ARGS = [
    "--symbol",
    "BTC/USDT",
    "--strategy",
    "sma",
    "--param",
    "fast=10",
    "--param",
    "slow=30",
    "--cash",
    "10000",
    "--fee",
    "0.001",
    "--json",
]
FAST, SLOW = 10, 30
CASH = Decimal("10000")
FEE_RATE = Decimal("0.001")
STEP_DECIMALS = 5  # BTC/USDT qty step 0.00001 (= qty_min)
NOTIONAL_MIN = Decimal("5")


# -- data ----------------------------------------------------------------------------------


def synthetic_year(cache: Path, bars: int) -> Path:
    """Return the synthetic CSV, generating it with the shared tool on first use."""
    cache.mkdir(parents=True, exist_ok=True)
    stem = "btcusdt_1m_synth" if bars == 525_600 else f"btcusdt_1m_synth_{bars}"
    csv = cache / f"{stem}.csv"
    if csv.exists():
        say(f"synthetic: reusing {csv}")
        return csv
    cmd = [sys.executable, str(_util.SYNTH_TOOL), "--out", str(cache), "--bars", str(bars)]
    say(f"synthetic: {' '.join(cmd)}")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = (
            f"the generator failed (it needs pandas and pyarrow: pip install pandas pyarrow):\n{done.stderr}"
        )
        raise SystemExit(msg)
    say("synthetic: " + done.stdout.strip())
    return csv


# -- the project ---------------------------------------------------------------------------

_WRAPPER = """
import json, resource, subprocess, sys, time
with open(sys.argv[1], "wb") as out:
    t = time.perf_counter()
    rc = subprocess.call(sys.argv[2:], stdout=out, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t
if rc:
    sys.exit(f"exit status {rc}")
print(json.dumps({"wall": wall, "maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def cli_run(data: Path, tmp: Path) -> dict[str, Any]:
    """Run the CLI backtest into a new ledger; return wall seconds, peak RSS and its summary."""
    ledger = tmp / "w1.db"
    for p in tmp.iterdir():
        if p.is_file():
            p.unlink()
    exe = Path(sys.executable).parent / "tradeledger"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ledger.entrypoints.cli"]
    cmd += ["--ledger", str(ledger), "backtest", "--data", str(data), *CLI_ARGS]
    return measured_run(cmd, tmp)


def floor_process(data: Path, tmp: Path) -> dict[str, Any]:
    """Run the floor alone in a new process (interpreter, imports, load, run): wall and peak RSS."""
    return measured_run([sys.executable, str(Path(__file__).resolve()), "--floor-child", str(data)], tmp)


def measured_run(cmd: list[str], tmp: Path) -> dict[str, Any]:
    """Run ``cmd``; return its wall seconds, peak RSS and the JSON object it printed last."""
    out_path = tmp / "out.json"
    # A small wrapper process starts the CLI and reports its peak RSS: measured from this
    # (large) process, a forked child's ru_maxrss would start at this process's own size.
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out_path), *cmd], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        msg = f"{' '.join(cmd)} failed: {done.stderr.strip()[-2000:]}"
        raise SystemExit(msg)
    measured = json.loads(done.stdout.strip().splitlines()[-1])
    wall, rss_kb = measured["wall"], measured["maxrss_kb"]
    summary = json.loads(out_path.read_text().strip().splitlines()[-1])
    return {"wall": wall, "rss_mb": rss_kb / 1024, "summary": summary}


def engine_run(data: Path, tmp: Path) -> dict[str, float]:
    """Run the backtest in this process, timing the candle load and the run loop apart."""
    from ledger import bootstrap  # noqa: PLC0415
    from ledger.application.backtest import BacktestRun  # noqa: PLC0415

    ledger = tmp / "engine.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{ledger}{suffix}").unlink(missing_ok=True)
    spans: dict[str, float] = {"load": 0.0, "engine": 0.0}
    load, execute = bootstrap.load_candles, BacktestRun.execute

    def timed_load(*a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return load(*a, **k)
        finally:
            spans["load"] += time.perf_counter() - t

    async def timed_execute(self: Any, *a: Any, **k: Any) -> Any:
        t = time.perf_counter()
        try:
            return await execute(self, *a, **k)
        finally:
            spans["engine"] += time.perf_counter() - t

    bootstrap.load_candles = timed_load
    BacktestRun.execute = timed_execute  # type: ignore[method-assign]
    try:
        request = bootstrap.BacktestRequest(
            ledger_url=str(ledger),
            data_path=data,
            symbol="BTC/USDT",
            strategy="sma",
            params={"fast": str(FAST), "slow": str(SLOW)},
            cash=str(CASH),
            fee=str(FEE_RATE),
        )
        t0 = time.perf_counter()
        result, store = bootstrap.run_backtest_request(request)
        spans["total"] = time.perf_counter() - t0
        spans["events"] = result.events
        store.close()
    finally:
        bootstrap.load_candles = load
        BacktestRun.execute = execute  # type: ignore[method-assign]
    return spans


# -- the floor -----------------------------------------------------------------------------


def floor_load(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """Return (open, close) in integer price units and the units' decimal scale."""
    if pd is not None:
        frame = pd.read_csv(path, usecols=["open", "close"], dtype="float64")
        opens, closes = frame["open"].to_numpy(), frame["close"].to_numpy()
    else:
        table = np.loadtxt(path, delimiter=",", skiprows=1, usecols=(1, 4), dtype=np.float64)
        opens, closes = table[:, 0], table[:, 1]
    for scale in range(9):  # the fewest decimals that hold every price exactly
        o, c = opens * 10**scale, closes * 10**scale
        if np.all(np.abs(o - np.rint(o)) < 1e-6) and np.all(np.abs(c - np.rint(c)) < 1e-6):
            return np.rint(o).astype(np.int64), np.rint(c).astype(np.int64), scale
    msg = f"{path}: prices with more than 8 decimals"
    raise SystemExit(msg)


def floor_signals(close: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (cross up, cross down) flags per bar, exactly as SPEC section 6 W1 defines them."""
    n = close.size
    csum = np.concatenate(([0], np.cumsum(close, dtype=np.int64)))
    fast_sum = np.zeros(n, dtype=np.int64)
    slow_sum = np.zeros(n, dtype=np.int64)
    fast_sum[FAST - 1 :] = csum[FAST:] - csum[: n - FAST + 1]
    slow_sum[SLOW - 1 :] = csum[SLOW:] - csum[: n - SLOW + 1]
    sign = np.sign(fast_sum * SLOW - slow_sum * FAST)  # sign of d, in integers: no float ties
    previous = np.concatenate(([0], sign[:-1]))
    valid = np.zeros(n, dtype=bool)
    valid[SLOW:] = True  # d first exists at bar SLOW-1, so a change is first seen at SLOW
    return valid & (previous <= 0) & (sign > 0), valid & (previous >= 0) & (sign < 0)


def floor_backtest(path: Path) -> dict[str, Any]:
    """The W1 rule as a plain loop; money in integer units of 10**-(scale + 8) USDT."""
    t0 = time.perf_counter()
    opens, closes, scale = floor_load(path)
    t1 = time.perf_counter()
    up, down = floor_signals(closes)
    last = closes.size - 1
    unit = 10 ** (scale + STEP_DECIMALS + 3)  # cash units per USDT: notional x fee rate is exact
    fee_per_notional = int(FEE_RATE * 1000)  # fee units per (qty unit x price unit)
    cash = int(CASH * unit)
    notional_min = int(NOTIONAL_MIN * unit)
    qty = 0  # BTC, in 0.00001 steps
    fills = 0
    for bar in np.flatnonzero(up | down).tolist():
        if bar >= last:
            break  # a signal on the last bar is not filled
        price = int(opens[bar + 1])  # market order, next bar's open
        if up[bar] and qty == 0:
            if cash // 10 < notional_min:  # spend 10 % of free cash; gate: notional minimum
                continue
            buy = cash // (price * 10_000)  # floor(0.1 x cash / price) in steps
            if buy < 1:
                continue  # rounds to zero: the venue expires it
            notional = buy * price * 1000
            cash -= notional + buy * price * fee_per_notional
            qty = buy
            fills += 1
        elif down[bar] and qty > 0:
            if qty * int(closes[bar]) * 1000 < notional_min:
                continue
            cash += qty * price * 1000 - qty * price * fee_per_notional
            qty = 0
            fills += 1
    equity = cash + qty * int(closes[last]) * 1000
    t2 = time.perf_counter()
    return {
        "load": t1 - t0,
        "compute": t2 - t1,
        "total": t2 - t0,
        "fills": fills,
        "equity_final": Decimal(equity).scaleb(-(scale + STEP_DECIMALS + 3)),
        "bars": int(closes.size),
    }


# -- main ----------------------------------------------------------------------------------


def bench_file(label: str, data: Path, reps: int, tmp: Path) -> list[list[str]]:
    say(f"\n== {label}: {data}")
    cli, eng, flo, fproc = [], [], [], []
    for rep in range(reps):
        cli.append(cli_run(data, tmp))
        fproc.append(floor_process(data, tmp))
        eng.append(engine_run(data, tmp))
        flo.append(floor_backtest(data))
        say(
            f"rep {rep + 1}: CLI {cli[-1]['wall']:.2f}s (peak RSS {cli[-1]['rss_mb']:.0f} MB), engine "
            f"{eng[-1]['engine']:.2f}s + candle load {eng[-1]['load']:.2f}s; floor process {fproc[-1]['wall']:.2f}s "
            f"(peak RSS {fproc[-1]['rss_mb']:.0f} MB), floor in-process {flo[-1]['total']:.3f}s "
            f"(load {flo[-1]['load']:.3f}s)"
        )
    bars = flo[0]["bars"]
    summary = cli[0]["summary"]
    ledger_fills, ledger_equity = int(summary["fills"]), Decimal(str(summary["equity_final"]))
    same = ledger_fills == flo[0]["fills"] and ledger_equity == flo[0]["equity_final"]
    say(
        f"{label}: ledger {ledger_fills:,} fills, final equity {ledger_equity} USDT, {summary['events']:,} events; "
        f"floor {flo[0]['fills']:,} fills, final equity {flo[0]['equity_final']} -> "
        f"{'IDENTICAL' if same else 'DIFFERENT'}"
    )
    if not same:
        say("WARNING: the ledger and the floor disagree; the figures below compare different work")
    wall = median([c["wall"] for c in cli])
    engine = median([e["engine"] for e in eng])
    load = median([e["load"] for e in eng])
    f_total = median([f["total"] for f in flo])
    f_compute = median([f["compute"] for f in flo])
    rss = median([c["rss_mb"] for c in cli])
    f_wall = median([f["wall"] for f in fproc])
    f_rss = median([f["rss_mb"] for f in fproc])
    return [
        [
            label,
            "tradeledger backtest (CLI, whole process)",
            f"{wall:.2f}",
            f"{bars / wall:,.0f}",
            f"{rss:.0f}",
            f"{wall / f_wall:,.1f}",
        ],
        [
            label,
            "  engine: run loop + ledger appends",
            f"{engine:.2f}",
            f"{bars / engine:,.0f}",
            "-",
            f"{engine / f_compute:,.0f}",
        ],
        [label, "  candle load (CSV -> exact ints)", f"{load:.2f}", f"{bars / load:,.0f}", "-", "-"],
        [
            label,
            "floor: whole process (python, imports, load, run)",
            f"{f_wall:.2f}",
            f"{bars / f_wall:,.0f}",
            f"{f_rss:.0f}",
            "1",
        ],
        [label, "floor: load + run (in process)", f"{f_total:.3f}", f"{bars / f_total:,.0f}", "-", "-"],
        [label, "floor: run only", f"{f_compute:.3f}", f"{bars / f_compute:,.0f}", "-", "1"],
        [
            label,
            f"fills / final equity: ledger {ledger_fills:,} / {ledger_equity}",
            "",
            "",
            "",
            "same" if same else "DIFFERENT",
        ],
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["real", "synth"], default=None)
    ap.add_argument("--bars", type=int, default=525_600, help="synthetic bars (default a year, 525,600)")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tradeledger-bench-w1")
    ap.add_argument("--floor-child", type=Path, default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.floor_child is not None:  # the floor alone, in its own process, for its peak RSS
        result = floor_backtest(a.floor_child)
        print(json.dumps({k: str(v) for k, v in result.items()}))
        return
    say(f"machine: {_util.machine_note()}")
    rows: list[list[str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="tl-w1-"))
    try:
        if a.only in (None, "synth"):
            rows += bench_file("W1-year (synthetic)", synthetic_year(a.cache, a.bars), a.reps, tmp)
        if a.only in (None, "real"):
            rows += bench_file("W1 (real BTC/USDT)", _util.REAL_1M, a.reps, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say()
    say(_util.table(rows, ["data", "what", "seconds", "bars/s", "peak RSS MB", "x floor time"]))
    say(
        "medians over repetitions; 'x floor time' = ledger seconds / floor seconds: the CLI row against the floor's "
        "whole process, the engine row against the floor's run loop alone"
    )


if __name__ == "__main__":
    main()

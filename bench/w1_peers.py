"""W1 side by side: tradeledger, backtrader, backtesting.py, vectorbt and a numpy floor.

One rule (SPEC section 6, W1), five engines, each in its own process so that imports and peak
RSS are separated: SMA(10)/SMA(30) on closes, d = SMA_fast - SMA_slow; buy when flat and d goes
from <= 0 to > 0, sell the whole position when long and d goes from >= 0 to < 0; the decision
is at bar t's close, the market order fills at bar t+1's open; a buy is
``floor(0.1 x free cash / fill price)`` to the 0.00001 BTC step; the fee is 0.1 % of the
notional in USDT on each side; 10,000 USDT to start; an open position at the end is marked to
the last close; a signal on the last bar is not filled.

How each engine is held to it (the conventions that differ, and how they are bridged):

* **tradeledger** runs its real path: ``ledger.bootstrap.run_backtest_request`` into a new
  SQLite ledger (every decision, order and fill a stored, hash-chained event; the portfolio
  projection current at the end), and the ``tradeledger backtest`` CLI for the whole process
  (which also folds the log into the saved portfolio checkpoint and syncs the DuckDB file).
  Money is Decimal; d's sign is exact (integer tick sums).
* **numpy floor** (``w1_year.floor_backtest``): the rule in integer units; numpy for the sums
  and the sign of d, a Python loop over the sign changes. Exact, like the ledger.
* **backtrader** 1.9.78: ``cheat_on_open=True``: ``next()`` at bar t sees d and flags the
  signal, ``next_open()`` at bar t+1 sizes the order from the broker's cash and that bar's
  open (the fill price the rule sizes by) and the broker fills it at that open.
  ``setcommission(commission=0.001)`` is 0.1 % of notional per side; sells are ``close()``.
  No observers (``stdstats=False``), preload and runonce on: backtrader's fastest setup.
* **backtesting.py** 0.6.6: ``FractionalBacktest(fractional_unit=0.00001)``, because
  backtesting.py trades whole units only: a unit is one 0.00001 BTC step, so an order is a
  whole number of steps. Market orders fill at the next bar's open. Its relative sizing
  (``size=0.1``) would divide by the price *plus* commission and size at the signal bar, so
  the strategy passes the number of steps itself, ``floor(free cash x 10,000 / next open)``,
  reading the next open from the input frame (the venue's fill price, used for nothing
  else). ``commission=0.001``; the open position stays open at the end (marked to the close).
* **vectorbt** 1.2: ``Portfolio.from_order_func`` with a numba order function: at bar i it
  acts on the signal of bar i-1 at ``price=open[i]``, sizing ``floor(cash x 10,000 /
  open[i]) / 100,000`` BTC, ``fees=0.001``. (``from_signals`` with ``size_type='percent'``
  takes the fee out of the 10 %, and ``size_granularity`` floors with a float division by
  1e-5, so neither is the rule.) Its engine time includes numba's JIT (cold, first call in a
  fresh process); the warm second call is reported beside it.

**Exact ties.** The peers' money is float; so would their SMAs be, and a float SMA on dollar
prices can turn an exact tie (d = 0) into a cross: the synthetic year has one, bar 417,144,
where pandas' rolling means on dollars give d = -1.8e-12 and the position is sold one bar
early. The peers therefore compute their SMAs on the close in integer ticks (cents, as
floats): sums of integers below 2**53 are exact and each mean is one correctly-rounded
division, so two equal means are the same float and d's sign is the exact one. This script
counts how many bars a dollar-float SMA gets wrong on each file and prints it.

**Agreement.** Every engine must report the ledger's number of fills, and a final equity
within 0.01 USDT of the ledger's exact one (the script fails otherwise). The peers' float
cash drifts by about 1e-9 USDT over 5,000 fills; a float ``floor`` of the size could differ
from the exact one only where free cash x 10,000 / price is a whole number, which has not
happened on either file.

Timing: "engine" seconds are measured inside each child around the run alone (CSV loading
and imports excluded; backtrader's preload of its lines and vectorbt's JIT are the engines'
own work, so included), as wall time and as the process's CPU time (on a shared machine the
CPU time moves less with the load; the ledger's wall time also holds its commits' fsyncs); "process" seconds are the child's whole life from this parent
(interpreter, imports, load, run); peak RSS is the child's own ``ru_maxrss``. This parent
imports no numpy or pandas, so its children do not inherit a large resident set. Medians of
``--reps`` fresh processes per engine, the engines interleaved within each repetition.

    python bench/w1_peers.py                   # both files, 3 repetitions (~15 min on a busy 2-core machine)
    python bench/w1_peers.py --only real --reps 1
    python bench/w1_peers.py --engines tradeledger,backtrader
    python bench/w1_peers.py --results bench/RESULTS.md   # also rewrite the figures block there
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
from _util import median, say

ENGINES = ("tradeledger", "numpy", "backtesting", "backtrader", "vectorbt")
FAST, SLOW = 10, 30
CASH = 10_000.0
FEE = 0.001
STEPS_PER_BTC = 100_000  # the BTC/USDT quantity step is 0.00001
TICKS_PER_USDT = 100  # the BTC/USDT price tick is 0.01
EQUITY_TOLERANCE = Decimal("0.01")
CLI_ARGS = [
    "--symbol",
    "BTC/USDT",
    "--strategy",
    "sma",
    "--param",
    f"fast={FAST}",
    "--param",
    f"slow={SLOW}",
    "--cash",
    "10000",
    "--fee",
    "0.001",
    "--json",
]
RESULTS_BEGIN = "<!-- w1_peers:begin (written by bench/w1_peers.py --results) -->"
RESULTS_END = "<!-- w1_peers:end -->"


# -- the children: one engine each -----------------------------------------------------------


def load_frame(path: Path) -> Any:
    """Return the candles as a pandas frame with float OHLCV and the close in integer ticks."""
    import numpy as np  # noqa: PLC0415 - children only; the parent stays small
    import pandas as pd  # noqa: PLC0415

    frame = pd.read_csv(path, dtype={"timestamp": "int64"})
    frame.index = pd.to_datetime(frame["timestamp"], unit="ms", utc=True).dt.tz_localize(None)
    ticks = np.rint(frame["close"].to_numpy() * TICKS_PER_USDT)
    if not np.all(np.abs(frame["close"].to_numpy() * TICKS_PER_USDT - ticks) < 1e-6):
        msg = f"{path}: a close is not a whole number of 0.01 ticks"
        raise SystemExit(msg)
    frame["ticks"] = ticks
    return frame


def float_tie_flips(frame: Any) -> int:
    """Count bars where d's sign from dollar-float rolling means differs from the exact sign."""
    import numpy as np  # noqa: PLC0415

    close = frame["close"]
    ticks = frame["ticks"].to_numpy().astype(np.int64)
    csum = np.concatenate(([0], np.cumsum(ticks)))
    n = ticks.size
    fast_sum = csum[FAST:] - csum[: n - FAST + 1]  # fast_sum[k] ends at bar k + FAST - 1
    slow_sum = csum[SLOW:] - csum[: n - SLOW + 1]  # slow_sum[k] ends at bar k + SLOW - 1
    exact = np.zeros(n, dtype=np.int64)
    exact[SLOW - 1 :] = fast_sum[SLOW - FAST :] * SLOW - slow_sum * FAST
    dollars = (close.rolling(FAST).mean() - close.rolling(SLOW).mean()).to_numpy()
    return int(np.sum(np.sign(dollars[SLOW - 1 :]) != np.sign(exact[SLOW - 1 :])))


def run_tradeledger(path: Path) -> dict[str, Any]:
    """The ledger's real path into a new SQLite ledger; the run loop timed apart from loading."""
    from ledger import bootstrap  # noqa: PLC0415
    from ledger.application.backtest import BacktestRun  # noqa: PLC0415

    tmp = Path(tempfile.mkdtemp(prefix="tl-w1-peers-"))
    spans: dict[str, float] = {}
    execute = BacktestRun.execute

    async def timed_execute(self: Any, *a: Any, **k: Any) -> Any:
        t, cpu = time.perf_counter(), time.process_time()
        try:
            return await execute(self, *a, **k)
        finally:
            spans["engine"] = time.perf_counter() - t
            spans["engine_cpu"] = time.process_time() - cpu

    BacktestRun.execute = timed_execute  # type: ignore[method-assign]
    try:
        request = bootstrap.BacktestRequest(
            ledger_url=str(tmp / "w1.db"),
            data_path=path,
            symbol="BTC/USDT",
            strategy="sma",
            params={"fast": str(FAST), "slow": str(SLOW)},
            cash="10000",
            fee="0.001",
        )
        t0 = time.perf_counter()
        result, store = bootstrap.run_backtest_request(request)
        total = time.perf_counter() - t0
        store.close()
    finally:
        BacktestRun.execute = execute  # type: ignore[method-assign]
        shutil.rmtree(tmp, ignore_errors=True)
    view = result.view
    if view.ended is None:
        msg = "the run has no RunEnded event"
        raise SystemExit(msg)
    return {
        "engine": spans["engine"],
        "engine_cpu": spans["engine_cpu"],
        "load": total - spans["engine"],
        "fills": view.fills,
        "equity": str(view.ended.equity_final),
        "events": result.events,
    }


def run_numpy(path: Path) -> dict[str, Any]:
    """The floor of ``w1_year.py``: exact integer units, numpy sums, a loop over sign changes."""
    import w1_year  # noqa: PLC0415

    done = w1_year.floor_backtest(path)
    return {
        "engine": done["compute"],
        "engine_cpu": done["compute"],  # single-threaded, no I/O: its wall time is its CPU time
        "load": done["load"],
        "fills": done["fills"],
        "equity": str(done["equity_final"]),
    }


def run_backtrader(path: Path) -> dict[str, Any]:
    """Run backtrader with cheat-on-open sizing at the fill bar's open; SMAs on integer ticks."""
    import math  # noqa: PLC0415

    import backtrader as bt  # noqa: PLC0415

    t0 = time.perf_counter()
    frame = load_frame(path)
    loaded = time.perf_counter() - t0

    class Feed(bt.feeds.PandasData):  # type: ignore[misc]
        lines = ("ticks",)
        params = (("ticks", -1), ("openinterest", None))

    class W1(bt.Strategy):  # type: ignore[misc]
        def __init__(self) -> None:
            self.d = bt.ind.SMA(self.data.ticks, period=FAST) - bt.ind.SMA(self.data.ticks, period=SLOW)
            self.signal = ""
            self.fills = 0

        def next(self) -> None:
            self.signal = ""
            if len(self) <= SLOW:  # d first exists at bar SLOW-1: a change is first seen at SLOW
                return
            before, now = self.d[-1], self.d[0]
            if self.position.size == 0 and before <= 0 < now:
                self.signal = "buy"
            elif self.position.size > 0 and before >= 0 > now:
                self.signal = "sell"

        def next_open(self) -> None:  # bar t+1, before the broker fills at its open
            if self.signal == "buy":
                steps = math.floor(self.broker.getcash() * 10_000 / self.data.open[0])
                if steps >= 1:
                    self.buy(size=steps / STEPS_PER_BTC)
            elif self.signal == "sell":
                self.close()
            self.signal = ""

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                self.fills += 1

    t1, cpu = time.perf_counter(), time.process_time()
    cerebro = bt.Cerebro(stdstats=False, cheat_on_open=True)
    cerebro.adddata(Feed(dataname=frame))
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=FEE)
    cerebro.addstrategy(W1)
    (strategy,) = cerebro.run()
    engine, engine_cpu = time.perf_counter() - t1, time.process_time() - cpu
    return {
        "engine": engine,
        "engine_cpu": engine_cpu,
        "load": loaded,
        "fills": strategy.fills,
        "equity": repr(cerebro.broker.getvalue()),
        "tie_flips": float_tie_flips(frame),
    }


def run_backtesting(path: Path) -> dict[str, Any]:
    """backtesting.py in 0.00001-BTC units, sized from the next open; SMAs on integer ticks."""
    import warnings  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    import pandas as pd  # noqa: PLC0415
    from backtesting import Strategy  # noqa: PLC0415
    from backtesting.lib import FractionalBacktest  # noqa: PLC0415

    t0 = time.perf_counter()
    frame = load_frame(path)
    data = frame.rename(columns=str.capitalize)[["Open", "High", "Low", "Close", "Volume", "Ticks"]]
    opens = frame["open"].to_numpy()  # dollars: the fill price the rule sizes by
    loaded = time.perf_counter() - t0

    def sma_d(ticks: Any) -> Any:
        series = pd.Series(np.asarray(ticks, dtype=np.float64))
        return (series.rolling(FAST).mean() - series.rolling(SLOW).mean()).to_numpy()

    class W1(Strategy):  # type: ignore[misc]
        def init(self) -> None:
            self.d = self.I(sma_d, self.data.Ticks, name="d", plot=False)

        def next(self) -> None:
            bar = len(self.data) - 1
            before, now = self.d[-2], self.d[-1]
            if not self.position and before <= 0 < now and bar + 1 < len(opens):
                steps = int(self.equity * 10_000 // opens[bar + 1])  # flat: equity is free cash
                if steps >= 1:
                    self.buy(size=steps)
            elif self.position and before >= 0 > now:
                self.position.close()

    t1, cpu = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "some trades remain open": the rule marks them instead
        backtest = FractionalBacktest(
            data, W1, cash=CASH, commission=FEE, fractional_unit=1 / STEPS_PER_BTC, finalize_trades=False
        )
        stats = backtest.run()
    engine, engine_cpu = time.perf_counter() - t1, time.process_time() - cpu
    strategy = stats["_strategy"]
    fills = 2 * len(strategy.closed_trades) + len(strategy.trades)
    return {
        "engine": engine,
        "engine_cpu": engine_cpu,
        "load": loaded,
        "fills": fills,
        "equity": repr(float(stats["Equity Final [$]"])),
    }


def run_vectorbt(path: Path) -> dict[str, Any]:
    """Run vectorbt's order-function simulation (numba): cold (JIT included) and warm timings."""
    import numpy as np  # noqa: PLC0415
    import vectorbt as vbt  # noqa: PLC0415
    from numba import njit  # noqa: PLC0415
    from vectorbt.portfolio.enums import NoOrder  # noqa: PLC0415
    from vectorbt.portfolio.nb import order_nb  # noqa: PLC0415

    t0 = time.perf_counter()
    frame = load_frame(path)
    close = frame["close"].to_numpy()
    opens = frame["open"].to_numpy()
    ticks = frame["ticks"].to_numpy()
    loaded = time.perf_counter() - t0

    @njit  # type: ignore[untyped-decorator]
    def order_func_nb(c: Any, d: Any, opens: Any) -> Any:
        signal_bar = c.i - 1  # the order of bar i acts on bar i-1's signal, at bar i's open
        if signal_bar < SLOW:
            return NoOrder
        before, now = d[signal_bar - 1], d[signal_bar]
        if c.position_now == 0 and before <= 0 and now > 0:
            steps = np.floor(c.cash_now * 10_000.0 / opens[c.i])
            if steps >= 1:
                return order_nb(size=steps / STEPS_PER_BTC, price=opens[c.i], fees=FEE)
        elif c.position_now > 0 and before >= 0 and now < 0:
            return order_nb(size=-c.position_now, price=opens[c.i], fees=FEE)
        return NoOrder

    def simulate() -> Any:
        fast = vbt.MA.run(ticks, FAST).ma.to_numpy()
        slow = vbt.MA.run(ticks, SLOW).ma.to_numpy()
        return vbt.Portfolio.from_order_func(close, order_func_nb, fast - slow, opens, init_cash=CASH)

    t1, cpu = time.perf_counter(), time.process_time()
    portfolio = simulate()
    cold, cold_cpu = time.perf_counter() - t1, time.process_time() - cpu
    t2 = time.perf_counter()
    simulate()
    warm = time.perf_counter() - t2
    return {
        "engine": cold,
        "engine_cpu": cold_cpu,
        "engine_warm": warm,
        "load": loaded,
        "fills": int(portfolio.orders.count()),
        "equity": repr(float(portfolio.final_value())),
    }


RUNNERS = {
    "tradeledger": run_tradeledger,
    "numpy": run_numpy,
    "backtrader": run_backtrader,
    "backtesting": run_backtesting,
    "vectorbt": run_vectorbt,
}


def child_main(engine: str, path: Path) -> None:
    """Run one engine once and print its figures as one JSON line (the last line of stdout)."""
    import resource  # noqa: PLC0415

    result = RUNNERS[engine](path)
    result["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


# -- the parent ------------------------------------------------------------------------------


def run_child(cmd: list[str]) -> tuple[float, dict[str, Any]]:
    """Run ``cmd``; return its wall seconds and the JSON object it printed last."""
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    if done.returncode != 0:
        msg = f"{' '.join(cmd)} failed:\n{done.stderr.strip()[-3000:]}"
        raise SystemExit(msg)
    return wall, json.loads(done.stdout.strip().splitlines()[-1])


def engine_child(engine: str, data: Path) -> dict[str, Any]:
    """One engine in a fresh process: its own timings, fills, equity and peak RSS, plus wall."""
    wall, result = run_child([sys.executable, str(Path(__file__).resolve()), "--child", engine, str(data)])
    result["process"] = wall
    return result


def cli_child(data: Path, tmp: Path) -> dict[str, Any]:
    """``tradeledger backtest`` as a user runs it, into a new ledger; wall, peak RSS, summary."""
    for p in tmp.iterdir():
        if p.is_file():
            p.unlink()
    exe = Path(sys.executable).parent / "tradeledger"
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "ledger.entrypoints.cli"]
    cmd += ["--ledger", str(tmp / "w1.db"), "backtest", "--data", str(data), *CLI_ARGS]
    # This parent is small (no numpy, no pandas), so RUSAGE_CHILDREN after the one child we
    # wait for is that child's own peak; a wrapper keeps earlier children out of it.
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "t = time.perf_counter()\n"
        "out = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "wall = time.perf_counter() - t\n"
        "if out.returncode: sys.exit(out.stderr[-3000:])\n"
        "summary = json.loads(out.stdout.strip().splitlines()[-1])\n"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024\n"
        "print(json.dumps({'wall': wall, 'maxrss_mb': rss, 'summary': summary}))\n"
    )
    _, measured = run_child([sys.executable, "-c", wrapper, *cmd])
    return measured


def synthetic_year(cache: Path) -> Path:
    """Return the synthetic 525,600-bar CSV (the same cache as ``w1_year.py``), generating it once."""
    csv = cache / "btcusdt_1m_synth.csv"
    if csv.exists():
        return csv
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(_util.SYNTH_TOOL), "--out", str(cache), "--bars", "525600"]
    say(f"synthetic: {' '.join(cmd)}")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        msg = f"the generator failed (it needs pandas and pyarrow: the bench extra):\n{done.stderr}"
        raise SystemExit(msg)
    return csv


def bench_file(
    label: str, data: Path, engines: list[str], reps: int, tmp: Path, *, with_cli: bool
) -> dict[str, Any]:
    """Run every engine ``reps`` times on ``data``; check agreement; return medians."""
    say(f"\n== {label}: {data}")
    runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
    cli: list[dict[str, Any]] = []
    for rep in range(reps):
        for engine in engines:
            runs[engine].append(engine_child(engine, data))
            r = runs[engine][-1]
            say(
                f"rep {rep + 1} {engine:<12} engine {r['engine']:8.3f}s (CPU {r['engine_cpu']:7.3f}s)  process {r['process']:6.2f}s  "
                f"peak RSS {r['maxrss_mb']:5.0f} MB  fills {r['fills']:,}  equity {r['equity']}"
            )
        if with_cli and "tradeledger" in engines:
            cli.append(cli_child(data, tmp))
            say(
                f"rep {rep + 1} tradeledger CLI {cli[-1]['wall']:.2f}s  peak RSS {cli[-1]['maxrss_mb']:.0f} MB"
            )
    return {"label": label, "data": str(data), "runs": runs, "cli": cli}


def check_agreement(result: dict[str, Any]) -> list[str]:
    """Compare every engine's fills and final equity with the reference's; return the notes."""
    runs = result["runs"]
    reference = "tradeledger" if "tradeledger" in runs else "numpy"
    ref = runs[reference][0]
    ref_equity = Decimal(ref["equity"])
    notes, bad = [], []
    for engine, reps in runs.items():
        for r in reps:
            gap = abs(Decimal(r["equity"]) - ref_equity)
            if r["fills"] != ref["fills"] or gap > EQUITY_TOLERANCE:
                bad.append(f"{engine}: {r['fills']} fills, equity {r['equity']} (gap {gap})")
        gap = abs(Decimal(reps[0]["equity"]) - ref_equity)
        notes.append(
            f"{engine}: {reps[0]['fills']:,} fills, final equity {reps[0]['equity']} (|gap| {float(gap):.1e} USDT)"
        )
    if bad:
        msg = (
            f"{result['label']}: engines disagree with {reference} ({ref['fills']} fills, {ref_equity}):\n"
            + "\n".join(bad)
        )
        raise SystemExit(msg)
    return notes


def figures_table(results: list[dict[str, Any]]) -> str:
    """The markdown table of medians, with each engine's time over tradeledger's."""
    rows = []
    for result in results:
        runs, bars = result["runs"], result["bars"]
        med = {
            e: {k: median([r[k] for r in reps]) for k in ("engine", "engine_cpu", "process", "maxrss_mb")}
            for e, reps in runs.items()
        }
        ours = runs.get("tradeledger")
        cli = result["cli"]
        cli_wall = median([c["wall"] for c in cli]) if cli else None
        for engine in runs:
            m = med[engine]
            warm = ""
            if engine == "vectorbt":
                warm = f" (warm {median([r['engine_warm'] for r in runs[engine]]):.3f})"
            rows.append(
                [
                    result["label"],
                    engine,
                    f"{m['engine']:.3f}{warm}",
                    f"{m['engine_cpu']:.3f}",
                    f"{bars / m['engine']:,.0f}",
                    f"{m['process']:.2f}",
                    f"{m['maxrss_mb']:.0f}",
                    _paired(runs[engine], ours, "engine", "engine") if ours else "-",
                    _paired(runs[engine], ours, "engine_cpu", "engine_cpu") if ours else "-",
                    _paired(runs[engine], cli, "process", "wall") if cli else "-",
                ]
            )
        if result["cli"]:
            rss = median([c["maxrss_mb"] for c in result["cli"]])
            rows.append(
                [
                    result["label"],
                    "tradeledger backtest CLI",
                    "-",
                    "-",
                    "-",
                    f"{cli_wall:.2f}",
                    f"{rss:.0f}",
                    "-",
                    "-",
                    "1",
                ]
            )
    header = [
        "data",
        "engine",
        "engine s",
        "engine CPU s",
        "bars/s (engine)",
        "process s",
        "peak RSS MB",
        "engine s / tradeledger's (paired)",
        "engine CPU / tradeledger's (paired)",
        "process s / tradeledger CLI's (paired)",
    ]
    return _util.table(rows, header)


def _paired(mine: list[dict[str, Any]], ours: list[dict[str, Any]], key: str, our_key: str) -> str:
    # The median of per-repetition ratios: both sides of a ratio ran minutes apart at most, so
    # a shared machine's drifting load cancels better than in a ratio of two medians.
    return f"{median([m[key] / o[our_key] for m, o in zip(mine, ours, strict=False)]):.3g}"


def write_results(path: Path, block: str) -> None:
    """Replace the figures block between the markers in ``path`` (append a section if absent)."""
    text = path.read_text()
    fenced = f"{RESULTS_BEGIN}\n{block}\n{RESULTS_END}"
    if RESULTS_BEGIN in text:
        pattern = re.escape(RESULTS_BEGIN) + r".*?" + re.escape(RESULTS_END)
        text = re.sub(pattern, lambda _m: fenced, text, flags=re.DOTALL)
    else:
        text = text.rstrip("\n") + "\n\n## W1 vs peers (`w1_peers.py`)\n\n" + fenced + "\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--only", choices=["real", "synth"], default=None)
    ap.add_argument(
        "--engines", default=",".join(ENGINES), help=f"comma-separated subset of {','.join(ENGINES)}"
    )
    ap.add_argument("--no-cli", action="store_true", help="skip the tradeledger CLI whole-process runs")
    ap.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "tradeledger-bench-w1")
    ap.add_argument("--results", type=Path, default=None, help="rewrite the W1-vs-peers block in this file")
    ap.add_argument("--child", nargs=2, metavar=("ENGINE", "DATA"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child is not None:
        child_main(a.child[0], Path(a.child[1]))
        return
    engines = [e for e in a.engines.split(",") if e]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        ap.error(f"--engines: unknown {unknown[0]!r}; choose from {', '.join(ENGINES)}")
    say(f"machine: {_util.machine_note()}; load average {os.getloadavg()}")
    files = []
    if a.only in (None, "real"):
        files.append(("W1 real BTC/USDT, 130,708 bars", _util.REAL_1M, 130_708))
    if a.only in (None, "synth"):
        files.append(("W1-year synthetic, 525,600 bars", synthetic_year(a.cache), 525_600))
    tmp = Path(tempfile.mkdtemp(prefix="tl-w1-peers-"))
    results = []
    try:
        for label, data, bars in files:
            result = bench_file(label, data, engines, a.reps, tmp, with_cli=not a.no_cli)
            result["bars"] = bars
            result["notes"] = check_agreement(result)
            for note in result["notes"]:
                say("  " + note)
            flips = [r.get("tie_flips") for r in result["runs"].get("backtrader", []) if "tie_flips" in r]
            if flips:
                result["notes"].append(
                    f"dollar-float SMAs would flip d's sign on {flips[0]} bar(s) of this file"
                )
                say("  " + result["notes"][-1])
            results.append(result)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    table = figures_table(results)
    say()
    say(table)
    if a.results is not None:
        notes = "\n".join(f"* {r['label']}: " + "; ".join(r["notes"]) for r in results)
        block = (
            f"Machine: {_util.machine_note()}. Medians of {a.reps} fresh processes per engine.\n\n"
            f"{table}\n\nAgreement (every repetition checked; equity within {EQUITY_TOLERANCE} USDT of the ledger's):\n\n"
            f"{notes}"
        )
        write_results(a.results, block)
        say(f"figures written to {a.results}")


if __name__ == "__main__":
    main()

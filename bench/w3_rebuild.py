"""W3 rebuild: PortfolioProjection folded from zero over a 1,000,000-event SQLite log, vs the floor.

The log is real: whole `tradeledger backtest` runs (SMA crossover, next-open fills) over the
real 130,708-bar BTC/USDT file, one run per SMA parameter pair, until the log holds at least
``--events`` events (RunStarted, DecisionMade, OrderPlaced/Submitted/Accepted/Filled,
PriceMarked, RunEnded, as the engine writes them). It is built once and cached under
``$TMPDIR/tradeledger-bench-w3-<BUILD_VERSION>/`` (reruns reuse it; ``--rebuild-log`` forces).

Timed, interleaved, ``--reps`` times each:

* ledger: ``projections.runner.rebuild(store, PortfolioProjection())``, i.e. ``read_log`` pages
  of 5,000 (stored rows -> typed domain events) folded by ``apply``;
* ledger read only: the same ``read_log`` pages without the fold (where the time goes);
* raw rows + ``codec.decode``: the typed decode without the store (the store's own share);
* floor: raw ``sqlite3`` reading the same rows in the same 5,000-row pages and decoding each
  state with ``msgspec.json.decode`` (untyped: the least work that still parses every byte).

Target (issue): rebuild >= 50 % of the floor's events/s.

    python bench/w3_rebuild.py                   # 1,000,000 events (first run builds the log)
    python bench/w3_rebuild.py --events 200000   # scaled down
    python bench/w3_rebuild.py --profile         # also cProfile one rebuild
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import gc
import io
import json
import os
import pstats
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
import msgspec
from _util import median, say

from ledger import bootstrap
from ledger.adapters.codec import decode as typed_decode
from ledger.adapters.store import open_store
from projections.portfolio import PortfolioProjection
from projections.runner import PAGE_SIZE, rebuild

BUILD_VERSION = "2"  # bump when the way the log is built changes (2: RunCheckpointed, RunStarted v2)
# SMA (fast, slow) pairs, one run each; cycled (with a seed bump) if more events are needed.
PAIRS = [
    (10, 30),
    (9, 30),
    (11, 30),
    (8, 25),
    (12, 35),
    (10, 40),
    (7, 21),
    (14, 42),
    (6, 24),
    (15, 45),
    (9, 27),
    (12, 30),
    (8, 32),
    (11, 44),
    (13, 39),
    (10, 20),
    (5, 20),
    (16, 48),
    (7, 28),
    (12, 48),
]


def build_log(path: Path, target: int) -> dict[str, Any]:
    """Append whole backtest runs to a new ledger at ``path`` until it holds ``target`` events."""
    real = _util.REAL_1M
    load = functools.lru_cache(maxsize=2)(bootstrap.load_candles)
    bootstrap.load_candles = load  # parse the 130,708-bar file once, not once per run
    runs: list[dict[str, Any]] = []
    total = 0
    t0 = time.perf_counter()
    i = 0
    while total < target:
        fast, slow = PAIRS[i % len(PAIRS)]
        seed = i // len(PAIRS)
        request = bootstrap.BacktestRequest(
            ledger_url=str(path),
            data_path=real,
            symbol="BTC/USDT",
            strategy="sma",
            params={"fast": str(fast), "slow": str(slow)},
            cash="10000",
            fee="0.001",
            seed=seed,
        )
        result, store = bootstrap.run_backtest_request(request)
        total = store.max_seq()
        store.close()
        view = result.view
        runs.append(
            {
                "run_id": str(result.run_id),
                "fast": fast,
                "slow": slow,
                "seed": seed,
                "events": result.events,
                "fills": view.fills,
                "equity_final": str(view.ended.equity_final if view.ended else None),
            }
        )
        say(
            f"  run {i + 1}: SMA({fast},{slow}) seed {seed}: {result.events:,} events, {view.fills:,} fills "
            f"(log {total:,}, {time.perf_counter() - t0:.0f}s)"
        )
        i += 1
    return {
        "events": total,
        "runs": runs,
        "build_seconds": time.perf_counter() - t0,
        "version": BUILD_VERSION,
    }


def cached_log(target: int, cache: Path, *, force: bool) -> tuple[Path, dict[str, Any]]:
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"w3_{target}.db"
    meta_path = cache / f"w3_{target}.json"
    if not force and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("version") == BUILD_VERSION:
            say(f"log: reusing {path} ({meta['events']:,} events, {len(meta['runs'])} runs)")
            return path, meta
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    meta_path.unlink(missing_ok=True)
    say(f"log: building {target:,}+ events of real backtests into {path} (cached for reruns)")
    meta = build_log(path, target)
    # Fold the WAL into the file so every timed read starts from the same layout.
    conn = sqlite3.connect(str(path))
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    meta_path.write_text(json.dumps(meta, indent=1))
    say(f"log: built {meta['events']:,} events in {meta['build_seconds']:.0f}s")
    return path, meta


def ledger_rebuild(path: Path) -> tuple[float, PortfolioProjection]:
    store = open_store(str(path), create=False)
    t0 = time.perf_counter()
    projection = rebuild(store, PortfolioProjection())
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed, projection  # type: ignore[return-value]


def ledger_read_only(path: Path) -> tuple[float, int]:
    store = open_store(str(path), create=False)
    t0 = time.perf_counter()
    n = after = 0
    while True:
        batch = store.read_log(after, PAGE_SIZE)
        if not batch:
            break
        n += len(batch)
        after = batch[-1][0]
    elapsed = time.perf_counter() - t0
    store.close()
    return elapsed, n


def floor_read(path: Path, *, typed: bool = False) -> tuple[float, int]:
    """Read every row raw; decode each state untyped (the floor) or with ``codec.decode``."""
    decode = msgspec.json.decode
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    t0 = time.perf_counter()
    n = after = 0
    sql = "SELECT rowid, topic, state FROM stored_events WHERE rowid > ? ORDER BY rowid LIMIT ?"
    while True:
        rows = conn.execute(sql, (after, PAGE_SIZE)).fetchall()
        if not rows:
            break
        if typed:
            for _seq, topic, state in rows:
                typed_decode(topic, state)
        else:
            for _seq, _topic, state in rows:
                decode(state)
        n += len(rows)
        after = rows[-1][0]
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed, n


def check(projection: PortfolioProjection, meta: dict[str, Any]) -> None:
    """Fail unless the rebuilt portfolio matches what each backtest reported when it ran."""
    if len(projection.runs) != len(meta["runs"]):
        msg = f"rebuild saw {len(projection.runs)} runs, the log has {len(meta['runs'])}"
        raise SystemExit(msg)
    for run in meta["runs"]:
        view = next(v for v in projection.runs.values() if str(v.run_id) == run["run_id"])
        equity = str(view.ended.equity_final) if view.ended else None
        if view.fills != run["fills"] or equity != run["equity_final"]:
            msg = (
                f"run {run['run_id']}: rebuilt fills/equity {view.fills}/{equity} "
                f"!= written {run['fills']}/{run['equity_final']}"
            )
            raise SystemExit(msg)
    say(f"check: the rebuilt portfolio matches all {len(meta['runs'])} runs (fills and final equity)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / f"tradeledger-bench-w3-v{BUILD_VERSION}"
    )
    ap.add_argument("--rebuild-log", action="store_true", help="build the log again even if cached")
    ap.add_argument("--profile", action="store_true", help="cProfile one ledger rebuild and print the top")
    a = ap.parse_args()

    say(f"machine: {_util.machine_note()}")
    path, meta = cached_log(a.events, a.cache, force=a.rebuild_log)
    n = meta["events"]
    say(f"log: {n:,} events, {len(meta['runs'])} runs, {os.path.getsize(path) / 1e6:.0f} MB")
    floor_read(path)  # warm the page cache for everyone
    reb, rd, fl, ty = [], [], [], []
    for rep in range(a.reps):
        t_floor, n_floor = floor_read(path)
        t_typed, _ = floor_read(path, typed=True)
        t_read, n_read = ledger_read_only(path)
        t_rebuild, projection = ledger_rebuild(path)
        assert n_floor == n_read == n, (n_floor, n_read, n)
        if rep == 0:
            check(projection, meta)
        del projection  # a big live heap would slow the next measurements' garbage collections
        gc.collect()
        fl.append(t_floor)
        ty.append(t_typed)
        rd.append(t_read)
        reb.append(t_rebuild)
        say(
            f"rep {rep + 1}: rebuild {n / t_rebuild:,.0f} ev/s, read_log only {n / t_read:,.0f} ev/s, "
            f"raw + codec.decode {n / t_typed:,.0f} ev/s, floor {n / t_floor:,.0f} ev/s"
        )
    ratio = median([f / r for f, r in zip(fl, reb, strict=True)])
    ratio_read = median([f / r for f, r in zip(fl, rd, strict=True)])
    ratio_typed = median([f / r for f, r in zip(fl, ty, strict=True)])
    rows = [
        [
            "rebuild PortfolioProjection (read_log + apply)",
            f"{n / median(reb):,.0f}",
            f"{median(reb):.2f}",
            f"{ratio:.2f}",
        ],
        [
            "read_log only (rows -> typed events)",
            f"{n / median(rd):,.0f}",
            f"{median(rd):.2f}",
            f"{ratio_read:.2f}",
        ],
        [
            "raw sqlite3 + codec.decode (typed events, no store)",
            f"{n / median(ty):,.0f}",
            f"{median(ty):.2f}",
            f"{ratio_typed:.2f}",
        ],
        ["floor: raw sqlite3 + msgspec.json.decode", f"{n / median(fl):,.0f}", f"{median(fl):.2f}", "1.00"],
    ]
    say()
    say(
        _util.table(
            rows, [f"W3 over {n:,} events ({a.reps} reps, medians)", "events/s", "seconds", "ratio to floor*"]
        )
    )
    say("* median over repetitions of the paired ratio (floor seconds / seconds) within one repetition")
    say()
    say(
        f"target (issue): rebuild >= 0.50 of floor events/s -> ratio {ratio:.2f}: {'MET' if ratio >= 0.5 else 'MISSED'}"
    )
    if a.profile:
        store = open_store(str(path), create=False)
        prof = cProfile.Profile()
        prof.enable()
        rebuild(store, PortfolioProjection())
        prof.disable()
        store.close()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(25)
        say(out.getvalue())


if __name__ == "__main__":
    main()

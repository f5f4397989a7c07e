"""W2 cipher: what encrypting stored payloads costs, plaintext ledger vs encrypted ledger.

Both sides are the real ``LedgerStore``; the only difference is ``cipher_key`` (AES-256-GCM,
eventsourcing's ``AESCipher``, a fresh nonce per row). Measured side by side, interleaved in
blocks so both see the same disk and background load:

* append, one event per commit (the live path) and batches of 1,000 (the backtest path):
  W2's realistic ``OrderFilled`` events (``w2_append.make_fills``), on SQLite and PostgreSQL;
* rebuild: ``PortfolioProjection`` folded from zero over ``read_log`` pages (what
  ``projections.runner.rebuild`` does), and ``read_log`` alone, over a log of whole
  ``tradeledger backtest`` runs (SMA pairs over the real 130,708-bar BTC/USDT file) copied event
  for event into an encrypted ledger; the two ledgers are read page by page in turn. The copy
  is checked first (same chain heads, row by row the same decrypted bytes) and the two folds
  must end in the same portfolio.

The ratio is encrypted ev/s / plaintext ev/s (1.00 = free), the median over repetitions of the
ratio within one repetition.

    python bench/w2_cipher.py                    # SQLite and PostgreSQL, 200,000-event rebuild log
    python bench/w2_cipher.py --no-pg --events 100000
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
from _util import median, say
from w2_append import BATCH, make_fills, pg_problem, pg_reset

from ledger import bootstrap
from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store import LedgerStore, PayloadCipher, new_cipher_key, open_store
from ledger.domain.events import OrderFilled
from ledger.domain.identifiers import run_id_for
from projections.portfolio import PortfolioProjection
from projections.runner import PAGE_SIZE

KEY = new_cipher_key()
SINGLE_BLOCK = 250  # one-event commits per interleaved block
PAIRS = [(10, 30), (9, 30), (11, 30), (8, 25), (12, 35), (10, 40), (7, 21), (14, 42), (6, 24), (15, 45)]


# -- append ----------------------------------------------------------------------------------


def append_pair(
    open_plain: Callable[[], LedgerStore],
    open_sealed: Callable[[], LedgerStore],
    events: list[OrderFilled],
    *,
    single: bool,
) -> tuple[float, float]:
    """Return (plaintext seconds, encrypted seconds) appending ``events`` to two new ledgers."""
    plain, sealed = open_plain(), open_sealed()
    times = [0.0, 0.0]
    pc = time.perf_counter
    step = SINGLE_BLOCK if single else BATCH
    for start in range(0, len(events), step):
        block = events[start : start + step]
        for i, store in enumerate((plain, sealed)):
            append = store.append
            t0 = pc()
            if single:
                for e in block:
                    append([e])
            else:
                append(block)
            times[i] += pc() - t0
    plain.close()
    sealed.close()
    return times[0], times[1]


def run_append(
    label: str,
    opener: Callable[[str, str | None], LedgerStore],
    events: list[OrderFilled],
    reps: int,
    *,
    single: bool,
) -> list[str]:
    """Time ``reps`` interleaved repetitions; return one report row."""
    n = len(events)
    plain_t, sealed_t = [], []
    for rep in range(reps):
        p, s = append_pair(
            functools.partial(opener, f"plain{rep}", None),
            functools.partial(opener, f"sealed{rep}", KEY),
            events,
            single=single,
        )
        plain_t.append(p)
        sealed_t.append(s)
        say(
            f"{label} rep {rep + 1}: plaintext {n / p:,.0f} ev/s, encrypted {n / s:,.0f} ev/s, ratio {p / s:.3f}"
        )
    ratio = median([p / s for p, s in zip(plain_t, sealed_t, strict=True)])
    per_event_us = (median(sealed_t) - median(plain_t)) / n * 1e6
    return [
        label,
        f"{n:,}",
        f"{n / median(plain_t):,.0f}",
        f"{n / median(sealed_t):,.0f}",
        f"**{ratio:.3f}**",
        f"{per_event_us:+.1f}",
    ]


def cipher_alone(events: list[OrderFilled], reps: int) -> list[list[str]]:
    """Return rows for sealing and opening W2's stored states with no store around them."""
    head = ChainHead(n=0, hash=GENESIS_HASH)
    states = []
    for e in events:
        _, state, head = codec.encode(e, head)
        states.append(state)
    cipher = PayloadCipher(KEY)
    sealed = [cipher.encrypt(s) for s in states]
    seal_t, open_t = [], []
    pc = time.perf_counter
    for _ in range(reps):
        t0 = pc()
        for s in states:
            cipher.encrypt(s)
        seal_t.append(pc() - t0)
        t0 = pc()
        for s in sealed:
            cipher.decrypt(s, "row")
        open_t.append(pc() - t0)
    n = len(states)
    size = sum(map(len, states)) / n
    return [
        [
            f"AES-GCM seal alone ({size:.0f}-byte states)",
            f"{n:,}",
            "-",
            f"{n / median(seal_t):,.0f}",
            "-",
            f"+{median(seal_t) / n * 1e6:.1f}",
        ],
        [
            f"AES-GCM open alone ({size:.0f}-byte states)",
            f"{n:,}",
            "-",
            f"{n / median(open_t):,.0f}",
            "-",
            f"+{median(open_t) / n * 1e6:.1f}",
        ],
    ]


# -- rebuild ---------------------------------------------------------------------------------


def build_logs(tmp: Path, target: int) -> tuple[Path, Path]:
    """Write real backtest runs into a plaintext ledger, then copy them into an encrypted one."""
    plain_path, sealed_path = tmp / "plain.db", tmp / "sealed.db"
    t0 = time.perf_counter()
    total, i = 0, 0
    while total < target:
        fast, slow = PAIRS[i % len(PAIRS)]
        request = bootstrap.BacktestRequest(
            ledger_url=str(plain_path),
            data_path=_util.REAL_1M,
            strategy="sma",
            params={"fast": str(fast), "slow": str(slow)},
            seed=i // len(PAIRS),
        )
        _, store = bootstrap.run_backtest_request(request)
        total = store.max_seq()
        store.close()
        i += 1
    say(f"log: {i} backtest runs, {total:,} events in {time.perf_counter() - t0:.0f}s")
    plain = open_store(str(plain_path), create=False)
    sealed = open_store(str(sealed_path), create=True, cipher_key=KEY)
    after = 0
    while page := plain.read_log(after, 20_000):
        sealed.append_chunked([e for _, e in page])
        after = page[-1][0]
    check_copy(plain, sealed)
    plain.close()
    sealed.close()
    return plain_path, sealed_path


def check_copy(plain: LedgerStore, sealed: LedgerStore) -> None:
    """Fail unless the encrypted copy decrypts to the plaintext log, byte for byte."""
    if plain.chain_heads() != sealed.chain_heads():
        msg = "the encrypted copy's chain heads differ from the plaintext log's"
        raise SystemExit(msg)
    after = 0
    while rows := plain.read_rows(after, 20_000):
        if [r.state for r in rows] != [r.state for r in sealed.read_rows(after, 20_000)]:
            msg = f"the encrypted copy decrypts to other bytes after seq {after}"
            raise SystemExit(msg)
        after = rows[-1].seq
    say(
        f"check: the encrypted copy decrypts to the plaintext log byte for byte ({after:,} rows, same chain heads)"
    )


def paired_fold(plain_path: Path, sealed_path: Path, *, fold: bool) -> tuple[float, float]:
    """Return (plaintext, encrypted) seconds reading both logs, and folding them if ``fold``.

    The two ledgers are read in lockstep, one ``read_log`` page of each in turn, so both see
    the same machine at the same moment (the way W2 interleaves its blocks). The fold is
    ``PortfolioProjection.apply``, as ``projections.runner.rebuild`` runs it: page by page, with
    the cycle collector paused.
    """
    plain = open_store(str(plain_path), create=False)
    sealed = open_store(str(sealed_path), create=False, cipher_key=KEY)
    projections = [PortfolioProjection(), PortfolioProjection()]
    times = [0.0, 0.0]
    cursors = [0, 0]
    pc = time.perf_counter
    gc.disable()
    try:
        while True:
            done = 0
            for i, store in enumerate((plain, sealed)):
                t0 = pc()
                batch = store.read_log(cursors[i], PAGE_SIZE)
                if fold:
                    apply = projections[i].apply
                    for _, event in batch:
                        apply(event)
                times[i] += pc() - t0
                if not batch:
                    done += 1
                else:
                    cursors[i] = batch[-1][0]
            if done == 2:  # both ledgers are read to the end
                break
    finally:
        gc.enable()
        plain.close()
        sealed.close()
    if fold and _summary(projections[0]) != _summary(projections[1]):
        msg = "the encrypted log folds to another portfolio than the plaintext one"
        raise SystemExit(msg)
    del projections
    gc.collect()
    return times[0], times[1]


def _summary(projection: PortfolioProjection) -> list[tuple[str, int, str]]:
    return sorted(
        (str(v.run_id), v.fills, str(v.ended.equity_final if v.ended else None))
        for v in projection.runs.values()
    )


def run_rebuild(plain_path: Path, sealed_path: Path, n: int, reps: int) -> list[list[str]]:
    rows = []
    for label, fold in (("rebuild PortfolioProjection", True), ("read_log only", False)):
        plain_t, sealed_t = [], []
        for rep in range(reps):
            p, s = paired_fold(plain_path, sealed_path, fold=fold)
            plain_t.append(p)
            sealed_t.append(s)
            say(f"{label} rep {rep + 1}: plaintext {p:.2f}s, encrypted {s:.2f}s, ratio {p / s:.3f}")
        ratio = median([p / s for p, s in zip(plain_t, sealed_t, strict=True)])
        rows.append(
            [
                f"SQLite {label}",
                f"{n:,}",
                f"{n / median(plain_t):,.0f}",
                f"{n / median(sealed_t):,.0f}",
                f"**{ratio:.3f}**",
                f"{(median(sealed_t) - median(plain_t)) / n * 1e6:+.1f}",
            ]
        )
    return rows


# -- main ------------------------------------------------------------------------------------


def append_rows(a: argparse.Namespace, events: list[OrderFilled], tmp: Path) -> list[list[str]]:
    """Run the four append measurements (SQLite, then PostgreSQL when it answers)."""

    def sqlite_store(name: str, key: str | None) -> LedgerStore:
        path = tmp / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return open_store(str(path), create=True, cipher_key=key)

    single, batched = events[: a.single_n], events[: a.n]
    rows = [
        run_append("SQLite append one per commit", sqlite_store, single, a.reps, single=True),
        run_append(f"SQLite append batches of {BATCH}", sqlite_store, batched, a.reps, single=False),
    ]
    if a.no_pg:
        say("PostgreSQL: skipped (--no-pg)")
        return rows
    if (problem := pg_problem(a.pg_url)) is not None:
        say(f"PostgreSQL: SKIPPED, the server at {a.pg_url} does not answer ({problem})")
        return rows
    base = a.pg_url.split("?", 1)[0]

    def pg_store(name: str, key: str | None) -> LedgerStore:
        pg_reset(a.pg_url, f"bench_w2c_{name}")
        return open_store(f"{base}?schema=bench_w2c_{name}", create=True, cipher_key=key)

    rows.append(run_append("PostgreSQL append one per commit", pg_store, single, a.reps, single=True))
    rows.append(run_append(f"PostgreSQL append batches of {BATCH}", pg_store, batched, a.reps, single=False))
    for rep in range(a.reps):
        for name in (f"plain{rep}", f"sealed{rep}"):
            pg_reset(a.pg_url, f"bench_w2c_{name}")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000, help="events for batched appends (default 50,000)")
    ap.add_argument("--single-n", type=int, default=5_000, help="events for one-per-commit (default 5,000)")
    ap.add_argument("--events", type=int, default=200_000, help="rebuild log size (default 200,000+)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pg-url", default=_util.PG_URL_DEFAULT)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument("--no-append", action="store_true", help="only the cipher alone and the rebuild")
    a = ap.parse_args()

    say(f"machine: {_util.machine_note()}")
    events = make_fills(max(a.n, a.single_n), run_id_for("bench-w2-cipher"))
    rows = cipher_alone(events[: a.n], a.reps)
    with tempfile.TemporaryDirectory(prefix="tl-w2c-") as d:
        tmp = Path(d)
        if not a.no_append:
            rows += append_rows(a, events, tmp)
        plain_path, sealed_path = build_logs(tmp, a.events)
        n = open_store(str(plain_path), create=False).max_seq()
        paired_fold(plain_path, sealed_path, fold=False)  # warm the page cache for both
        rows += run_rebuild(plain_path, sealed_path, n, a.reps)
    say()
    say(
        _util.table(
            rows, ["W2 cipher", "events", "plaintext ev/s", "encrypted ev/s", "ratio*", "cost us/event"]
        )
    )
    say("* encrypted ev/s / plaintext ev/s: median over repetitions of the ratio within one repetition")
    say("  cost = (encrypted - plaintext median seconds) / events; the cipher-alone rows time only AES-GCM")


if __name__ == "__main__":
    main()

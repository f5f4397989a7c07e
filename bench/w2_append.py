"""W2 append: OrderFilled events through LedgerStore vs raw sqlite3 / psycopg inserts of the same bytes.

Two paths, each on SQLite (temp file, WAL, synchronous=FULL) and PostgreSQL:

* one event per commit (the live path): ``store.append([event])`` per fill, against a raw
  ``BEGIN; INSERT; COMMIT`` of the same (originator_id, version, topic, state) row;
* batches of 1,000 (the backtest path): ``store.append(chunk)``, against ``executemany`` of
  the same 1,000 rows in one transaction.

The floor's rows are the very bytes the ledger stores: every event is encoded once with
``codec.encode`` along the run's hash chain from genesis, and the first repetition checks that
the ledger's table holds exactly those rows. The ledger's time includes its own encoding,
chain bookkeeping and chain_segments insert; the floor only inserts. The fills are realistic:
real BTC/USDT prices (consecutive 1m closes of the 2025-05-20..08-18 Binance file), a
quantity on the 0.00001 step, fee = 0.1 % of notional, the previous close as expected price.

    python bench/w2_append.py                      # default: 100,000 batched, 20,000 one-per-commit
    python bench/w2_append.py --single-n 100000    # the full 100,000 one-per-commit (slower)
    python bench/w2_append.py --no-pg              # SQLite only
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _util
from _util import median, percentile, say

from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store import open_store
from ledger.domain.events import OrderFilled, Side
from ledger.domain.identifiers import order_stream_id, run_id_for
from ledger.domain.numbers import LEDGER_CONTEXT

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STEP = Decimal("0.00001")
FEE_RATE = Decimal("0.001")
BATCH = 1000
SINGLE_BLOCK = 250  # one-event commits per interleaved block
EVENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS stored_events ("
    "originator_id TEXT, originator_version INTEGER, topic TEXT, state BLOB, "
    "PRIMARY KEY (originator_id, originator_version))"
)  # eventsourcing 9.5.6 SQLiteApplicationRecorder's table, verbatim
INSERT = "INSERT INTO stored_events VALUES (?,?,?,?)"

Row = tuple[Any, int, str, bytes]


# -- workload ------------------------------------------------------------------------------


def make_fills(n: int, run_id: UUID, seed: int = 2) -> list[OrderFilled]:
    """Return ``n`` realistic fills of one run, each the 4th event of its own order stream."""
    bars = _util.real_closes()
    rng = random.Random(seed)
    fills: list[OrderFilled] = []
    prefix = run_id.hex[:12]
    with localcontext(LEDGER_CONTEXT):
        for i in range(n):
            ts, open_, _close = bars[(i + 1) % len(bars)]
            price = Decimal(open_)
            expected = Decimal(bars[i % len(bars)][2])
            qty = rng.randint(10, 5000) * STEP
            client_order_id = f"tl-{prefix}-{i + 1:07d}"
            fills.append(
                OrderFilled(
                    originator_id=order_stream_id(client_order_id),
                    originator_version=4,  # after OrderPlaced, OrderSubmitted, OrderAccepted
                    occurred_at=EPOCH + timedelta(milliseconds=ts + rng.randint(5, 900)),
                    run_id=run_id,
                    client_order_id=client_order_id,
                    venue="binance",
                    instrument="BTC/USDT",
                    venue_trade_id=str(4_950_000_000 + i),
                    side=Side.BUY if i % 2 == 0 else Side.SELL,
                    qty=qty,
                    price=price,
                    fee=qty * price * FEE_RATE,
                    fee_asset="USDT",
                    price_expected=expected,
                )
            )
    return fills


def encode_rows(events: list[OrderFilled]) -> list[tuple[UUID, int, str, bytes]]:
    """Return the rows the ledger stores for ``events`` appended to a new run, in order."""
    head = ChainHead(n=0, hash=GENESIS_HASH)
    rows = []
    for e in events:
        topic, state, head = codec.encode(e, head)
        rows.append((e.originator_id, e.originator_version, topic, state))
    return rows


# -- SQLite --------------------------------------------------------------------------------


def _fresh(tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


def _floor_conn(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute(EVENTS_DDL)
    return conn


def _sqlite_rows(rows: list[tuple[UUID, int, str, bytes]]) -> list[Row]:
    return [(u.hex, v, t, s) for u, v, t, s in rows]


class Pair:
    """Elapsed time and per-commit latencies of the ledger and of the floor, side by side."""

    def __init__(self) -> None:
        self.ledger = 0.0
        self.floor = 0.0
        self.ledger_lat: list[float] = []
        self.floor_lat: list[float] = []


def sqlite_pair(tmp: Path, events: list[OrderFilled], rows: list[Row], *, single: bool) -> tuple[Pair, Path]:
    """Append ``events`` through a new ledger and ``rows`` through the raw floor, interleaved.

    The two alternate in blocks (SINGLE_BLOCK one-event commits, or one 1,000-event batch), so
    both see the same disk and the same background load; each block is timed on its own.
    """
    lpath, fpath = _fresh(tmp, "ledger"), _fresh(tmp, "floor")
    store = open_store(str(lpath), create=True)
    append = store.append
    conn = _floor_conn(fpath)
    execute, commit = conn.execute, conn.commit
    pair = Pair()
    pc = time.perf_counter
    step = SINGLE_BLOCK if single else BATCH
    for start in range(0, len(events), step):
        block, block_rows = events[start : start + step], rows[start : start + step]
        if single:
            lat = pair.ledger_lat
            t0 = pc()
            for e in block:
                t = pc()
                append([e])
                lat.append(pc() - t)
            pair.ledger += pc() - t0
            lat = pair.floor_lat
            t0 = pc()
            for row in block_rows:
                t = pc()
                execute("BEGIN")
                execute(INSERT, row)
                commit()
                lat.append(pc() - t)
            pair.floor += pc() - t0
        else:
            t0 = pc()
            append(block)
            pair.ledger += pc() - t0
            t0 = pc()
            execute("BEGIN")
            conn.executemany(INSERT, block_rows)
            commit()
            pair.floor += pc() - t0
    store.close()
    conn.close()
    return pair, lpath


def check_same_bytes(path: Path, rows: list[Row]) -> None:
    """Fail loudly unless the ledger file holds exactly ``rows`` in order."""
    conn = sqlite3.connect(str(path))
    stored = conn.execute(
        "SELECT originator_id, originator_version, topic, state FROM stored_events ORDER BY rowid"
    ).fetchall()
    conn.close()
    if stored != rows[: len(stored)] or len(stored) != len(rows):
        msg = f"{path}: the ledger's rows differ from the floor's bytes"
        raise SystemExit(msg)


# -- PostgreSQL ----------------------------------------------------------------------------


def pg_connect(url: str) -> Any:
    import psycopg  # noqa: PLC0415

    base = url.split("?", 1)[0]
    return psycopg.connect(base, connect_timeout=3, autocommit=True)


def pg_reset(url: str, schema: str) -> None:
    with pg_connect(url) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def pg_floor_table(conn: Any, schema: str) -> None:
    # eventsourcing 9.5.6 PostgresApplicationRecorder's table and notification index.
    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    conn.execute(
        f'CREATE TABLE "{schema}".stored_events (originator_id uuid NOT NULL, '
        "originator_version bigint NOT NULL, topic text, state bytea, notification_id bigserial, "
        "PRIMARY KEY (originator_id, originator_version))"
    )
    conn.execute(f'CREATE UNIQUE INDEX ON "{schema}".stored_events (notification_id ASC)')


def pg_pair(
    url: str,
    events: list[OrderFilled],
    rows: list[tuple[UUID, int, str, bytes]],
    *,
    single: bool,
    plain: bool = False,
) -> Pair:
    """PostgreSQL twin of ``sqlite_pair``: ledger schema and floor schema, interleaved blocks.

    The floor is the least work that stores the rows durably: one prepared INSERT in an implicit
    transaction per event (one round trip), one INSERT ... SELECT FROM unnest(arrays) per batch.
    ``plain``: the textbook psycopg floor instead, execute + commit (BEGIN, INSERT, COMMIT: three
    round trips) per event and executemany + commit per batch.
    """
    lschema, fschema = "bench_w2_ledger", "bench_w2_floor"
    pg_reset(url, lschema)
    pg_reset(url, fschema)
    store = open_store(f"{url.split('?', 1)[0]}?schema={lschema}", create=True)
    append = store.append
    conn = pg_connect(url)  # autocommit: each statement is its own durable transaction
    pg_floor_table(conn, fschema)
    sql = (
        f'INSERT INTO "{fschema}".stored_events (originator_id, originator_version, topic, state) '  # noqa: S608
        "VALUES (%s, %s, %s, %s)"
    )
    sql_arrays = (
        f'INSERT INTO "{fschema}".stored_events (originator_id, originator_version, topic, state) '  # noqa: S608
        "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[])"
    )
    pair = Pair()
    pc = time.perf_counter
    step = SINGLE_BLOCK if single else BATCH
    if plain:
        conn.autocommit = False
    with conn.cursor() as cur:
        for start in range(0, len(events), step):
            block, block_rows = events[start : start + step], rows[start : start + step]
            if single:
                lat = pair.ledger_lat
                t0 = pc()
                for e in block:
                    t = pc()
                    append([e])
                    lat.append(pc() - t)
                pair.ledger += pc() - t0
                lat = pair.floor_lat
                t0 = pc()
                for row in block_rows:
                    t = pc()
                    cur.execute(sql, row, prepare=True)  # tuned: one round trip, implicit transaction
                    if plain:
                        conn.commit()
                    lat.append(pc() - t)
                pair.floor += pc() - t0
            else:
                t0 = pc()
                append(block)
                pair.ledger += pc() - t0
                t0 = pc()
                if plain:
                    cur.executemany(sql, block_rows)
                    conn.commit()
                else:
                    cur.execute(sql_arrays, [list(c) for c in zip(*block_rows, strict=True)])
                pair.floor += pc() - t0
    store.close()
    conn.close()
    return pair


def pg_problem(url: str) -> str | None:
    """Return why PostgreSQL cannot be benchmarked, or None when it answers."""
    try:
        with pg_connect(url) as conn:
            sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
            fsync = conn.execute("SHOW fsync").fetchone()[0]
            version = conn.execute("SHOW server_version").fetchone()[0]
    except Exception as e:  # noqa: BLE001 - any failure means: skip with the reason
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else e!r}"
    durable = (
        "durable commits" if sync == "on" and fsync == "on" else "NOT durable: figures are not comparable"
    )
    say(f"PostgreSQL {version} at {url}: synchronous_commit={sync}, fsync={fsync} ({durable})")
    return None


# -- report --------------------------------------------------------------------------------


def summarise(name: str, n: int, times: list[float], lats: list[list[float]] | None) -> dict[str, Any]:
    rates = [n / t for t in times]
    out: dict[str, Any] = {"name": name, "n": n, "reps": len(times), "rate": median(rates), "rates": rates}
    if lats:
        p50s, p99s, maxs = [], [], []
        for lat in lats:
            s = sorted(lat)
            p50s.append(percentile(s, 0.50) * 1e3)
            p99s.append(percentile(s, 0.99) * 1e3)
            maxs.append(s[-1] * 1e3)
        out.update(p50=median(p50s), p99=median(p99s), p99s=p99s, max=median(maxs))
    return out


def report(results: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    rows = []
    for ledger, floor in results:
        ratio = ledger["ratio"]
        lat = lambda r: f"{r['p50']:.3f} / {r['p99']:.3f}" if "p50" in r else "-"  # noqa: E731
        rows.append(
            [
                ledger["name"],
                f"{ledger['n']:,}",
                str(ledger["reps"]),
                f"{ledger['rate']:,.0f}",
                f"{floor['rate']:,.0f}",
                f"{ratio:.3f}",
                lat(ledger),
                lat(floor),
            ]
        )
    say()
    say(
        _util.table(
            rows,
            [
                "W2 path",
                "events",
                "reps",
                "ledger ev/s",
                "floor ev/s",
                "ratio*",
                "ledger p50/p99 ms",
                "floor p50/p99 ms",
            ],
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="events for the batched path (default 100,000)")
    ap.add_argument("--single-n", type=int, default=20_000, help="events for one-per-commit (default 20,000)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pg-url", default=_util.PG_URL_DEFAULT)
    ap.add_argument("--no-pg", action="store_true")
    ap.add_argument(
        "--pg-floor",
        choices=["tuned", "plain"],
        default="tuned",
        help="tuned: 1 round trip per event / unnest arrays per batch (default); "
        "plain: execute+commit / executemany+commit",
    )
    ap.add_argument("--no-sqlite", action="store_true")
    ap.add_argument("--tmp", default=None, help="directory for the SQLite files (default: a new temp dir)")
    a = ap.parse_args()

    say(f"machine: {_util.machine_note()}")
    n_all = max(a.n, a.single_n)
    t = time.perf_counter()
    run_id = run_id_for("bench-w2")
    events = make_fills(n_all, run_id)
    rows = encode_rows(events)
    say(
        f"built {n_all:,} OrderFilled events from real BTC/USDT closes in {time.perf_counter() - t:.1f}s; "
        f"mean stored state {sum(len(r[3]) for r in rows) / len(rows):.0f} bytes"
    )
    if a.single_n < 100_000:
        say(
            f"NOTE: one-per-commit uses the first {a.single_n:,} events (not 100,000) to keep the run short; "
            "pass --single-n 100000 for the full count"
        )
    results: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def run(kind: str, pair_of: Any, n: int, *, single: bool) -> None:
        pairs = []
        for rep in range(a.reps):
            pair = pair_of(rep, single=single, n=n)
            pairs.append(pair)
            say(
                f"{kind} {'one per commit' if single else 'batched'} rep {rep + 1}: "
                f"ledger {n / pair.ledger:,.0f}/s, floor {n / pair.floor:,.0f}/s, ratio {pair.floor / pair.ledger:.3f}"
            )
        label = f"{kind} one per commit" if single else f"{kind} batches of {BATCH}"
        ledger = summarise(
            label, n, [p.ledger for p in pairs], [p.ledger_lat for p in pairs] if single else None
        )
        ledger["ratio"] = median([p.floor / p.ledger for p in pairs])  # paired: same rep, same disk weather
        results.append(
            (
                ledger,
                summarise(
                    "floor", n, [p.floor for p in pairs], [p.floor_lat for p in pairs] if single else None
                ),
            )
        )

    if not a.no_sqlite:
        with tempfile.TemporaryDirectory(prefix="tl-w2-", dir=a.tmp) as d:
            tmp = Path(d)
            srows = _sqlite_rows(rows)

            def sqlite_rep(rep: int, *, single: bool, n: int) -> Pair:
                pair, path = sqlite_pair(tmp, events[:n], srows[:n], single=single)
                if rep == 0:
                    check_same_bytes(path, srows[:n])
                return pair

            run("SQLite", sqlite_rep, a.single_n, single=True)
            run("SQLite", sqlite_rep, a.n, single=False)
            say("SQLite: the ledger's rows are byte-identical to the floor's (checked on rep 1 of each path)")

    if a.no_pg:
        say("PostgreSQL: skipped (--no-pg)")
    else:
        problem = pg_problem(a.pg_url)
        if problem is not None:
            say(f"PostgreSQL: SKIPPED, the server at {a.pg_url} does not answer ({problem})")
        else:
            say(
                "PostgreSQL floor: "
                + (
                    "plain psycopg (execute + commit per event, executemany + commit per batch)"
                    if a.pg_floor == "plain"
                    else "tuned (one prepared INSERT in an implicit transaction per event, "
                    "one INSERT ... SELECT FROM unnest(arrays) per batch)"
                )
            )

            def pg_rep(rep: int, *, single: bool, n: int) -> Pair:  # noqa: ARG001 - same shape as sqlite_rep
                return pg_pair(a.pg_url, events[:n], rows[:n], single=single, plain=a.pg_floor == "plain")

            run("PostgreSQL", pg_rep, a.single_n, single=True)
            run("PostgreSQL", pg_rep, a.n, single=False)
            for schema in ("bench_w2_ledger", "bench_w2_floor"):
                pg_reset(a.pg_url, schema)

    report(results)
    say(
        "* ratio = median over repetitions of (ledger ev/s / floor ev/s) within the same repetition; "
        "ledger and floor alternate in blocks, so both see the same disk and background load"
    )
    say()
    say(
        "targets (issue): batched >= 0.50 of floor ev/s; one per commit >= 0.80 of floor ev/s, SQLite p99 <= 5 ms"
    )
    for ledger, _floor in results:
        ratio = ledger["ratio"]
        if "p50" in ledger:
            ok = ratio >= 0.80 and (not ledger["name"].startswith("SQLite") or ledger["p99"] <= 5.0)
            extra = f", p99 {ledger['p99']:.3f} ms" if ledger["name"].startswith("SQLite") else ""
            say(f"  {ledger['name']}: ratio {ratio:.3f}{extra} -> {'MET' if ok else 'MISSED'}")
        else:
            say(f"  {ledger['name']}: ratio {ratio:.3f} -> {'MET' if ratio >= 0.50 else 'MISSED'}")


if __name__ == "__main__":
    main()

"""DuckDB analytics projection: typed tables kept current from the log, exactly once.

Tables: ``events`` (every event with its JSON payload), ``fills``, ``decisions``,
``orders_placed`` and ``order_updates`` (with the ``orders`` view: each order with its latest
status) are appended incrementally; ``positions``, ``balances`` and ``equity`` are rewritten from
the portfolio projection at the same log position. Rows and the ``tracking`` position commit in
one DuckDB transaction. Ledger values are ``DECIMAL(38,18)`` computed in Python; SQL only sums.
The file is a projection: delete it and it is rebuilt from the log.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any, BinaryIO
from uuid import UUID

import duckdb
import msgspec

from ledger.domain.events import (
    DecisionMade,
    DecisionRejected,
    LedgerEvent,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPlaced,
    OrderRejected,
    OrderSubmitted,
    RunStarted,
)
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO
from ledger.ports import EventLogReader
from projections.base import decode_state, encode_state
from projections.portfolio import PortfolioProjection
from projections.positions import Position, apply_fill

NAME = "analytics"
VERSION = 3  # 2: fills.pnl_realized; 3: decisions.output, decisions.rejected_reason
PAGE = 20_000
DEC = "DECIMAL(38,18)"

TABLES: dict[str, dict[str, str]] = {
    "events": {
        "seq": "BIGINT",
        "run_id": "UUID",
        "topic": "VARCHAR",
        "originator_id": "UUID",
        "originator_version": "INTEGER",
        "occurred_at": "TIMESTAMPTZ",
        "payload": "JSON",
    },
    "fills": {
        "seq": "BIGINT",
        "run_id": "UUID",
        "client_order_id": "VARCHAR",
        "venue": "VARCHAR",
        "instrument": "VARCHAR",
        "venue_trade_id": "VARCHAR",
        "side": "VARCHAR",
        "qty": DEC,
        "price": DEC,
        "notional": DEC,
        "fee": DEC,
        "fee_asset": "VARCHAR",
        "price_expected": DEC,
        "pnl_realized": DEC,  # what this fill realized (average cost, net of fees); 0 if it opened
        "occurred_at": "TIMESTAMPTZ",
    },
    "decisions": {
        "seq": "BIGINT",
        "run_id": "UUID",
        "decision_id": "VARCHAR",
        "source": "VARCHAR",
        "instrument": "VARCHAR",
        "action": "VARCHAR",
        "qty": DEC,
        "qty_quote": DEC,
        "confidence": DEC,
        "rationale": "VARCHAR",
        "input_digest": "VARCHAR",
        "output": "VARCHAR",  # the source's raw answer (an agent's reply as it came)
        "rejected_reason": "VARCHAR",  # NULL for a decision made; why a refused answer was refused
        "occurred_at": "TIMESTAMPTZ",
    },
    "orders_placed": {
        "seq": "BIGINT",
        "run_id": "UUID",
        "client_order_id": "VARCHAR",
        "instrument": "VARCHAR",
        "side": "VARCHAR",
        "order_type": "VARCHAR",
        "qty": DEC,
        "qty_quote": DEC,
        "price_limit": DEC,
        "price_expected": DEC,
        "placed_at": "TIMESTAMPTZ",
    },
    "order_updates": {
        "seq": "BIGINT",
        "run_id": "UUID",
        "client_order_id": "VARCHAR",
        "status": "VARCHAR",
        "reason": "VARCHAR",
        "occurred_at": "TIMESTAMPTZ",
    },
    "positions": {
        "run_id": "UUID",
        "instrument": "VARCHAR",
        "qty_open": DEC,
        "price_avg": DEC,
        "price_last": DEC,
        "pnl_realized": DEC,
        "pnl_unrealized": DEC,
        "fee_total": DEC,
    },
    "balances": {"run_id": "UUID", "asset": "VARCHAR", "total": DEC, "reserved": DEC, "free": DEC},
    "equity": {"run_id": "UUID", "marked_at": "TIMESTAMPTZ", "equity": DEC, "exposed": "BOOLEAN"},
}
APPENDED = ("events", "fills", "decisions", "orders_placed", "order_updates")
REWRITTEN = ("positions", "balances", "equity")

_STATUS: dict[type, str] = {
    OrderSubmitted: "submitted",
    OrderAccepted: "accepted",
    OrderDenied: "denied",
    OrderRejected: "rejected",
    OrderCancelRequested: "cancel_requested",
    OrderCanceled: "canceled",
    OrderExpired: "expired",
    OrderFilled: "filled",
}
_ENCODER = msgspec.json.Encoder(decimal_format="string")


class QueryError(Exception):
    """DuckDB refused a query; the message is DuckDB's own."""


class AnalyticsBusyError(Exception):
    """Another process kept the DuckDB file locked for longer than we wait."""


# Why wait: DuckDB lets one process open a file for writing, or many for reading, never both.
# Syncs hold the file for one short transaction (a follower, a backtest's final sync, a
# query), so a second process waits for its turn instead of failing.
LOCK_WAIT_S = 30.0
LOCK_POLL_S = 0.02


def _connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower():
                raise
            if time.monotonic() >= deadline:
                msg = (
                    f"{path} stayed locked by another process for {LOCK_WAIT_S:g} s "
                    f"(DuckDB: {str(e).splitlines()[0]}); stop it or wait and retry"
                )
                raise AnalyticsBusyError(msg) from e
            time.sleep(LOCK_POLL_S)


@dataclass(kw_only=True)
class _FillBook:
    """Positions by (run, instrument), folded alongside the rows to price each fill's PnL.

    Saved with ``tracking`` in the same transaction, so an incremental sync resumes exactly.
    """

    quotes: dict[str, str] = field(default_factory=dict)  # run id -> quote asset
    positions: dict[str, Position] = field(default_factory=dict)  # "run|instrument" -> position

    def realize(self, fill: OrderFilled) -> Decimal:
        run = str(fill.run_id)
        key = f"{run}|{fill.instrument}"
        position = self.positions.get(key, Position(instrument=fill.instrument))
        fee_in_quote = fill.fee_asset == self.quotes.get(run)
        position, close = apply_fill(position, fill, fee_in_quote=fee_in_quote)
        self.positions[key] = position
        return ZERO if close is None else close.pnl


def _schema(con: duckdb.DuckDBPyConnection) -> tuple[int, _FillBook]:
    """Create the tables; return the position synced up to and the fill book saved with it.

    A file written by another projection version is dropped table by table and rebuilt.
    """
    con.execute(
        "CREATE TABLE IF NOT EXISTS tracking "
        "(projection VARCHAR PRIMARY KEY, last_seq BIGINT, version INTEGER)"
    )
    con.execute("ALTER TABLE tracking ADD COLUMN IF NOT EXISTS state BLOB")
    found = con.execute(
        "SELECT last_seq, version, state FROM tracking WHERE projection = ?", [NAME]
    ).fetchone()
    current = found is not None and found[1] == VERSION
    if not current:
        con.execute("DROP VIEW IF EXISTS orders")
        for table in TABLES:
            con.execute(f"DROP TABLE IF EXISTS {table}")
    for table, columns in TABLES.items():
        body = ", ".join(f'"{name}" {kind}' for name, kind in columns.items())
        con.execute(f"CREATE TABLE IF NOT EXISTS {table} ({body})")
    con.execute(
        "CREATE OR REPLACE VIEW orders AS SELECT p.*, coalesce(u.status, 'placed') AS status, "
        "u.reason AS status_reason, u.occurred_at AS updated_at FROM orders_placed p LEFT JOIN "
        "(SELECT * FROM order_updates QUALIFY row_number() OVER (PARTITION BY client_order_id "
        "ORDER BY seq DESC) = 1) u USING (client_order_id)"
    )
    if found is None or not current:
        return 0, _FillBook()
    return int(found[0]), decode_state(found[2], _FillBook)


def _rows(seq: int, event: LedgerEvent, book: _FillBook) -> Iterable[tuple[str, dict[str, Any]]]:
    base = {"seq": seq, "run_id": str(event.run_id)}
    yield (
        "events",
        {
            **base,
            "topic": type(event).__name__,
            "originator_id": str(event.originator_id),
            "originator_version": event.originator_version,
            "occurred_at": event.occurred_at,
            "payload": msgspec.json.decode(_ENCODER.encode(event)),
        },
    )
    if isinstance(event, RunStarted):
        book.quotes[str(event.run_id)] = event.quote_asset
    elif isinstance(event, OrderFilled):
        with localcontext(LEDGER_CONTEXT):
            notional = event.qty * event.price
        yield (
            "fills",
            {
                **base,
                "client_order_id": event.client_order_id,
                "venue": event.venue,
                "instrument": event.instrument,
                "venue_trade_id": event.venue_trade_id,
                "side": event.side.value,
                "qty": event.qty,
                "price": event.price,
                "notional": notional,
                "fee": event.fee,
                "fee_asset": event.fee_asset,
                "price_expected": event.price_expected,
                "pnl_realized": book.realize(event),
                "occurred_at": event.occurred_at,
            },
        )
    elif isinstance(event, DecisionMade):
        yield (
            "decisions",
            {
                **base,
                "decision_id": event.decision_id,
                "source": event.source,
                "instrument": event.instrument,
                "action": event.action.value,
                "qty": event.qty,
                "qty_quote": event.qty_quote,
                "confidence": event.confidence,
                "rationale": event.rationale,
                "input_digest": event.input_digest,
                "output": event.output,
                "rejected_reason": None,
                "occurred_at": event.occurred_at,
            },
        )
    elif isinstance(event, DecisionRejected):
        yield (
            "decisions",
            {
                **base,
                "decision_id": event.decision_id,
                "source": event.source,
                "instrument": event.instrument,
                "action": "rejected",
                "qty": None,
                "qty_quote": None,
                "confidence": None,
                "rationale": event.detail,
                "input_digest": event.input_digest,
                "output": event.output,
                "rejected_reason": event.reason,
                "occurred_at": event.occurred_at,
            },
        )
    elif isinstance(event, OrderPlaced):
        yield (
            "orders_placed",
            {
                **base,
                "client_order_id": event.client_order_id,
                "instrument": event.instrument,
                "side": event.side.value,
                "order_type": event.order_type.value,
                "qty": event.qty,
                "qty_quote": event.qty_quote,
                "price_limit": event.price_limit,
                "price_expected": event.price_expected,
                "placed_at": event.occurred_at,
            },
        )
    status = _STATUS.get(type(event))
    if status is not None:
        yield (
            "order_updates",
            {
                **base,
                "client_order_id": event.client_order_id,  # type: ignore[union-attr]
                "status": status,
                "reason": getattr(event, "reason", None),
                "occurred_at": event.occurred_at,
            },
        )


def _portfolio_rows(portfolio: PortfolioProjection, runs: set[str]) -> dict[str, list[dict[str, Any]]]:
    tables: dict[str, list[dict[str, Any]]] = {name: [] for name in REWRITTEN}
    for run in portfolio.runs.values():
        rid = str(run.run_id)
        if rid not in runs:
            continue
        for instrument, p in run.positions.items():
            tables["positions"].append(
                {
                    "run_id": rid,
                    "instrument": instrument,
                    "qty_open": p.qty_open,
                    "price_avg": p.price_avg,
                    "price_last": p.price_last,
                    "pnl_realized": p.pnl_realized,
                    "pnl_unrealized": p.pnl_unrealized(),
                    "fee_total": p.fee_total,
                }
            )
        for asset, b in run.balances.items():
            tables["balances"].append(
                {"run_id": rid, "asset": asset, "total": b.total, "reserved": b.reserved, "free": b.free}
            )
        tables["equity"].extend(
            {"run_id": rid, "marked_at": e.at, "equity": e.equity, "exposed": e.exposed} for e in run.equity
        )
    return tables


class _Spool:
    """One temporary NDJSON file per table, written row by row, loaded with read_json."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._files: dict[str, tuple[Path, BinaryIO]] = {}

    def write(self, table: str, row: dict[str, Any]) -> None:
        entry = self._files.get(table)
        if entry is None:
            fd, name = tempfile.mkstemp(prefix=f".{table}-", suffix=".jsonl", dir=self._directory)
            entry = self._files[table] = (Path(name), os.fdopen(fd, "wb"))
        entry[1].write(_ENCODER.encode(row) + b"\n")

    def load(self, con: duckdb.DuckDBPyConnection, table: str) -> None:
        entry = self._files.get(table)
        if entry is None:
            return
        entry[1].close()
        columns = ", ".join(f"'{c}': '{k}'" for c, k in TABLES[table].items())
        names = ", ".join(f'"{c}"' for c in TABLES[table])
        con.execute(
            f"INSERT INTO {table} ({names}) SELECT {names} FROM read_json(?, format='newline_delimited', "  # noqa: S608
            f"columns={{{columns}}})",
            [str(entry[0])],
        )

    def close(self) -> None:
        for name, handle in self._files.values():
            handle.close()
            name.unlink(missing_ok=True)


def _spool_log(
    reader: EventLogReader, last: int, upto: int, spool: _Spool, book: _FillBook
) -> tuple[int, int, set[str]]:
    # Stream the log after ``last`` up to ``upto`` into the spool, a page at a time, so a large
    # log never sits in memory as rows. Returns the position reached, the events applied and
    # the runs they touched (whose portfolio rows are rewritten).
    cursor = last
    applied = 0
    touched: set[str] = set()
    while cursor < upto:
        page = reader.read_log(cursor, PAGE)
        if not page:
            break
        for seq, event in page:
            if seq > upto:
                return cursor, applied, touched
            touched.add(str(event.run_id))
            for table, row in _rows(seq, event, book):
                spool.write(table, row)
            cursor = seq
            applied += 1
    return cursor, applied, touched


def _same_ledger(con: duckdb.DuckDBPyConnection, reader: EventLogReader, last: int) -> bool:
    """Return whether the event the file last synced is the ledger's event at that position.

    A ledger deleted and created again at the same path leaves its old projection file
    behind; this is how a sync notices (and rebuilds) instead of serving the old rows.
    """
    row = con.execute("SELECT originator_id, originator_version FROM events WHERE seq = ?", [last]).fetchone()
    page = reader.read_log(last - 1, 1)
    if row is None or not page or page[0][0] != last:
        return False
    event = page[0][1]
    return (str(row[0]), int(row[1])) == (str(event.originator_id), event.originator_version)


def synced_seq(path: Path, reader: EventLogReader | None = None) -> int | None:
    """Return the log position the file at ``path`` is synced up to (None: no usable file).

    A file of another projection version counts as unusable, as does one another process
    holds open for writing (the caller then syncs, which waits for or reports the lock), and,
    given the ``reader`` of the ledger, one synced from another ledger at the same path.
    """
    if not path.exists():
        return None
    try:
        con = _connect(path, read_only=True)
    except duckdb.Error:
        return None  # not a DuckDB file we can read: the caller's sync rebuilds or reports it
    try:
        found = con.execute("SELECT last_seq, version FROM tracking WHERE projection = ?", [NAME]).fetchone()
        if found is None or found[1] != VERSION:
            return None
        last = int(found[0])
        if reader is not None and last and not _same_ledger(con, reader, last):
            return None
    except duckdb.CatalogException:
        return None  # no tracking table yet
    finally:
        con.close()
    return last


def sync(path: Path, reader: EventLogReader, portfolio: PortfolioProjection, upto: int) -> int:
    """Bring the DuckDB file at ``path`` up to log position ``upto``; return events applied.

    ``portfolio`` must be caught up to exactly ``upto``. Event rows are appended; the
    positions, balances and equity rows of the runs with new events are replaced. A version
    bump or a missing file rebuilds every table from seq 0.
    """
    con = _connect(path, read_only=False)
    spool = _Spool(path.parent)
    try:
        last, book = _schema(con)
        if last and not _same_ledger(con, reader, last):
            last, book = 0, _FillBook()  # the file was synced from another ledger at this path
        if last >= upto and last:
            return 0
        cursor, applied, touched = _spool_log(reader, last, upto, spool, book)
        for table, rows in _portfolio_rows(portfolio, touched).items():
            for row in rows:
                spool.write(table, row)
        con.execute("BEGIN TRANSACTION")
        if last == 0:
            for table in TABLES:
                con.execute(f"DELETE FROM {table}")  # noqa: S608 - our own table names
        for table in APPENDED:
            spool.load(con, table)
        for table in REWRITTEN:  # only the runs this sync touched
            con.execute(f"DELETE FROM {table} WHERE list_contains(?, run_id::VARCHAR)", [sorted(touched)])  # noqa: S608
            spool.load(con, table)
        con.execute(
            "INSERT OR REPLACE INTO tracking VALUES (?, ?, ?, ?)", [NAME, cursor, VERSION, encode_state(book)]
        )
        con.execute("COMMIT")
        return applied
    finally:
        spool.close()
        con.close()


@dataclass(frozen=True, kw_only=True)
class RowDifference:
    """The first row of a run where the projection file and a rebuild disagree."""

    table: str
    seq: int | None
    column: str
    stored: str
    rebuilt: str


def compare_run(stored: Path, rebuilt: Path, run_id: UUID) -> RowDifference | None:
    """Return the first difference between two analytics files' rows of ``run_id``, or None.

    Tables are compared in ``TABLES`` order, rows sorted on every column, so the comparison does
    not depend on insertion order; the first differing row names its column.
    """
    con = _connect(stored, read_only=True)
    try:
        con.execute("ATTACH ? AS rebuilt (READ_ONLY)", [str(rebuilt)])
        for table, columns in TABLES.items():
            sql = f"SELECT * FROM {{db}}.{table} WHERE run_id = ? ORDER BY ALL"  # noqa: S608
            left = con.execute(sql.format(db="main"), [str(run_id)]).fetchall()
            right = con.execute(sql.format(db="rebuilt"), [str(run_id)]).fetchall()
            found = _first_row_difference(table, list(columns), left, right)
            if found is not None:
                return found
        return None
    finally:
        con.close()


def _first_row_difference(
    table: str, columns: list[str], left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]
) -> RowDifference | None:
    has_seq = columns[0] == "seq"
    for a, b in zip(left, right, strict=False):
        if a != b:
            column = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
            return RowDifference(
                table=table,
                seq=a[0] if has_seq else None,
                column=columns[column],
                stored=str(a[column]),
                rebuilt=str(b[column]),
            )
    if len(left) != len(right):
        return RowDifference(
            table=table, seq=None, column="rows", stored=f"{len(left)} rows", rebuilt=f"{len(right)} rows"
        )
    return None


EXPORT_COLUMNS = {
    "n": "BIGINT",
    "topic": "VARCHAR",
    "originator_id": "UUID",
    "originator_version": "INTEGER",
    "schema_version": "INTEGER",
    "hash_prev": "VARCHAR",
    "hash": "VARCHAR",
    "event": "JSON",
}


def export_parquet(lines: Iterable[bytes], out: Path) -> int:
    """Write canonical export lines (one JSON object each) to a Parquet file; return rows.

    Columns are typed (``EXPORT_COLUMNS``); the event stays JSON, so DuckDB reads it with
    ``event->>'field'`` and a folder of exports with ``read_parquet('dir/*.parquet')``.
    """
    fd, name = tempfile.mkstemp(prefix=".export-", suffix=".jsonl", dir=out.parent)
    try:
        rows = 0
        with os.fdopen(fd, "wb") as handle:
            for line in lines:
                handle.write(line)
                rows += 1
        columns = ", ".join(f"'{c}': '{k}'" for c, k in EXPORT_COLUMNS.items())
        con = duckdb.connect()
        try:
            con.execute(
                f"COPY (SELECT * FROM read_json(?, format='newline_delimited', columns={{{columns}}}) "  # noqa: S608
                "ORDER BY n) TO ? (FORMAT parquet)",
                [name, str(out)],
            )
        finally:
            con.close()
        return rows
    finally:
        Path(name).unlink(missing_ok=True)


def query(path: Path, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run ``sql`` on a read-only connection; return column names and rows.

    Raises:
        QueryError: DuckDB refused the SQL (its message, as one sentence).
    """
    con = _connect(path, read_only=True)
    try:
        # Ledger times are UTC; days and hours in SQL are UTC days whatever the machine's zone.
        con.execute("SET TimeZone = 'UTC'")
        result = con.execute(sql)
        columns = [d[0] for d in result.description or []]
        return columns, result.fetchall()
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        msg = f"query failed: {first}"
        raise QueryError(msg) from e
    finally:
        con.close()

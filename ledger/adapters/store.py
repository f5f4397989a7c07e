"""The event store: the only module that imports eventsourcing.

eventsourcing's application recorders give us the stored-events table, optimistic concurrency
on ``(originator_id, originator_version)`` (a clash raises ``IntegrityError``), atomic
multi-event inserts and the notification log (the global order projections follow). On top we
add, inside the *same* transaction as each insert, one ``chain_segments`` row per run touched:
its primary key ``(run_id, n_from)`` makes two writers extending one run's hash chain from the
same head collide, so the chain can never fork.

Design notes, from measuring eventsourcing 9.5.6:

* We never use its aggregates, so a failed ``save()`` cannot strip pending events from them:
  the caller keeps its event list and may retry after reloading.
* Everything is encoded before the transaction opens, so an unencodable event raises before
  a single row is written (the library's snapshot path raised *after* committing).
* Long histories are appended in chunks (``APPEND_CHUNK``): one 12,000-event save on
  PostgreSQL was seen to hang.
* The SQLite recorder has no subscriptions: projections poll the notification log.
* SQLite runs in WAL mode with ``synchronous=FULL``: ``NORMAL`` can lose the last committed
  transactions on power loss, and a ledger must not lose a committed fill.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

import psycopg
from eventsourcing.persistence import (
    ConnectionPoolClosedError,
    DatabaseError,
    DataError,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    PersistenceError,
    ProgrammingError,
    StoredEvent,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteCursor,
    SQLiteDatastore,
)

from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.domain.errors import BadInputError, ConcurrencyConflictError, LedgerError
from ledger.domain.events import LedgerEvent

# Why 1,000: large enough to amortise a commit, small enough to stay clear of the
# PostgreSQL save that hung at 12,000 events.
APPEND_CHUNK = 1000

_SEGMENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}chain_segments ("
    "run_id TEXT NOT NULL, n_from BIGINT NOT NULL, n_to BIGINT NOT NULL, "
    "hash_to TEXT NOT NULL, PRIMARY KEY (run_id, n_from))"
)
_CHECKPOINTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}projection_checkpoints ("
    "name TEXT PRIMARY KEY, version INTEGER NOT NULL, last_seq BIGINT NOT NULL, "
    "state {blob} NOT NULL)"
)


class StoreError(LedgerError):
    """The ledger location cannot be opened or is not a tradeledger ledger."""


@dataclass(frozen=True)
class StoredRow:
    """One stored event as the log holds it (for verify and export)."""

    seq: int
    topic: str
    originator_id: UUID
    originator_version: int
    state: bytes


@dataclass(frozen=True)
class Segment:
    """One committed extension of a run's chain."""

    run_id: UUID
    n_from: int
    n_to: int
    hash_to: str


# Why 64: every append runs four statements (BEGIN aside); the library opens connections with
# ``cached_statements=True``, a cache of ONE statement, so each of them was re-parsed per commit.
_STATEMENT_CACHE = 64
_INSERT_SEGMENT = "INSERT INTO chain_segments (run_id, n_from, n_to, hash_to) VALUES (?, ?, ?, ?)"
_SELECT_LOG = "SELECT rowid, topic, state FROM stored_events WHERE rowid>? ORDER BY rowid LIMIT ?"

# One encoded event as LedgerStore.append hands it to a recorder:
# (stream id, its hex, originator_version, topic, state).
Row = tuple[UUID, str, int, str, bytes]
# One chain_segments row as LedgerStore.append hands it to a recorder: (run hex, n_from, n_to, hash_to).
SegmentRow = tuple[str, int, int, str]


class _SQLiteLedgerConnection(SQLiteConnection):
    """The library's connection, keeping a handle on the raw sqlite3 connection."""

    def __init__(self, sqlite_conn: sqlite3.Connection, max_age: float | None) -> None:
        super().__init__(sqlite_conn=sqlite_conn, max_age=max_age)
        self.raw = sqlite_conn


class _FullSyncPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        return _SQLiteLedgerConnection(sqlite_conn=self.connect_raw(), max_age=self.max_age)

    def connect_raw(self) -> sqlite3.Connection:
        """Return a new sqlite3 connection set up as the library's pool sets one up.

        eventsourcing 9.5.6's SQLiteConnectionPool._create_connection, except the statement
        cache (_STATEMENT_CACHE) and synchronous=FULL.
        """
        try:
            c = sqlite3.connect(
                database=self.db_name,
                uri=True,
                check_same_thread=False,
                isolation_level=None,  # autocommit: transactions BEGIN explicitly
                cached_statements=_STATEMENT_CACHE,
                timeout=self.lock_timeout or SQLITE3_DEFAULT_LOCK_TIMEOUT,
            )
        except (sqlite3.Error, TypeError) as e:
            raise InterfaceError(e) from e
        if not self.is_sqlite_memory_mode and not self.is_journal_mode_wal:
            cursor = c.cursor()
            cursor.execute("PRAGMA journal_mode;")
            if cursor.fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode=WAL;")
                self.journal_mode_was_changed_to_wal = True
            self.is_journal_mode_wal = True
        c.row_factory = sqlite3.Row
        # Why FULL: see the module docstring; durability of every committed fill.
        c.execute("PRAGMA synchronous=FULL")
        return c


class _SQLiteDatastore(SQLiteDatastore):
    """The library's datastore plus one long-lived connection that appends go through.

    Why a dedicated append connection: checking a connection out of the library's pool and
    back (semaphore, writer lock, condition variable, bookkeeping) cost more CPU per one-event
    commit than SQLite's own insert. ``append_lock`` serialises appenders in this process as
    the pool's writer lock did; other writers (checkpoints, other processes) meet SQLite's own
    write lock, waited for up to ``lock_timeout``. In-memory databases, where every connection
    is a separate database, keep appending through the pool.
    """

    def __init__(self, db_name: str) -> None:
        self.append_lock = threading.Lock()
        self._append_conn: sqlite3.Connection | None = None
        self._closed = False
        super().__init__(db_name, lock_timeout=30)
        self.pool = _FullSyncPool(db_name=db_name, lock_timeout=30)

    def append_connection(self) -> sqlite3.Connection:
        """Return the append connection (opened on first use); hold ``append_lock``."""
        if self._append_conn is None:
            if self._closed:
                msg = "the ledger store is closed"
                raise ConnectionPoolClosedError(msg)
            self._append_conn = self.pool.connect_raw()
        return self._append_conn

    def close(self) -> None:
        lock = getattr(self, "append_lock", None)
        if lock is not None:
            with lock:
                self._closed = True
                if self._append_conn is not None:
                    self._append_conn.close()
                    self._append_conn = None
        super().close()


# The library's mapping of sqlite3 errors (eventsourcing.sqlite.SQLiteTransaction.__exit__).
_SQLITE_ERRORS: tuple[tuple[type[sqlite3.Error], type[PersistenceError]], ...] = (
    (sqlite3.InterfaceError, InterfaceError),
    (sqlite3.DataError, DataError),
    (sqlite3.OperationalError, OperationalError),
    (sqlite3.IntegrityError, IntegrityError),
    (sqlite3.InternalError, InternalError),
    (sqlite3.ProgrammingError, ProgrammingError),
    (sqlite3.NotSupportedError, NotSupportedError),
    (sqlite3.DatabaseError, DatabaseError),
    (sqlite3.Error, PersistenceError),
)


def _persistence_error(e: sqlite3.Error) -> PersistenceError:
    for raw, mapped in _SQLITE_ERRORS:
        if isinstance(e, raw):
            return mapped(e)
    return PersistenceError(e)  # pragma: no cover - sqlite3.Error is the last entry


class _SQLiteRecorder(SQLiteApplicationRecorder):
    def insert_rows(self, rows: Sequence[Row], segments: Sequence[SegmentRow]) -> list[int]:
        """Insert events and chain segments in one transaction; return the events' rowids.

        The library's insert_events() path (one writer at a time, BEGIN, inserts, COMMIT, the
        library's error mapping) without its per-commit pool checkout, context managers and
        StoredEvent objects, which cost more than SQLite itself on a one-event commit.
        """
        datastore = self.datastore
        pool = datastore.pool
        if pool.is_sqlite_memory_mode:
            conn = pool.get_connection(is_writer=True)
            try:
                return self._insert_rows(conn.raw, rows, segments)  # type: ignore[attr-defined]
            finally:
                pool.put_connection(conn)
        with datastore.append_lock:  # type: ignore[attr-defined]
            return self._insert_rows(datastore.append_connection(), rows, segments)  # type: ignore[attr-defined]

    def _insert_rows(self, db: sqlite3.Connection, rows: Sequence[Row], segments: Sequence[SegmentRow]) -> list[int]:
        try:
            try:
                db.execute("BEGIN")
                if len(rows) == 1:
                    _, stream, version, topic, state = rows[0]
                    last = db.execute(self.insert_events_statement, (stream, version, topic, state)).lastrowid
                else:
                    db.executemany(self.insert_events_statement, [r[1:] for r in rows])
                    # rowids are contiguous: the transaction holds SQLite's single write lock.
                    last = db.execute("SELECT MAX(rowid) FROM stored_events").fetchone()[0]
                if len(segments) == 1:
                    db.execute(_INSERT_SEGMENT, segments[0])
                else:
                    db.executemany(_INSERT_SEGMENT, segments)
                db.commit()
            except BaseException:
                if db.in_transaction:
                    db.rollback()
                raise
        except sqlite3.Error as e:
            raise _persistence_error(e) from e
        return list(range(last - len(rows) + 1, last + 1))

    def select_log(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Return (seq, topic, state) of up to ``limit`` events after ``after_seq``.

        The library's select_notifications() query and read transaction, minus what the log's
        readers never use: a UUID parsed and a Notification built per row.
        """
        with self.datastore.transaction(commit=False) as c:
            cursor = c.sqlite_cursor
            cursor.row_factory = None  # plain tuples
            cursor.execute(_SELECT_LOG, (after_seq, limit))
            return cursor.fetchall()

    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        # The library's insert_events() entry point (not used by LedgerStore, which calls
        # insert_rows), kept consistent: events and segments in one transaction.
        segments: Sequence[Segment] = kwargs.get("segments", ())
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id.hex, s.originator_version, s.topic, s.state) for s in stored_events],  # type: ignore[union-attr]
        )
        c.execute("SELECT MAX(rowid) FROM stored_events")
        last = c.fetchone()[0]
        c.executemany(_INSERT_SEGMENT, [_segment_params(s) for s in segments])
        return list(range(last - len(stored_events) + 1, last + 1))


def _segment_params(s: Segment) -> tuple[str, int, int, str]:
    return (s.run_id.hex, s.n_from, s.n_to, s.hash_to)


# Why 16: the live path appends a handful of events at a time, where one round trip with the
# values bound client-side as SQL text wins; a backtest chunk of 1,000 is cheaper as three round
# trips with binary array parameters than as 4,000 values escaped into SQL text.
_PG_ONE_SHOT_MAX = 16


class _PostgresRecorder(PostgresApplicationRecorder):
    def __init__(self, datastore: PostgresDatastore) -> None:
        super().__init__(datastore)
        schema = datastore.schema
        table = f'"{schema}".{self.events_table_name}'
        # The library's insert_events() transaction, statement for statement: its lock_timeout,
        # the EXCLUSIVE table lock that makes notification ids commit in order, the NOTIFY for
        # subscribers; then our chain segments and the events, returning their ids.
        self._append_begin = (
            "BEGIN; "
            f"SET LOCAL lock_timeout = '{int(datastore.lock_timeout)}s'; "
            f"LOCK TABLE {table} IN EXCLUSIVE MODE; "
            f'NOTIFY "{self.channel_name}"'
        )
        self._insert_segments_sql = f'INSERT INTO "{schema}".chain_segments (run_id, n_from, n_to, hash_to) VALUES '
        self._insert_events_sql = f"INSERT INTO {table} (originator_id, originator_version, topic, state) VALUES "
        # WITH ORDINALITY ... ORDER BY: rows take notification ids in the caller's order.
        self._insert_arrays_sql = (
            f'WITH s AS (INSERT INTO "{schema}".chain_segments (run_id, n_from, n_to, hash_to) '
            "SELECT * FROM unnest(%s::text[], %s::bigint[], %s::bigint[], %s::text[])) "
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) "
            "SELECT o, v, t, s FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "WITH ORDINALITY AS u(o, v, t, s, i) ORDER BY i "
            "RETURNING notification_id"
        )

    def select_log(self, after_seq: int, limit: int) -> list[tuple[int, str, bytes]]:
        """Return (seq, topic, state) of up to ``limit`` events after ``after_seq``."""
        notifications = self.select_notifications(start=after_seq, limit=limit, inclusive_of_start=False)
        return [(n.id, n.topic, n.state) for n in notifications]

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_rows(self, rows: Sequence[Row], segments: Sequence[SegmentRow]) -> list[int]:
        """Insert events and chain segments in one transaction; return their notification ids.

        Why not the library's insert_events(): it sends these statements through psycopg's
        pipeline mode, whose Python side cost more than the server's work on a one-event commit.
        A few events go in one simple query (one round trip, values bound client-side by
        psycopg); a batch in three (begin and lock, one insert of array parameters, commit).
        """
        with self.datastore.get_connection() as conn:
            try:
                if len(rows) <= _PG_ONE_SHOT_MAX:
                    ids = self._one_shot(conn, rows, segments)
                else:
                    ids = self._with_arrays(conn, rows, segments)
            except BaseException:
                if conn.pgconn.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    conn.rollback()
                raise
        return sorted(ids)

    def _one_shot(self, conn: Any, rows: Sequence[Row], segments: Sequence[SegmentRow]) -> list[int]:
        params: list[Any] = []
        for s in segments:
            params += s
        for r in rows:
            params += (r[0], r[2], r[3], r[4])
        query = (
            f"{self._append_begin}; {self._insert_segments_sql}"
            + ", ".join(["(%s, %s, %s, %s)"] * len(segments))
            + f"; {self._insert_events_sql}"
            + ", ".join(["(%s, %s, %s, %s)"] * len(rows))
            + " RETURNING notification_id; COMMIT"
        )
        with psycopg.ClientCursor(conn) as cur:
            cur.execute(query, params)
            while cur.description is None:  # only the RETURNING statement has rows
                if not cur.nextset():
                    msg = "the append transaction returned no notification ids"
                    raise ProgrammingError(msg)
            return [row["notification_id"] for row in cur.fetchall()]

    def _with_arrays(self, conn: Any, rows: Sequence[Row], segments: Sequence[SegmentRow]) -> list[int]:
        with conn.cursor() as cur:
            cur.execute(self._append_begin)
            cur.execute(
                self._insert_arrays_sql,
                (
                    [s[0] for s in segments],
                    [s[1] for s in segments],
                    [s[2] for s in segments],
                    [s[3] for s in segments],
                    [r[0] for r in rows],
                    [r[2] for r in rows],
                    [r[3] for r in rows],
                    [r[4] for r in rows],
                ),
            )
            ids = [row["notification_id"] for row in cur.fetchall()]
            cur.execute("COMMIT")
            return ids

    def _insert_events(self, curs: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> None:
        segments: Sequence[Segment] = kwargs.get("segments", ())
        if segments:
            curs.executemany(
                f'INSERT INTO "{self.datastore.schema}".chain_segments '  # noqa: S608 - schema is ours
                "(run_id, n_from, n_to, hash_to) VALUES (%s, %s, %s, %s)",
                [(s.run_id.hex, s.n_from, s.n_to, s.hash_to) for s in segments],
            )


class LedgerStore:
    """Append-only event store with per-run hash chains, over SQLite or PostgreSQL."""

    def __init__(self, recorder: Any, datastore: Any, *, placeholder: str, prefix: str) -> None:
        self._recorder = recorder
        self._datastore = datastore
        self._ph = placeholder
        self._prefix = prefix
        self._heads: dict[UUID, ChainHead] = {}

    # -- writing -------------------------------------------------------------------------

    def append(self, events: Sequence[LedgerEvent]) -> list[int]:
        """Append ``events`` atomically, extending each run's chain; return their seqs.

        Raises:
            ConcurrencyConflictError: a stream version or a run's chain head was taken by
                another writer; nothing was written. Reload and retry.
        """
        if not events:
            return []
        # Per run touched: [n, hex hash, raw digest, run hex, n of the committed head] of the
        # newest link; the committed head's n is where the run's segment starts.
        links: dict[UUID, list[Any]] = {}
        rows: list[Row] = []
        encode_link = codec.encode_link
        for event in events:
            run_id = event.run_id
            link = links.get(run_id)
            if link is None:
                head = self.chain_head(run_id)
                link = links[run_id] = [head.n, head.hash, bytes.fromhex(head.hash), run_id.hex, head.n]
            n = link[0] + 1
            topic, stream, state, digest, hex_digest = encode_link(event, n, link[1], link[2], link[3])
            link[0], link[1], link[2] = n, hex_digest, digest
            rows.append((event.originator_id, stream, event.originator_version, topic, state))
        # (run hex, n_from, n_to, hash_to): one chain_segments row per run touched.
        segments = [(link[3], link[4], link[0], link[1]) for link in links.values()]
        try:
            ids = self._recorder.insert_rows(rows, segments)
        except IntegrityError as e:
            for run_id in links:
                self._heads.pop(run_id, None)
            msg = f"another writer appended to the same stream or run first; reload and retry ({e})"
            raise ConcurrencyConflictError(msg) from e
        for run_id, link in links.items():
            self._heads[run_id] = ChainHead(n=link[0], hash=link[1])
        return ids

    def append_chunked(self, events: Sequence[LedgerEvent]) -> None:
        """Append a long history in atomic chunks of ``APPEND_CHUNK`` events."""
        for start in range(0, len(events), APPEND_CHUNK):
            self.append(events[start : start + APPEND_CHUNK])

    # -- reading -------------------------------------------------------------------------

    def chain_head(self, run_id: UUID) -> ChainHead:
        """Return the committed head of ``run_id``'s chain (genesis for a new run)."""
        head = self._heads.get(run_id)
        if head is not None:
            return head
        rows = self._query(
            f"SELECT n_to, hash_to FROM {self._prefix}chain_segments WHERE run_id = {self._ph} "  # noqa: S608
            "ORDER BY n_to DESC LIMIT 1",
            (run_id.hex,),
        )
        head = ChainHead(n=0, hash=GENESIS_HASH) if not rows else ChainHead(rows[0][0], rows[0][1])
        self._heads[run_id] = head
        return head

    def chain_heads(self) -> dict[UUID, ChainHead]:
        """Return the committed chain head of every run."""
        rows = self._query(
            f"SELECT s.run_id, s.n_to, s.hash_to FROM {self._prefix}chain_segments s "  # noqa: S608
            f"JOIN (SELECT run_id, MAX(n_to) AS n FROM {self._prefix}chain_segments "
            "GROUP BY run_id) m ON s.run_id = m.run_id AND s.n_to = m.n",
            (),
        )
        return {UUID(r[0]): ChainHead(n=r[1], hash=r[2]) for r in rows}

    def chain_segments(self) -> dict[UUID, dict[int, str]]:
        """Return, per run, the hash committed at the end of every append (n_to -> hash_to)."""
        rows = self._query(f"SELECT run_id, n_to, hash_to FROM {self._prefix}chain_segments", ())  # noqa: S608
        committed: dict[UUID, dict[int, str]] = {}
        for run, n_to, hash_to in rows:
            committed.setdefault(UUID(run), {})[int(n_to)] = hash_to
        return committed

    def read_stream(self, stream_id: UUID, *, desc: bool = False, limit: int | None = None) -> list[LedgerEvent]:
        """Return the events of one stream in version order (or reversed)."""
        stored = self._recorder.select_events(stream_id, desc=desc, limit=limit)
        return [codec.decode(s.topic, s.state) for s in stored]

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Return up to ``limit`` events after ``after_seq``, in notification order."""
        decode = codec.decode
        return [(seq, decode(topic, state)) for seq, topic, state in self._recorder.select_log(after_seq, limit)]

    def read_rows(self, after_seq: int, limit: int) -> list[StoredRow]:
        """Return up to ``limit`` stored rows after ``after_seq``, undecoded."""
        return [
            StoredRow(n.id, n.topic, n.originator_id, n.originator_version, n.state)
            for n in self._notifications(after_seq, limit)
        ]

    def max_seq(self) -> int:
        """Return the last notification id (0 for an empty ledger)."""
        return self._recorder.max_notification_id() or 0

    def _notifications(self, after_seq: int, limit: int) -> Sequence[Any]:
        return self._recorder.select_notifications(start=after_seq, limit=limit, inclusive_of_start=False)

    # -- projection checkpoints ----------------------------------------------------------

    def load_checkpoint(self, name: str) -> tuple[int, int, bytes] | None:
        """Return (version, last_seq, state) of a saved projection, or None."""
        rows = self._query(
            f"SELECT version, last_seq, state FROM {self._prefix}projection_checkpoints "  # noqa: S608
            f"WHERE name = {self._ph}",
            (name,),
        )
        return None if not rows else (rows[0][0], rows[0][1], bytes(rows[0][2]))

    def save_checkpoint(self, name: str, version: int, last_seq: int, state: bytes, *, expected_seq: int | None) -> None:
        """Save a projection's state and position in one transaction (exactly once).

        Raises:
            ConcurrencyConflictError: another process moved the checkpoint since it was loaded.
        """
        p, ph = self._prefix, self._ph
        if expected_seq is None:
            try:
                with self._datastore.transaction(commit=True) as c:
                    c.execute(
                        f"INSERT INTO {p}projection_checkpoints (name, version, last_seq, state) "  # noqa: S608
                        f"VALUES ({ph}, {ph}, {ph}, {ph})",
                        (name, version, last_seq, state),
                    )
            except IntegrityError as e:
                msg = f"projection {name} was first saved by another process; reload"
                raise ConcurrencyConflictError(msg) from e
            return
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                f"UPDATE {p}projection_checkpoints SET version = {ph}, last_seq = {ph}, state = {ph} "  # noqa: S608
                f"WHERE name = {ph} AND last_seq = {ph}",
                (version, last_seq, state, name, expected_seq),
            )
            if _rowcount(c) != 1:
                msg = f"projection {name} moved past {expected_seq} in another process; reload"
                raise ConcurrencyConflictError(msg)

    def drop_checkpoint(self, name: str) -> None:
        """Delete a projection's saved state so it rebuilds from zero."""
        with self._datastore.transaction(commit=True) as c:
            c.execute(f"DELETE FROM {self._prefix}projection_checkpoints WHERE name = {self._ph}", (name,))  # noqa: S608

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return [tuple(row.values()) if isinstance(row, dict) else tuple(row) for row in c.fetchall()]

    def close(self) -> None:
        """Release every connection."""
        self._datastore.close()


def _rowcount(cursor: Any) -> int:
    # eventsourcing's SQLite cursor wrapper hides rowcount; psycopg's cursor has it.
    inner = getattr(cursor, "sqlite_cursor", cursor)
    return int(inner.rowcount)


def _create_sqlite(path: Path) -> LedgerStore:
    datastore = _SQLiteDatastore(str(path))
    recorder = _SQLiteRecorder(datastore)
    recorder.create_table()
    with datastore.transaction(commit=True) as c:
        c.execute(_SEGMENTS_DDL.format(p=""))
        c.execute(_CHECKPOINTS_DDL.format(p="", blob="BLOB"))
    return LedgerStore(recorder, datastore, placeholder="?", prefix="")


def _create_postgres(url: str) -> LedgerStore:
    parsed = urlparse(url)
    schema = "public"
    for part in parsed.query.split("&"):
        if part.startswith("schema="):
            schema = unquote(part.removeprefix("schema="))
    datastore = PostgresDatastore(
        dbname=(parsed.path or "/").lstrip("/") or "postgres",
        host=parsed.hostname or "127.0.0.1",
        port=parsed.port or 5432,
        user=unquote(parsed.username or os.environ.get("USER", "postgres")),
        password=unquote(parsed.password or ""),
        schema=schema,
        connect_timeout=5,
        pool_size=2,
    )
    prefix = f'"{schema}".'
    recorder = _PostgresRecorder(datastore)
    _ensure_postgres_tables(datastore, recorder, schema, prefix)
    return LedgerStore(recorder, datastore, placeholder="%s", prefix=prefix)


# Why an advisory lock: PostgreSQL's IF NOT EXISTS DDL is not safe against itself, so several
# processes opening one new ledger at once collide ("tuple concurrently updated"). The first
# opener creates the tables under the lock; later ones see them and run no DDL at all.
_DDL_LOCK_KEY = 0x7472_6164_656C_6467  # "tradeldg"


def _ensure_postgres_tables(datastore: PostgresDatastore, recorder: _PostgresRecorder, schema: str, prefix: str) -> None:
    def present() -> bool:
        with datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                "AND to_regclass(%s) IS NOT NULL AS ok",
                [f"{prefix}stored_events", f"{prefix}chain_segments", f"{prefix}projection_checkpoints"],
            )
            row = c.fetchone()
            return bool(row["ok"] if isinstance(row, dict) else row[0])

    if present():
        datastore.register_type_adapters()
        return
    with datastore.get_connection() as lock_conn:
        lock_conn.execute("SELECT pg_advisory_lock(%s)", [_DDL_LOCK_KEY])
        lock_conn.commit()
        try:
            if present():
                datastore.register_type_adapters()
                return
            with datastore.transaction(commit=True) as c:
                c.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            recorder.create_table()
            with datastore.transaction(commit=True) as c:
                c.execute(_SEGMENTS_DDL.format(p=prefix))
                c.execute(_CHECKPOINTS_DDL.format(p=prefix, blob="BYTEA"))
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", [_DDL_LOCK_KEY])
            lock_conn.commit()


def is_postgres_url(url: str) -> bool:
    """Return whether ``url`` names a PostgreSQL ledger."""
    return url.startswith(("postgresql://", "postgres://"))


def ledger_exists(url: str) -> bool:
    """Return whether a SQLite ledger file exists (PostgreSQL ledgers always 'exist')."""
    return is_postgres_url(url) or Path(url).exists()


def open_store(url: str, *, create: bool) -> LedgerStore:
    """Open the ledger at ``url`` (a SQLite path or a ``postgresql://`` DSN).

    Raises:
        BadInputError: the SQLite file does not exist and ``create`` is false.
        StoreError: the location cannot be opened as a ledger.
    """
    try:
        if is_postgres_url(url):
            return _create_postgres(url)
        path = Path(url)
        if not create and not path.exists():
            msg = f"--ledger: no ledger at {url}; run `tradeledger backtest` first or pass --ledger"
            raise BadInputError(msg)
        if path.exists():
            _check_sqlite_file(path)
        return _create_sqlite(path)
    except PersistenceError as e:
        msg = f"--ledger: cannot open {url} as a ledger: {e}"
        raise StoreError(msg) from e


def _check_sqlite_file(path: Path) -> None:
    # Refuse anything that is not empty or already a ledger: a read must never add our tables
    # to another application's database.
    try:
        with contextlib_closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
            tables = {row[0] for row in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as e:
        msg = f"--ledger: {path} is not a SQLite ledger ({e}); point --ledger at a tradeledger.db file"
        raise BadInputError(msg) from e
    if tables and "stored_events" not in tables:
        msg = (
            f"--ledger: {path} is another application's SQLite database (no stored_events table); "
            "point --ledger at a tradeledger ledger or a new file"
        )
        raise BadInputError(msg)


@contextmanager
def contextlib_closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Close a raw sqlite3 connection on exit."""
    try:
        yield connection
    finally:
        connection.close()

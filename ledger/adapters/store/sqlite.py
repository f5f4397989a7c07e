"""SQLite backend: WAL, synchronous=FULL, one long-lived append connection."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

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
)
from eventsourcing.sqlite import (
    SQLITE3_DEFAULT_LOCK_TIMEOUT,
    SQLiteApplicationRecorder,
    SQLiteConnection,
    SQLiteConnectionPool,
    SQLiteDatastore,
)

from ledger.adapters.store.ledger_store import LedgerStore
from ledger.adapters.store.schema import (
    CHECKPOINTS_DDL,
    META_DDL,
    SEGMENTS_DDL,
    SQLITE_SEGMENTS_SUFFIX,
    Row,
    SegmentRow,
)
from ledger.domain.errors import BadInputError

# Why 64: every append runs four statements (BEGIN aside); the library opens connections with
# ``cached_statements=True``, a cache of ONE statement, so each of them was re-parsed per commit.
_STATEMENT_CACHE = 64
_INSERT_SEGMENT = "INSERT INTO chain_segments (run_id, n_from, n_to, hash_to) VALUES (?, ?, ?, ?)"
_SELECT_LOG = "SELECT rowid, topic, state FROM stored_events WHERE rowid>? ORDER BY rowid LIMIT ?"


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
            pool = self.pool
            if not isinstance(pool, _FullSyncPool):  # set in __init__; a programmer error otherwise
                msg = "the SQLite datastore lost its full-sync pool"
                raise TypeError(msg)
            self._append_conn = pool.connect_raw()
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

    def _insert_rows(
        self, db: sqlite3.Connection, rows: Sequence[Row], segments: Sequence[SegmentRow]
    ) -> list[int]:
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
        if last is None:
            msg = "SQLite reported no rowid after inserting events"
            raise ProgrammingError(msg)
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


def create_sqlite_store(path: Path) -> LedgerStore:
    """Open (creating if needed) the SQLite ledger file at ``path``."""
    datastore = _SQLiteDatastore(str(path))
    recorder = _SQLiteRecorder(datastore)
    recorder.create_table()
    with datastore.transaction(commit=True) as c:
        c.execute(SEGMENTS_DDL.format(p="", suffix=SQLITE_SEGMENTS_SUFFIX))
        c.execute(CHECKPOINTS_DDL.format(p="", blob="BLOB"))
        c.execute(META_DDL.format(p=""))
    return LedgerStore(recorder, datastore, placeholder="?", prefix="")


def check_sqlite_file(path: Path) -> None:
    """Refuse a file that is not SQLite, or is another application's SQLite database."""
    # Refuse anything that is not empty or already a ledger: a read must never add our tables
    # to another application's database.
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
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

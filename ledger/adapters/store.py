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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from uuid import UUID

from eventsourcing.persistence import IntegrityError, PersistenceError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.sqlite import (
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


class _FullSyncPool(SQLiteConnectionPool):
    def _create_connection(self) -> SQLiteConnection:
        connection = super()._create_connection()
        # Why FULL: see the module docstring; durability of every committed fill.
        connection.cursor().execute("PRAGMA synchronous=FULL")
        return connection


class _SQLiteDatastore(SQLiteDatastore):
    def __init__(self, db_name: str) -> None:
        super().__init__(db_name, lock_timeout=30)
        self.pool = _FullSyncPool(db_name=db_name, lock_timeout=30)


class _SQLiteRecorder(SQLiteApplicationRecorder):
    def _insert_events(
        self,
        c: SQLiteCursor,
        stored_events: Sequence[StoredEvent],
        **kwargs: Any,
    ) -> Sequence[int] | None:
        segments: Sequence[Segment] = kwargs.get("segments", ())
        # executemany instead of the library's per-row execute; rowids are contiguous because
        # the transaction holds SQLite's single write lock.
        c.executemany(
            self.insert_events_statement,
            [(s.originator_id.hex, s.originator_version, s.topic, s.state) for s in stored_events],  # type: ignore[union-attr]
        )
        c.execute("SELECT MAX(rowid) FROM stored_events")
        last = c.fetchone()[0]
        c.executemany(
            "INSERT INTO chain_segments (run_id, n_from, n_to, hash_to) VALUES (?, ?, ?, ?)",
            [(s.run_id.hex, s.n_from, s.n_to, s.hash_to) for s in segments],
        )
        return list(range(last - len(stored_events) + 1, last + 1))


class _PostgresRecorder(PostgresApplicationRecorder):
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
        heads: dict[UUID, ChainHead] = {}
        starts: dict[UUID, ChainHead] = {}
        stored: list[StoredEvent] = []
        for event in events:
            run_id = event.run_id
            head = heads.get(run_id)
            if head is None:
                head = self.chain_head(run_id)
                starts[run_id] = head
            topic, state, heads[run_id] = codec.encode(event, head)
            stored.append(
                StoredEvent(
                    originator_id=event.originator_id,
                    originator_version=event.originator_version,
                    topic=topic,
                    state=state,
                )
            )
        segments = [
            Segment(run_id=r, n_from=starts[r].n, n_to=h.n, hash_to=h.hash) for r, h in heads.items()
        ]
        try:
            ids = self._recorder.insert_events(stored, segments=segments)
        except IntegrityError as e:
            for run_id in heads:
                self._heads.pop(run_id, None)
            msg = f"another writer appended to the same stream or run first; reload and retry ({e})"
            raise ConcurrencyConflictError(msg) from e
        self._heads.update(heads)
        return list(ids or [])

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

    def read_stream(self, stream_id: UUID, *, desc: bool = False, limit: int | None = None) -> list[LedgerEvent]:
        """Return the events of one stream in version order (or reversed)."""
        stored = self._recorder.select_events(stream_id, desc=desc, limit=limit)
        return [codec.decode(s.topic, s.state) for s in stored]

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Return up to ``limit`` events after ``after_seq``, in notification order."""
        return [(n.id, codec.decode(n.topic, n.state)) for n in self._notifications(after_seq, limit)]

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
        with self._datastore.transaction(commit=True) as c:
            if expected_seq is None:
                c.execute(
                    f"INSERT INTO {p}projection_checkpoints (name, version, last_seq, state) "  # noqa: S608
                    f"VALUES ({ph}, {ph}, {ph}, {ph})",
                    (name, version, last_seq, state),
                )
                return
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
    with datastore.transaction(commit=True) as c:
        c.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    recorder = _PostgresRecorder(datastore)
    recorder.create_table()
    with datastore.transaction(commit=True) as c:
        c.execute(_SEGMENTS_DDL.format(p=prefix))
        c.execute(_CHECKPOINTS_DDL.format(p=prefix, blob="BYTEA"))
    return LedgerStore(recorder, datastore, placeholder="%s", prefix=prefix)


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
    try:
        with contextlib_closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as c:
            c.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
    except sqlite3.DatabaseError as e:
        msg = f"--ledger: {path} is not a SQLite ledger ({e}); point --ledger at a tradeledger.db file"
        raise BadInputError(msg) from e


@contextmanager
def contextlib_closing(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Close a raw sqlite3 connection on exit."""
    try:
        yield connection
    finally:
        connection.close()

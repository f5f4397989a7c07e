"""PostgreSQL backend: the library's append transaction in one or three round trips."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

import psycopg
from eventsourcing.persistence import (
    InterfaceError,
    OperationalError,
    ProgrammingError,
)
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing.utils import retry

from ledger.adapters.store.ledger_store import LedgerStore
from ledger.adapters.store.schema import (
    CHECKPOINTS_DDL,
    META_DDL,
    SEGMENTS_DDL,
    Row,
    SegmentRow,
)

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
        # S608: the only interpolated names are the schema and table of this ledger.
        self._insert_segments_sql = (
            f'INSERT INTO "{schema}".chain_segments (run_id, n_from, n_to, hash_to) VALUES '  # noqa: S608
        )
        self._insert_events_sql = (
            f"INSERT INTO {table} (originator_id, originator_version, topic, state) VALUES "  # noqa: S608
        )
        # WITH ORDINALITY ... ORDER BY: rows take notification ids in the caller's order.
        self._insert_arrays_sql = (
            f'WITH s AS (INSERT INTO "{schema}".chain_segments (run_id, n_from, n_to, hash_to) '  # noqa: S608
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


def create_postgres_store(url: str) -> LedgerStore:
    """Open (creating its tables once) the PostgreSQL ledger named by ``url``."""
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


def _ensure_postgres_tables(
    datastore: PostgresDatastore, recorder: _PostgresRecorder, schema: str, prefix: str
) -> None:
    def present() -> bool:
        with datastore.transaction(commit=False) as c:
            c.execute(
                "SELECT to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL "
                "AND to_regclass(%s) IS NOT NULL AND to_regclass(%s) IS NOT NULL AS ok",
                [
                    f"{prefix}stored_events",
                    f"{prefix}chain_segments",
                    f"{prefix}projection_checkpoints",
                    f"{prefix}ledger_meta",
                ],
            )
            row = c.fetchone()
            return row is not None and bool(row["ok"])

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
                c.execute(SEGMENTS_DDL.format(p=prefix, suffix=""))
                c.execute(CHECKPOINTS_DDL.format(p=prefix, blob="BYTEA"))
                c.execute(META_DDL.format(p=prefix))
        finally:
            lock_conn.execute("SELECT pg_advisory_unlock(%s)", [_DDL_LOCK_KEY])
            lock_conn.commit()

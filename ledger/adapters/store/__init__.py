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

from pathlib import Path

from eventsourcing.persistence import PersistenceError

from ledger.adapters.store.ledger_store import LedgerStore
from ledger.adapters.store.schema import APPEND_CHUNK, StoredRow, StoreError
from ledger.adapters.store.sqlite import check_sqlite_file, create_sqlite_store
from ledger.domain.errors import BadInputError

__all__ = [
    "APPEND_CHUNK",
    "LedgerStore",
    "StoreError",
    "StoredRow",
    "is_postgres_url",
    "open_store",
]


def is_postgres_url(url: str) -> bool:
    """Return whether ``url`` names a PostgreSQL ledger."""
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, create: bool) -> LedgerStore:
    """Open the ledger at ``url`` (a SQLite path or a ``postgresql://`` DSN).

    Raises:
        BadInputError: the SQLite file does not exist and ``create`` is false.
        StoreError: the location cannot be opened as a ledger.
    """
    try:
        if is_postgres_url(url):
            # Imported here: psycopg costs a tenth of a second at start-up, and most ledgers
            # are SQLite files.
            from ledger.adapters.store.postgres import create_postgres_store  # noqa: PLC0415

            return create_postgres_store(url)
        path = Path(url)
        if not create and not path.exists():
            msg = f"--ledger: no ledger at {url}; run `tradeledger backtest` first or pass --ledger"
            raise BadInputError(msg)
        if path.exists():
            check_sqlite_file(path)
        return create_sqlite_store(path)
    except PersistenceError as e:
        msg = f"--ledger: cannot open {url} as a ledger: {e}"
        raise StoreError(msg) from e

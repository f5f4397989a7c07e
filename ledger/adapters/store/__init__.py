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
* Payloads may be encrypted (``cipher.py``): a ledger records at its first opening whether it
  is, and every later opening must bring the same key, or none for a plaintext ledger.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlparse

from eventsourcing.persistence import PersistenceError

from ledger.adapters.store.cipher import (
    CIPHER_KEY_ENV,
    CIPHER_META,
    PLAINTEXT,
    CipherKeyError,
    PayloadCipher,
    SealedRowError,
    check_record,
    new_cipher_key,
    plain_history_error,
)
from ledger.adapters.store.ledger_store import LedgerStore
from ledger.adapters.store.schema import APPEND_CHUNK, StoredRow, StoreError
from ledger.adapters.store.sqlite import check_sqlite_file, create_sqlite_store
from ledger.domain.errors import BadInputError

__all__ = [
    "APPEND_CHUNK",
    "CIPHER_KEY_ENV",
    "CipherKeyError",
    "LedgerStore",
    "PayloadCipher",
    "SealedRowError",
    "StoreError",
    "StoredRow",
    "is_postgres_url",
    "new_cipher_key",
    "open_store",
]


def is_postgres_url(url: str) -> bool:
    """Return whether ``url`` names a PostgreSQL ledger."""
    return url.startswith(("postgresql://", "postgres://"))


def open_store(url: str, *, create: bool, cipher_key: str | None = None) -> LedgerStore:
    """Open the ledger at ``url`` (a SQLite path or a ``postgresql://`` DSN).

    Args:
        url: where the ledger is.
        create: create a missing SQLite file (readers pass False).
        cipher_key: the base64 AES-256 key of an encrypted ledger (``$TRADELEDGER_CIPHER_KEY``),
            or None for a plaintext one. A ledger opened for the first time is created
            encrypted with this key, or plaintext without one, and stays so.

    Raises:
        BadInputError: the SQLite file does not exist and ``create`` is false.
        CipherKeyError: the key is malformed, or does not fit what the ledger recorded.
        StoreError: the location cannot be opened as a ledger.
    """
    # Checked before the location is touched: a malformed key creates no file.
    cipher = None if cipher_key is None else PayloadCipher(cipher_key)
    try:
        if is_postgres_url(url):
            # Imported here: psycopg costs a tenth of a second at start-up, and most ledgers
            # are SQLite files.
            from ledger.adapters.store.postgres import create_postgres_store  # noqa: PLC0415

            store = create_postgres_store(url)
        else:
            path = Path(url)
            if not create and not path.exists():
                msg = f"--ledger: no ledger at {url}; run `tradeledger backtest` first or pass --ledger"
                raise BadInputError(msg)
            if path.exists():
                check_sqlite_file(path)
            store = create_sqlite_store(path)
        try:
            store.use_cipher(_settle_cipher(store, cipher, _shown(url)))
        except BaseException:
            store.close()
            raise
    except PersistenceError as e:
        msg = f"--ledger: cannot open {_shown(url)} as a ledger: {e}"
        raise StoreError(msg) from e
    return store


def _settle_cipher(store: LedgerStore, cipher: PayloadCipher | None, where: str) -> PayloadCipher | None:
    # The first opening records whether the ledger is encrypted (first writer wins); every
    # opening then checks the key against that record before reading or writing an event.
    recorded = store.read_meta(CIPHER_META)
    if recorded is None:
        if cipher is not None and store.max_seq() > 0:
            # A ledger from before payload encryption, already holding plaintext events.
            raise plain_history_error(where)
        recorded = store.record_meta(CIPHER_META, PLAINTEXT if cipher is None else cipher.record)
    check_record(recorded, cipher, where)
    return cipher


def _shown(url: str) -> str:
    # A DSN as messages may show it: never its password.
    if not is_postgres_url(url):
        return url
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=parsed.netloc.replace(f":{parsed.password}@", ":***@", 1)).geturl()

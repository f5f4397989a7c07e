"""Ledger tables beyond eventsourcing's, and the row shapes the recorders take."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from ledger.domain.errors import LedgerError

# Why 1,000: large enough to amortise a commit, small enough to stay clear of the
# PostgreSQL save that hung at 12,000 events.
APPEND_CHUNK = 1000

SEGMENTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}chain_segments ("
    "run_id TEXT NOT NULL, n_from BIGINT NOT NULL, n_to BIGINT NOT NULL, "
    "hash_to TEXT NOT NULL, PRIMARY KEY (run_id, n_from)){suffix}"
)
# Why WITHOUT ROWID on SQLite: the segment row is written on every commit; clustering it on its
# primary key saves a second b-tree (measured: one-event commits 0.80 -> 0.83 of the floor).
SQLITE_SEGMENTS_SUFFIX = " WITHOUT ROWID"
CHECKPOINTS_DDL = (
    "CREATE TABLE IF NOT EXISTS {p}projection_checkpoints ("
    "name TEXT PRIMARY KEY, version INTEGER NOT NULL, last_seq BIGINT NOT NULL, "
    "state {blob} NOT NULL)"
)
# Facts about the ledger as a whole, one row each; today only ``payload_cipher`` (cipher.py).
META_DDL = "CREATE TABLE IF NOT EXISTS {p}ledger_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)"


class StoreError(LedgerError):
    """The ledger location cannot be opened or is not a tradeledger ledger."""


@dataclass(frozen=True)
class StoredRow:
    """One stored event as the log holds it, decrypted (for verify and export).

    ``fault`` says why ``state`` could not be decrypted (the sealed bytes are then kept as
    stored); it is None for every readable row and on a plaintext ledger.
    """

    seq: int
    topic: str
    originator_id: UUID
    originator_version: int
    state: bytes
    fault: str | None = None


# One encoded event as LedgerStore.append hands it to a recorder:
# (stream id, its hex, originator_version, topic, state).
Row = tuple[UUID, str, int, str, bytes]
# One chain_segments row as LedgerStore.append hands it to a recorder: (run hex, n_from, n_to, hash_to).
SegmentRow = tuple[str, int, int, str]

"""LedgerStore: appends with per-run hash chains, reads, checkpoints (backend-neutral)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    IntegrityError,
)

from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store.cipher import PayloadCipher, SealedRowError
from ledger.adapters.store.schema import (
    APPEND_CHUNK,
    Row,
    StoredRow,
)
from ledger.domain.errors import ConcurrencyConflictError
from ledger.domain.events import LedgerEvent


class LedgerStore:
    """Append-only event store with per-run hash chains, over SQLite or PostgreSQL.

    With a payload cipher (``use_cipher``), every event state and projection checkpoint is
    encrypted on its way in and decrypted on its way out: callers, the hash chain and
    ``read_rows`` only ever see plaintext.
    """

    def __init__(self, recorder: Any, datastore: Any, *, placeholder: str, prefix: str) -> None:
        self._recorder = recorder
        self._datastore = datastore
        self._ph = placeholder
        self._prefix = prefix
        self._heads: dict[UUID, ChainHead] = {}
        self._cipher: PayloadCipher | None = None
        self._seal: Callable[[bytes], bytes] | None = None

    def use_cipher(self, cipher: PayloadCipher | None) -> None:
        """Encrypt stored payloads with ``cipher`` (None: plaintext); set once, at open."""
        self._cipher = cipher
        self._seal = None if cipher is None else cipher.encrypt

    @property
    def encrypted(self) -> bool:
        """Return whether stored payloads are encrypted."""
        return self._cipher is not None

    def _open(self, state: bytes, what: str) -> bytes:
        # Decrypt one stored payload; ``what`` names the row if it fails authentication.
        return state if self._cipher is None else self._cipher.decrypt(bytes(state), what)

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
        seal = self._seal
        for event in events:
            run_id = event.run_id
            link = links.get(run_id)
            if link is None:
                head = self.chain_head(run_id)
                link = links[run_id] = [head.n, head.hash, bytes.fromhex(head.hash), run_id.hex, head.n]
            n = link[0] + 1
            topic, stream, state, digest, hex_digest = encode_link(event, n, link[1], link[2], link[3])
            link[0], link[1], link[2] = n, hex_digest, digest
            if seal is not None:  # the chain hashed the plaintext; the row stores it sealed
                state = seal(state)
            rows.append((event.originator_id, stream, event.originator_version, topic, state))
        # (run hex, n_from, n_to, hash_to): one chain_segments row per run touched.
        segments = [(link[3], link[4], link[0], link[1]) for link in links.values()]
        try:
            ids: list[int] = self._recorder.insert_rows(rows, segments)
        except IntegrityError as e:
            for run_id in links:
                self._heads.pop(run_id, None)
            msg = f"another writer appended to the same stream or run first; reload and retry ({e})"
            raise ConcurrencyConflictError(msg) from e
        for run_id, link in links.items():
            self._heads[run_id] = ChainHead(n=link[0], hash=link[1])
        return ids

    def append_encoded(
        self, run_id: UUID, rows: Sequence[Row], *, head_from: ChainHead, head_to: ChainHead
    ) -> list[int]:
        """Append rows already chain-encoded for one run (``codec.encode_link``), atomically.

        For a writer fed by workers (a sweep): the rows are exactly what ``append`` would
        build for the same events, so the stored bytes are the same. They must continue the
        run's committed chain: ``head_from`` is the head they were linked after, ``head_to``
        the head after the last row.

        Raises:
            ConcurrencyConflictError: the run's committed head is not ``head_from``, or a
                stream version was taken; nothing was written.
        """
        if not rows:
            return []
        committed = self.chain_head(run_id)
        if committed != head_from:
            msg = (
                f"run {run_id}: the rows continue the chain from n={head_from.n}, but the ledger's "
                f"head is n={committed.n}; re-encode them after the current head"
            )
            raise ConcurrencyConflictError(msg)
        seal = self._seal
        stored = list(rows) if seal is None else [(o, s, v, t, seal(state)) for o, s, v, t, state in rows]
        segments = [(run_id.hex, head_from.n, head_to.n, head_to.hash)]
        try:
            ids: list[int] = self._recorder.insert_rows(stored, segments)
        except IntegrityError as e:
            self._heads.pop(run_id, None)
            msg = f"another writer appended to the same stream or run first; reload and retry ({e})"
            raise ConcurrencyConflictError(msg) from e
        self._heads[run_id] = head_to
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
        """Return the committed chain head of every run (its last committed segment)."""
        heads: dict[UUID, ChainHead] = {}
        for run_id, hashes in self.chain_segments().items():
            n = max(hashes)
            heads[run_id] = ChainHead(n=n, hash=hashes[n])
        return heads

    def chain_segments(self) -> dict[UUID, dict[int, str]]:
        """Return, per run, the hash committed at the end of every append (n_to -> hash_to)."""
        rows = self._query(f"SELECT run_id, n_to, hash_to FROM {self._prefix}chain_segments", ())  # noqa: S608
        committed: dict[UUID, dict[int, str]] = {}
        for run, n_to, hash_to in rows:
            committed.setdefault(UUID(run), {})[int(n_to)] = hash_to
        return committed

    def read_stream(
        self, stream_id: UUID, *, desc: bool = False, limit: int | None = None
    ) -> list[LedgerEvent]:
        """Return the events of one stream in version order (or reversed)."""
        stored = self._recorder.select_events(stream_id, desc=desc, limit=limit)
        if self._cipher is None:
            return [codec.decode(s.topic, s.state) for s in stored]
        return [
            codec.decode(
                s.topic,
                self._open(s.state, f"event {s.originator_version} of stream {s.originator_id}"),
            )
            for s in stored
        ]

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Return up to ``limit`` events after ``after_seq``, in notification order.

        Raises:
            SealedRowError: on an encrypted ledger, a row that fails authentication.
        """
        decode = codec.decode
        rows = self._recorder.select_log(after_seq, limit)
        if self._cipher is None:
            return [(seq, decode(topic, state)) for seq, topic, state in rows]
        opened = self._open
        return [(seq, decode(topic, opened(state, f"event seq {seq}"))) for seq, topic, state in rows]

    def read_rows(self, after_seq: int, limit: int) -> list[StoredRow]:
        """Return up to ``limit`` stored rows after ``after_seq``, decrypted but undecoded.

        A row that fails decryption comes back as stored, with ``fault`` saying why, so a
        verifier can report it in place instead of stopping at it.
        """
        rows: list[StoredRow] = []
        for n in self._notifications(after_seq, limit):
            state, fault = n.state, None
            if self._cipher is not None:
                try:
                    state = self._open(n.state, f"event seq {n.id}")
                except SealedRowError as e:
                    state, fault = bytes(n.state), str(e)
            rows.append(StoredRow(n.id, n.topic, n.originator_id, n.originator_version, state, fault))
        return rows

    def max_seq(self) -> int:
        """Return the last notification id (0 for an empty ledger)."""
        return self._recorder.max_notification_id() or 0

    def _notifications(self, after_seq: int, limit: int) -> Sequence[Any]:
        notifications: Sequence[Any] = self._recorder.select_notifications(
            start=after_seq, limit=limit, inclusive_of_start=False
        )
        return notifications

    # -- projection checkpoints ----------------------------------------------------------

    def load_checkpoint(self, name: str) -> tuple[int, int, bytes] | None:
        """Return (version, last_seq, state) of a saved projection, or None."""
        rows = self._query(
            f"SELECT version, last_seq, state FROM {self._prefix}projection_checkpoints "  # noqa: S608
            f"WHERE name = {self._ph}",
            (name,),
        )
        if not rows:
            return None
        state = self._open(bytes(rows[0][2]), f"projection checkpoint {name!r}")
        return rows[0][0], rows[0][1], state

    def save_checkpoint(
        self, name: str, version: int, last_seq: int, state: bytes, *, expected_seq: int | None
    ) -> None:
        """Save a projection's state and position in one transaction (exactly once).

        Raises:
            ConcurrencyConflictError: another process moved the checkpoint since it was loaded.
        """
        p, ph = self._prefix, self._ph
        if self._seal is not None:
            state = self._seal(state)
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

    # -- ledger facts ----------------------------------------------------------------------

    def read_meta(self, name: str) -> str | None:
        """Return the ledger fact ``name`` (a ``ledger_meta`` row), or None if never recorded."""
        rows = self._query(
            f"SELECT value FROM {self._prefix}ledger_meta WHERE name = {self._ph}",  # noqa: S608
            (name,),
        )
        return None if not rows else str(rows[0][0])

    def record_meta(self, name: str, value: str) -> str:
        """Record ``name = value`` unless already recorded; return the value that holds.

        The first writer wins (primary key, no update), so two processes opening one new
        ledger at once agree on its facts.
        """
        with self._datastore.transaction(commit=True) as c:
            c.execute(
                f"INSERT INTO {self._prefix}ledger_meta (name, value) "  # noqa: S608
                f"VALUES ({self._ph}, {self._ph}) ON CONFLICT (name) DO NOTHING",
                (name, value),
            )
        held = self.read_meta(name)
        if held is None:  # pragma: no cover - the insert or an earlier one put it there
            msg = f"ledger_meta lost its {name!r} row"
            raise RuntimeError(msg)
        return held

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

"""Chain verification and canonical export over the stored rows."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from uuid import UUID

import msgspec

from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, CodecError
from ledger.adapters.store import LedgerStore, SealedRowError, StoredRow

PAGE = 10_000


@dataclass(frozen=True, kw_only=True)
class ChainFault:
    """The first place a run's stored chain stops verifying."""

    run_id: UUID
    seq: int | None  # notification id of the bad row (None: rows missing at the end)
    n: int  # chain position the verifier expected
    reason: str


@dataclass(kw_only=True)
class VerifyReport:
    """What verification checked and the first fault per run."""

    events: int = 0
    runs: dict[UUID, tuple[int, str]] = field(default_factory=dict)  # run -> (n, head hash)
    faults: list[ChainFault] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Return whether every checked run verified."""
        return not self.faults


def iter_rows(store: LedgerStore) -> Iterator[StoredRow]:
    """Yield every stored row in notification order."""
    after = 0
    while True:
        rows = store.read_rows(after, PAGE)
        if not rows:
            return
        yield from rows
        after = rows[-1].seq


def verify(store: LedgerStore, run_id: UUID | None = None) -> VerifyReport:
    """Recompute every run's hash chain (or one run's) and report the first bad event.

    An edited row fails its own hash; a deleted or reordered row breaks the next row's link
    (its position or previous hash). Every append also committed the run's hash at its last
    event (``chain_segments``, written in the same transaction), so an edit whose later links
    were all re-hashed still differs from a committed hash, and rows deleted from the end, or
    forged after it, disagree with the committed head.
    """
    report = VerifyReport()
    heads: dict[UUID, tuple[int, str]] = {}
    broken: set[UUID] = set()
    committed = store.chain_segments()
    for row in iter_rows(store):
        fault, run, link = _check_row(row, heads)
        if run is None or (run_id is not None and run != run_id) or run in broken:
            if fault is not None and run is None:
                report.faults.append(fault)
            continue
        report.events += 1
        if fault is None:
            fault = _check_committed(run, row.seq, link, committed.get(run, {}))
        if fault is not None:
            report.faults.append(fault)
            broken.add(run)
            continue
        heads[run] = link
    for run in sorted(set(committed) | set(heads)):
        if (run_id is not None and run != run_id) or run in broken:
            continue
        fault = _check_head(run, heads.get(run, (0, GENESIS_HASH)), committed.get(run, {}))
        if fault is not None:
            report.faults.append(fault)
    report.runs = {run: link for run, link in heads.items() if run_id is None or run == run_id}
    return report


def _check_committed(run: UUID, seq: int, link: tuple[int, str], hashes: dict[int, str]) -> ChainFault | None:
    n, digest = link
    expected = hashes.get(n)
    if expected is None or expected == digest:
        return None
    reason = (
        f"event {n} hashes to {digest[:16]}… but {expected[:16]}… was committed there: "
        "this or an earlier event was edited and the chain re-hashed"
    )
    return ChainFault(run_id=run, seq=seq, n=n, reason=reason)


def _check_head(run: UUID, seen: tuple[int, str], hashes: dict[int, str]) -> ChainFault | None:
    head = max(hashes, default=0)
    if seen[0] < head:
        reason = f"the chain was committed up to event {head} but stored rows stop at {seen[0]}"
        return ChainFault(run_id=run, seq=None, n=seen[0] + 1, reason=reason)
    if seen[0] > head:
        reason = (
            f"stored rows run to event {seen[0]} but the chain was committed only up to {head}: "
            "events were added outside the ledger"
        )
        return ChainFault(run_id=run, seq=None, n=head + 1, reason=reason)
    return None


def _check_row(
    row: StoredRow, heads: dict[UUID, tuple[int, str]]
) -> tuple[ChainFault | None, UUID | None, tuple[int, str]]:
    if row.fault is not None:  # an encrypted row that fails authentication: edited or damaged
        return ChainFault(run_id=UUID(int=0), seq=row.seq, n=0, reason=row.fault), None, (0, "")
    try:
        envelope = codec.decode_envelope(row.state)
        run = UUID(envelope.r)
    except (CodecError, ValueError) as e:
        return (
            ChainFault(run_id=UUID(int=0), seq=row.seq, n=0, reason=f"row is not a ledger event: {e}"),
            None,
            (0, ""),
        )
    n_prev, hash_prev = heads.get(run, (0, GENESIS_HASH))
    link = (envelope.n, envelope.h)
    if envelope.n != n_prev + 1 or envelope.p != hash_prev:
        reason = (
            f"expected event {n_prev + 1} linked to {hash_prev[:16]}…, found event {envelope.n} "
            f"linked to {envelope.p[:16]}…: an event before it was deleted or the rows were reordered"
        )
        return ChainFault(run_id=run, seq=row.seq, n=n_prev + 1, reason=reason), run, link
    digest = codec.chain_hash(
        envelope.p,
        row.topic,
        row.originator_id,
        row.originator_version,
        envelope.v,
        envelope.n,
        bytes(envelope.e),
    )
    if digest != envelope.h:
        reason = (
            f"event {envelope.n} ({row.topic.rsplit(':', 1)[-1]}) does not match its hash: the row was edited"
        )
        return ChainFault(run_id=run, seq=row.seq, n=envelope.n, reason=reason), run, link
    try:
        codec.decode_event(row.topic, envelope)
    except CodecError as e:
        return ChainFault(run_id=run, seq=row.seq, n=envelope.n, reason=str(e)), run, link
    return None, run, link


def export_jsonl(store: LedgerStore, run_id: UUID) -> Iterator[bytes]:
    """Yield one canonical JSON line per event of ``run_id``, in chain order.

    Lines hold no notification ids (they depend on what else the ledger holds), so the same
    inputs and seed export the same bytes from any ledger, encrypted or not.

    Raises:
        SealedRowError: an encrypted row fails authentication (edited or damaged).
    """
    for row in iter_rows(store):
        if row.fault is not None:  # an encrypted row that fails authentication
            raise SealedRowError(row.fault)
        envelope = codec.decode_envelope(row.state)
        if envelope.r != run_id.hex:
            continue
        line = {
            "n": envelope.n,
            "topic": row.topic,
            "originator_id": str(row.originator_id),
            "originator_version": row.originator_version,
            "schema_version": envelope.v,
            "hash_prev": envelope.p,
            "hash": envelope.h,
            "event": msgspec.json.decode(envelope.e),
        }
        yield codec.canonical_json(line) + b"\n"

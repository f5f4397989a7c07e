"""An in-memory EventStore that holds a run's appends until the whole run has succeeded.

A sweep worker runs its backtest into a ``RunBuffer`` instead of the ledger: each ``append``
call (the run loop's atomic chunk) is kept as one chunk, in order. When the run has finished,
the single writer appends the chunks to the ledger one by one, so the ledger sees the very
same atomic appends a ``tradeledger backtest`` would have made, and a run that fails half way
writes nothing at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from ledger.domain.errors import ConcurrencyConflictError
from ledger.domain.events import LedgerEvent


class RunBuffer:
    """Append-only, in-memory storage of one run's events, chunk by chunk (the EventStore port)."""

    def __init__(self) -> None:
        """Start empty."""
        self.chunks: list[list[LedgerEvent]] = []
        self._log: list[LedgerEvent] = []
        self._versions: dict[UUID, int] = {}

    def append(self, events: Sequence[LedgerEvent]) -> list[int]:
        """Keep ``events`` as one chunk; return their positions (1-based) in the buffer.

        Raises:
            ConcurrencyConflictError: an event does not extend its stream by exactly one
                version (the store would refuse it too); nothing is kept.
        """
        known, pending = self._versions, dict[UUID, int]()
        for event in events:
            stream = event.originator_id
            last = pending.get(stream)
            if last is None:
                last = known.get(stream, 0)
            if event.originator_version != last + 1:
                msg = (
                    f"stream {stream} expects version {last + 1}, "
                    f"got {event.originator_version}; nothing was kept"
                )
                raise ConcurrencyConflictError(msg)
            pending[stream] = last + 1
        if not events:
            return []
        first = len(self._log) + 1
        self.chunks.append(list(events))
        self._log.extend(events)
        known.update(pending)
        return list(range(first, first + len(events)))

    def read_stream(
        self, stream_id: UUID, *, desc: bool = False, limit: int | None = None
    ) -> list[LedgerEvent]:
        """Return one stream's buffered events in version order (or reversed)."""
        found = [e for e in self._log if e.originator_id == stream_id]
        if desc:
            found.reverse()
        return found if limit is None else found[:limit]

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Return up to ``limit`` (position, event) pairs after ``after_seq``."""
        window = self._log[after_seq : after_seq + limit]
        return list(enumerate(window, start=after_seq + 1))

    def max_seq(self) -> int:
        """Return the number of buffered events."""
        return len(self._log)

    @property
    def events(self) -> int:
        """Return the number of buffered events."""
        return len(self._log)

"""Ports: the protocols the core needs from the outside world."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID

from ledger.domain.events import LedgerEvent, OrderPlaced
from ledger.domain.order import FillReport, OrderEnded, VenueAck


class Clock(Protocol):
    """Where the current time comes from (wall clock live, simulated in backtests)."""

    def now(self) -> datetime:
        """Return the current UTC-aware time."""
        ...


class IdGenerator(Protocol):
    """Where run ids and client order ids come from."""

    def run_id(self, natural_key: str) -> UUID:
        """Return the id of the run with ``natural_key``."""
        ...

    def client_order_id(self, run_id: UUID, number: int) -> str:
        """Return the client order id of the run's ``number``-th order."""
        ...


class EventLogReader(Protocol):
    """Read access to the global, ordered event log."""

    def read_log(self, after_seq: int, limit: int) -> list[tuple[int, LedgerEvent]]:
        """Return up to ``limit`` (seq, event) pairs after ``after_seq``."""
        ...

    def max_seq(self) -> int:
        """Return the last seq in the log."""
        ...


class CheckpointStore(Protocol):
    """Where tracked projections keep their state and position, atomically."""

    def load_checkpoint(self, name: str) -> tuple[int, int, bytes] | None:
        """Return (version, last_seq, state) or None."""
        ...

    def save_checkpoint(
        self, name: str, version: int, last_seq: int, state: bytes, *, expected_seq: int | None
    ) -> None:
        """Save state and position in one transaction, compare-and-set on ``expected_seq``."""
        ...


class EventStore(EventLogReader, Protocol):
    """Append-only storage of ledger events."""

    def append(self, events: Sequence[LedgerEvent]) -> list[int]:
        """Append events atomically and return their seqs."""
        ...

    def read_stream(
        self, stream_id: UUID, *, desc: bool = False, limit: int | None = None
    ) -> list[LedgerEvent]:
        """Return one stream's events in version order."""
        ...


class ExchangeGateway(Protocol):
    """One venue: backtest, paper or live, chosen at start-up."""

    venue: str

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Send an order; a resubmission with the same client order id returns the same ack."""
        ...

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        """Return the fills (and unfilled ends) reported since the last call."""
        ...

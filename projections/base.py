"""What every projection is: a named, versioned, deterministic fold with a canonical state."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import msgspec

from ledger.domain.events import LedgerEvent

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder(decimal_format="string", order="deterministic")


class Projection(Protocol):
    """A read model folded from the log; ``version`` bumps force a rebuild from zero."""

    name: str
    version: int

    def apply(self, event: LedgerEvent) -> None:
        """Update the read model with one event, in log order."""
        ...

    def snapshot(self) -> bytes:
        """Return the state as canonical bytes."""
        ...

    def restore(self, state: bytes) -> None:
        """Replace the state with a snapshot."""
        ...


def encode_state(state: Any) -> bytes:
    """Return canonical JSON bytes (Decimals as strings, sorted keys) of a read model."""
    return _ENCODER.encode(state)


def decode_state(state: bytes, kind: type[T]) -> T:
    """Return a read model decoded from ``encode_state`` bytes."""
    return msgspec.json.decode(state, type=kind)

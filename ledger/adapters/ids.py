"""Id generators: the only module allowed to use randomness."""

from __future__ import annotations

import uuid
from uuid import UUID

from ledger.domain.identifiers import LEDGER_NAMESPACE


class SeededIds:
    """Reproducible ids for backtests and tests: pure functions of the seed and natural keys."""

    def __init__(self, seed: int) -> None:
        """Derive every id from ``seed``."""
        self.seed = seed

    def run_id(self, natural_key: str) -> UUID:
        """Return uuid5 of the seed and the run's natural key."""
        return uuid.uuid5(LEDGER_NAMESPACE, f"run:{self.seed}:{natural_key}")

    def client_order_id(self, run_id: UUID, number: int) -> str:
        """Return ``tl-<run prefix>-<number>``: short enough for every venue's 36-char limit."""
        return f"tl-{run_id.hex[:12]}-{number:07d}"


class RandomIds:
    """Unpredictable run ids for live sessions, where no two runs may share an id."""

    def run_id(self, natural_key: str) -> UUID:  # noqa: ARG002 - live ids ignore the key
        """Return a random UUID."""
        return uuid.uuid4()

    def client_order_id(self, run_id: UUID, number: int) -> str:
        """Return ``tl-<run prefix>-<number>``."""
        return f"tl-{run_id.hex[:12]}-{number:07d}"

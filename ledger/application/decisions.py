"""The decision-source protocol every strategy and agent implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, MarketContext


class DecisionSource(Protocol):
    """Given market state and the ledger's projections, return decisions."""

    name: str

    def params(self) -> dict[str, str]:
        """Return the parameters as strings (recorded in RunStarted)."""
        ...

    def candidate_bars(self, candles: Candles) -> npt.NDArray[np.int64]:
        """Return the bars at whose close ``decide`` may act (vectorised pre-selection)."""
        ...

    def decide(self, context: MarketContext) -> Decision | None:
        """Return a decision at ``context.bar``'s close, or None to do nothing."""
        ...

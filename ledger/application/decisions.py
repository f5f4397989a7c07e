"""The decision-source protocol every strategy and agent implements."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.domain.decisions import Decision, DecisionRejection, MarketContext


class DecisionSource(Protocol):
    """Given market state and the ledger's projections, return decisions.

    The engine calls ``candidate_bars`` with the candles it has (the whole series in a
    backtest, the rolling window in a session), then ``decide`` at the close of each candidate
    bar. A source that needs more history than ``MarketContext`` carries keeps the candles it
    was last given. ``decide`` is a coroutine so that agents can wait on a model without
    blocking a live session's loop.
    """

    name: str

    def params(self) -> dict[str, str]:
        """Return the parameters as strings (recorded in RunStarted)."""
        ...

    def candidate_bars(self, candles: Candles) -> npt.NDArray[np.int64]:
        """Return the bars at whose close ``decide`` may act (vectorised pre-selection)."""
        ...

    async def decide(self, context: MarketContext) -> Decision | DecisionRejection | None:
        """Return a decision at ``context.bar``'s close, a refused answer, or None to do nothing.

        A ``DecisionRejection`` is recorded as ``DecisionRejected`` and never becomes an order.
        """
        ...

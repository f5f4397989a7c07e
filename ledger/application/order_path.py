"""Builders shared by the backtest loop and the paper/live session loop.

Both turn a decision source's output into the same events, so the pieces that read a run's
projection or build an event from a decision live here once.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from uuid import UUID

from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.events import DecisionMade, RunCheckpointed
from ledger.domain.identifiers import run_stream_id
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import ZERO, D
from projections.checkpoints import figures
from projections.portfolio import RunView


def market_context(run: RunView, instrument: Instrument, bar: int, price: Decimal) -> MarketContext:
    """Return what a decision source sees at ``bar``'s close: the price and the run's projection."""
    position = run.positions.get(instrument.symbol)
    return MarketContext(
        bar=bar,
        instrument=instrument.symbol,
        price_close=price,
        qty_open=ZERO if position is None else position.qty_open,
        quote_free=run.balance(instrument.quote_asset).free,
        base_free=run.balance(instrument.base_asset).free,
    )


def decision_made(
    decision: Decision, *, run_id: UUID, version: int, at: datetime, decision_id: str, source: str
) -> DecisionMade:
    """Return the ``DecisionMade`` recording ``decision`` in the run's stream."""
    return DecisionMade(
        originator_id=run_stream_id(run_id),
        originator_version=version,
        occurred_at=at,
        run_id=run_id,
        decision_id=decision_id,
        source=source,
        instrument=decision.instrument,
        action=decision.action,
        qty=decision.qty,
        qty_quote=decision.qty_quote,
        price_limit=decision.price_limit,
        confidence=decision.confidence,
        rationale=decision.rationale,
        input_digest=decision.input_digest,
        output=decision.output,
    )


def run_checkpointed(run: RunView, *, version: int, at: datetime) -> RunCheckpointed:
    """Return the run's own figures as they stand, for audit replays to check."""
    state = figures(run)
    return RunCheckpointed(
        originator_id=run_stream_id(run.run_id),
        originator_version=version,
        occurred_at=at,
        run_id=run.run_id,
        events=state.events,
        fills=state.fills,
        positions=state.positions_json(),
        balances=state.balances_json(),
        equity=D(state.equity),
    )

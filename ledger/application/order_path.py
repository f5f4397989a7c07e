"""Builders shared by the backtest loop and the paper/live session loop.

Both turn a decision source's output into the same events, so the pieces that read a run's
projection or build an event from a decision live here once.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from decimal import Decimal, localcontext
from uuid import UUID

from ledger.application.decisions import DecisionSource
from ledger.domain.decisions import Decision, DecisionRejection, MarketContext
from ledger.domain.events import (
    DecisionAction,
    DecisionMade,
    DecisionRejected,
    OrderPlaced,
    OrderType,
    RunCheckpointed,
    Side,
)
from ledger.domain.identifiers import order_stream_id, run_stream_id
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D, round_down_to_step
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
        equity=run.equity_now({instrument.symbol: price}),
        pnl_realized=ZERO if position is None else position.pnl_realized,
        fills=run.fills,
        open_orders=len(run.open_orders),
    )


def sized(decision: Decision, context: MarketContext, instrument: Instrument) -> Decision | None:
    """Return ``decision`` with a target weight turned into an order size, or None for no trade.

    With equity E, the position's value V = qty_open x close and the target T = weight x E:
    T > V buys for ``T - V`` of quote cash (at most the free cash); T < V sells
    ``floor((V - T) / close)`` to the step (at most the free base). The side follows the
    arithmetic, not the source's action; a difference that rounds to nothing is no trade.
    Decisions sized by quantity pass through unchanged.
    """
    weight = decision.weight_target
    if weight is None or decision.action is DecisionAction.HOLD:
        return decision
    with localcontext(LEDGER_CONTEXT):
        difference = weight * context.equity - context.qty_open * context.price_close
        if difference > ZERO:
            spend = min(difference, context.quote_free)
            if spend <= ZERO:
                return None
            return replace(decision, action=DecisionAction.BUY, qty_quote=spend, qty=None)
        qty = min(
            round_down_to_step(-difference / context.price_close, instrument.qty_step), context.base_free
        )
    if qty <= ZERO:
        return None
    return replace(decision, action=DecisionAction.SELL, qty=qty, qty_quote=None)


def decision_rejected(
    rejection: DecisionRejection, *, run_id: UUID, version: int, at: datetime, decision_id: str, source: str
) -> DecisionRejected:
    """Return the ``DecisionRejected`` recording a source's refused answer in the run's stream."""
    return DecisionRejected(
        originator_id=run_stream_id(run_id),
        originator_version=version,
        occurred_at=at,
        run_id=run_id,
        decision_id=decision_id,
        source=source,
        instrument=rejection.instrument,
        reason=rejection.reason,
        detail=rejection.detail,
        input_digest=rejection.input_digest,
        output=rejection.output,
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


def unacted(
    answer: Decision | DecisionRejection, run: RunView, *, version: int, at: datetime, source: str
) -> DecisionMade | DecisionRejected:
    """Return the event recording an answer that places no order: a refusal, a hold, no trade.

    Its decision id is numbered from the run's projection (decisions recorded so far), so it
    stays unique across a session's restarts.
    """
    decision_id = f"{run.run_id}-n{run.decisions + run.decisions_rejected + 1}"
    if isinstance(answer, DecisionRejection):
        return decision_rejected(
            answer, run_id=run.run_id, version=version, at=at, decision_id=decision_id, source=source
        )
    return decision_made(
        answer, run_id=run.run_id, version=version, at=at, decision_id=decision_id, source=source
    )


async def consult(
    source: DecisionSource, context: MarketContext, instrument: Instrument
) -> tuple[Decision | None, Decision | DecisionRejection | None]:
    """Ask ``source`` at ``context``: return (a sized decision to place, an answer only to record).

    At most one of the two is set: a refusal, a hold or a target already met places no order
    but is still recorded (every answer is on the record); None from the source is silence.
    """
    answer = await source.decide(context)
    if answer is None:
        return None, None
    order = None if isinstance(answer, DecisionRejection) else sized(answer, context, instrument)
    if order is None or order.action is DecisionAction.HOLD:
        return None, answer
    return order, None


def order_placed(  # noqa: PLR0913 - the order's identity and size, keyword-only
    decision: Decision,
    *,
    run_id: UUID,
    client_order_id: str,
    decision_id: str,
    at: datetime,
    price_expected: Decimal,
    qty: Decimal | None,
    qty_quote: Decimal | None,
    price_limit: Decimal | None,
) -> OrderPlaced:
    """Return the order a decision becomes, sized as the mode's venue needs it.

    The side and the type follow the decision (a limit price makes a limit order); the size
    and the limit are the caller's, after its venue's rules (a backtest keeps a quote amount
    for buys, a live venue needs the base quantity rounded to the step).
    """
    return OrderPlaced(
        originator_id=order_stream_id(client_order_id),
        originator_version=1,
        occurred_at=at,
        run_id=run_id,
        client_order_id=client_order_id,
        decision_id=decision_id,
        instrument=decision.instrument,
        side=Side.BUY if decision.action is DecisionAction.BUY else Side.SELL,
        order_type=OrderType.MARKET if decision.price_limit is None else OrderType.LIMIT,
        qty=qty,
        qty_quote=qty_quote,
        price_limit=price_limit,
        price_expected=price_expected,
    )

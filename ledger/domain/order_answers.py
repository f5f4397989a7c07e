"""The next event of an order's stream, built from its state: one builder per lifecycle step.

Backtests and paper/live sessions record an order's life with these same functions, so an
order's stream reads the same whatever the mode: each event takes the next version of the
stream and the order's own ids from its ``OrderState``.
"""

from __future__ import annotations

from datetime import datetime

from ledger.domain.events import (
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderDenied,
    OrderExpired,
    OrderRejected,
    OrderSubmitted,
)
from ledger.domain.identifiers import order_stream_id
from ledger.domain.order import OrderState, OrderStatus
from ledger.domain.trading_session import Denial


def denied(state: OrderState, denial: Denial, at: datetime) -> OrderDenied:
    """Return the denial of an order the rules stopped before it could leave."""
    return OrderDenied(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        reason=denial.reason,
        detail=denial.detail,
    )


def submitted(state: OrderState, venue: str, at: datetime) -> OrderSubmitted:
    """Return the record that the order is about to be sent to ``venue``."""
    return OrderSubmitted(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        venue=venue,
    )


def cancel_requested(state: OrderState, reason: str, at: datetime) -> OrderCancelRequested:
    """Return the record that we asked the venue to cancel the order, and why."""
    return OrderCancelRequested(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        reason=reason,
    )


def accepted(state: OrderState, venue_order_id: str, at: datetime) -> OrderAccepted:
    """Return the venue's acknowledgement of the order."""
    return OrderAccepted(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        venue_order_id=venue_order_id,
    )


def rejected(state: OrderState, reason: str, detail: str, at: datetime) -> OrderRejected:
    """Return the venue's refusal of the order."""
    return OrderRejected(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        reason=reason,
        detail=detail,
    )


def ended(state: OrderState, reason: str, at: datetime) -> OrderCanceled | OrderExpired:
    """Return the order's end without (more) fills: canceled if we asked, else expired."""
    kind = OrderCanceled if state.status is OrderStatus.CANCEL_REQUESTED else OrderExpired
    return kind(
        originator_id=order_stream_id(state.client_order_id),
        originator_version=state.version + 1,
        occurred_at=at,
        run_id=state.run_id,
        client_order_id=state.client_order_id,
        reason=reason,
    )

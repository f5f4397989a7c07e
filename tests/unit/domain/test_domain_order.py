"""The order stream: evolve() folds the lifecycle, fill_events() decides what a fill appends."""

from __future__ import annotations

from functools import reduce

import pytest

from factories import (
    RUN_ID,
    a_cancel_requested,
    a_fill,
    a_fill_report,
    a_price_marked,
    an_order_accepted,
    an_order_canceled,
    an_order_denied,
    an_order_expired,
    an_order_placed,
    an_order_rejected,
    an_order_submitted,
    at,
    client_order_id,
)
from ledger.domain.errors import FillConflictError, InvariantViolationError
from ledger.domain.events import LedgerEvent, OrderFilled, Side
from ledger.domain.identifiers import order_stream_id
from ledger.domain.numbers import D
from ledger.domain.order import OrderState, OrderStatus, evolve, fill_events


def fold(*events):
    return reduce(evolve, events, None)


def accepted_order(**placed):
    return fold(an_order_placed(**placed), an_order_submitted(), an_order_accepted())


def test_placing_starts_the_state_from_the_order() -> None:
    state = fold(an_order_placed(qty="1.5", price_expected="100"))

    assert state.status is OrderStatus.PLACED
    assert state.version == 1
    assert state.client_order_id == client_order_id(1)
    assert state.run_id == RUN_ID
    assert state.qty == D("1.5")
    assert state.qty_filled == D(0)
    assert state.fills == {}


def test_lifecycle_placed_submitted_accepted_partially_filled_filled() -> None:
    placed = an_order_placed(qty="1")
    statuses = []
    state: OrderState | None = None
    events: list[LedgerEvent] = [
        placed,
        an_order_submitted(),
        an_order_accepted(),
        a_fill(trade=1, qty="0.4"),
        a_fill(trade=2, qty="0.6"),
    ]
    for event in events:
        state = evolve(state, event)
        statuses.append((state.status, state.version))

    assert statuses == [
        (OrderStatus.PLACED, 1),
        (OrderStatus.SUBMITTED, 2),
        (OrderStatus.ACCEPTED, 3),
        (OrderStatus.PARTIALLY_FILLED, 4),
        (OrderStatus.FILLED, 5),
    ]
    assert state is not None
    assert state.qty_filled == D("1.0")
    assert set(state.fills) == {"t-1", "t-2"}


def test_decimal_partial_fills_add_up_exactly() -> None:
    """0.1 + 0.2 is exactly 0.3 in Decimal, so the third-sized fills complete the order."""
    state = accepted_order(qty="0.3")
    state = evolve(state, a_fill(trade=1, qty="0.1"))
    state = evolve(state, a_fill(trade=2, qty="0.2"))

    assert state.qty_filled == D("0.3")
    assert state.status is OrderStatus.FILLED


@pytest.mark.parametrize(
    ("events", "status"),
    [
        ([an_order_denied()], OrderStatus.DENIED),
        ([an_order_submitted(), an_order_rejected()], OrderStatus.REJECTED),
        ([an_order_submitted(), an_order_accepted(), an_order_expired()], OrderStatus.EXPIRED),
        (
            [an_order_submitted(), an_order_accepted(), a_cancel_requested()],
            OrderStatus.CANCEL_REQUESTED,
        ),
        (
            [an_order_submitted(), an_order_accepted(), a_cancel_requested(), an_order_canceled()],
            OrderStatus.CANCELED,
        ),
    ],
    ids=["denied", "rejected", "expired", "cancel-requested", "canceled"],
)
def test_lifecycle_end_states(events, status) -> None:
    state = fold(an_order_placed(), *events)

    assert state.status is status
    assert state.version == events[-1].originator_version


def test_an_event_before_the_order_was_placed_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolationError, match="before OrderPlaced"):
        evolve(None, an_order_submitted())


def test_placing_the_same_order_twice_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolationError, match="placed twice"):
        fold(an_order_placed(), an_order_placed())


def test_a_run_stream_event_in_an_order_stream_is_an_invariant_violation() -> None:
    with pytest.raises(InvariantViolationError, match="not an order event"):
        fold(an_order_placed(), a_price_marked())


# -- fill_events ---------------------------------------------------------------------------------


def test_a_new_fill_appends_one_order_filled_at_the_next_version() -> None:
    state = accepted_order(qty="1", price_expected="99.5")

    [event] = fill_events(state, a_fill_report(trade=7, qty="0.25", price="100.5", fee="0.025"))

    assert isinstance(event, OrderFilled)
    assert event == OrderFilled(
        originator_id=order_stream_id(client_order_id(1)),
        originator_version=4,
        occurred_at=at(7),
        run_id=RUN_ID,
        client_order_id=client_order_id(1),
        venue="backtest",
        instrument="BTC/USDT",
        venue_trade_id="t-7",
        side=Side.BUY,
        qty=D("0.25"),
        price=D("100.5"),
        fee=D("0.025"),
        fee_asset="USDT",
        price_expected=D("99.5"),  # carried from the order, for slippage
    )


def test_duplicate_fill_with_same_payload_is_ignored() -> None:
    state = accepted_order(qty="1")
    report = a_fill_report(trade=1, qty="0.5")
    state = reduce(evolve, fill_events(state, report), state)

    assert fill_events(state, report) == []


def test_duplicate_of_the_completing_fill_is_ignored_even_though_the_order_is_filled() -> None:
    state = accepted_order(qty="1")
    report = a_fill_report(trade=1, qty="1")
    state = reduce(evolve, fill_events(state, report), state)

    assert state.status is OrderStatus.FILLED
    assert fill_events(state, report) == []


def test_duplicate_fill_with_a_later_timestamp_is_still_a_duplicate() -> None:
    """The venue may resend a trade with another report time; the payload is what counts."""
    state = accepted_order(qty="1")
    state = reduce(evolve, fill_events(state, a_fill_report(trade=1, qty="0.5")), state)

    assert fill_events(state, a_fill_report(trade=1, qty="0.5", occurred_at=at(60))) == []


@pytest.mark.parametrize(
    "changed",
    [{"price": "100.01"}, {"qty": "0.4"}, {"fee": "0.2"}, {"fee_asset": "BNB"}, {"side": Side.SELL}],
    ids=lambda c: next(iter(c)),
)
def test_same_trade_id_with_a_different_payload_is_a_fill_conflict(changed) -> None:
    state = accepted_order(qty="1")
    state = reduce(evolve, fill_events(state, a_fill_report(trade=1, qty="0.5")), state)

    with pytest.raises(FillConflictError, match="t-1"):
        fill_events(state, a_fill_report(trade=1, **{"qty": "0.5", **changed}))


def test_a_fill_conflict_is_an_invariant_violation() -> None:
    assert issubclass(FillConflictError, InvariantViolationError)


def test_overfill_is_an_invariant_violation_and_not_a_fill_conflict() -> None:
    state = accepted_order(qty="1")
    state = reduce(evolve, fill_events(state, a_fill_report(trade=1, qty="0.6")), state)

    with pytest.raises(InvariantViolationError, match="overfills") as caught:
        fill_events(state, a_fill_report(trade=2, qty="0.40001"))
    assert not isinstance(caught.value, FillConflictError)


def test_a_fill_exactly_completing_the_order_is_accepted() -> None:
    state = accepted_order(qty="1")
    state = reduce(evolve, fill_events(state, a_fill_report(trade=1, qty="0.6")), state)

    [event] = fill_events(state, a_fill_report(trade=2, qty="0.4"))

    assert evolve(state, event).status is OrderStatus.FILLED


@pytest.mark.parametrize(
    "ending",
    [
        [an_order_denied()],
        [an_order_submitted(), an_order_rejected()],
        [an_order_submitted(), an_order_accepted(), an_order_expired()],
        [an_order_submitted(), an_order_accepted(), a_cancel_requested(), an_order_canceled()],
    ],
    ids=["denied", "rejected", "expired", "canceled"],
)
def test_a_new_fill_on_a_closed_order_is_an_invariant_violation(ending) -> None:
    state = fold(an_order_placed(), *ending)

    with pytest.raises(InvariantViolationError, match="in state"):
        fill_events(state, a_fill_report(trade=1))


def test_a_fill_on_the_wrong_side_is_an_invariant_violation() -> None:
    state = accepted_order(side=Side.BUY)

    with pytest.raises(InvariantViolationError):
        fill_events(state, a_fill_report(side=Side.SELL))


def test_a_fill_after_a_cancel_request_is_still_recorded() -> None:
    """Between the cancel request and the venue's confirmation, the order can still trade."""
    state = fold(an_order_placed(qty="1"), an_order_submitted(), an_order_accepted(), a_cancel_requested())

    [event] = fill_events(state, a_fill_report(trade=1, qty="0.5"))

    assert event.originator_version == 5


def test_fill_events_are_pure() -> None:
    state = accepted_order(qty="1")
    report = a_fill_report(trade=1, qty="0.5")

    assert fill_events(state, report) == fill_events(state, report)
    assert state.fills == {}
    assert state.qty_filled == D(0)


def test_fills_beyond_a_quote_sized_orders_amount_are_an_invariant_violation() -> None:
    """A 1,000 USDT buy filled for 1 BTC @ 100 (100 USDT), then 10 BTC @ 100 (1,000 USDT).

    The second fill would spend 1,100 USDT in total on an order for 1,000.
    """
    state = accepted_order(qty=None, qty_quote="1000")
    state = reduce(evolve, fill_events(state, a_fill_report(trade=1, qty="1", price="100")), state)

    with pytest.raises(InvariantViolationError):
        fill_events(state, a_fill_report(trade=2, qty="10", price="100"))

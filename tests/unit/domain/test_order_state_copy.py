"""evolve() copies OrderState without dataclasses.replace(); the copy must be the same value."""

from __future__ import annotations

import dataclasses

import pytest

from factories import a_fill, an_order_accepted, an_order_placed, an_order_submitted
from ledger.domain.order import OrderState, OrderStatus, evolve


def test_each_step_equals_what_dataclasses_replace_would_build() -> None:
    placed = evolve(None, an_order_placed())
    submitted = evolve(placed, an_order_submitted())
    assert submitted == dataclasses.replace(placed, status=OrderStatus.SUBMITTED, version=2)
    accepted = evolve(submitted, an_order_accepted())
    assert accepted == dataclasses.replace(submitted, status=OrderStatus.ACCEPTED, version=3)
    filled = evolve(accepted, a_fill())
    assert filled.status is OrderStatus.FILLED
    assert filled.qty_filled == a_fill().qty
    assert list(filled.fills) == [a_fill().venue_trade_id]
    assert accepted.fills == {}  # the fill went into a new dict, not the old state's


def test_the_copy_is_a_frozen_order_state_and_leaves_its_source_alone() -> None:
    placed = evolve(None, an_order_placed())
    before = dataclasses.asdict(placed)
    submitted = evolve(placed, an_order_submitted())
    assert type(submitted) is OrderState
    assert dataclasses.asdict(placed) == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        submitted.status = OrderStatus.CANCELED  # type: ignore[misc]


def test_folding_a_whole_lifecycle_gives_every_field_a_value() -> None:
    state = evolve(None, an_order_placed())
    for event in (an_order_submitted(), an_order_accepted(), a_fill()):
        state = evolve(state, event)
    assert set(vars(state)) == {f.name for f in dataclasses.fields(OrderState)}

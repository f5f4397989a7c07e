"""An order's next event is built from its state, the same way in every mode."""

from __future__ import annotations

from factories import T0, a_cancel_requested, an_order_accepted, an_order_placed, an_order_submitted
from ledger.domain.events import OrderCanceled, OrderExpired
from ledger.domain.order import evolve
from ledger.domain.order_answers import accepted, cancel_requested, denied, ended, rejected, submitted
from ledger.domain.trading_session import Denial


def test_each_answer_takes_the_next_version_of_the_orders_stream() -> None:
    placed = an_order_placed()
    state = evolve(None, placed)

    sent = submitted(state, "binance", T0)
    refused = denied(state, Denial(reason="qty_min", detail="qty 0 is below 0.00001"), T0)
    after_send = evolve(state, sent)
    ack = accepted(after_send, "v-1", T0)
    refusal = rejected(after_send, "rate_limited", "429", T0)

    assert (sent.originator_id, sent.originator_version) == (placed.originator_id, 2)
    assert (refused.originator_version, refused.reason) == (2, "qty_min")
    assert (ack.originator_version, ack.venue_order_id) == (3, "v-1")
    assert (refusal.originator_version, refusal.client_order_id) == (3, placed.client_order_id)
    assert ack.run_id == placed.run_id


def test_an_end_is_a_cancel_only_when_we_asked_for_one() -> None:
    working = evolve(evolve(evolve(None, an_order_placed()), an_order_submitted()), an_order_accepted())
    asked = evolve(working, a_cancel_requested(version=4))

    assert isinstance(ended(working, "limit timeout", T0), OrderExpired)
    assert isinstance(ended(asked, "canceled", T0), OrderCanceled)
    assert cancel_requested(working, "policy", T0).originator_version == 4

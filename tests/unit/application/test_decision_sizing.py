"""A target weight becomes an order size the exchange rules accept (order_path.sized)."""

from __future__ import annotations

from decimal import Decimal

from factories import a_market_context
from ledger.application.order_path import sized
from ledger.domain.decisions import Decision
from ledger.domain.events import DecisionAction
from ledger.domain.instruments import instrument_for

D = Decimal
BTC = instrument_for("BTC/USDT")


def _weight(target: str, action: DecisionAction = DecisionAction.BUY) -> Decision:
    return Decision(instrument="BTC/USDT", action=action, weight_target=D(target), rationale="r")


def test_a_weight_above_the_position_buys_the_difference_in_quote() -> None:
    decision = sized(_weight("0.6"), a_market_context(qty_open="0.02", quote_free="8000"), BTC)

    assert decision is not None
    assert (decision.action, decision.qty, decision.qty_quote) == (DecisionAction.BUY, None, D("4000"))
    assert decision.rationale == "r"


def test_a_weight_below_the_position_sells_whole_steps_whatever_the_sources_action() -> None:
    # Equity 10000, BTC worth 9000, target 1/3: sell 5666.67 worth = 0.0566666.. BTC, to the step.
    decision = sized(
        _weight("0.3333", DecisionAction.BUY), a_market_context(qty_open="0.09", quote_free="1000"), BTC
    )

    assert decision is not None
    assert decision.action is DecisionAction.SELL
    assert decision.qty == D("0.05667")
    assert decision.qty_quote is None


def test_a_buy_never_spends_more_than_the_free_cash_and_a_met_target_is_no_trade() -> None:
    capped = sized(_weight("1"), a_market_context(qty_open="0", quote_free="500"), BTC)
    met = sized(_weight("0.5"), a_market_context(qty_open="0.05", quote_free="5000"), BTC)
    dust = sized(_weight("0.4999999"), a_market_context(qty_open="0.05", quote_free="5000"), BTC)

    assert capped is not None
    assert capped.qty_quote == D("500")
    assert met is None
    assert dust is None  # 0.001 quote worth rounds to no whole step


def test_decisions_sized_by_quantity_pass_through() -> None:
    decision = Decision(instrument="BTC/USDT", action=DecisionAction.SELL, qty=D("0.1"))

    assert sized(decision, a_market_context(qty_open="0.1", quote_free="0"), BTC) is decision

"""The trading session: the kill-switch fold and the pre-trade gate."""

from __future__ import annotations

import pytest

from factories import (
    a_fill,
    a_kill_switch_engaged,
    a_kill_switch_released,
    a_price_marked,
    an_instrument,
    an_order_placed,
)
from ledger.domain.events import OrderType, Side
from ledger.domain.numbers import D
from ledger.domain.trading_session import Denial, gate, kill_switch_engaged

BTC = an_instrument()  # step 0.00001, min qty 0.00001, min notional 5 USDT
RICH = {"quote_free": D("1000000"), "base_free": D("1000")}


def reason(order, instrument=BTC, *, halted=False, quote_free=None, base_free=None):
    denial = gate(
        order,
        instrument,
        halted=halted,
        quote_free=RICH["quote_free"] if quote_free is None else D(quote_free),
        base_free=RICH["base_free"] if base_free is None else D(base_free),
    )
    return None if denial is None else denial.reason


# -- kill switch ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("events", "engaged"),
    [
        ([], False),
        ([a_kill_switch_engaged()], True),
        ([a_kill_switch_engaged(), a_kill_switch_released()], False),
        ([a_kill_switch_engaged(), a_kill_switch_released(), a_kill_switch_engaged(version=3)], True),
        ([a_kill_switch_engaged(), a_kill_switch_engaged(version=2)], True),
        ([a_kill_switch_released(version=1)], False),
        ([a_kill_switch_engaged(), a_price_marked(), a_fill()], True),  # other events do not count
    ],
    ids=["none", "engaged", "released", "re-engaged", "engaged-twice", "release-only", "others"],
)
def test_kill_switch_engaged_folds_the_last_engage_or_release(events, engaged) -> None:
    assert kill_switch_engaged(events) is engaged


def test_kill_switch_denies_every_order_first() -> None:
    """Even an order that breaks every other rule is denied for the kill switch."""
    broken = an_order_placed(qty="0.000001", price_expected="1")
    denial = gate(broken, BTC, halted=True, quote_free=D(0), base_free=D(0))

    assert denial is not None
    assert denial == Denial(reason="kill_switch", detail=denial.detail)
    assert "kill switch" in denial.detail


def test_a_valid_order_passes_the_gate() -> None:
    assert reason(an_order_placed(qty="0.01", price_expected="100000")) is None


# -- instrument rules ---------------------------------------------------------------------------


@pytest.mark.parametrize("qty", ["0.000011", "1.000001", "0.123456789"])
def test_a_qty_off_the_step_is_denied(qty) -> None:
    assert reason(an_order_placed(qty=qty, price_expected="100000")) == "qty_step"


def test_qty_step_works_for_steps_that_are_not_powers_of_ten() -> None:
    half = an_instrument(qty_step="0.5", qty_min="0.5", notional_min="0")

    assert reason(an_order_placed(qty="1.5"), half) is None
    assert reason(an_order_placed(qty="1.7"), half) == "qty_step"


def test_a_qty_below_the_minimum_is_denied() -> None:
    instrument = an_instrument(qty_min="0.001", notional_min="0")

    assert reason(an_order_placed(qty="0.00099", price_expected="100"), instrument) == "qty_min"
    assert reason(an_order_placed(qty="0.001", price_expected="100"), instrument) is None


def test_an_order_value_below_the_minimum_notional_is_denied() -> None:
    """0.00004 BTC x 100,000 = 4 USDT < 5; 0.00005 BTC x 100,000 = 5 USDT is enough."""
    assert reason(an_order_placed(qty="0.00004", price_expected="100000")) == "notional_min"
    assert reason(an_order_placed(qty="0.00005", price_expected="100000")) is None


def test_the_notional_of_a_limit_order_uses_its_limit_price() -> None:
    """0.0001 BTC: 4 USDT at the 40,000 limit (denied) though 10 USDT at the 100,000 market."""
    order = an_order_placed(
        qty="0.0001", order_type=OrderType.LIMIT, price_limit="40000", price_expected="100000"
    )

    assert reason(order) == "notional_min"


def test_a_quote_sized_order_below_the_minimum_notional_is_denied() -> None:
    assert reason(an_order_placed(qty=None, qty_quote="4.99")) == "notional_min"
    assert reason(an_order_placed(qty=None, qty_quote="5")) is None


# -- balances -------------------------------------------------------------------------------------


def test_a_buy_spending_more_than_the_free_quote_is_denied() -> None:
    """1 BTC x 100 = 100 USDT: 99.99 free is short by one cent; exactly 100 free is enough."""
    order = an_order_placed(qty="1", price_expected="100")

    assert reason(order, quote_free="99.99") == "insufficient_balance"
    assert reason(order, quote_free="100") is None


def test_a_quote_sized_buy_beyond_the_free_quote_is_denied() -> None:
    order = an_order_placed(qty=None, qty_quote="1000")

    assert reason(order, quote_free="999.999") == "insufficient_balance"
    assert reason(order, quote_free="1000") is None


def test_a_sell_beyond_the_free_base_is_denied() -> None:
    order = an_order_placed(side=Side.SELL, qty="0.5", price_expected="100000")

    assert reason(order, base_free="0.49999") == "insufficient_balance"
    assert reason(order, base_free="0.5") is None


def test_a_sell_does_not_need_quote_cash() -> None:
    order = an_order_placed(side=Side.SELL, qty="0.5", price_expected="100000")

    assert reason(order, quote_free="0", base_free="1") is None


def test_rules_are_checked_in_order_step_before_balance() -> None:
    order = an_order_placed(qty="0.000015", price_expected="100000000")

    assert reason(order, quote_free="0") == "qty_step"


def test_denials_name_the_numbers_involved() -> None:
    denial = gate(
        an_order_placed(qty="1", price_expected="100"), BTC, halted=False, quote_free=D("50"), base_free=D(0)
    )

    assert denial is not None
    assert "100" in denial.detail
    assert "50" in denial.detail

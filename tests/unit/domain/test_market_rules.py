from __future__ import annotations

from decimal import ROUND_UP, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import BadInputError
from ledger.domain.events import OrderType, Side
from ledger.domain.market_rules import (
    UPBIT_KRW_NOTIONAL_MIN,
    UPBIT_KRW_PRICE_BANDS,
    MarketRules,
    MarketRulesError,
    OrderRefusal,
    PreparedOrder,
    PriceBand,
    RefusalReason,
    lookup_rules,
    prepare_order,
    round_up_to_step,
)
from ledger.domain.numbers import D

# Binance spot BTCUSDT filters as recorded in tests/data (LOT_SIZE, PRICE_FILTER, NOTIONAL,
# MARKET_LOT_SIZE); the adapter test checks that the parser produces exactly these.
BTC_USDT = MarketRules(
    symbol="BTC/USDT",
    base="BTC",
    quote="USDT",
    qty_step=D("0.00001"),
    qty_min=D("0.00001"),
    qty_max=D("9000"),
    qty_max_market=D("128.52621715"),
    price_tick=D("0.01"),
    price_min=D("0.01"),
    price_max=D("1000000"),
    notional_min=D("5"),
    notional_max=D("9000000"),
)
BTC_KRW = MarketRules(
    symbol="BTC/KRW",
    base="BTC",
    quote="KRW",
    qty_step=D("0.00000001"),
    price_bands=UPBIT_KRW_PRICE_BANDS,
    notional_min=UPBIT_KRW_NOTIONAL_MIN,
)


def limit(rules, side, qty, price):
    return prepare_order(rules, side=side, order_type=OrderType.LIMIT, qty=Decimal(qty), price=Decimal(price))


def market(rules, side, qty, reference):
    return prepare_order(
        rules,
        side=side,
        order_type=OrderType.MARKET,
        qty=Decimal(qty),
        price=None,
        price_reference=Decimal(reference),
    )


def refused(result) -> RefusalReason:
    assert isinstance(result, OrderRefusal), result
    return result.reason


def test_limit_buy_rounds_qty_down_and_price_down_keeping_the_request():
    result = limit(BTC_USDT, Side.BUY, "0.0123456", "20377.009")

    assert result == PreparedOrder(
        symbol="BTC/USDT",
        side=Side.BUY,
        order_type=OrderType.LIMIT,
        qty_requested=D("0.0123456"),
        qty=D("0.01234"),
        price_requested=D("20377.009"),
        price=D("20377.00"),
        price_reference=None,
        notional=D("251.4521800"),
    )


def test_limit_sell_rounds_price_up_so_it_never_sells_cheaper():
    result = limit(BTC_USDT, Side.SELL, "0.5", "20377.001")

    assert isinstance(result, PreparedOrder)
    assert result.price == D("20377.01")
    assert result.qty == D("0.5")


def test_values_on_the_grid_are_unchanged():
    result = limit(BTC_USDT, Side.SELL, "0.00001", "600000.00")

    assert isinstance(result, PreparedOrder)
    assert (result.qty, result.price, result.notional) == (D("0.00001"), D("600000.00"), D("6.0000000"))


def test_market_order_checks_notional_at_the_reference_price():
    result = market(BTC_USDT, Side.BUY, "0.001", "20377.00")

    assert isinstance(result, PreparedOrder)
    assert result.price is None
    assert result.notional == D("20.37700")


@pytest.mark.parametrize(
    ("qty", "price", "reason"),
    [
        ("0", "20000", RefusalReason.QTY_NON_POSITIVE),
        ("-1", "20000", RefusalReason.QTY_NON_POSITIVE),
        ("NaN", "20000", RefusalReason.QTY_NOT_FINITE),
        ("Infinity", "20000", RefusalReason.QTY_NOT_FINITE),
        ("0.000009", "20000", RefusalReason.QTY_BELOW_STEP),
        ("9000.00001", "100", RefusalReason.QTY_ABOVE_MAX),
        ("1", "0", RefusalReason.PRICE_NON_POSITIVE),
        ("1", "-5", RefusalReason.PRICE_NON_POSITIVE),
        ("1", "NaN", RefusalReason.PRICE_NOT_FINITE),
        ("1", "-Infinity", RefusalReason.PRICE_NOT_FINITE),
        ("1", "0.001", RefusalReason.PRICE_NON_POSITIVE),
        ("1", "1000000.01", RefusalReason.PRICE_OUT_OF_RANGE),
        ("0.0002", "20000", RefusalReason.NOTIONAL_BELOW_MIN),
        ("500", "20000", RefusalReason.NOTIONAL_ABOVE_MAX),
    ],
)
def test_limit_buy_refusals(qty, price, reason):
    assert refused(limit(BTC_USDT, Side.BUY, qty, price)) is reason


def test_refusal_detail_names_value_and_limit():
    result = limit(BTC_USDT, Side.BUY, "0.0002", "20000")

    assert isinstance(result, OrderRefusal)
    assert result.detail == "order value 4.0000 USDT is below the minimum 5"


def test_qty_below_min_names_the_minimum():
    rules = MarketRules(symbol="X/Y", base="X", quote="Y", qty_step=D("0.1"), qty_min=D("1"), price_tick=D(1))

    result = limit(rules, Side.BUY, "0.95", "10")

    assert refused(result) is RefusalReason.QTY_BELOW_MIN
    assert "0.9" in result.detail
    assert "minimum 1 X" in result.detail


def test_market_order_above_market_lot_size_is_refused_though_a_limit_would_pass():
    assert refused(market(BTC_USDT, Side.SELL, "200", "20000")) is RefusalReason.QTY_ABOVE_MAX
    assert isinstance(limit(BTC_USDT, Side.SELL, "200", "20000"), PreparedOrder)


def test_market_order_with_a_price_or_without_a_reference_is_refused():
    with_price = prepare_order(BTC_USDT, side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), price=D(1))
    no_reference = prepare_order(BTC_USDT, side=Side.BUY, order_type=OrderType.MARKET, qty=D(1), price=None)
    bad_reference = market(BTC_USDT, Side.BUY, "1", "NaN")
    no_price = prepare_order(BTC_USDT, side=Side.BUY, order_type=OrderType.LIMIT, qty=D(1), price=None)

    assert refused(with_price) is RefusalReason.PRICE_ON_MARKET_ORDER
    assert refused(no_reference) is RefusalReason.PRICE_MISSING
    assert refused(bad_reference) is RefusalReason.PRICE_NOT_FINITE
    assert refused(no_price) is RefusalReason.PRICE_MISSING


def test_lookup_rules_refuses_an_unknown_symbol():
    catalog = {"BTC/USDT": BTC_USDT}

    result = lookup_rules(catalog, "DOGE/USDT")

    assert isinstance(result, OrderRefusal)
    assert result.reason is RefusalReason.UNKNOWN_SYMBOL
    assert "BTC/USDT" in result.detail
    assert lookup_rules(catalog, "BTC/USDT") is BTC_USDT


@pytest.mark.parametrize(
    ("price", "tick"),
    [
        ("150000000", "1000"),
        ("2000000", "1000"),
        ("1999999", "1000"),
        ("1000000", "1000"),
        ("999999", "500"),
        ("500000", "500"),
        ("499999", "100"),
        ("100000", "100"),
        ("99999", "50"),
        ("50000", "50"),
        ("49999", "10"),
        ("10000", "10"),
        ("9999", "5"),
        ("5000", "5"),
        ("4999", "1"),
        ("1000", "1"),
        ("999", "1"),
        ("100", "1"),
        ("99.99", "0.1"),
        ("10", "0.1"),
        ("9.99", "0.01"),
        ("1", "0.01"),
        ("0.5", "0.001"),
        ("0.05", "0.0001"),
        ("0.005", "0.00001"),
        ("0.0005", "0.000001"),
        ("0.00005", "0.0000001"),
        ("0.000005", "0.00000001"),
    ],
)
def test_upbit_krw_tick_by_price_band(price, tick):
    assert BTC_KRW.tick_for(D(price)) == D(tick)


def test_fixed_tick_ignores_price():
    assert BTC_USDT.tick_for(D("1")) == BTC_USDT.tick_for(D("100000")) == D("0.01")


def test_upbit_krw_btc_limit_orders_round_to_the_1000_krw_band():
    buy = limit(BTC_KRW, Side.BUY, "0.123456789", "150000999")
    sell = limit(BTC_KRW, Side.SELL, "0.123456789", "150000001")

    assert isinstance(buy, PreparedOrder)
    assert isinstance(sell, PreparedOrder)
    assert (buy.qty, buy.price) == (D("0.12345678"), D("150000000"))
    assert (sell.qty, sell.price) == (D("0.12345678"), D("150001000"))


def test_upbit_sell_rounding_up_across_a_band_edge_lands_on_the_next_bands_grid():
    result = limit(BTC_KRW, Side.SELL, "1", "99990")

    assert isinstance(result, PreparedOrder)
    assert result.price == D("100000")


def test_upbit_krw_minimum_order_total_is_5000():
    """0.00003 BTC at 160,000,000 KRW is 4,800 KRW, below 5,000; 0.00004 is 6,400 KRW."""
    assert refused(limit(BTC_KRW, Side.BUY, "0.00003", "160000000")) is RefusalReason.NOTIONAL_BELOW_MIN
    assert isinstance(limit(BTC_KRW, Side.BUY, "0.00004", "160000000"), PreparedOrder)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"price_tick": D("0.01"), "price_bands": UPBIT_KRW_PRICE_BANDS},
        {},
        {"price_tick": D(0)},
        {"price_tick": D("0.01"), "qty_step": D("-1")},
        {"price_tick": D("0.01"), "qty_step": Decimal("NaN")},
        {"price_bands": (PriceBand(price_from=D(10), tick=D(1)),)},
        {"price_bands": (PriceBand(price_from=D(0), tick=D(0)),)},
    ],
)
def test_malformed_rules_are_bad_input(kwargs):
    fields = {"symbol": "X/Y", "base": "X", "quote": "Y", "qty_step": D("0.1"), **kwargs}

    with pytest.raises(MarketRulesError) as caught:
        MarketRules(**fields)

    assert isinstance(caught.value, BadInputError)
    assert "X/Y" in str(caught.value)


def test_round_up_to_step_handles_ticks_that_are_not_powers_of_ten():
    assert round_up_to_step(D("10.2"), D("0.5")) == D("10.5")
    assert round_up_to_step(D("10.5"), D("0.5")) == D("10.5")


quantities = st.decimals(min_value="0.00000001", max_value="100", places=10)
usdt_prices = st.decimals(min_value="0.01", max_value="1000000", places=6)
krw_prices = st.decimals(min_value="0.00000001", max_value="500000000", places=9)


def assert_never_worse(result, rules, side, qty, price):
    if isinstance(result, OrderRefusal):
        return
    step = rules.qty_step
    assert result.qty % step == 0
    assert result.qty <= qty < result.qty + step
    assert result.price is not None
    tick = rules.tick_for(price)
    if side is Side.BUY:
        assert result.price <= price < result.price + tick
    else:
        assert result.price - tick < price <= result.price
    assert result.price % rules.tick_for(result.price) == 0


@given(qty=quantities, price=usdt_prices, side=st.sampled_from(Side))
def test_binance_rounding_is_on_the_grid_and_never_worse(qty, price, side):
    result = prepare_order(BTC_USDT, side=side, order_type=OrderType.LIMIT, qty=qty, price=price)

    assert_never_worse(result, BTC_USDT, side, qty, price)


@given(qty=quantities, price=krw_prices, side=st.sampled_from(Side))
def test_upbit_band_rounding_is_on_the_grid_and_never_worse(qty, price, side):
    result = prepare_order(BTC_KRW, side=side, order_type=OrderType.LIMIT, qty=qty, price=price)

    assert_never_worse(result, BTC_KRW, side, qty, price)


@given(qty=st.decimals(min_value="0.00001", max_value="9000", places=12), reference=usdt_prices)
def test_a_prepared_quantity_is_never_more_than_asked(qty, reference):
    result = prepare_order(BTC_USDT, side=Side.SELL, order_type=OrderType.LIMIT, qty=qty, price=reference)

    if isinstance(result, PreparedOrder):
        assert result.qty <= qty
        assert result.qty % BTC_USDT.qty_step == 0
        assert result.notional == result.qty * reference.quantize(D("0.01"), rounding=ROUND_UP)
    else:
        assert result.reason in {RefusalReason.NOTIONAL_BELOW_MIN, RefusalReason.NOTIONAL_ABOVE_MAX}


def test_price_band_lows_must_descend():
    bands = (PriceBand(price_from=D(0), tick=D(1)), PriceBand(price_from=D(10), tick=D(1)))

    with pytest.raises(MarketRulesError, match="highest down to 0"):
        MarketRules(symbol="X/Y", base="X", quote="Y", qty_step=D(1), price_bands=bands)


def test_decimal_results_keep_the_step_exponent():
    result = limit(BTC_USDT, Side.BUY, "1.999999", "100.129")

    assert isinstance(result, PreparedOrder)
    assert str(result.qty) == "1.99999"
    assert str(result.price) == "100.12"
    assert result.price_requested == Decimal("100.129")

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from ledger.adapters.ccxt_markets import (
    CCXT_DECIMAL_PLACES,
    CCXT_TICK_SIZE,
    rules_from_ccxt_market,
    rules_from_ccxt_markets,
)
from ledger.domain.errors import BadInputError
from ledger.domain.events import OrderType, Side
from ledger.domain.market_rules import (
    UPBIT_KRW_PRICE_BANDS,
    MarketRulesError,
    OrderRefusal,
    PreparedOrder,
    RefusalReason,
    prepare_order,
)
from ledger.domain.numbers import D

# Recorded ccxt load_markets entries; see tests/data/README.md for their origin.
MARKETS_FILE = Path(__file__).parents[2] / "data" / "ccxt_markets_binance_BTCUSDT_upbit_KRWBTC.json"
SHARED_MARKETS = Path(__file__).parents[4] / "shared" / "data" / "exchange" / "ccxt_static"


@pytest.fixture
def recorded():
    return json.loads(MARKETS_FILE.read_text(encoding="utf-8"))


@pytest.fixture
def binance_btc(recorded):
    return recorded["binance"]["BTC/USDT"]


@pytest.fixture
def upbit_btc(recorded):
    return recorded["upbit"]["BTC/KRW"]


def test_binance_btc_usdt_uses_the_recorded_filters(binance_btc):
    rules = rules_from_ccxt_market(binance_btc)

    assert (rules.symbol, rules.base, rules.quote) == ("BTC/USDT", "BTC", "USDT")
    assert str(rules.qty_step) == "0.00001"
    assert str(rules.price_tick) == "0.01"
    assert rules.qty_min == D("0.00001")
    assert rules.qty_max == D("9000")
    assert rules.qty_max_market == D("128.52621715")
    assert (rules.price_min, rules.price_max) == (D("0.01"), D("1000000"))
    assert rules.notional_min == D("5")
    assert rules.notional_max == D("9000000")
    assert rules.price_bands == ()


def test_binance_unified_fields_alone_give_the_same_rules(binance_btc):
    with_filters = rules_from_ccxt_market(binance_btc)
    unified = {key: value for key, value in binance_btc.items() if key != "info"}

    # The recorded file stores precision as decimal places (amount 5, price 2).
    assert rules_from_ccxt_market(unified, precision_mode=CCXT_DECIMAL_PLACES) == with_filters


@pytest.mark.parametrize(
    "precision", [{"amount": 1e-05, "price": 0.01}, {"amount": "0.00001", "price": "0.010"}]
)
def test_tick_size_precision_from_floats_or_strings(binance_btc, precision):
    market = {key: value for key, value in binance_btc.items() if key != "info"}
    market["precision"] = precision

    rules = rules_from_ccxt_market(market, precision_mode=CCXT_TICK_SIZE)

    assert str(rules.qty_step) == "0.00001"
    assert str(rules.price_tick) == "0.01"
    assert rules.notional_min == D("5")


def test_a_disabled_binance_tick_filter_falls_back_to_ccxt_precision(binance_btc):
    market = copy.deepcopy(binance_btc)
    for entry in market["info"]["filters"]:
        if entry["filterType"] == "PRICE_FILTER":
            entry["tickSize"] = "0.00000000"
    market["precision"] = {"amount": 1e-05, "price": 0.1}

    assert rules_from_ccxt_market(market).price_tick == D("0.1")


def test_prepare_order_with_parsed_binance_rules(binance_btc):
    rules = rules_from_ccxt_market(binance_btc)

    result = prepare_order(
        rules, side=Side.BUY, order_type=OrderType.LIMIT, qty=D("0.0123456"), price=D("20377.009")
    )

    assert isinstance(result, PreparedOrder)
    assert (result.qty, result.price) == (D("0.01234"), D("20377.00"))


def test_upbit_krw_btc_gets_the_price_band_table_and_5000_krw_minimum(upbit_btc):
    rules = rules_from_ccxt_market(upbit_btc)

    assert rules.price_tick is None
    assert rules.price_bands == UPBIT_KRW_PRICE_BANDS
    assert rules.notional_min == D("5000")
    assert rules.qty_step == D("0.00000001")
    ticks = [
        rules.tick_for(D(price)) for price in ("150000000", "1500000", "750000", "120000", "60000", "20000")
    ]
    assert ticks == [D("1000"), D("1000"), D("500"), D("100"), D("50"), D("10")]
    assert [rules.tick_for(D(p)) for p in ("7000", "1500", "150", "15", "1.5")] == [
        D("5"),
        D("1"),
        D("1"),
        D("0.1"),
        D("0.01"),
    ]


def test_upbit_amount_minimum_in_krw_is_not_taken_as_a_btc_quantity(upbit_btc):
    # ccxt's fetch_market maps Upbit's ask.min_total (KRW) to limits.amount.min.
    market = copy.deepcopy(upbit_btc)
    market["limits"] = {"amount": {"min": 5000}, "cost": {"min": 5000, "max": 1000000000}}

    rules = rules_from_ccxt_market(market)

    assert rules.qty_min == D(0)
    assert rules.notional_max == D("1000000000")
    small = prepare_order(
        rules, side=Side.BUY, order_type=OrderType.LIMIT, qty=D("0.0001"), price=D("150000000")
    )
    assert isinstance(small, PreparedOrder)
    tiny = prepare_order(
        rules, side=Side.BUY, order_type=OrderType.LIMIT, qty=D("0.00003"), price=D("150000000")
    )
    assert isinstance(tiny, OrderRefusal)
    assert tiny.reason is RefusalReason.NOTIONAL_BELOW_MIN


def test_rules_for_every_market_by_symbol(recorded):
    markets = {**recorded["binance"], **recorded["upbit"]}

    catalog = rules_from_ccxt_markets(markets)

    assert sorted(catalog) == ["BTC/KRW", "BTC/USDT"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda m: m["precision"].pop("amount"), "precision.amount"),
        (lambda m: m.pop("precision"), "precision.amount"),
        (lambda m: m["precision"].update(amount=-0.001), "precision.amount"),
        (lambda m: m["precision"].update(amount=float("nan")), "precision.amount"),
        (lambda m: m["precision"].update(amount=0), "precision.amount"),
        (lambda m: m["precision"].update(amount="abc"), "precision.amount"),
        (lambda m: m["precision"].update(amount=True), "precision.amount"),
        (lambda m: m["precision"].update(price=float("inf")), "precision.price"),
        (lambda m: m["limits"]["cost"].update(min=-5), "limits.cost.min"),
        (lambda m: m.update(base=None), "'base'"),
    ],
)
def test_malformed_market_names_the_field(binance_btc, change, field):
    market = {key: copy.deepcopy(value) for key, value in binance_btc.items() if key != "info"}
    market["precision"] = {"amount": 1e-05, "price": 0.01}
    change(market)

    with pytest.raises(MarketRulesError) as caught:
        rules_from_ccxt_market(market)

    assert isinstance(caught.value, BadInputError)
    assert field in str(caught.value)
    assert "BTC/USDT" in str(caught.value)


def test_malformed_binance_filter_names_the_filter(binance_btc):
    market = copy.deepcopy(binance_btc)
    market["info"]["filters"][1]["stepSize"] = "NaN"

    with pytest.raises(MarketRulesError, match=r"info\.filters\.LOT_SIZE\.stepSize"):
        rules_from_ccxt_market(market)


def test_missing_symbol_is_named():
    with pytest.raises(MarketRulesError, match="'symbol'"):
        rules_from_ccxt_market({"precision": {"amount": 1, "price": 1}})


def test_decimal_places_precision_must_be_whole(binance_btc):
    market = {key: value for key, value in binance_btc.items() if key != "info"}
    market["precision"] = {"amount": 0.5, "price": 2}

    with pytest.raises(MarketRulesError, match="decimal places"):
        rules_from_ccxt_market(market, precision_mode=CCXT_DECIMAL_PLACES)


def test_precision_mode_constants_match_ccxt():
    decimal_to_precision = pytest.importorskip("ccxt.base.decimal_to_precision")

    assert decimal_to_precision.DECIMAL_PLACES == CCXT_DECIMAL_PLACES
    assert decimal_to_precision.TICK_SIZE == CCXT_TICK_SIZE


def test_every_recorded_shared_market_parses():
    if not SHARED_MARKETS.is_dir():
        pytest.skip(f"../shared data is not present at {SHARED_MARKETS}; tests/data covers the same markets")
    binance = json.loads((SHARED_MARKETS / "markets_binance_BTCUSDT_ETHUSDT_excerpt.json").read_text("utf-8"))
    upbit = json.loads((SHARED_MARKETS / "markets_upbit.json").read_text("utf-8"))

    binance_rules = rules_from_ccxt_markets(binance)
    upbit_rules = rules_from_ccxt_markets(upbit)

    assert binance_rules["ETH/USDT"].qty_step == D("0.0001")
    assert upbit_rules["ETH/KRW"].price_bands == UPBIT_KRW_PRICE_BANDS
    # Upbit's BTC market has one tick, 0.00000001 BTC, which is what ccxt reports.
    assert upbit_rules["ETH/BTC"].price_tick == D("0.00000001")

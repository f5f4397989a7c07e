from __future__ import annotations

import csv
import itertools
import math
import statistics
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.errors import BadInputError
from ledger.domain.events import Side
from ledger.domain.numbers import D
from ledger.domain.slippage import (
    MarketImpact,
    SlippageInputError,
    SlippageTracker,
    estimate_fill,
    impact_class,
    volatility_adjusted,
)

DATA = Path(__file__).parents[2] / "data"


def read_book(name: str, side: str) -> list[tuple[Decimal, Decimal]]:
    with (DATA / name).open(encoding="utf-8", newline="") as handle:
        return [(D(row["price"]), D(row["qty"])) for row in csv.DictReader(handle) if row["side"] == side]


# Binance USD-M BTCUSDT, REST depth snapshot 2022-11-01 23:49:39 UTC, best 50 bids (tests/data/README.md).
BIDS_20221101 = read_book("orderbook_binance_usdm_BTCUSDT_bids_top50_20221101.csv", "bid")
# Binance USD-M BTCUSDT, Tardis book_snapshot_25 at 2020-09-01 00:00:03 UTC, best 25 asks.
ASKS_20200901 = read_book("orderbook_binance_usdm_BTCUSDT_top25_20200901.csv", "ask")


def book(*levels: tuple[str, str]) -> list[tuple[Decimal, Decimal]]:
    return [(D(price), D(qty)) for price, qty in levels]


def reference_walk(levels, qty):
    """Independent reference: expand the walk level by level and sum price x qty."""
    remaining, cost = qty, D(0)
    for price, amount in levels:
        take = min(remaining, amount)
        cost += take * price
        remaining -= take
    return cost


def test_buy_worked_example():
    """Buy 2.5 against asks 1 @ 100, 2 @ 101, 5 @ 103.

    Fill 1 @ 100 + 1.5 @ 101 = 100 + 151.5 = 251.5; average 251.5 / 2.5 = 100.6.
    Slippage (100.6 - 100) / 100 = 0.006 = 60 bps. Depth 8, so 2.5 / 8 = 0.3125: high impact.
    """
    estimate = estimate_fill(book(("100", "1"), ("101", "2"), ("103", "5")), side=Side.BUY, qty=D("2.5"))

    assert estimate.qty_fillable == D("2.5")
    assert estimate.cost_fillable == D("251.5")
    assert estimate.price_avg == D("100.6")
    assert estimate.price_best == D("100")
    assert estimate.slippage_bps == D("60")
    assert estimate.levels_used == 2
    assert estimate.depth_used == D("0.3125")
    assert estimate.impact is MarketImpact.HIGH
    assert estimate.insufficient_depth is False


def test_sell_worked_example_rounds_the_average_to_18_places():
    """Sell 1.5 against bids 1 @ 100, 1 @ 99: 100 + 49.5 = 149.5; 149.5 / 1.5 = 99.666...

    Average 99.666666666666666667 (18 places); slippage (100 - avg) / 100 x 10,000 bps
    = 33.3333333333333333 bps, kept at 8 places.
    """
    estimate = estimate_fill(book(("100", "1"), ("99", "1")), side=Side.SELL, qty=D("1.5"))

    assert estimate.price_avg == D("99.666666666666666667")
    assert estimate.slippage_bps == D("33.33333333")


def test_quote_sized_buy_spends_the_quote_amount():
    """Spend 201 against asks 1 @ 100, 2 @ 101: 100 buys 1, then 101 buys 1; average 100.5 = 50 bps."""
    estimate = estimate_fill(book(("100", "1"), ("101", "2")), side=Side.BUY, qty_quote=D("201"))

    assert estimate.qty_fillable == D("2")
    assert estimate.cost_fillable == D("201")
    assert estimate.price_avg == D("100.5")
    assert estimate.slippage_bps == D("50")
    # 201 of a visible 100 + 202 = 302 quote.
    assert estimate.depth_used == (D("201") / D("302")).quantize(D("1e-18"))


def test_only_depth_levels_are_considered():
    asks = [(D(100 + level), D(1)) for level in range(60)]

    default = estimate_fill(asks, side=Side.BUY, qty=D(55))
    deeper = estimate_fill(asks, side=Side.BUY, qty=D(55), depth_levels=60)

    assert default.insufficient_depth is True
    assert default.qty_fillable == D(50)
    assert deeper.insufficient_depth is False
    assert deeper.qty_fillable == D(55)


@pytest.mark.parametrize(
    ("ratio", "impact"),
    [
        ("0", MarketImpact.NEGLIGIBLE),
        ("0.0099", MarketImpact.NEGLIGIBLE),
        ("0.01", MarketImpact.LOW),
        ("0.0499", MarketImpact.LOW),
        ("0.05", MarketImpact.MODERATE),
        ("0.0999", MarketImpact.MODERATE),
        ("0.10", MarketImpact.HIGH),
        ("3", MarketImpact.HIGH),
    ],
)
def test_impact_class_bounds(ratio, impact):
    assert impact_class(D(ratio)) is impact


def test_real_book_sell_1_btc_fills_at_the_best_bid():
    estimate = estimate_fill(BIDS_20221101, side=Side.SELL, qty=D(1))

    assert estimate.price_best == D("20377.00")
    assert estimate.price_avg == D("20377.00")
    assert estimate.slippage_bps == 0
    # 1 BTC of the 89.386 BTC in the best 50 bids: 1.1 %.
    assert estimate.depth_used == (D(1) / D("89.386")).quantize(D("1e-18"))
    assert estimate.impact is MarketImpact.LOW


def test_real_book_sell_50_btc_walks_41_levels():
    """50 BTC take the best 41 bids for 1,018,749.4134 USDT: average 20,374.988268.

    Slippage (20377 - 20374.988268) / 20377 x 10,000 = 0.98725622 bps.
    """
    estimate = estimate_fill(BIDS_20221101, side=Side.SELL, qty=D(50))

    assert estimate.cost_fillable == reference_walk(BIDS_20221101, D(50)) == D("1018749.4134")
    assert estimate.price_avg == D("20374.988268")
    assert estimate.slippage_bps == D("0.98725622")
    assert estimate.levels_used == 41
    assert estimate.insufficient_depth is False
    assert estimate.impact is MarketImpact.HIGH


def test_real_book_absurd_size_reports_insufficient_depth():
    estimate = estimate_fill(BIDS_20221101, side=Side.SELL, qty=D(1000))

    assert estimate.insufficient_depth is True
    assert estimate.qty_fillable == sum((qty for _, qty in BIDS_20221101), D(0)) == D("89.386")
    assert estimate.levels_used == 50
    assert estimate.depth_used > 1


def test_real_book_buys():
    one = estimate_fill(ASKS_20200901, side=Side.BUY, qty=D(1))
    fifty = estimate_fill(ASKS_20200901, side=Side.BUY, qty=D(50))
    ten = estimate_fill(ASKS_20200901, side=Side.BUY, qty=D(10))

    assert (one.price_avg, one.slippage_bps) == (D("11657.08"), D(0))
    assert ten.cost_fillable == reference_walk(ASKS_20200901, D(10))
    assert ten.price_avg > ten.price_best
    assert ten.slippage_bps > 0
    # The recorded 25 ask levels hold 18.974 BTC, so 50 BTC cannot be filled.
    assert fifty.insufficient_depth is True
    assert fifty.qty_fillable == D("18.974")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qty": D(0)}, "qty must be a finite number above 0, was 0"),
        ({"qty": D(-1)}, "qty must be"),
        ({"qty": Decimal("NaN")}, "qty must be"),
        ({"qty": Decimal("Infinity")}, "qty must be"),
        ({"qty_quote": D(0)}, "qty_quote must be"),
        ({}, "exactly one of qty"),
        ({"qty": D(1), "qty_quote": D(1)}, "exactly one of qty"),
        ({"qty": D(1), "depth_levels": 0}, "depth_levels"),
    ],
)
def test_bad_sizes_are_refused_with_a_clear_message(kwargs, message):
    with pytest.raises(SlippageInputError, match=message) as caught:
        estimate_fill(book(("100", "1")), side=Side.BUY, **kwargs)

    assert isinstance(caught.value, BadInputError)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(
    ("levels", "side", "message"),
    [
        ([], Side.BUY, "empty"),
        (book(("101", "1"), ("100", "1")), Side.BUY, "out of order; a buy walks ascending asks"),
        (book(("100", "1"), ("101", "1")), Side.SELL, "out of order; a sell walks descending bids"),
        (book(("100", "1"), ("100", "1")), Side.BUY, "out of order"),
        (book(("0", "1")), Side.BUY, "price must be"),
        (book(("100", "-1")), Side.BUY, "qty must be a finite number >= 0"),
        ([(D(100), Decimal("NaN"))], Side.BUY, "qty must be"),
        (book(("100", "0"), ("101", "0")), Side.BUY, "no quantity"),
    ],
)
def test_bad_books_are_refused(levels, side, message):
    with pytest.raises(SlippageInputError, match=message):
        estimate_fill(levels, side=side, qty=D(1))


def test_zero_quantity_levels_are_skipped():
    estimate = estimate_fill(book(("100", "0"), ("101", "1")), side=Side.BUY, qty=D(1))

    assert estimate.price_avg == D("101")
    assert estimate.levels_used == 1


def float_volatility(closes):
    returns = [math.log(float(b) / float(a)) for a, b in itertools.pairwise(closes)]
    return statistics.stdev(returns)


def test_volatility_scales_slippage():
    estimate = estimate_fill(book(("100", "1"), ("101", "2"), ("103", "5")), side=Side.BUY, qty=D("2.5"))
    closes = [D("100"), D("110"), D("99")]

    adjusted = volatility_adjusted(estimate, closes)

    # A statistic, so compare with a float reference: ln(1.1) and ln(0.9) have std 0.1418...
    assert float(adjusted.volatility) == pytest.approx(float_volatility(closes), rel=1e-15)
    assert adjusted.slippage_bps_adjusted == (D(60) * (1 + adjusted.volatility)).quantize(D("1e-8"))
    assert adjusted.closes_used == 3


def test_volatility_uses_the_last_60_closes_only():
    estimate = estimate_fill(book(("100", "1"), ("101", "1")), side=Side.BUY, qty=D("1.5"))
    closes = [D(100 + (i % 7) * (i % 3)) for i in range(100)]

    adjusted = volatility_adjusted(estimate, closes)

    assert adjusted.closes_used == 60
    assert adjusted.volatility == volatility_adjusted(estimate, closes[-60:]).volatility
    assert float(adjusted.volatility) == pytest.approx(float_volatility(closes[-60:]), rel=1e-12)


def test_flat_closes_leave_slippage_unchanged():
    estimate = estimate_fill(book(("100", "1"), ("101", "1")), side=Side.BUY, qty=D("1.5"))

    adjusted = volatility_adjusted(estimate, [D(100)] * 60)

    assert adjusted.volatility == 0
    assert adjusted.slippage_bps_adjusted == estimate.slippage_bps


@pytest.mark.parametrize(
    ("closes", "message"),
    [
        ([D(1), D(2)], "at least 3 closes"),
        ([D(1), D(0), D(2)], "close must be"),
        ([D(1), D(-2), D(2)], "close"),
    ],
)
def test_bad_closes_are_refused(closes, message):
    estimate = estimate_fill(book(("100", "1")), side=Side.BUY, qty=D(1))

    with pytest.raises(SlippageInputError, match=message):
        volatility_adjusted(estimate, closes)


def test_tracker_keeps_the_last_100_per_symbol():
    tracker = SlippageTracker()
    for value in range(150):
        tracker.record("BTC/USDT", D(value))
    tracker.record("ETH/USDT", D("-2.5"))
    tracker.record("ETH/USDT", D("1.5"))

    # Kept: 50..149, average (50 + 149) / 2 = 99.5; worst (most adverse) 149.
    assert tracker.count("BTC/USDT") == 100
    assert tracker.average_bps("BTC/USDT") == D("99.5")
    assert tracker.worst_bps("BTC/USDT") == D(149)
    assert tracker.average_bps("ETH/USDT") == D("-0.5")
    assert tracker.worst_bps("ETH/USDT") == D("1.5")
    assert tracker.average_bps("XRP/USDT") is None
    assert tracker.worst_bps("XRP/USDT") is None
    assert tracker.count("XRP/USDT") == 0


def test_tracker_rejects_bad_values():
    with pytest.raises(SlippageInputError, match="window"):
        SlippageTracker(window=0)
    with pytest.raises(SlippageInputError, match="finite"):
        SlippageTracker().record("BTC/USDT", Decimal("NaN"))


levels_strategy = st.lists(
    st.tuples(st.decimals(min_value="0.01", max_value="10", places=2), st.decimals("0", "5", places=3)),
    min_size=1,
    max_size=20,
)


@given(steps=levels_strategy, qty=st.decimals(min_value="0.001", max_value="50", places=3))
def test_a_buy_never_averages_below_the_best_ask_nor_fills_more_than_asked(steps, qty):
    price, asks = D(100), []
    for step, amount in steps:
        price += step
        asks.append((price, amount))
    if all(amount == 0 for _, amount in asks):
        return

    estimate = estimate_fill(asks, side=Side.BUY, qty=qty)

    assert estimate.qty_fillable <= qty
    assert estimate.price_avg >= estimate.price_best
    assert estimate.slippage_bps >= 0
    assert estimate.insufficient_depth == (qty > sum((a for _, a in asks), D(0)))
    assert estimate.cost_fillable == reference_walk(asks, qty)

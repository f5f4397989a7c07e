"""Fill-model formulas, each on a worked example computed by hand (README, Fill models)."""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal
from typing import Any

import pytest

from ledger.domain.events import Side
from ledger.domain.fill_book import BOOK_LEVELS, synthesized_side, walk
from ledger.domain.fill_models import (
    BarQuote,
    FillModel,
    FillSettings,
    HashDraws,
    SlippageModel,
    half_spread,
    parse_described,
    price_at,
    slippage_fraction,
    slipped_price,
    to_tick,
    traded_through,
    volume_at_or_through,
    working_limit,
)
from ledger.domain.numbers import D

TICK = D("0.01")
# open 100, high 102, low 99, close 101, 10 units traded, one minute from t = 60 s.
BAR = BarQuote(
    open=D("100"),
    high=D("102"),
    low=D("99"),
    close=D("101"),
    volume=D("10"),
    open_ms=60_000,
    close_ms=120_000,
)


def test_price_at_the_open_and_on_the_open_to_close_line() -> None:
    """At +15 s of 60 s the line is 100 + (101 - 100) x 15/60 = 100.25; at +20 s 100.333... -> 100.33."""
    assert price_at(BAR, 60_000, TICK) == D("100")
    assert price_at(BAR, 30_000, TICK) == D("100")  # arriving in a gap before the bar: its open
    assert price_at(BAR, 75_000, TICK) == D("100.25")
    assert price_at(BAR, 80_000, TICK) == D("100.33")


def test_half_spread_is_one_tick_or_the_given_bps_never_less_than_a_tick() -> None:
    assert half_spread(D("100"), TICK, None) == D("0.005")
    assert half_spread(D("100"), TICK, D("10")) == D("0.05")  # 10 bps of 100 = 0.1, halved
    assert half_spread(D("100"), TICK, D("0.1")) == D("0.005")  # 0.001 < one tick


@pytest.mark.parametrize(
    ("model", "qty", "expected"),
    [
        # r = (102 - 99) / 100 = 0.03, k = 2.
        (SlippageModel.NONE, D("5"), D("0")),
        (SlippageModel.LINEAR, D("5"), D("0.03")),  # 2 x 0.03 x 5/10
        (SlippageModel.LINEAR, D("20"), D("0.06")),  # p = 20 / max(10, 20) = 1
        (SlippageModel.SQRT, D("2.5"), D("0.03")),  # 2 x 0.03 x sqrt(0.25) = 0.03
        (SlippageModel.LOG, D("10"), D("0.06")),  # 2 x 0.03 x ln(2)/ln(2)
    ],
)
def test_slippage_fraction_worked_examples(model, qty, expected) -> None:
    assert slippage_fraction(model, impact=D("2"), qty=qty, bar=BAR) == expected


def test_log_slippage_is_between_linear_and_sqrt_for_a_small_order() -> None:
    """At p = 0.1: linear 0.1, log ln(1.1)/ln 2 = 0.1375..., sqrt 0.316...; all times k r = 0.03."""
    got = {m: slippage_fraction(m, impact=D("1"), qty=D("1"), bar=BAR) for m in SlippageModel}
    assert got[SlippageModel.LINEAR] == D("0.003")
    assert D("0.004125") < got[SlippageModel.LOG] < D("0.004126")
    assert D("0.009486") < got[SlippageModel.SQRT] < D("0.009487")


def test_zero_volume_bar_counts_the_order_as_the_whole_bar() -> None:
    quiet = BarQuote(**{**BAR.__dict__, "volume": D("0")})
    assert slippage_fraction(SlippageModel.SQRT, impact=D("1"), qty=D("1"), bar=quiet) == D("0.03")


def test_slipped_price_moves_against_the_order_with_a_half_spread_floor() -> None:
    kwargs: dict[str, Any] = {
        "reference": D("100"),
        "floor": D("0.005"),
        "tick": TICK,
        "model": SlippageModel.LINEAR,
    }
    # 100 x 0.0001 = 0.01 > 0.005: buy 100.01, sell 99.99.
    assert slipped_price(Side.BUY, fraction=D("0.0001"), **kwargs) == D("100.01")
    assert slipped_price(Side.SELL, fraction=D("0.0001"), **kwargs) == D("99.99")
    # 0 < floor: the half spread, rounded to the tick against the order.
    assert slipped_price(Side.BUY, fraction=D("0"), **kwargs) == D("100.01")
    assert slipped_price(Side.SELL, fraction=D("0"), **kwargs) == D("99.99")
    # none is the reference exactly, spread and all.
    assert slipped_price(Side.BUY, fraction=D("0.5"), **{**kwargs, "model": SlippageModel.NONE}) == D("100")
    # a sell never goes below one tick.
    assert slipped_price(Side.SELL, fraction=D("2"), **kwargs) == TICK


def test_working_limit_never_worsens_the_order_and_ticks_need_not_be_powers_of_ten() -> None:
    assert working_limit(Side.BUY, D("99.987"), TICK) == D("99.98")
    assert working_limit(Side.SELL, D("99.981"), TICK) == D("99.99")
    assert to_tick(D("10.3"), D("0.5"), ROUND_CEILING) == D("10.5")


def test_trade_through_is_strict() -> None:
    assert traded_through(Side.BUY, D("99.01"), BAR.low, BAR.high)
    assert not traded_through(Side.BUY, D("99"), BAR.low, BAR.high)  # touched, not traded through
    assert traded_through(Side.SELL, D("101.99"), BAR.low, BAR.high)
    assert not traded_through(Side.SELL, D("102"), BAR.low, BAR.high)


def test_volume_at_or_through_counts_ticks_of_the_range() -> None:
    """The range 99..102 has 301 ticks; a buy at 99.99 has 100 ticks at or below it: 10 x 100/301."""
    assert volume_at_or_through(Side.BUY, D("99.99"), BAR, TICK) == D("10") * 100 / D("301")
    assert volume_at_or_through(Side.BUY, D("99"), BAR, TICK) == D("10") / D("301")  # the low tick
    assert volume_at_or_through(Side.BUY, D("98.99"), BAR, TICK) == D("0")
    assert volume_at_or_through(Side.BUY, D("105"), BAR, TICK) == D("10")
    assert volume_at_or_through(Side.SELL, D("102"), BAR, TICK) == D("10") / D("301")


def test_hash_draws_are_seeded_keyed_and_in_the_unit_interval() -> None:
    draws = HashDraws(7)
    first = [draws.uniform(f"submit:o-{i}") for i in range(200)]
    assert first == [HashDraws(7).uniform(f"submit:o-{i}") for i in range(200)]
    assert first != [HashDraws(8).uniform(f"submit:o-{i}") for i in range(200)]
    assert all(D("0") <= d < D("1") for d in first)
    assert D("0.35") < sum(first) / len(first) < D("0.65")


def test_describe_is_the_model_alone_for_defaults_and_reads_back() -> None:
    assert FillSettings().describe() == "next-open"
    settings = FillSettings(
        model=FillModel.NEXT_OPEN,
        slippage=SlippageModel.SQRT,
        latency_ms=250,
        failure_rate=D("0.10"),
        maker_fee=D("2E-4"),
        queue_ahead=D("0.5"),
    )
    text = settings.describe()
    assert text == "next-open slippage=sqrt latency_ms=250 failure_rate=0.1 maker_fee=0.0002 queue_ahead=0.5"
    assert parse_described(text) == {
        "model": "next-open",
        "slippage": "sqrt",
        "latency_ms": "250",
        "failure_rate": "0.1",
        "maker_fee": "0.0002",
        "queue_ahead": "0.5",
    }


def test_synthesized_book_spans_the_bar_range_from_the_spread() -> None:
    """The step is max(0.01, 3 / 20 = 0.15); each level 10 / 20 = 0.5; best ask 100 + 0.005 -> 100.01."""
    asks = synthesized_side(Side.BUY, mid=D("100"), bar=BAR, half_spread=D("0.005"), tick=TICK)
    bids = synthesized_side(Side.SELL, mid=D("100"), bar=BAR, half_spread=D("0.005"), tick=TICK)
    assert len(asks) == len(bids) == BOOK_LEVELS
    assert asks[:2] == [(D("100.01"), D("0.5")), (D("100.16"), D("0.5"))]
    assert bids[:2] == [(D("99.99"), D("0.5")), (D("99.84"), D("0.5"))]
    quiet = BarQuote(**{**BAR.__dict__, "volume": D("0")})
    assert synthesized_side(Side.BUY, mid=D("100"), bar=quiet, half_spread=D("0.005"), tick=TICK) == []


def test_book_walk_worked_example() -> None:
    """Buy 0.8: 0.5 at 100.01 and 0.3 at 100.16 -> (50.005 + 30.048) / 0.8 = 100.06625."""
    asks = synthesized_side(Side.BUY, mid=D("100"), bar=BAR, half_spread=D("0.005"), tick=TICK)
    found = walk(asks, Side.BUY, qty=D("0.8"), qty_quote=None, qty_step=D("0.001"))
    assert (found.qty, found.price, found.short) == (D("0.8"), D("100.06625"), False)
    # 20 units asked of a 10-unit book: all 10 fill, the rest is short.
    whole = walk(asks, Side.BUY, qty=D("20"), qty_quote=None, qty_step=D("0.001"))
    assert (whole.qty, whole.short) == (D("10.0"), True)


def test_quote_sized_book_walk_stays_within_the_budget() -> None:
    asks = synthesized_side(Side.BUY, mid=D("100"), bar=BAR, half_spread=D("0.005"), tick=TICK)
    found = walk(asks, Side.BUY, qty=None, qty_quote=D("80"), qty_step=D("0.001"))
    assert found.qty * found.price <= D("80")
    assert (found.qty + D("0.001")) * found.price > D("80")  # and takes as much as it can
    assert not found.short


def test_decimal_results_are_exact_types() -> None:
    assert isinstance(slippage_fraction(SlippageModel.SQRT, impact=D("1"), qty=D("1"), bar=BAR), Decimal)

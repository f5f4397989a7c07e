"""Worked examples of ``projections.positions.apply_fill`` (average cost, fees in the entry price).

Every expected number is worked by hand in the test's docstring. Averages are quantized to
``PRICE_AVG_EXPONENT`` (1e-18, half-even) exactly where the projection divides, so the digits
below are the digits a replay must produce.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID, uuid5

import pytest

from ledger.domain.errors import FillConflictError
from ledger.domain.events import OrderFilled, OrderPlaced, OrderType, Side
from ledger.domain.numbers import D
from ledger.domain.order import FillReport, OrderState, evolve, fill_events
from projections.positions import Close, Position, apply_fill

RUN = UUID("00000000-0000-5000-8000-000000000001")
T0 = datetime(2025, 5, 20, tzinfo=UTC)
BTC = "BTC/USDT"


def a_fill(
    side: Side,
    qty: str,
    price: str,
    *,
    fee: str = "0",
    trade: int = 1,
    fee_asset: str = "USDT",
    order: str = "o-1",
) -> OrderFilled:
    return OrderFilled(
        originator_id=uuid5(RUN, order),
        originator_version=3 + trade,
        occurred_at=T0 + timedelta(minutes=trade),
        run_id=RUN,
        client_order_id=order,
        venue="test",
        instrument=BTC,
        venue_trade_id=f"t-{trade}",
        side=side,
        qty=D(qty),
        price=D(price),
        fee=D(fee),
        fee_asset=fee_asset,
        price_expected=None,
    )


def fold(*fills: OrderFilled, fee_in_quote: bool = True) -> tuple[Position, list[Close]]:
    position = Position(instrument=BTC)
    closes: list[Close] = []
    for fill in fills:
        position, close = apply_fill(position, fill, fee_in_quote=fee_in_quote)
        if close is not None:
            closes.append(close)
    return position, closes


def test_trading_technologies_example_by_average_cost() -> None:
    """Buy 12 @ 100, buy 17 @ 99, sell 9 @ 101, sell 4 @ 105, buy 3 @ 103, no fees.

    avg after the buys   = (12*100 + 17*99) / 29 = 2883 / 29 = 99.41379310344827586206...
                         -> 99.413793103448275862 (quantized to 1e-18)
    sell 9 @ 101 realizes (101 - 99.413793103448275862) * 9 = 14.275862068965517242
    sell 4 @ 105 realizes (105 - 99.413793103448275862) * 4 = 22.344827586206896552
    pnl_realized         = 14.275862068965517242 + 22.344827586206896552 = 36.620689655172413794
    open 29 - 9 - 4      = 16 @ 99.413793103448275862 (a reduction keeps the average)
    buy 3 @ 103: avg     = (16 * 99.413793103448275862 + 3*103) / 19
                         = (1590.620689655172413792 + 309) / 19 = 1899.620689655172413792 / 19
                         = 99.98003629764065335747... -> 99.980036297640653357
    qty_open             = 16 + 3 = 19
    """
    position, closes = fold(
        a_fill(Side.BUY, "12", "100", trade=1),
        a_fill(Side.BUY, "17", "99", trade=2),
        a_fill(Side.SELL, "9", "101", trade=3),
        a_fill(Side.SELL, "4", "105", trade=4),
        a_fill(Side.BUY, "3", "103", trade=5),
    )

    assert position.qty_open == D("19")
    assert position.pnl_realized == D("36.620689655172413794")
    assert position.price_avg == D("99.980036297640653357")
    assert str(position.price_avg) == "99.980036297640653357"
    assert position.fee_total == D("0")
    assert position.price_last == D("103")
    assert [c.pnl for c in closes] == [D("14.275862068965517242"), D("22.344827586206896552")]


def test_average_after_first_two_buys_is_quantized_half_even() -> None:
    """2883 / 29 = 99.413793103448275862|068... ; the 19th digit is 0, so it rounds down."""
    position, _ = fold(a_fill(Side.BUY, "12", "100"), a_fill(Side.BUY, "17", "99", trade=2))

    assert position.price_avg == D("99.413793103448275862")
    assert position.price_avg.as_tuple().exponent == -18


def test_buy_fees_are_part_of_the_entry_price() -> None:
    """Buy 2 @ 100 paying 0.2, then sell 1 @ 110 paying 0.11.

    avg  = (2*100 + 0.2) / 2 = 200.2 / 2 = 100.1
    sell = (110 - 100.1) * 1 - 0.11 = 9.9 - 0.11 = 9.79
    fees = 0.2 + 0.11 = 0.31; one BTC stays open at 100.1
    """
    position, closes = fold(
        a_fill(Side.BUY, "2", "100", fee="0.2"),
        a_fill(Side.SELL, "1", "110", fee="0.11", trade=2),
    )

    assert position.qty_open == D("1")
    assert position.price_avg == D("100.1")
    assert position.pnl_realized == D("9.79")
    assert position.fee_total == D("0.31")
    assert [c.pnl for c in closes] == [D("9.79")]


def test_second_buy_with_fee_reaverages_including_both_fees() -> None:
    """Buy 1 @ 100 fee 0.1, buy 3 @ 104 fee 0.312.

    avg1 = (100 + 0.1) / 1 = 100.1
    avg2 = (1*100.1 + 3*104 + 0.312) / 4 = (100.1 + 312 + 0.312) / 4 = 412.412 / 4 = 103.103
    """
    position, _ = fold(
        a_fill(Side.BUY, "1", "100", fee="0.1"), a_fill(Side.BUY, "3", "104", fee="0.312", trade=2)
    )

    assert position.price_avg == D("103.103")
    assert position.qty_open == D("4")
    assert position.fee_total == D("0.412")


def test_closing_to_flat_resets_the_average_and_realizes_net_of_fee() -> None:
    """Buy 0.5 @ 200 fee 0.1 -> avg (100 + 0.1) / 0.5 = 200.2; sell 0.5 @ 210 fee 0.105.

    pnl = (210 - 200.2) * 0.5 - 0.105 = 4.9 - 0.105 = 4.795; flat, so the average is 0.
    Cash check: -100 - 0.1 + 105 - 0.105 = 4.795, the same number.
    """
    position, _ = fold(
        a_fill(Side.BUY, "0.5", "200", fee="0.1"), a_fill(Side.SELL, "0.5", "210", fee="0.105", trade=2)
    )

    assert position.qty_open == D("0")
    assert position.price_avg == D("0")
    assert position.pnl_realized == D("4.795")
    assert position.pnl_unrealized(D("999")) == D("0")


def test_fill_crossing_zero_reopens_at_fill_price_with_fee_split() -> None:
    """Long 2 @ 100 (no fee), then sell 5 @ 110 paying 0.55.

    closed 2, reopened 3 short; fee split by quantity: close share 0.55 * 2/5 = 0.22,
    reopen share 0.55 - 0.22 = 0.33.
    pnl   = (110 - 100) * 2 - 0.22 = 19.78
    short avg = (3*110 - 0.33) / 3 = 329.67 / 3 = 109.89 (a short receives less by its fee)
    """
    position, closes = fold(a_fill(Side.BUY, "2", "100"), a_fill(Side.SELL, "5", "110", fee="0.55", trade=2))

    assert position.qty_open == D("-3")
    assert position.price_avg == D("109.89")
    assert position.pnl_realized == D("19.78")
    assert position.fee_total == D("0.55")
    assert [c.pnl for c in closes] == [D("19.78")]


def test_crossing_zero_from_short_to_long() -> None:
    """Short 1 @ 50 (no fee), then buy 4 @ 40 paying 0.16.

    close share 0.16 * 1/4 = 0.04, reopen share 0.12
    pnl       = (40 - 50) * 1 * (-1) - 0.04 = 10 - 0.04 = 9.96
    long avg  = (3*40 + 0.12) / 3 = 120.12 / 3 = 40.04
    """
    position, closes = fold(a_fill(Side.SELL, "1", "50"), a_fill(Side.BUY, "4", "40", fee="0.16", trade=2))

    assert position.qty_open == D("3")
    assert position.price_avg == D("40.04")
    assert position.pnl_realized == D("9.96")
    assert [c.pnl for c in closes] == [D("9.96")]


def test_crossing_zero_fee_split_that_divides_is_quantized() -> None:
    """Long 1 @ 100, sell 3 @ 100 paying 1: close share 1 * 1/3 = 0.333333333333333333 (1e-18).

    pnl = (100 - 100) * 1 - 0.333333333333333333 = -0.333333333333333333
    reopen share = 1 - 0.333333333333333333 = 0.666666666666666667 (exact subtraction)
    short avg = (2*100 - 0.666666666666666667) / 2 = 199.333333333333333333 / 2
              = 99.6666666666666666665 -> 99.666666666666666666 (half-even, the 18th digit is even)
    Nothing is lost: the two fee shares add back to 1.
    """
    position, _ = fold(a_fill(Side.BUY, "1", "100"), a_fill(Side.SELL, "3", "100", fee="1", trade=2))

    assert position.pnl_realized == D("-0.333333333333333333")
    assert position.price_avg == D("99.666666666666666666")
    assert position.qty_open == D("-2")


def test_short_position_realizes_when_bought_back() -> None:
    """Sell 4 @ 50 paying 0.2, buy back 1 @ 40 paying 0.04.

    short avg = (4*50 - 0.2) / 4 = 199.8 / 4 = 49.95
    pnl       = (40 - 49.95) * 1 * (-1) - 0.04 = 9.95 - 0.04 = 9.91
    open -3 @ 49.95; unrealized at 45: (45 - 49.95) * (-3) = 14.85
    """
    position, closes = fold(
        a_fill(Side.SELL, "4", "50", fee="0.2"), a_fill(Side.BUY, "1", "40", fee="0.04", trade=2)
    )

    assert position.qty_open == D("-3")
    assert position.price_avg == D("49.95")
    assert position.pnl_realized == D("9.91")
    assert position.pnl_unrealized(D("45")) == D("14.85")
    assert [c.pnl for c in closes] == [D("9.91")]


def test_unrealized_pnl_uses_caller_mark_else_last_price() -> None:
    """Unrealized PnL marks the open quantity at the caller's price, else the last price.

    Buy 2 @ 100 (no fee): at mark 103 the open PnL is (103 - 100) * 2 = 6; with no mark
    the last fill price (100) gives 0; a later mark-to-market replace gives (97 - 100) * 2 = -6.
    """
    position, _ = fold(a_fill(Side.BUY, "2", "100"))

    assert position.pnl_unrealized(D("103")) == D("6")
    assert position.pnl_unrealized() == D("0")
    assert replace(position, price_last=D("97")).pnl_unrealized() == D("-6")
    assert Position(instrument=BTC).pnl_unrealized() == D("0")


def test_fee_in_another_asset_stays_out_of_quote_cost_basis() -> None:
    """A fee paid in BNB is not quote money: avg = 2*100 / 2 = 100, fee_total stays 0."""
    position, _ = fold(a_fill(Side.BUY, "2", "100", fee="0.001", fee_asset="BNB"), fee_in_quote=False)

    assert position.price_avg == D("100")
    assert position.fee_total == D("0")


def test_apply_fill_is_pure() -> None:
    before = Position(instrument=BTC)
    fill = a_fill(Side.BUY, "1", "100", fee="0.1")

    after_a, _ = apply_fill(before, fill, fee_in_quote=True)
    after_b, _ = apply_fill(before, fill, fee_in_quote=True)

    assert before == Position(instrument=BTC)
    assert after_a == after_b


def test_apply_fill_does_not_deduplicate_so_the_order_stream_must() -> None:
    """The fold counts every fill it is given: 1 + 1 = 2. Duplicates are stopped upstream."""
    fill = a_fill(Side.BUY, "1", "100")
    position, _ = fold(fill, fill)

    assert position.qty_open == D("2")


def _placed_and_filled_once() -> tuple[OrderState, FillReport]:
    placed = OrderPlaced(
        originator_id=uuid5(RUN, "o-1"),
        originator_version=1,
        occurred_at=T0,
        run_id=RUN,
        client_order_id="o-1",
        decision_id=None,
        instrument=BTC,
        side=Side.BUY,
        order_type=OrderType.MARKET,
        qty=D("2"),
        qty_quote=None,
        price_limit=None,
        price_expected=D("100"),
    )
    report = FillReport(
        client_order_id="o-1",
        venue="test",
        venue_trade_id="t-1",
        side=Side.BUY,
        qty=D("1"),
        price=D("100"),
        fee=D("0.1"),
        fee_asset="USDT",
        occurred_at=T0 + timedelta(minutes=1),
    )
    state = evolve(None, placed)
    [event] = fill_events(state, report)
    return evolve(state, event), report


def test_duplicate_fill_with_same_payload_is_ignored_by_the_order_stream() -> None:
    state, report = _placed_and_filled_once()

    assert fill_events(state, report) == []


def test_duplicate_fill_with_different_price_is_a_conflict() -> None:
    state, report = _placed_and_filled_once()

    with pytest.raises(FillConflictError):
        fill_events(state, replace(report, price=D("100.01")))


def test_quantities_in_events_are_positive_so_direction_comes_from_side() -> None:
    with pytest.raises(ValueError, match="qty"):
        a_fill(Side.SELL, "-1", "100")
    with pytest.raises(ValueError, match="price"):
        a_fill(Side.BUY, "1", "0")
    assert Decimal("0") == Position(instrument=BTC).qty_open

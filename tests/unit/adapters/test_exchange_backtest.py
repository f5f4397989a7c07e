"""The backtest venue on five hand-made one-minute bars: arrival, latency, limits, queue, failures, book."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest

from factories import T0, an_instrument, an_order_placed, at
from ledger.adapters.exchange_backtest import API_FAILURE, BacktestExchange
from ledger.application.candles import EPOCH, Candles
from ledger.application.session_ports import VenueRejectedError
from ledger.domain.events import OrderType, Side
from ledger.domain.fill_models import FillModel, FillSettings, HashDraws, SlippageModel
from ledger.domain.numbers import D
from ledger.domain.order import FillReport, OrderEnded

pytestmark = pytest.mark.anyio

T0_MS = (T0 - EPOCH) // timedelta(milliseconds=1)
# open, high, low, close (cents), volume (units of 0.1)
ROWS = [
    (10000, 10100, 9900, 10050, 100),
    (10050, 10200, 10000, 10100, 80),
    (10100, 10150, 9950, 10000, 120),
    (10000, 10020, 9990, 10010, 60),
    (10010, 10040, 9980, 10030, 50),
]
TAKER, MAKER = D("0.001"), D("0.0002")


def _candles() -> Candles:
    columns = np.array(ROWS, dtype=np.int64).T
    return Candles(
        source="five.csv",
        digest="d",
        open_time_ms=np.arange(len(ROWS), dtype=np.int64) * 60_000 + T0_MS,
        open=columns[0],
        high=columns[1],
        low=columns[2],
        close=columns[3],
        price_scale=2,
        interval_ms=60_000,
        volume=columns[4],
        volume_scale=1,
    )


def _venue(**settings) -> BacktestExchange:
    fill = FillSettings(maker_fee=MAKER, **settings)
    return BacktestExchange(_candles(), an_instrument(), TAKER, settings=fill, draws=HashDraws(3))


def _order(order: int = 1, **fields):
    # Decided at the close of bar 0 (T0 + 1 min), as the run loop does.
    return an_order_placed(order=order, occurred_at=at(1), **fields)


async def _poll_at(venue: BacktestExchange, bar: int):
    venue.advance_to(bar)
    return await venue.poll_fills()


async def test_no_latency_fills_at_the_next_open_with_the_taker_fee() -> None:
    venue = _venue()
    venue.advance_to(0)
    await venue.submit_order(_order())

    [fill] = await _poll_at(venue, 1)

    assert isinstance(fill, FillReport)
    assert (fill.price, fill.qty, fill.fee, fill.occurred_at) == (
        D("100.50"),
        D("1"),
        D("0.10050"),
        at(2) - timedelta(minutes=1),
    )


async def test_latency_inside_a_bar_reads_the_open_to_close_line() -> None:
    """Arrival 15 s into bar 1: 100.50 + (101.00 - 100.50) x 15/60 = 100.625 -> 100.62 (half even)."""
    venue = _venue(latency_ms=15_000)
    venue.advance_to(0)
    await venue.submit_order(_order())

    [fill] = await _poll_at(venue, 1)

    assert isinstance(fill, FillReport)
    assert fill.price == D("100.62")
    assert fill.occurred_at == at(1) + timedelta(seconds=15)


async def test_latency_past_a_bar_waits_for_the_bar_it_arrives_in() -> None:
    """Arrival at 3 min 30 s: bar 3, 100.00 + 0.10 x 30/60 = 100.05."""
    venue = _venue(latency_ms=150_000)
    venue.advance_to(0)
    await venue.submit_order(_order())

    assert await _poll_at(venue, 2) == []
    [fill] = await _poll_at(venue, 3)

    assert isinstance(fill, FillReport)
    assert (fill.price, fill.occurred_at) == (D("100.05"), at(3) + timedelta(seconds=30))


async def test_an_order_arriving_after_the_last_bar_ends_unfilled() -> None:
    venue = _venue(latency_ms=10 * 60_000)
    venue.advance_to(0)
    await venue.submit_order(_order())

    assert await _poll_at(venue, 3) == []
    [ended] = await _poll_at(venue, 4)

    assert isinstance(ended, OrderEnded)
    assert "after the last bar" in ended.reason
    assert ended.occurred_at == at(5)


async def test_a_resting_limit_fills_at_its_limit_when_traded_through_with_the_maker_fee() -> None:
    venue = _venue()
    venue.advance_to(0)
    await venue.submit_order(_order(order_type=OrderType.LIMIT, price_limit="99.7"))

    assert await _poll_at(venue, 1) == []  # low 100.00: not reached
    [fill] = await _poll_at(venue, 4)  # bars 2..4 checked at once; bar 2's low 99.50 < 99.70

    assert isinstance(fill, FillReport)
    assert (fill.price, fill.fee, fill.occurred_at) == (D("99.70"), D("0.019940"), at(3))


async def test_touching_the_limit_is_not_a_trade_through() -> None:
    venue = _venue()
    venue.advance_to(0)
    await venue.submit_order(_order(order_type=OrderType.LIMIT, price_limit="99.5", side=Side.BUY))

    reports = await _poll_at(venue, 4)  # bar 2's low is exactly 99.50

    assert [type(r) for r in reports] == [OrderEnded]  # data ends with it unfilled
    assert "data ends" in reports[0].reason


async def test_a_resting_limit_expires_after_its_timeout() -> None:
    venue = _venue(limit_timeout_s=60)
    venue.advance_to(0)
    await venue.submit_order(_order(order_type=OrderType.LIMIT, price_limit="99.7"))

    [ended] = await _poll_at(venue, 2)  # only bar 1 opens before 1 min + 60 s

    assert isinstance(ended, OrderEnded)
    assert (ended.reason, ended.occurred_at) == ("limit not filled within 60 s", at(2))


async def test_a_marketable_limit_fills_at_once_as_a_taker() -> None:
    venue = _venue()
    venue.advance_to(0)
    await venue.submit_order(_order(order_type=OrderType.LIMIT, price_limit="101"))

    [fill] = await _poll_at(venue, 1)

    assert isinstance(fill, FillReport)
    assert (fill.price, fill.fee) == (D("100.50"), D("0.10050"))


async def test_queue_ahead_waits_for_enough_volume_at_or_through_the_limit() -> None:
    """Buy at 100.00, queue 0.5 x bar 0's 10 = 5 units.

    Volume at or below 100.00: bar 1 8 x 1/201, bar 2 12 x 51/201, bar 3 6 x 11/31 -> 0.0398,
    then 3.085, then 5.214 > 5: the fill is at bar 3's close. Without a queue bar 2 (low 99.50)
    trades through and fills it at bar 2's close.
    """
    queued, plain = _venue(queue_ahead=D("0.5")), _venue()
    for venue in (queued, plain):
        venue.advance_to(0)
        await venue.submit_order(_order(order_type=OrderType.LIMIT, price_limit="100"))

    [queued_fill] = await _poll_at(queued, 4)
    [plain_fill] = await _poll_at(plain, 4)

    assert isinstance(queued_fill, FillReport)
    assert isinstance(plain_fill, FillReport)
    assert (queued_fill.price, queued_fill.occurred_at) == (D("100.00"), at(4))
    assert plain_fill.occurred_at == at(3)


async def test_sqrt_slippage_worked_example() -> None:
    """Buy 2 in bar 1: p = 2/8, r = 2.00/100.50, k = 1: move = 100.50 x r x 0.5 = 1.00 -> 101.50."""
    venue = _venue(slippage=SlippageModel.SQRT)
    venue.advance_to(0)
    await venue.submit_order(_order(qty="2"))

    [fill] = await _poll_at(venue, 1)

    assert isinstance(fill, FillReport)
    assert fill.price == D("101.50")


async def test_orderbook_walk_worked_example() -> None:
    """Bar 1's book: step 2.00/20 = 0.10, 8/20 = 0.4 per level, best ask 100.50 + 0.005 -> 100.51.

    Buy 1: 0.4 @ 100.51 + 0.4 @ 100.61 + 0.2 @ 100.71 = 100.59 / 1.
    """
    venue = _venue(model=FillModel.ORDERBOOK)
    venue.advance_to(0)
    await venue.submit_order(_order(qty="1"))
    await venue.submit_order(_order(order=2, qty="10"))

    first, second, short = await _poll_at(venue, 1)

    assert isinstance(first, FillReport)
    assert (first.qty, first.price) == (D("1"), D("100.59"))
    assert isinstance(second, FillReport)
    assert second.qty == D("8")  # the whole book; each order walks it afresh
    assert isinstance(short, OrderEnded)
    assert "insufficient depth" in short.reason


async def test_failure_injection_refuses_by_seeded_draw() -> None:
    always = _venue(failure_rate=D("1"))
    with pytest.raises(VenueRejectedError) as refused:
        await always.submit_order(_order())
    assert refused.value.reason == API_FAILURE

    async def outcomes(seed: int) -> list[bool]:
        venue = BacktestExchange(
            _candles(),
            an_instrument(),
            TAKER,
            settings=FillSettings(failure_rate=D("0.5")),
            draws=HashDraws(seed),
        )
        accepted = []
        for n in range(1, 41):
            try:
                await venue.submit_order(_order(order=n))
            except VenueRejectedError:
                accepted.append(False)
            else:
                accepted.append(True)
        return accepted

    first = await outcomes(3)
    assert first == await outcomes(3)
    assert first != await outcomes(4)
    assert 8 < sum(first) < 32


def test_failure_injection_without_draws_is_a_wiring_error() -> None:
    with pytest.raises(ValueError, match="seeded draws"):
        BacktestExchange(_candles(), an_instrument(), TAKER, settings=FillSettings(failure_rate=D("0.1")))

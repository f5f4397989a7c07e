"""RollingCandles: an O(1) window that always equals the last N bars converted from scratch."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ledger.application.candles import Bar, RollingCandles
from ledger.domain.numbers import D


def _finest_scale(bars: list[Bar]) -> int:
    prices = [p for b in bars for p in (b.open, b.high, b.low, b.close)]
    return max(max(0, -int(p.as_tuple().exponent)) for p in prices)


price = st.integers(min_value=1, max_value=20_000_000).flatmap(
    lambda units: st.sampled_from([0, 1, 2, 4]).map(lambda places: Decimal(units).scaleb(-places))
)


@given(st.lists(st.tuples(price, price, price, price), min_size=1, max_size=60), st.integers(1, 25))
def test_the_window_equals_the_last_bars_converted_from_scratch(quads, capacity) -> None:
    bars = [
        Bar(open_ms=60_000 * i, open=o, high=h, low=lo, close=c, volume=D(0))
        for i, (o, h, lo, c) in enumerate(quads)
    ]
    window = RollingCandles(capacity=capacity, interval_ms=60_000, source="t")

    for n, bar in enumerate(bars, start=1):
        window.append(bar)
        held = bars[max(0, n - capacity) : n]
        candles = window.candles()
        scale_seen = _finest_scale(bars[:n])  # the scale never shrinks: finest seen so far
        expected_rows = [[b.open_ms for b in held]] + [
            [int(getattr(b, f).scaleb(scale_seen)) for b in held] for f in ("open", "high", "low", "close")
        ]
        assert len(window) == len(held) == len(candles)
        assert candles.price_scale == scale_seen
        actual = [candles.open_time_ms, candles.open, candles.high, candles.low, candles.close]
        assert [a.tolist() for a in actual] == expected_rows
        assert candles.price(candles.close[-1]) == bar.close


def test_a_real_price_round_trips_exactly() -> None:
    window = RollingCandles(capacity=3, interval_ms=60_000, source="t")
    window.append(
        Bar(
            open_ms=0,
            open=D("105554.32"),
            high=D("105600"),
            low=D("105500.1"),
            close=D("105554.32"),
            volume=D(1),
        )
    )

    candles = window.candles()

    assert candles.price(candles.high[0]) == D("105600")
    assert candles.close.dtype == np.int64

"""Candle series held as integer price units, so comparisons and sums are exact."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, eq=False)
class Candles:
    """OHLC bars of one instrument; prices are integers in units of ``10**-price_scale``."""

    source: str  # a label for the file (its name), recorded in RunStarted
    digest: str  # sha256 of the file's bytes
    open_time_ms: IntArray
    open: IntArray
    high: IntArray
    low: IntArray
    close: IntArray
    price_scale: int
    interval_ms: int
    # Traded base quantity per bar in units of ``10**-volume_scale``; None when the source has
    # none (a session's rolling window). Only the fill models that need it read it.
    volume: IntArray | None = None
    volume_scale: int = 0

    def __len__(self) -> int:
        """Return the number of bars."""
        return int(self.open_time_ms.size)

    def price(self, units: int | np.integer) -> Decimal:
        """Return a price in units as an exact Decimal."""
        return Decimal(int(units)).scaleb(-self.price_scale)

    def open_at(self, bar: int) -> datetime:
        """Return the bar's open time (UTC)."""
        return EPOCH + timedelta(milliseconds=int(self.open_time_ms[bar]))

    def close_at(self, bar: int) -> datetime:
        """Return the bar's close time: its open plus the series interval."""
        return EPOCH + timedelta(milliseconds=int(self.open_time_ms[bar]) + self.interval_ms)

    def volume_at(self, bar: int) -> Decimal:
        """Return the bar's traded volume (base asset) as an exact Decimal.

        Raises:
            ValueError: the series carries no volumes.
        """
        if self.volume is None:
            msg = f"{self.source} has no volume column; the fill model needs one"
            raise ValueError(msg)
        return Decimal(int(self.volume[bar])).scaleb(-self.volume_scale)


@dataclass(frozen=True, kw_only=True)
class Bar:
    """One closed bar as a venue reported it (prices exact)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


class RollingCandles:
    """The last ``capacity`` closed bars as a ``Candles`` view, appended in O(1).

    Prices are kept as integers at the finest decimal place seen so far; a bar with a finer
    price (rare: venues quote on a fixed tick) rescales the held bars once.
    """

    def __init__(self, *, capacity: int, interval_ms: int, source: str) -> None:
        """Hold up to ``capacity`` bars of ``interval_ms`` from ``source``."""
        self._capacity = capacity
        self._interval_ms = interval_ms
        self._source = source
        self._rows = np.zeros((5, 2 * capacity), dtype=np.int64)  # open time, o, h, l, c
        self._start = 0
        self._end = 0
        self._scale = 0

    def __len__(self) -> int:
        """Return the number of bars held."""
        return self._end - self._start

    def append(self, bar: Bar) -> None:
        """Add a newly closed bar, dropping the oldest beyond capacity."""
        prices = (bar.open, bar.high, bar.low, bar.close)
        scale = max(max(0, -int(p.as_tuple().exponent)) for p in prices)
        if scale > self._scale:
            self._rows[1:, self._start : self._end] *= 10 ** (scale - self._scale)
            self._scale = scale
        if self._end == self._rows.shape[1]:  # full: move the newest capacity-1 bars to the front
            keep = self._rows[:, self._end - self._capacity + 1 : self._end].copy()
            self._rows[:, : keep.shape[1]] = keep
            self._start, self._end = 0, keep.shape[1]
        column = [bar.open_ms, *(int(p.scaleb(self._scale)) for p in prices)]
        self._rows[:, self._end] = column
        self._end += 1
        self._start = max(self._start, self._end - self._capacity)

    def candles(self) -> Candles:
        """Return the held bars as a ``Candles`` series (views, not copies)."""
        rows = self._rows[:, self._start : self._end]
        return Candles(
            source=self._source,
            digest="",
            open_time_ms=rows[0],
            open=rows[1],
            high=rows[2],
            low=rows[3],
            close=rows[4],
            price_scale=self._scale,
            interval_ms=self._interval_ms,
        )

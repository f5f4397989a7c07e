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


@dataclass(frozen=True, kw_only=True)
class Bar:
    """One closed bar as a venue reported it (prices exact)."""

    open_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


def candles_from_bars(bars: list[Bar], *, source: str, interval_ms: int) -> Candles:
    """Return ``bars`` as a ``Candles`` series in integer units of their finest price digit."""
    prices = [p for b in bars for p in (b.open, b.high, b.low, b.close)]
    scale = max((max(0, -int(p.as_tuple().exponent)) for p in prices), default=0)

    def units(values: list[Decimal]) -> IntArray:
        return np.array([int(v.scaleb(scale)) for v in values], dtype=np.int64)

    return Candles(
        source=source,
        digest="",
        open_time_ms=np.array([b.open_ms for b in bars], dtype=np.int64),
        open=units([b.open for b in bars]),
        high=units([b.high for b in bars]),
        low=units([b.low for b in bars]),
        close=units([b.close for b in bars]),
        price_scale=scale,
        interval_ms=interval_ms,
    )

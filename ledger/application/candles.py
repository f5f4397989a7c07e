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

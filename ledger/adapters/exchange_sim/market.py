"""Recorded candles replayed on a market clock that only moves forward.

The clock stands on one bar at a time: that bar is treated as complete, its close is the last
traded price, and klines, tickers and the synthetic book are derived from it and the bars
before it. Nothing after the clock is ever served. Several symbols share the clock; each shows
its last bar that opened at or before the clock time.

Candle files are found by name, ``binance_spot_<SYMBOL>_<interval>_*.csv[.gz]`` (the shared data
set's naming); without a data directory the bundled BTCUSDT sample is used.
"""

from __future__ import annotations

import functools
import gzip
import re
from dataclasses import dataclass
from decimal import Decimal, localcontext
from importlib import resources
from pathlib import Path

import numpy as np

from ledger.adapters.candles_csv import load_candles
from ledger.application.candles import Candles
from ledger.domain.errors import DataFileError
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D

BUNDLED_SAMPLE = "data/binance_spot_BTCUSDT_1m_20250520_20250618.csv.gz"
FILE_PATTERN = re.compile(r"binance_spot_([A-Z0-9]+)_(\w+?)_.*\.csv(\.gz)?")
INTERVAL_NAMES = {60_000: "1m", 300_000: "5m", 900_000: "15m", 3_600_000: "1h", 86_400_000: "1d"}


@dataclass(frozen=True)
class Bar:
    """One recorded candle with exact prices and base-asset volume."""

    open_time_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True, eq=False)
class SymbolSeries:
    """The recorded candles of one symbol and their volume strings."""

    symbol: str
    candles: Candles
    volumes: tuple[str, ...]

    @property
    def interval_name(self) -> str:
        """Return Binance's name of the series interval (``1m``), or ``""`` when it has none."""
        return INTERVAL_NAMES.get(self.candles.interval_ms, "")

    def bar(self, index: int) -> Bar:
        """Return bar ``index`` with Decimal prices."""
        c = self.candles
        return Bar(
            open_time_ms=int(c.open_time_ms[index]),
            open=c.price(c.open[index]),
            high=c.price(c.high[index]),
            low=c.price(c.low[index]),
            close=c.price(c.close[index]),
            volume=D(self.volumes[index]),
        )

    def index_at(self, time_ms: int) -> int | None:
        """Return the last bar that opened at or before ``time_ms``, or None before the first."""
        position = int(np.searchsorted(self.candles.open_time_ms, time_ms, side="right")) - 1
        return None if position < 0 else position


def load_series(data_dir: Path | None, symbols: set[str]) -> dict[str, SymbolSeries]:
    """Return one series per symbol found in ``data_dir`` (the bundled sample when None).

    Raises:
        DataFileError: the directory is missing or empty, a file names a symbol the exchange
            does not list, two files name one symbol, or a file is malformed.
    """
    if data_dir is None:
        with resources.as_file(resources.files("ledger").joinpath(BUNDLED_SAMPLE)) as path:
            series = _load_file(str(path), "BTCUSDT")
        return {"BTCUSDT": series}
    if not data_dir.is_dir():
        msg = (
            f"--data: {data_dir} is not a directory; give one holding binance_spot_<SYMBOL>_1m_*.csv.gz files"
        )
        raise DataFileError(msg)
    found: dict[str, SymbolSeries] = {}
    for path in sorted(data_dir.iterdir()):
        match = FILE_PATTERN.fullmatch(path.name)
        if match is None:
            continue
        symbol = match.group(1)
        if symbol not in symbols:
            msg = (
                f"--data: {path.name} is for {symbol}, which exchangeInfo does not list; "
                f"use one of {sorted(symbols)}"
            )
            raise DataFileError(msg)
        if symbol in found:
            msg = f"--data: two files for {symbol} in {data_dir}; keep one per symbol"
            raise DataFileError(msg)
        found[symbol] = _load_file(str(path), symbol)
    if not found:
        msg = f"--data: {data_dir} holds no binance_spot_<SYMBOL>_<interval>_*.csv[.gz] file; add one"
        raise DataFileError(msg)
    return found


@functools.lru_cache(maxsize=8)
def _load_file(path_text: str, symbol: str) -> SymbolSeries:
    # Cached per process: every test server of a session replays the same sample.
    path = Path(path_text)
    candles = load_candles(path)
    raw = path.read_bytes()
    text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line]
    column = [name.strip().lower() for name in lines[0].split(",")].index("volume")
    volumes = tuple(line.split(",")[column] for line in lines[1:])
    return SymbolSeries(symbol=symbol, candles=candles, volumes=volumes)


class MarketReplay:
    """The market clock over every symbol's series.

    Args:
        series: the recorded series per symbol.
        start_bar: how many bars after the earliest common start the clock begins.
    """

    def __init__(self, series: dict[str, SymbolSeries], start_bar: int = 0) -> None:
        self.series = series
        self.step_ms = min(s.candles.interval_ms for s in series.values())
        first = max(int(s.candles.open_time_ms[0]) for s in series.values())
        self.end_ms = max(int(s.candles.open_time_ms[-1]) for s in series.values())
        self.time_ms = min(first + start_bar * self.step_ms, self.end_ms)

    def advance(self, bars: int) -> int:
        """Move the clock ``bars`` steps forward (never past the last bar); return the steps moved."""
        moved = max(0, min(bars, (self.end_ms - self.time_ms) // self.step_ms))
        self.time_ms += moved * self.step_ms
        return moved

    def current(self, symbol: str) -> tuple[int, Bar] | None:
        """Return the index and bar the clock stands on for ``symbol``, or None without data."""
        series = self.series.get(symbol)
        if series is None:
            return None
        index = series.index_at(self.time_ms)
        return None if index is None else (index, series.bar(index))

    def history(self, symbol: str, start_ms: int | None, end_ms: int | None, limit: int) -> list[Bar]:
        """Return up to ``limit`` bars opened in ``[start_ms, end_ms]`` and not after the clock."""
        series = self.series.get(symbol)
        now = self.current(symbol)
        if series is None or now is None:
            return []
        last = now[0]
        if end_ms is not None:
            end_index = series.index_at(end_ms)
            last = min(last, -1 if end_index is None else end_index)
        if start_ms is None:
            first = max(0, last - limit + 1)
        else:
            first = int(np.searchsorted(series.candles.open_time_ms, start_ms, side="left"))
        last = min(last, first + limit - 1)
        return [series.bar(i) for i in range(first, last + 1)]

    def price_avg(self, symbol: str, minutes: int) -> Decimal:
        """Return the mean close of the last ``minutes`` worth of bars (Binance's ``avgPrice``)."""
        series = self.series.get(symbol)
        now = self.current(symbol)
        if series is None or now is None:
            return ZERO
        bars = max(1, minutes * 60_000 // series.candles.interval_ms)
        first = max(0, now[0] - bars + 1)
        closes = [series.bar(i).close for i in range(first, now[0] + 1)]
        with localcontext(LEDGER_CONTEXT):
            return sum(closes, ZERO) / len(closes)

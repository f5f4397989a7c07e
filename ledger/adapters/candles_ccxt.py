"""Candles from an exchange through ccxt ``fetch_ohlcv``, kept in an on-disk cache.

A source is written ``ccxt:EXCHANGE:SYMBOL:TIMEFRAME:START:END``, for example
``ccxt:binance:BTC/USDT:1m:2025-05-20:2025-05-22``: the bars that *open* in ``[START, END)``,
UTC; START and END are ``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM``.

The first use pages through ``fetch_ohlcv`` (``since`` = the next bar after the last one
received, ``limit`` = ``PAGE_LIMIT``), validates every bar with the CSV loader's checks, and
writes one gzip'd CSV in the shared data's format (``timestamp,open,high,low,close,volume``,
plain decimals without trailing zeros, gzip mtime 0) under the cache directory
(``$TRADELEDGER_CACHE``, else ``~/.cache/tradeledger``)::

    ccxt/<exchange>[@<host>_<port>]/<BASE>-<QUOTE>_<timeframe>_<START>_<END>.csv.gz

Later uses read that file without the network. The file is written to a temporary name and
renamed, so a failed or interrupted download leaves no cache entry. A range is cached only
when it is complete: it must end in the past, and the exchange must have bars from its first
interval to its last (interior gaps are the gap policy's business).

Exactness: ccxt parses numbers with ``exchange.number``; it is set to ``str`` while fetching,
so prices and volumes arrive as the exchange's own decimal strings, never as floats.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import anyio

from ledger.adapters.candles_csv import COLUMNS, candles_from_lines, plain_decimal
from ledger.adapters.candles_gaps import duration, utc_text
from ledger.adapters.clock import SystemClock
from ledger.application.candles import Candles
from ledger.domain.errors import DataFileError, ParameterError

CCXT_PREFIX = "ccxt:"
CACHE_ENV = "TRADELEDGER_CACHE"
# Why 1000: Binance spot's largest klines page; ccxt caps other venues at their own maximum.
PAGE_LIMIT = 1000
# Why 30 s: one page of klines answers in well under a second; a hung server must not hang a run.
TIMEOUT_MS = 30_000
_DATE = r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2})?"
_SPEC = re.compile(
    rf"ccxt:(?P<exchange>[a-z0-9_]+):(?P<symbol>[A-Z0-9]+/[A-Z0-9]+):(?P<timeframe>\d+[smhdwM])"
    rf":(?P<start>{_DATE}):(?P<end>{_DATE})"
)
SPEC_HELP = "ccxt:EXCHANGE:SYMBOL:TIMEFRAME:START:END, e.g. ccxt:binance:BTC/USDT:1m:2025-05-20:2025-05-22"
# The exchange whose REST layout ``--exchange-url`` knows (the local exchange sim speaks it).
_URL_EXCHANGES = ("binance",)


@dataclass(frozen=True, kw_only=True)
class CcxtCandleSource:
    """Bars of one symbol and timeframe opening in ``[start_ms, end_ms)`` at one exchange."""

    exchange: str
    symbol: str
    timeframe: str
    start_ms: int
    end_ms: int

    @property
    def interval_ms(self) -> int:
        """Return the timeframe in milliseconds (ccxt's reading of ``1m``, ``4h``, ``1d``...)."""
        return int(_ccxt().Exchange.parse_timeframe(self.timeframe)) * 1000

    def text(self) -> str:
        """Return the source as the user wrote it (normalised)."""
        head = f"ccxt:{self.exchange}:{self.symbol}:{self.timeframe}"
        return f"{head}:{_stamp(self.start_ms)}:{_stamp(self.end_ms)}"


def is_ccxt_source(text: str) -> bool:
    """Return whether ``--data`` names a ccxt source rather than a file."""
    return text.startswith(CCXT_PREFIX)


def parse_ccxt_source(text: str) -> CcxtCandleSource:
    """Return the source ``text`` names.

    Raises:
        ParameterError: the text does not follow ``SPEC_HELP``, an unknown exchange, or an empty range.
    """
    match = _SPEC.fullmatch(text)
    if match is None:
        msg = f"--data: {text!r} is not a ccxt source; write {SPEC_HELP} (START, END in UTC, END excluded)"
        raise ParameterError(msg)
    exchange = match["exchange"]
    if exchange not in _ccxt().exchanges:
        msg = f"--data: ccxt has no exchange {exchange!r}; use a ccxt id such as binance or upbit"
        raise ParameterError(msg)
    start, end = _epoch_ms(match["start"]), _epoch_ms(match["end"])
    if end <= start:
        msg = f"--data: the range {match['start']} to {match['end']} is empty; END must be after START"
        raise ParameterError(msg)
    source = CcxtCandleSource(
        exchange=exchange, symbol=match["symbol"], timeframe=match["timeframe"], start_ms=start, end_ms=end
    )
    if source.interval_ms <= 0:
        msg = f"--data: timeframe {source.timeframe!r} is not a duration; use e.g. 1m, 1h or 1d"
        raise ParameterError(msg)
    return source


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """Return ``$TRADELEDGER_CACHE``, else ``~/.cache/tradeledger``."""
    configured = environ.get(CACHE_ENV, "")
    return Path(configured) if configured else Path.home() / ".cache" / "tradeledger"


def cache_file(source: CcxtCandleSource, cache_dir: Path, exchange_url: str | None) -> Path:
    """Return where ``source`` is cached; an overridden URL gets a folder of its own."""
    venue = source.exchange
    if exchange_url is not None:
        venue += "@" + re.sub(r"[^A-Za-z0-9.-]+", "_", exchange_url.split("://", 1)[-1]).strip("_")
    name = (
        f"{source.symbol.replace('/', '-')}_{source.timeframe}_"
        f"{_stamp(source.start_ms, compact=True)}_{_stamp(source.end_ms, compact=True)}.csv.gz"
    )
    return cache_dir / "ccxt" / venue / name


def cached_candles_file(
    source: CcxtCandleSource,
    *,
    cache_dir: Path,
    exchange_url: str | None = None,
    now_ms: Callable[[], int] | None = None,
) -> tuple[Path, bool]:
    """Return the cache file of ``source`` and whether it was downloaded now (False: cached).

    Raises:
        ParameterError: an unknown symbol or timeframe, or a range that has not ended.
        DataFileError: the exchange cannot be reached or sent bad or incomplete data, or the
            cache directory cannot be written.
    """
    return anyio.run(_cached, source, cache_dir, exchange_url, now_ms)


async def download_to_cache(
    source: CcxtCandleSource,
    *,
    cache_dir: Path,
    exchange_url: str | None = None,
    now_ms: Callable[[], int] | None = None,
) -> tuple[Path, bool]:
    """Coroutine form of ``cached_candles_file`` (for callers already in an event loop)."""
    return await _cached(source, cache_dir, exchange_url, now_ms)


async def _cached(
    source: CcxtCandleSource, cache_dir: Path, exchange_url: str | None, now_ms: Callable[[], int] | None
) -> tuple[Path, bool]:
    path = cache_file(source, cache_dir, exchange_url)
    if path.is_file():
        return path, False
    now = (now_ms or _wall_clock_ms)()
    if source.end_ms > now:
        msg = (
            f"--data: {source.text()} ends after now ({utc_text(now - now % 60_000)}); "
            "the last bars are not closed yet, so the range cannot be cached: choose an END in the past"
        )
        raise ParameterError(msg)
    rows = await _fetch_rows(source, exchange_url)
    lines = [",".join(COLUMNS), *(",".join(row) for row in rows)]
    _check_complete(source, _validated(path, source, lines))
    _write_atomically(path, ("\n".join(lines) + "\n").encode())
    return path, True


def _validated(path: Path, source: CcxtCandleSource, lines: list[str]) -> Candles:
    if len(lines) == 1:
        msg = (
            f"--data: {source.exchange} returned no {source.timeframe} bars of {source.symbol} in "
            f"{source.text()}; check the dates (the market may not have existed then)"
        )
        raise DataFileError(msg)
    return candles_from_lines(
        path,
        lines,
        digest="",
        where=lambda number: f"--data: {source.exchange} klines bar {number - 1} of {source.text()}",
    )


def _check_complete(source: CcxtCandleSource, candles: Candles) -> None:
    first, last = int(candles.open_time_ms[0]), int(candles.open_time_ms[-1])
    interval = source.interval_ms
    if first - source.start_ms >= interval:
        msg = (
            f"--data: {source.exchange}'s first {source.symbol} bar in the range opens at "
            f"{utc_text(first)}, {duration(first - source.start_ms)} after START; "
            "start the range there (the market may have opened later)"
        )
        raise DataFileError(msg)
    if source.end_ms - (last + interval) >= interval:
        msg = (
            f"--data: {source.exchange}'s last {source.symbol} bar in the range opens at "
            f"{utc_text(last)}, {duration(source.end_ms - last - interval)} before END; the exchange "
            "has not got the whole range (is the server's market clock behind?): end the range earlier"
        )
        raise DataFileError(msg)


async def _fetch_rows(source: CcxtCandleSource, exchange_url: str | None) -> list[list[str]]:
    from ccxt.base import errors as ccxt_errors  # noqa: PLC0415 - see _ccxt

    exchange = _client(source.exchange, exchange_url)
    where = exchange_url or source.exchange
    try:
        await exchange.load_markets()
        _check_market(exchange, source)
        exchange.number = str  # parse_ohlcv hands back the exchange's decimal strings
        return await _pages(exchange, source)
    except ccxt_errors.BadSymbol as e:
        msg = f"--data: {source.exchange} does not list {source.symbol}; check the symbol, e.g. BTC/USDT"
        raise ParameterError(msg) from e
    except ccxt_errors.NetworkError as e:
        msg = f"--data: cannot reach {where} ({_first_line(e)}); check --exchange-url or the network"
        raise DataFileError(msg) from e
    except ccxt_errors.BaseError as e:
        msg = (
            f"--data: {where} refused the klines request ({_first_line(e)}); check the source {source.text()}"
        )
        raise DataFileError(msg) from e
    finally:
        await exchange.close()


def _client(exchange_id: str, exchange_url: str | None) -> Any:
    options: dict[str, Any] = {"timeout": TIMEOUT_MS, "enableRateLimit": True}
    if exchange_id == "binance":
        # Spot only: no margin, futures or currency endpoints (which the local sim does not serve).
        options["options"] = {
            "defaultType": "spot",
            "fetchMarkets": {"types": ["spot"]},
            "fetchCurrencies": False,
            "fetchMargins": False,
        }
    client = getattr(_ccxt(), exchange_id)(options)
    if exchange_url is not None:
        if exchange_id not in _URL_EXCHANGES:
            msg = (
                f"--exchange-url: only {', '.join(_URL_EXCHANGES)} can be pointed at another "
                f"server, not {exchange_id}; drop the option to use {exchange_id}'s own servers"
            )
            raise ParameterError(msg)
        api = api_base(exchange_url)
        client.urls["api"] = {**client.urls["api"], "public": api, "private": api}
    return client


def api_base(exchange_url: str) -> str:
    """Return the Binance REST base for ``exchange_url`` (``http://host:port`` gets ``/api/v3``).

    Raises:
        ParameterError: not an http(s) URL.
    """
    if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", exchange_url):
        msg = f"--exchange-url: {exchange_url!r} is not an http(s) URL; write e.g. http://127.0.0.1:8123"
        raise ParameterError(msg)
    base = exchange_url.rstrip("/")
    return base if base.endswith("/api/v3") else base + "/api/v3"


def _check_market(exchange: Any, source: CcxtCandleSource) -> None:
    if source.symbol not in exchange.markets:
        msg = f"--data: {source.exchange} does not list {source.symbol}; check the symbol, e.g. BTC/USDT"
        raise ParameterError(msg)
    frames = exchange.timeframes or {}
    if frames and source.timeframe not in frames:
        msg = f"--data: {source.exchange} has no {source.timeframe!r} candles; use one of {', '.join(frames)}"
        raise ParameterError(msg)


async def _pages(exchange: Any, source: CcxtCandleSource) -> list[list[str]]:
    rows: list[list[str]] = []
    cursor = source.start_ms
    while cursor < source.end_ms:
        page = await exchange.fetch_ohlcv(
            source.symbol,
            source.timeframe,
            since=cursor,
            limit=PAGE_LIMIT,
            params={"until": source.end_ms - 1},
        )
        fresh = [row for row in page if cursor <= int(row[0]) < source.end_ms]
        if not fresh:
            break
        rows.extend(_row_text(source, row) for row in fresh)
        cursor = int(fresh[-1][0]) + source.interval_ms
    return rows


def _row_text(source: CcxtCandleSource, row: list[Any]) -> list[str]:
    fields = [str(int(row[0]))]
    for value in row[1:6]:
        try:
            fields.append(plain_decimal(Decimal(str(value))))
        except InvalidOperation as e:
            msg = (
                f"--data: {source.exchange} sent {value!r} in the {source.timeframe} bar at "
                f"{utc_text(int(row[0]))}; the exchange's response is malformed, try again later"
            )
            raise DataFileError(msg) from e
    return fields


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary.write_bytes(gzip.compress(data, mtime=0))
        temporary.replace(path)
    except OSError as e:
        temporary.unlink(missing_ok=True)
        msg = (
            f"--data: cannot write the cache file {path} ({e.strerror}); "
            f"set {CACHE_ENV} to a writable directory"
        )
        raise DataFileError(msg) from e


def _epoch_ms(text: str) -> int:
    pattern = "%Y-%m-%dT%H:%M" if "T" in text else "%Y-%m-%d"
    try:
        moment = datetime.strptime(text, pattern).replace(tzinfo=UTC)
    except ValueError as e:
        msg = f"--data: {text!r} is not a date; write YYYY-MM-DD or YYYY-MM-DDTHH:MM (UTC)"
        raise ParameterError(msg) from e
    return int(moment.timestamp()) * 1000


def _stamp(ms: int, *, compact: bool = False) -> str:
    text = utc_text(ms)[:16].replace(" ", "T")  # YYYY-MM-DDTHH:MM
    if compact:
        return text.replace("-", "").replace(":", "") + "Z"
    return text[:10] if text.endswith("T00:00") else text


def _first_line(error: Exception) -> str:
    # ccxt's messages carry the whole HTTP body; one line of it keeps the error one sentence.
    return str(error).split("\n", 1)[0][:200]


def _wall_clock_ms() -> int:
    return int(SystemClock().now().timestamp() * 1000)


def _ccxt() -> Any:
    """Return ``ccxt.async_support``, imported on first use.

    ccxt costs about a second and 100 MB to import; every backtest imports this module (for
    the ``ccxt:`` source syntax), and only a download needs ccxt itself.
    """
    import ccxt.async_support as ccxt_async  # noqa: PLC0415

    return ccxt_async

"""Public market-data paths: ping, time, exchangeInfo, depth, tickers, avgPrice, klines.

Market data is derived from the bar the market clock stands on (``market.py``) and the
synthetic book (``book.py``); nothing after the clock is served. The 24-hour ticker covers the
last 1440 one-minute bars (fewer at the start of the data); its ``quoteVolume`` and
``weightedAvgPrice`` use each bar's close as the bar's price, and trade ids and counts are 0,
because the recorded candles carry neither.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from decimal import localcontext
from typing import Any

from aiohttp import web

from ledger.adapters.exchange_sim import protocol as p
from ledger.adapters.exchange_sim.replies import kline_row, levels
from ledger.adapters.exchange_sim.venue import Venue, params_of, venue_of
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO

DEPTH_LIMIT_DEFAULT = 100
DEPTH_LIMIT_MAX = 5000
KLINES_LIMIT_DEFAULT = 500
KLINES_LIMIT_MAX = 1000
DAY_MS = 86_400_000


def add_public_routes(app: web.Application) -> None:
    """Register the public paths on ``app``."""
    for path, handler in (
        ("ping", _ping),
        ("time", _server_time),
        ("exchangeInfo", _exchange_info),
        ("depth", _depth),
        ("ticker/24hr", _ticker_24hr_route),
        ("ticker/price", _ticker_price_route),
        ("ticker/bookTicker", _book_ticker_route),
        ("avgPrice", _avg_price),
        ("klines", _klines),
    ):
        app.router.add_get(f"/api/v3/{path}", handler)


async def _ping(_: web.Request) -> web.Response:
    return web.json_response({})


async def _server_time(request: web.Request) -> web.Response:
    return web.json_response({"serverTime": venue_of(request).now_ms()})


async def _exchange_info(request: web.Request) -> web.Response:
    venue = venue_of(request)
    info = copy.deepcopy(venue.exchange_info)
    info["serverTime"] = venue.now_ms()
    for entry in info["symbols"]:
        if entry["symbol"] in venue.engine.halted:
            entry["status"] = "BREAK"
    params = params_of(request)
    if params.get("symbol"):
        symbol = venue.rules_of(params).symbol
        info["symbols"] = [s for s in info["symbols"] if s["symbol"] == symbol]
    return web.json_response(info)


async def _depth(request: web.Request) -> web.Response:
    venue, params = venue_of(request), params_of(request)
    rules = venue.rules_of(params)
    limit = _limit(params, DEPTH_LIMIT_DEFAULT, DEPTH_LIMIT_MAX)
    now = venue.replay.current(rules.symbol)
    bids, asks = venue.engine.book(rules.symbol).depth(limit)
    update_id = 0 if now is None else now[0]
    return web.json_response({"lastUpdateId": update_id, "bids": levels(bids), "asks": levels(asks)})


async def _ticker_24hr_route(request: web.Request) -> web.Response:
    return _one_or_all(request, _ticker_24hr)


async def _ticker_price_route(request: web.Request) -> web.Response:
    return _one_or_all(request, _ticker_price)


async def _book_ticker_route(request: web.Request) -> web.Response:
    return _one_or_all(request, _book_ticker)


async def _avg_price(request: web.Request) -> web.Response:
    venue = venue_of(request)
    rules = venue.rules_of(params_of(request))
    price = venue.replay.price_avg(rules.symbol, rules.avg_price_mins)
    return web.json_response({"mins": rules.avg_price_mins, "price": p.wire(price)})


async def _klines(request: web.Request) -> web.Response:
    venue, params = venue_of(request), params_of(request)
    rules = venue.rules_of(params)
    interval = params.get("interval", "")
    if not interval:
        raise p.mandatory("interval").error()
    series = venue.replay.series.get(rules.symbol)
    if series is None:
        return web.json_response([])
    if interval != series.interval_name:
        raise p.INVALID_INTERVAL.error()
    start = int(params["startTime"]) if params.get("startTime", "").isdigit() else None
    end = int(params["endTime"]) if params.get("endTime", "").isdigit() else None
    limit = _limit(params, KLINES_LIMIT_DEFAULT, KLINES_LIMIT_MAX)
    bars = venue.replay.history(rules.symbol, start, end, limit)
    return web.json_response([kline_row(bar, series.candles.interval_ms) for bar in bars])


def _one_or_all(request: web.Request, build: Callable[[Venue, str], dict[str, Any]]) -> web.Response:
    venue, params = venue_of(request), params_of(request)
    if params.get("symbol"):
        return web.json_response(build(venue, venue.rules_of(params).symbol))
    return web.json_response([build(venue, symbol) for symbol in venue.replay.series])


def _limit(params: Mapping[str, str], default: int, maximum: int) -> int:
    text = params.get("limit", "")
    if not text:
        return default
    if not text.isdigit() or int(text) < 1:
        raise p.mandatory("limit").error()
    return min(int(text), maximum)


def _ticker_price(venue: Venue, symbol: str) -> dict[str, Any]:
    now = venue.replay.current(symbol)
    return {"symbol": symbol, "price": p.wire(ZERO if now is None else now[1].close)}


def _book_ticker(venue: Venue, symbol: str) -> dict[str, Any]:
    book = venue.engine.book(symbol)
    bid = book.bids[0] if book.bids else [ZERO, ZERO]
    ask = book.asks[0] if book.asks else [ZERO, ZERO]
    return {
        "symbol": symbol,
        "bidPrice": p.wire(bid[0]),
        "bidQty": p.wire(bid[1]),
        "askPrice": p.wire(ask[0]),
        "askQty": p.wire(ask[1]),
    }


def _ticker_24hr(venue: Venue, symbol: str) -> dict[str, Any]:
    now = venue.replay.current(symbol)
    series = venue.replay.series.get(symbol)
    if now is None or series is None:
        return {"symbol": symbol, "lastPrice": p.wire(ZERO), "volume": p.wire(ZERO), "count": 0}
    bars = venue.replay.history(symbol, None, None, max(1, DAY_MS // series.candles.interval_ms))
    first, last = bars[0], bars[-1]
    book = _book_ticker(venue, symbol)
    with localcontext(LEDGER_CONTEXT):
        volume = sum((b.volume for b in bars), ZERO)
        quote_volume = sum((b.volume * b.close for b in bars), ZERO)
        change = last.close - first.open
        weighted = quote_volume / volume if volume else last.close
        return {
            "symbol": symbol,
            "priceChange": p.wire(change),
            "priceChangePercent": f"{(change * 100 / first.open).quantize(p.WIRE_EXPONENT.scaleb(5)):f}",
            "weightedAvgPrice": p.wire(weighted),
            "prevClosePrice": p.wire(bars[-2].close if len(bars) > 1 else first.open),
            "lastPrice": p.wire(last.close),
            "lastQty": p.wire(ZERO),
            "bidPrice": book["bidPrice"],
            "bidQty": book["bidQty"],
            "askPrice": book["askPrice"],
            "askQty": book["askQty"],
            "openPrice": p.wire(first.open),
            "highPrice": p.wire(max(b.high for b in bars)),
            "lowPrice": p.wire(min(b.low for b in bars)),
            "volume": p.wire(volume),
            "quoteVolume": p.wire(quote_volume),
            "openTime": first.open_time_ms,
            "closeTime": last.open_time_ms + series.candles.interval_ms - 1,
            "firstId": 0,
            "lastId": 0,
            "count": 0,
        }

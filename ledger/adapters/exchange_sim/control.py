"""Control paths under ``/sim/`` (not Binance's; unauthenticated, for tests and operators).

- ``GET /sim/state``: market time and bar per symbol, balances, open orders, fault counts.
- ``POST /sim/advance?bars=N``: move the market N bars (1 to 100000), filling resting orders.
- ``POST /sim/market?symbol=S[&book=empty|normal][&spread_ticks=N][&levels=N]``
  ``[&depth_fraction=X][&status=TRADING|BREAK]``: reshape the synthetic book or halt a symbol
  (``BREAK``: exchangeInfo shows it and new orders get -1013 "Market is closed.").
- ``POST /sim/faults?spec=TEXT``: replace the fault spec (``faults.py`` syntax; empty clears).
- ``POST /sim/balances?ASSET=AMOUNT&...``: set free balances.
- ``GET /sim/orders[?clientOrderId=ID]``: every order ever accepted (optionally by client id).

Bad control input answers 400 ``{"error": "<one sentence>"}``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ledger.adapters.exchange_sim.book import BookModel
from ledger.adapters.exchange_sim.faults import RATE_KEYS, parse_faults
from ledger.adapters.exchange_sim.replies import order_status
from ledger.adapters.exchange_sim.venue import Venue, venue_of
from ledger.domain.errors import BadInputError
from ledger.domain.numbers import ZERO, D, plain

ADVANCE_BARS_MAX = 100_000


def add_control_routes(app: web.Application) -> None:
    """Register the ``/sim/`` paths on ``app``."""
    app.router.add_get("/sim/state", _state_route)
    app.router.add_post("/sim/advance", _advance)
    app.router.add_post("/sim/market", _market)
    app.router.add_post("/sim/faults", _faults)
    app.router.add_post("/sim/balances", _balances)
    app.router.add_get("/sim/orders", _orders)


async def _state_route(request: web.Request) -> web.Response:
    return web.json_response(_state(venue_of(request)))


async def _advance(request: web.Request) -> web.Response:
    venue = venue_of(request)
    text = request.query.get("bars", "1")
    if not text.isdigit() or not 1 <= int(text) <= ADVANCE_BARS_MAX:
        return _bad(f"bars={text!r}: give a whole number from 1 to {ADVANCE_BARS_MAX}")
    moved = venue.engine.advance(int(text), venue.now_ms())
    return web.json_response({"moved": moved, **_state(venue)})


async def _market(request: web.Request) -> web.Response:
    venue, query = venue_of(request), request.query
    symbol = query.get("symbol", "")
    if symbol not in venue.rules:
        return _bad(f"symbol={symbol!r}: give one of {sorted(venue.rules)}")
    try:
        model = _book_model(query, venue.engine.book_models.get(symbol, BookModel()))
    except (ValueError, TypeError) as e:
        return _bad(f"{e}; give book=empty|normal, whole spread_ticks/levels, decimal depth_fraction")
    status = query.get("status", "")
    if status not in ("", "TRADING", "BREAK"):
        return _bad(f"status={status!r}: give TRADING or BREAK")
    venue.engine.set_book_model(symbol, model)
    if status == "BREAK":
        venue.engine.halted.add(symbol)
    elif status == "TRADING":
        venue.engine.halted.discard(symbol)
    return web.json_response(_state(venue))


async def _faults(request: web.Request) -> web.Response:
    venue = venue_of(request)
    try:
        venue.set_faults(parse_faults(request.query.get("spec", "")))
    except BadInputError as e:
        return _bad(str(e))
    return web.json_response(_state(venue))


async def _balances(request: web.Request) -> web.Response:
    venue = venue_of(request)
    try:
        amounts = {asset: D(text) for asset, text in request.query.items()}
    except (TypeError, ValueError) as e:
        return _bad(f"{e}; give ASSET=AMOUNT pairs with decimal amounts")
    if any(amount < 0 for amount in amounts.values()):
        return _bad("a balance is negative; give zero or more")
    for asset, amount in amounts.items():
        venue.engine.free[asset] = amount
        venue.engine.locked.setdefault(asset, ZERO)
    return web.json_response(_state(venue))


async def _orders(request: web.Request) -> web.Response:
    venue = venue_of(request)
    wanted = request.query.get("clientOrderId")
    chosen = [o for o in venue.engine.orders if wanted is None or o.request.client_order_id == wanted]
    return web.json_response([order_status(o) for o in chosen])


def _book_model(query: Any, base: BookModel) -> BookModel:
    book = query.get("book", "")
    if book not in ("", "empty", "normal"):
        msg = f"book={book!r} is unknown"
        raise ValueError(msg)
    return BookModel(
        levels=int(query.get("levels", base.levels)),
        depth_fraction=D(query.get("depth_fraction", str(base.depth_fraction))),
        spread_ticks=int(query.get("spread_ticks", base.spread_ticks)),
        size_min_steps=base.size_min_steps,
        empty=base.empty if book == "" else book == "empty",
    )


def _state(venue: Venue) -> dict[str, Any]:
    symbols = {}
    for symbol in venue.replay.series:
        now = venue.replay.current(symbol)
        if now is not None:
            symbols[symbol] = {"bar": now[0], "open_time": now[1].open_time_ms, "close": plain(now[1].close)}
    engine = venue.engine
    return {
        "time": venue.replay.time_ms,
        "symbols": symbols,
        "halted": sorted(engine.halted),
        "balances": {
            asset: {
                "free": plain(engine.free.get(asset, ZERO)),
                "locked": plain(engine.locked.get(asset, ZERO)),
            }
            for asset in sorted(set(engine.free) | set(engine.locked))
        },
        "orders": len(engine.orders),
        "orders_open": len(engine.open_orders(None)),
        "trades": len(engine.trades),
        "requests": venue.requests,
        "faults": {key: venue.injector.counts[key] for key in RATE_KEYS},
    }


def _bad(sentence: str) -> web.Response:
    return web.json_response({"error": sentence}, status=400)

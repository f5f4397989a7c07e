"""The aiohttp application: Binance spot REST paths under ``/api/v3`` and controls under ``/sim``.

Every request passes one middleware, in this order: the fault spec's ``latency``; the
per-minute request weight (429 -1003 past the limit); for SIGNED paths the fault draw of
``faults.py`` (rate limit, ban and 5xx replies stop the request here), then the key, signature
and timestamp checks of ``auth.py``; the handler; and for signed paths the post-execution
faults (held reply, dropped connection, truncated body). Binance refusals become
``{"code", "msg"}`` bodies with Binance's HTTP status.

Parameters are read as Binance reads them: the query string, and for POST/DELETE also a
form-encoded body, the query string winning when both carry a name.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

from aiohttp import web

from ledger.adapters.exchange_sim import protocol as p
from ledger.adapters.exchange_sim.auth import check_signed
from ledger.adapters.exchange_sim.control import add_control_routes
from ledger.adapters.exchange_sim.orders import new_order, order_by_params
from ledger.adapters.exchange_sim.public import add_public_routes
from ledger.adapters.exchange_sim.replies import (
    account_reply,
    cancel_reply,
    order_reply,
    order_status,
    trade_reply,
)
from ledger.adapters.exchange_sim.venue import PARAMS_KEY, VENUE_KEY, Venue, params_of, venue_of

SIGNED = {
    ("POST", "/api/v3/order"),
    ("GET", "/api/v3/order"),
    ("DELETE", "/api/v3/order"),
    ("GET", "/api/v3/openOrders"),
    ("GET", "/api/v3/allOrders"),
    ("GET", "/api/v3/account"),
    ("GET", "/api/v3/myTrades"),
}
RETRY_AFTER_S = "60"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_app(venue: Venue) -> web.Application:
    """Return the application serving ``venue``."""
    app = web.Application(middlewares=[_gate])
    app[VENUE_KEY] = venue
    add_public_routes(app)
    app.router.add_post("/api/v3/order", _post_order)
    app.router.add_get("/api/v3/order", _get_order)
    app.router.add_delete("/api/v3/order", _delete_order)
    app.router.add_get("/api/v3/openOrders", _open_orders)
    app.router.add_get("/api/v3/allOrders", _all_orders)
    app.router.add_get("/api/v3/account", _account)
    app.router.add_get("/api/v3/myTrades", _my_trades)
    add_control_routes(app)
    return app


def binance_error(error: p.BinanceError) -> web.Response:
    """Return Binance's reply for ``error``."""
    return web.json_response(error.body(), status=error.status)


@web.middleware
async def _gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    venue = request.app[VENUE_KEY]
    if venue.injector.spec.latency:
        await asyncio.sleep(venue.injector.spec.latency / 1000)
    if request.path.startswith("/sim/"):
        return await handler(request)
    if not venue.spend_weight():
        return _rate_limited(venue.weight_limit)
    raw_query = request.raw_path.partition("?")[2]
    raw_body = await request.text() if request.can_read_body else ""
    params = dict(parse_qsl(raw_body, keep_blank_values=True))
    params.update(parse_qsl(raw_query, keep_blank_values=True))
    request[PARAMS_KEY] = params
    signed = (request.method, request.path) in SIGNED
    drawn = signed and (
        not venue.injector.spec.orders_only or (request.method, request.path) == ("POST", "/api/v3/order")
    )
    fault = venue.injector.draw() if drawn else None
    early = _early_fault(fault, venue)
    if early is not None:
        return early
    try:
        if signed:
            api_key = request.headers.get("X-MBX-APIKEY")
            check_signed(venue.credentials, api_key, raw_query, raw_body, params, venue.now_ms())
        response = await handler(request)
    except p.BinanceError as e:
        response = binance_error(e)
    return await _late_fault(fault, venue, request, response)


def _rate_limited(limit: int) -> web.Response:
    msg = (
        f"Too much request weight used; current limit is {limit} request weight per 1 MINUTE. "
        "Please use WebSocket Streams for live updates to avoid polling the API."
    )
    return web.json_response(
        {"code": -1003, "msg": msg}, status=p.HTTP_TOO_MANY, headers={"Retry-After": RETRY_AFTER_S}
    )


def _early_fault(fault: str | None, venue: Venue) -> web.Response | None:
    if fault == "rate_limit":
        return _rate_limited(venue.weight_limit)
    if fault == "ban":
        msg = (
            f"Way too much request weight used; IP banned until {venue.now_ms() + 120_000}. "
            "Please use WebSocket Streams for live updates to avoid bans."
        )
        return web.json_response(
            {"code": -1003, "msg": msg}, status=p.HTTP_BANNED, headers={"Retry-After": "120"}
        )
    if fault == "http5xx":
        return web.Response(status=503, text="Service Unavailable.")
    if fault == "http500":
        msg = "Internal error; unable to process your request. Please try again."
        return web.json_response({"code": -1001, "msg": msg}, status=500)
    return None


async def _late_fault(
    fault: str | None, venue: Venue, request: web.Request, response: web.StreamResponse
) -> web.StreamResponse:
    if fault == "timeout_after_accept":
        await asyncio.sleep(venue.injector.spec.hang_ms / 1000)
    elif fault == "drop" and request.transport is not None:
        request.transport.close()
    elif fault == "malformed" and isinstance(response, web.Response) and response.text is not None:
        text = response.text
        return web.Response(
            status=response.status, text=text[: len(text) // 2], content_type="application/json"
        )
    return response


def _json(body: object) -> web.Response:
    return web.json_response(body, dumps=lambda value: json.dumps(value, separators=(",", ":")))


async def _post_order(request: web.Request) -> web.Response:
    venue = venue_of(request)
    params = params_of(request)
    new, response_type = new_order(venue, params)
    order = venue.engine.place(new, venue.now_ms())
    return _json(order_reply(order, response_type))


async def _get_order(request: web.Request) -> web.Response:
    venue = venue_of(request)
    order = order_by_params(venue, params_of(request), missing=p.ORDER_NOT_FOUND)
    return _json(order_status(order))


async def _delete_order(request: web.Request) -> web.Response:
    venue = venue_of(request)
    order = order_by_params(venue, params_of(request), missing=p.UNKNOWN_ORDER)
    now = venue.now_ms()
    venue.engine.cancel(order, now)
    return _json(cancel_reply(order, now))


async def _open_orders(request: web.Request) -> web.Response:
    venue = venue_of(request)
    params = params_of(request)
    symbol = venue.rules_of(params).symbol if params.get("symbol") else None
    return _json([order_status(o) for o in venue.engine.open_orders(symbol)])


async def _all_orders(request: web.Request) -> web.Response:
    venue = venue_of(request)
    symbol = venue.rules_of(params_of(request)).symbol
    return _json([order_status(o) for o in venue.engine.orders if o.request.symbol == symbol])


async def _account(request: web.Request) -> web.Response:
    venue = venue_of(request)
    return _json(account_reply(venue.engine, venue.now_ms()))


async def _my_trades(request: web.Request) -> web.Response:
    venue = venue_of(request)
    params = params_of(request)
    symbol = venue.rules_of(params).symbol
    order_id = params.get("orderId")
    trades = [
        t
        for t in venue.engine.trades
        if t.symbol == symbol and (order_id is None or str(t.order_id) == order_id)
    ]
    limit = int(params["limit"]) if params.get("limit", "").isdigit() else 500
    return _json([trade_reply(t) for t in trades[-limit:]])

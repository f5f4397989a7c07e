"""Read order parameters as Binance does, refusing bad ones with Binance's codes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal

from ledger.adapters.exchange_sim import protocol as p
from ledger.adapters.exchange_sim.matching import NewOrder, SimOrder
from ledger.adapters.exchange_sim.venue import Venue

NUMBER = re.compile(r"[0-9]{1,20}(\.[0-9]{1,20})?")
CLIENT_ID = re.compile(r"[.A-Z:/a-z0-9_-]{1,36}")
SIDES = ("BUY", "SELL")
TYPES = ("LIMIT", "MARKET")
TIME_IN_FORCE = ("GTC", "IOC", "FOK")
RESPONSE_TYPES = ("ACK", "RESULT", "FULL")


def new_order(venue: Venue, params: Mapping[str, str]) -> tuple[NewOrder, str]:
    """Return the order of a ``POST /api/v3/order`` and its ``newOrderRespType``.

    Raises:
        BinanceError: -1102 missing, -1100 not a number, -1116/-1117/-1115 bad enum values,
            -1121 unknown symbol, -1106 a parameter the order type does not take.
    """
    rules = venue.rules_of(params)
    side = _required(params, "side")
    if side not in SIDES:
        raise p.INVALID_SIDE.error()
    order_type = _required(params, "type")
    if order_type not in TYPES:
        raise p.INVALID_ORDER_TYPE.error()
    qty = _number(params, "quantity")
    quote_qty = _number(params, "quoteOrderQty")
    price = _number(params, "price")
    time_in_force = params.get("timeInForce") or None
    _check_shape(order_type, qty=qty, quote_qty=quote_qty, price=price, time_in_force=time_in_force)
    client_id = params.get("newClientOrderId") or f"sim-{len(venue.engine.orders) + 1}"
    if CLIENT_ID.fullmatch(client_id) is None:
        raise p.ILLEGAL_CLIENT_ID.error()
    response_type = params.get("newOrderRespType") or "FULL"
    if response_type not in RESPONSE_TYPES:
        raise p.ILLEGAL_RESPONSE_TYPE.error()
    new = NewOrder(
        symbol=rules.symbol,
        side=side,
        type=order_type,
        qty=qty,
        quote_qty=quote_qty,
        price=price,
        time_in_force=time_in_force if order_type == "LIMIT" else None,
        client_order_id=client_id,
    )
    return new, response_type


def _check_shape(
    order_type: str,
    *,
    qty: Decimal | None,
    quote_qty: Decimal | None,
    price: Decimal | None,
    time_in_force: str | None,
) -> None:
    # Which parameters each order type needs, and which it refuses (-1106), as Binance does.
    if order_type == "MARKET":
        if qty is None and quote_qty is None:
            raise p.one_of("quantity", "quoteOrderQty").error()
        for name, value in (("price", price), ("timeInForce", time_in_force)):
            if value is not None:
                raise p.not_required(name).error()
        return
    for name, value in (("timeInForce", time_in_force), ("price", price), ("quantity", qty)):
        if value is None:
            raise p.mandatory(name).error()
    if time_in_force not in TIME_IN_FORCE:
        raise p.INVALID_TIME_IN_FORCE.error()
    if quote_qty is not None:
        raise p.not_required("quoteOrderQty").error()


def order_by_params(venue: Venue, params: Mapping[str, str], missing: p.Refusal) -> SimOrder:
    """Return the order named by ``orderId`` or ``origClientOrderId``.

    Raises:
        BinanceError: -1102 when neither is sent, ``missing`` when no such order exists.
    """
    rules = venue.rules_of(params)
    order_id_text = params.get("orderId") or None
    client_id = params.get("origClientOrderId") or None
    if order_id_text is None and client_id is None:
        raise p.one_of("origClientOrderId", "orderId").error()
    order_id = None
    if order_id_text is not None:
        if not order_id_text.isdigit():
            raise p.mandatory("orderId").error()
        order_id = int(order_id_text)
    order = venue.engine.find(rules.symbol, order_id, client_id)
    if order is None:
        raise missing.error()
    return order


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise p.mandatory(name).error()
    return value


def _number(params: Mapping[str, str], name: str) -> Decimal | None:
    text = params.get(name, "")
    if not text:
        return None
    if NUMBER.fullmatch(text) is None:
        raise p.illegal_number(name).error()
    return Decimal(text)

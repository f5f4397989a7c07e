"""JSON bodies shaped as Binance spot REST replies (numbers as 8-decimal strings)."""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from ledger.adapters.exchange_sim.market import Bar
from ledger.adapters.exchange_sim.matching import MatchingEngine, SimOrder, SimTrade
from ledger.adapters.exchange_sim.protocol import wire
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO

Json = dict[str, Any]


def order_reply(order: SimOrder, response_type: str) -> Json:
    """Return the ``POST /api/v3/order`` reply in ``ACK``, ``RESULT`` or ``FULL`` form."""
    new = order.request
    body: Json = {
        "symbol": new.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": new.client_order_id,
        "transactTime": order.time_ms,
    }
    if response_type == "ACK":
        return body
    body.update(_order_fields(order))
    body["workingTime"] = order.time_ms
    body["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if response_type == "FULL":
        body["fills"] = [
            {
                "price": wire(t.price),
                "qty": wire(t.qty),
                "commission": wire(t.commission),
                "commissionAsset": t.commission_asset,
                "tradeId": t.trade_id,
            }
            for t in order.fills
        ]
    return body


def order_status(order: SimOrder) -> Json:
    """Return the ``GET /api/v3/order`` (and ``openOrders``) form of ``order``."""
    new = order.request
    return {
        "symbol": new.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": new.client_order_id,
        **_order_fields(order),
        "stopPrice": wire(ZERO),
        "icebergQty": wire(ZERO),
        "time": order.time_ms,
        "updateTime": order.update_ms,
        "isWorking": True,
        "workingTime": order.time_ms,
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def cancel_reply(order: SimOrder, now_ms: int) -> Json:
    """Return the ``DELETE /api/v3/order`` reply."""
    new = order.request
    return {
        "symbol": new.symbol,
        "origClientOrderId": new.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": f"cancel-{order.order_id}",
        "transactTime": now_ms,
        **_order_fields(order),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def _order_fields(order: SimOrder) -> Json:
    new = order.request
    qty = new.qty if new.qty is not None else order.qty_executed
    return {
        "price": wire(new.price if new.price is not None else ZERO),
        "origQty": wire(qty),
        "executedQty": wire(order.qty_executed),
        "origQuoteOrderQty": wire(new.quote_qty if new.quote_qty is not None else ZERO),
        "cummulativeQuoteQty": wire(order.quote_executed),
        "status": order.status,
        "timeInForce": new.time_in_force or "GTC",
        "type": new.type,
        "side": new.side,
    }


def trade_reply(trade: SimTrade) -> Json:
    """Return one ``GET /api/v3/myTrades`` entry."""
    with localcontext(LEDGER_CONTEXT):
        quote = trade.price * trade.qty
    return {
        "symbol": trade.symbol,
        "id": trade.trade_id,
        "orderId": trade.order_id,
        "orderListId": -1,
        "price": wire(trade.price),
        "qty": wire(trade.qty),
        "quoteQty": wire(quote),
        "commission": wire(trade.commission),
        "commissionAsset": trade.commission_asset,
        "time": trade.time_ms,
        "isBuyer": trade.is_buyer,
        "isMaker": trade.is_maker,
        "isBestMatch": True,
    }


def account_reply(engine: MatchingEngine, now_ms: int) -> Json:
    """Return the ``GET /api/v3/account`` reply (assets in name order)."""
    # Binance quotes commission in basis points: 0.001 is 10.
    maker_bps = int(engine.fee_maker * 10_000)
    taker_bps = int(engine.fee_taker * 10_000)
    assets = sorted(set(engine.free) | set(engine.locked))
    return {
        "makerCommission": maker_bps,
        "takerCommission": taker_bps,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": wire(engine.fee_maker),
            "taker": wire(engine.fee_taker),
            "buyer": wire(ZERO),
            "seller": wire(ZERO),
        },
        "canTrade": True,
        "canWithdraw": True,
        "canDeposit": True,
        "brokered": False,
        "requireSelfTradePrevention": False,
        "preventSor": False,
        "updateTime": now_ms,
        "accountType": "SPOT",
        "balances": [
            {
                "asset": asset,
                "free": wire(engine.free.get(asset, ZERO)),
                "locked": wire(engine.locked.get(asset, ZERO)),
            }
            for asset in assets
        ],
        "permissions": ["SPOT"],
        "uid": 1,
    }


def kline_row(bar: Bar, interval_ms: int) -> list[Any]:
    """Return one ``klines`` row; quote volume and trade counts are not recorded, so ``0``."""
    return [
        bar.open_time_ms,
        wire(bar.open),
        wire(bar.high),
        wire(bar.low),
        wire(bar.close),
        wire(bar.volume),
        bar.open_time_ms + interval_ms - 1,
        wire(ZERO),
        0,
        wire(ZERO),
        wire(ZERO),
        "0",
    ]


def levels(pairs: list[list[Decimal]]) -> list[list[str]]:
    """Return book levels as Binance's ``[["price", "qty"], ...]``."""
    return [[wire(price), wire(qty)] for price, qty in pairs]

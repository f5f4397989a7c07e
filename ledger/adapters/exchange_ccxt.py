"""The live venue: a real exchange (or the local Binance-protocol server) through ccxt async.

Crash safety rests on the client order id, which the ledger records (``OrderSubmitted``)
before anything leaves the process:

* ``submit_order`` sends it as Binance's ``newClientOrderId``. When the answer is lost (a
  timeout, a dropped connection, a 5xx or 429, a reply ccxt cannot read), the order may or may
  not exist at the venue, so the gateway never sends it again: it looks the order up by client
  id, a bounded number of times, and returns the venue's ack; raises ``VenueOrderAbsentError``
  when every lookup got the venue's own "no such order", and ``VenueOrderUnknownError`` when
  lookups failed too (the session asks again later, and at the next start-up).
* ``recover`` does the same lookup after a restart, for orders the ledger saw submitted but
  never saw answered.
* ``poll_fills`` reports each venue trade once, by trade id; the domain ignores a repeated
  report and halts on a conflicting one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import ccxt.async_support as ccxt_async
from ccxt.base import errors as ccxt_errors

from ledger.adapters.ccxt_markets import rules_from_ccxt_market
from ledger.application.candles import Bar
from ledger.application.session import (
    OrderBook,
    VenueOrderAbsentError,
    VenueOrderUnknownError,
    VenueRejectedError,
)
from ledger.domain.errors import BadInputError, ParameterError
from ledger.domain.events import OrderPlaced, OrderType, Side
from ledger.domain.market_rules import MarketRules
from ledger.domain.order import FillReport, OrderEnded, VenueAck

# Why 5 lookups 0.4 s apart: a venue that accepted an order shows it within a second or two;
# past that, the order is treated as unknown and reconciled at the next start-up.
LOOKUPS = 5
LOOKUP_PAUSE_S = 0.4
VENUES = ("binance",)
# A lost or unreadable answer: ccxt's network and response errors, and what its parsers raise
# on a truncated body (they index into what they expected to be JSON objects).
_LOST_ANSWER = (ccxt_errors.OperationFailed, AttributeError, TypeError, KeyError, ValueError)
_TERMINAL = {"closed", "canceled", "expired", "rejected"}


@dataclass(frozen=True, kw_only=True)
class VenueConfig:
    """How to reach a venue; secrets come from the environment, never from config files."""

    exchange: str
    api_key: str
    api_secret: str
    api_url: str | None = None  # e.g. http://127.0.0.1:PORT/api/v3 for the local server
    timeout_ms: int = 5000


class CcxtGateway:
    """``ExchangeGateway`` over ccxt's async client; one instrument per session."""

    def __init__(self, config: VenueConfig, symbol: str, timeframe: str = "1m") -> None:
        """Build the ccxt client (no network until ``open``)."""
        if config.exchange not in VENUES:
            msg = f"venue.exchange: {config.exchange!r} is not supported yet; use {', '.join(VENUES)}"
            raise ParameterError(msg)
        self.venue = config.exchange
        self.symbol = symbol
        self.timeframe = timeframe
        self._client = getattr(ccxt_async, config.exchange)(
            {
                "apiKey": config.api_key,
                "secret": config.api_secret,
                "timeout": config.timeout_ms,
                "enableRateLimit": False,
                "options": {
                    "defaultType": "spot",
                    "fetchMarkets": {"types": ["spot"]},
                    "fetchCurrencies": False,
                    "fetchMargins": False,
                },
            }
        )
        if config.api_url is not None:
            urls = self._client.urls["api"]
            self._client.urls["api"] = {**urls, "public": config.api_url, "private": config.api_url}
        self._working: dict[str, str] = {}  # client order id -> venue order id
        self._reported: set[str] = set()  # venue trade ids already reported
        self._seen_qty: dict[str, Decimal] = {}  # client order id -> quantity in reported trades

    async def open(self) -> MarketRules:
        """Load the venue's markets; return the session symbol's exchange rules."""
        markets = await self._client.load_markets()
        market = markets.get(self.symbol)
        if market is None:
            msg = f"symbol: the venue does not list {self.symbol!r}; check the spelling, e.g. BTC/USDT"
            raise BadInputError(msg)
        return rules_from_ccxt_market(market, precision_mode=int(self._client.precisionMode))

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._client.close()

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Send ``order`` once; on a lost answer, find it by client order id instead of resending.

        Raises:
            VenueRejectedError: the venue refused the order.
            VenueOrderUnknownError: the answer was lost and the order cannot be found (yet).
        """
        params: dict[str, Any] = {"newClientOrderId": order.client_order_id}
        amount: Decimal | None = order.qty
        if order.qty is None and order.qty_quote is not None:
            params["quoteOrderQty"] = str(order.qty_quote)
        kind = "market" if order.order_type is OrderType.MARKET else "limit"
        price = None if order.price_limit is None else str(order.price_limit)
        try:
            reply = await self._client.create_order(
                self.symbol, kind, order.side.value, None if amount is None else str(amount), price, params
            )
        except (
            ccxt_errors.InsufficientFunds,
            ccxt_errors.InvalidOrder,
            ccxt_errors.BadRequest,
            ccxt_errors.OperationRejected,
        ) as e:
            raise VenueRejectedError(_reason(e), f"the venue refused the order: {e}") from e
        except _LOST_ANSWER:
            return await self._find(order.client_order_id)
        if not isinstance(reply, Mapping) or not reply.get("id"):
            return await self._find(order.client_order_id)  # an answer we could not read
        return self._ack(order.client_order_id, str(reply["id"]))

    async def recover(self, client_order_id: str) -> VenueAck:
        """After a restart: find an order the ledger saw submitted but never saw answered."""
        return await self._find(client_order_id)

    async def _find(self, client_order_id: str) -> VenueAck:
        absent = 0
        for attempt in range(LOOKUPS):
            found = None
            try:
                found = await self._client.fetch_order(
                    None, self.symbol, {"origClientOrderId": client_order_id}
                )
            except ccxt_errors.OrderNotFound:
                absent += 1
            except _LOST_ANSWER:
                pass  # no answer this time: neither found nor known absent
            if isinstance(found, Mapping) and found.get("id"):
                return self._ack(client_order_id, str(found["id"]))
            if attempt + 1 < LOOKUPS:
                await asyncio.sleep(LOOKUP_PAUSE_S)
        if absent == LOOKUPS:
            msg = f"order {client_order_id}: the venue answered {LOOKUPS} times that it has no such order"
            raise VenueOrderAbsentError(msg)
        msg = f"order {client_order_id}: the venue's answer was lost and lookups did not settle it"
        raise VenueOrderUnknownError(msg)

    def _ack(self, client_order_id: str, venue_order_id: str) -> VenueAck:
        self._working[client_order_id] = venue_order_id
        return VenueAck(client_order_id=client_order_id, venue_order_id=venue_order_id)

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        """Report new trades of working orders, then the end of each order that is done.

        An order leaves the working set only once its trades add up to what the venue says it
        filled, so a lost or unreadable trade list never loses a fill: the next poll asks again.
        """
        reports: list[FillReport | OrderEnded] = []
        for client_order_id, venue_order_id in list(self._working.items()):
            try:
                order = await self._client.fetch_order(venue_order_id, self.symbol)
                trades = await self._client.fetch_my_trades(self.symbol, params={"orderId": venue_order_id})
                status, filled = str(order["status"] or ""), Decimal(str(order.get("filled") or 0))
                fills = [self._fill(client_order_id, t) for t in trades]
            except _LOST_ANSWER:
                continue  # the next poll asks again; nothing is lost
            reports.extend(f for f in fills if f is not None)
            if status in _TERMINAL and self._seen_qty.get(client_order_id, Decimal(0)) >= filled:
                del self._working[client_order_id]
                if status != "closed":
                    reports.append(
                        OrderEnded(
                            client_order_id=client_order_id,
                            reason=f"venue status {status}",
                            occurred_at=_time(order.get("lastUpdateTimestamp") or order.get("timestamp")),
                        )
                    )
        return reports

    def _fill(self, client_order_id: str, trade: Mapping[str, Any]) -> FillReport | None:
        trade_id = str(trade["id"] or "")
        if not trade_id:
            msg = "a trade without an id"
            raise ValueError(msg)  # an unreadable reply: the poll is retried
        if trade_id in self._reported:
            return None
        fee = trade.get("fee") or {}
        report = FillReport(
            client_order_id=client_order_id,
            venue=self.venue,
            venue_trade_id=trade_id,
            side=Side(str(trade["side"])),
            qty=_reported(trade.get("amount"), positive=True),
            price=_reported(trade.get("price"), positive=True),
            fee=_reported(fee.get("cost", "0"), positive=False),
            fee_asset=str(fee.get("currency") or ""),
            occurred_at=_time(trade.get("timestamp")),
        )
        self._reported.add(trade_id)
        self._seen_qty[client_order_id] = self._seen_qty.get(client_order_id, Decimal(0)) + report.qty
        return report

    async def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel an order (its end arrives through ``poll_fills``).

        An order the venue already finished, or an answer that got lost, changes nothing here:
        the poll reports the end, and the session asks again if none comes.
        """
        venue_order_id = self._working.get(client_order_id)
        if venue_order_id is None:
            return
        with contextlib.suppress(ccxt_errors.OrderNotFound, *_LOST_ANSWER):
            await self._client.cancel_order(venue_order_id, self.symbol)

    def on_bar(self, bar: Bar) -> None:
        """A live venue fills by itself; the session's bars change nothing here."""

    async def closed_bars(self, since_ms: int | None) -> list[Bar]:
        """Return the venue's closed bars from ``since_ms`` (the still-open last one excluded).

        ccxt hands OHLCV over as floats; each is read back through its shortest repr, which is
        the venue's decimal string for prices and volumes of up to 15 significant digits.
        """
        try:
            rows = await self._client.fetch_ohlcv(self.symbol, self.timeframe, since_ms, 500)
        except _LOST_ANSWER:
            return []  # the next step asks again from the same bar
        closed = list(rows[:-1]) if rows else []
        try:
            return [
                Bar(
                    open_ms=int(r[0]),
                    open=_reported(r[1], positive=True),
                    high=_reported(r[2], positive=True),
                    low=_reported(r[3], positive=True),
                    close=_reported(r[4], positive=True),
                    volume=_reported(r[5], positive=False),
                )
                for r in closed
            ]
        except _LOST_ANSWER:
            return []  # an unreadable row: the next step asks again

    async def balances(self) -> dict[str, Decimal]:
        """Return the venue's total balance per asset (non-zero ones); retries lost answers."""
        found = await self._read(self._client.fetch_balance)
        if not isinstance(found.get("info"), Mapping):
            # ccxt parses a truncated body into an empty balance with the raw text as info.
            msg = "the venue's balance reply could not be read, even after retries"
            raise BadInputError(msg)
        totals = found.get("total") or {}
        return {asset: Decimal(str(v)) for asset, v in totals.items() if v}

    async def order_book(self, depth: int) -> OrderBook | None:
        """Return the top ``depth`` levels per side, or None when the venue does not answer."""
        try:
            book = await self._client.fetch_order_book(self.symbol, depth)
            return OrderBook(
                bids=[
                    (_reported(p, positive=True), _reported(q, positive=False)) for p, q, *_ in book["bids"]
                ],
                asks=[
                    (_reported(p, positive=True), _reported(q, positive=False)) for p, q, *_ in book["asks"]
                ],
            )
        except _LOST_ANSWER:
            return None

    async def ping(self) -> str | None:
        """Ask the venue for its time; return None when it answered, else what went wrong."""
        try:
            await self._client.fetch_time()
        except _LOST_ANSWER as e:
            return f"{type(e).__name__}: {str(e)[:200]}"
        return None

    async def open_client_order_ids(self) -> list[str]:
        """Return the client order ids of the symbol's orders open at the venue."""
        orders = await self._read(self._client.fetch_open_orders, self.symbol)
        return sorted(str(o.get("clientOrderId") or o.get("id")) for o in orders)

    async def _read(self, call: Any, *args: Any) -> Any:
        # An idempotent read, asked again after a lost or unreadable answer (bounded).
        for attempt in range(LOOKUPS):
            try:
                found = await call(*args)
                if isinstance(found, Mapping) and isinstance(found.get("info"), str):
                    msg = "an unreadable reply"
                    raise ValueError(msg)
                return found
            except _LOST_ANSWER:
                if attempt + 1 == LOOKUPS:
                    raise
                await asyncio.sleep(LOOKUP_PAUSE_S)
        msg = "unreachable: the loop returns or raises"
        raise AssertionError(msg)


def _reason(error: Exception) -> str:
    if isinstance(error, ccxt_errors.InsufficientFunds):
        return "insufficient_balance"
    return "venue_invalid_order"


def _reported(value: Any, *, positive: bool) -> Decimal:
    # A number in a venue report; anything else makes the whole reply unreadable (retried).
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        msg = f"the venue reported {value!r} where a number belongs"
        raise ValueError(msg)
    try:
        number = Decimal(str(value))
    except ArithmeticError as e:
        msg = f"the venue reported {value!r} where a number belongs"
        raise ValueError(msg) from e
    if not number.is_finite() or number < 0 or (positive and number == 0):
        msg = f"the venue reported {value!r}, which no trade can have"
        raise ValueError(msg)
    return number


def _time(ms: Any) -> datetime:
    if not isinstance(ms, int | float):
        msg = "the venue reported a trade without a timestamp"
        raise ValueError(msg)  # an unreadable reply: the poll is retried
    return datetime.fromtimestamp(ms / 1000, tz=UTC)

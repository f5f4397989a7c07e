"""The paper venue: orders fill against the live market's bars with the backtest's fill model.

The session feeds it every closed bar it receives from the real venue (``on_bar``). A market
order placed at a bar's close fills whole at the open of the next bar, the fee in the quote
asset: exactly ``fill_at_open``, the function the backtest venue uses, so a paper run and a
backtest over the same bars produce the same fills. A limit order follows the backtest venue's
rule (``exchange_backtest``, no latency, no queue): if the next bar opens at or better than its
limit it fills there like a market order; otherwise it rests and fills whole at its limit on the
first bar that trades strictly through it (low below a buy, high above a sell; a touch is not a
fill). It stays working until the session cancels it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from ledger.adapters.exchange_backtest import fill_at_open
from ledger.application.candles import EPOCH, Bar
from ledger.application.session import VenueOrderUnknownError
from ledger.domain.events import OrderPlaced, OrderType, Side
from ledger.domain.fill_models import traded_through
from ledger.domain.instruments import Instrument
from ledger.domain.order import FillReport, OrderEnded, VenueAck


@dataclass(kw_only=True)
class _Working:
    order: OrderPlaced
    bar_open_ms: int  # the bar the order was placed on
    first_bar: bool = True  # the next bar has not been seen yet (its open may fill a limit)


class PaperGateway:
    """``ExchangeGateway`` that simulates fills on the bars the session passes in."""

    venue = "paper"

    def __init__(self, instrument: Instrument, fee_rate: Decimal) -> None:
        """Simulate ``instrument`` charging ``fee_rate`` per fill."""
        self._instrument = instrument
        self._fee_rate = fee_rate
        self._bar: tuple[int, Decimal, datetime] | None = None  # open ms, open price, open time
        self._working: dict[str, _Working] = {}
        self._ended: list[OrderEnded] = []
        self._range: tuple[Decimal, Decimal] | None = None  # the current bar's low and high
        self._acks: dict[str, VenueAck] = {}
        self._trades = 0

    def on_bar(self, bar: Bar) -> None:
        """Make a newly closed bar the current one (its open fills earlier orders)."""
        self._bar = (bar.open_ms, bar.open, EPOCH + timedelta(milliseconds=bar.open_ms))
        self._range = (bar.low, bar.high)

    async def cancel(self, client_order_id: str) -> None:
        """Cancel a working order; its end is reported by the next poll."""
        working = self._working.pop(client_order_id, None)
        if working is not None and self._bar is not None:
            self._ended.append(
                OrderEnded(client_order_id=client_order_id, reason="canceled", occurred_at=self._bar[2])
            )

    def _limit_price(self, working: _Working, open_price: Decimal) -> Decimal | None:
        # The price a limit order fills at on the current bar, or None: at the open if the
        # first bar after it opens within the limit (marketable), else at the limit once a bar
        # trades strictly through it.
        limit = working.order.price_limit
        if self._range is None or limit is None:
            return None
        side = working.order.side
        if working.first_bar:
            working.first_bar = False
            if (open_price <= limit) if side is Side.BUY else (open_price >= limit):
                return open_price
        return limit if traded_through(side, limit, *self._range) else None

    async def recover(self, client_order_id: str) -> VenueAck:
        """Return the ack of an order this paper venue accepted.

        Raises:
            VenueOrderUnknownError: it never did (a paper venue forgets everything on restart).
        """
        ack = self._acks.get(client_order_id)
        if ack is None:
            msg = f"order {client_order_id}: the paper venue of this process never saw it"
            raise VenueOrderUnknownError(msg)
        return ack

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Accept a market order on the current bar; a resubmission returns the same ack."""
        ack = self._acks.get(order.client_order_id)
        if ack is not None:
            return ack
        if self._bar is None:
            msg = "the paper venue has no bar yet; the session passes one before deciding"
            raise RuntimeError(msg)
        ack = VenueAck(client_order_id=order.client_order_id, venue_order_id=f"paper-{len(self._acks) + 1}")
        self._acks[order.client_order_id] = ack
        self._working[order.client_order_id] = _Working(order=order, bar_open_ms=self._bar[0])
        return ack

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        """Fill every order placed on an earlier bar at the current bar's open."""
        if self._bar is None:
            return []
        open_ms, price, at = self._bar
        reports: list[FillReport | OrderEnded] = [*self._ended]
        self._ended = []
        for working in [w for w in self._working.values() if w.bar_open_ms < open_ms]:
            order = working.order
            price_fill = price if order.order_type is OrderType.MARKET else self._limit_price(working, price)
            if price_fill is None:
                continue
            del self._working[order.client_order_id]
            report = fill_at_open(
                order,
                price=price_fill,
                at=at,
                instrument=self._instrument,
                fee_rate=self._fee_rate,
                trade_id=f"paper-t-{self._trades + 1}",
                venue=self.venue,
            )
            if isinstance(report, FillReport):
                self._trades += 1
            reports.append(report)
        return reports

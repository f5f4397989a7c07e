"""The backtest venue: market orders fill at the next bar's open, fee in the quote asset."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, localcontext

from ledger.application.candles import Candles
from ledger.domain.errors import InvariantViolationError
from ledger.domain.events import OrderPlaced, OrderType
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, round_down_to_step
from ledger.domain.order import FillReport, OrderEnded, VenueAck


@dataclass(frozen=True, kw_only=True)
class _Working:
    order: OrderPlaced
    bar: int


class BacktestExchange:
    """Simulated venue over recorded candles: next-bar-open fills for market orders.

    Assumptions: the whole order fills at the open of the first bar after the one it was
    placed on (no partial fills, no book impact); a quote-sized order buys
    ``floor(qty_quote / open)`` to the instrument's step; the fee is ``fee_rate`` of the
    notional, charged in the quote asset. Limit orders are not simulated yet and are refused.
    """

    venue = "backtest"

    def __init__(self, candles: Candles, instrument: Instrument, fee_rate: Decimal) -> None:
        """Simulate ``instrument`` over ``candles`` charging ``fee_rate`` per fill."""
        self._candles = candles
        self._instrument = instrument
        self._fee_rate = fee_rate
        self._bar = 0
        self._working: dict[str, _Working] = {}
        self._acks: dict[str, VenueAck] = {}
        self._trades = 0

    def advance_to(self, bar: int) -> None:
        """Move the simulated market to ``bar`` (its open is the next fill price)."""
        self._bar = bar

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Accept an order; resubmitting the same client order id returns the same ack."""
        ack = self._acks.get(order.client_order_id)
        if ack is not None:
            return ack
        if order.order_type is not OrderType.MARKET:
            msg = "the next-open backtest venue fills market orders only"
            raise NotImplementedError(msg)
        ack = VenueAck(client_order_id=order.client_order_id, venue_order_id=f"bt-{len(self._acks) + 1}")
        self._acks[order.client_order_id] = ack
        self._working[order.client_order_id] = _Working(order=order, bar=self._bar)
        return ack

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        """Fill every order placed before the current bar at the current bar's open."""
        ready = [w for w in self._working.values() if w.bar < self._bar]
        reports: list[FillReport | OrderEnded] = []
        for working in ready:
            del self._working[working.order.client_order_id]
            reports.append(self._fill(working.order))
        return reports

    def _fill(self, order: OrderPlaced) -> FillReport | OrderEnded:
        report = fill_at_open(
            order,
            price=self._candles.price(self._candles.open[self._bar]),
            at=self._candles.open_at(self._bar),
            instrument=self._instrument,
            fee_rate=self._fee_rate,
            trade_id=f"bt-t-{self._trades + 1}",
            venue=self.venue,
        )
        if isinstance(report, FillReport):
            self._trades += 1
        return report


def fill_at_open(  # noqa: PLR0913 - the fill model's inputs, keyword-only
    order: OrderPlaced,
    *,
    price: Decimal,
    at: datetime,
    instrument: Instrument,
    fee_rate: Decimal,
    trade_id: str,
    venue: str,
) -> FillReport | OrderEnded:
    """Fill ``order`` whole at ``price`` (a bar's open), fee in the quote asset.

    The next-open fill model shared by backtests and paper sessions: a quote-sized order buys
    ``floor(qty_quote / price)`` to the step; a size below the minimum ends the order unfilled.
    """
    with localcontext(LEDGER_CONTEXT):
        if order.qty is not None:
            qty = order.qty
        elif order.qty_quote is not None:
            qty = round_down_to_step(order.qty_quote / price, instrument.qty_step)
        else:  # OrderPlaced guarantees one of the two
            msg = f"order {order.client_order_id} has neither qty nor qty_quote"
            raise InvariantViolationError(msg)
        if qty < instrument.qty_min or qty == ZERO:
            return OrderEnded(
                client_order_id=order.client_order_id,
                reason=f"size rounds to {qty} at {price}",
                occurred_at=at,
            )
        fee = qty * price * fee_rate
    return FillReport(
        client_order_id=order.client_order_id,
        venue=venue,
        venue_trade_id=trade_id,
        side=order.side,
        qty=qty,
        price=price,
        fee=fee,
        fee_asset=instrument.quote_asset,
        occurred_at=at,
    )

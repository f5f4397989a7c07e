"""The backtest venue: market and limit orders filled on recorded candles by a chosen fill model.

The formulas live in ``ledger.domain.fill_models`` and ``ledger.domain.fill_book``; this class
applies them in time order. What it assumes (README, "Fill models"):

- **Arrival.** An order reaches the venue ``latency_ms`` after it was placed (the decision
  bar's close), and its acknowledgement is stamped then. It meets the first bar not closed by
  then; an order arriving after the last bar ends unfilled when the data runs out.
- **Market orders** fill once, at the arrival: ``next-open`` at the market then (the bar's open,
  or the open-to-close line inside it) moved by the slippage model; ``orderbook`` at the average
  price of a walk through a book synthesized from that bar, the unfilled rest ending. Taker fee.
- **Limit orders** work at their limit rounded to the tick (a buy down, a sell up). One that
  is marketable on arrival (the market-order price is within the limit) fills as a taker like a
  market order; otherwise it rests, from the first bar that opens at or after its arrival, for
  ``limit_timeout_s``. A resting order fills whole at its limit, maker fee, at the close of the
  first bar that trades strictly through it (low below a buy, high above a sell); with
  ``queue_ahead = F`` it queues behind ``F`` times the volume of the last bar closed before it
  arrived and fills at the close of the bar where the volume traded at or through its limit
  (``fill_models.volume_at_or_through``), summed from its first bar, exceeds that queue.
- **API failures.** With ``failure_rate`` P a submission is refused (``VenueRejectedError``,
  reason ``api_failure``) when the seeded draw for its client order id is below P.
- Fees are in the quote asset: ``qty x price x rate``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, localcontext

import numpy as np

from ledger.application.candles import EPOCH, Candles
from ledger.application.session_ports import VenueRejectedError
from ledger.domain.errors import InvariantViolationError
from ledger.domain.events import OrderPlaced, OrderType, Side
from ledger.domain.fill_book import BookFill, synthesized_side, walk
from ledger.domain.fill_models import (
    BarQuote,
    Draws,
    FillModel,
    FillSettings,
    SlippageModel,
    half_spread,
    price_at,
    slippage_fraction,
    slipped_price,
    traded_through,
    volume_at_or_through,
    working_limit,
)
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, round_down_to_step
from ledger.domain.order import FillReport, OrderEnded, VenueAck

Report = FillReport | OrderEnded
# The machine-readable reason of an injected failure, as OrderRejected records it.
API_FAILURE = "api_failure"


@dataclass(kw_only=True)
class _Working:
    order: OrderPlaced
    arrival_ms: int
    arrival_bar: int  # the first bar not closed at arrival; len(candles) when past the data
    limit: Decimal | None = None  # the limit the venue works, on the tick
    resting: bool = False  # a limit order past its arrival, waiting for the market
    next_bar: int = 0  # the first bar a resting order has not been checked against
    expires_ms: int = 0
    queue_ahead: Decimal | None = None
    queue_traded: Decimal = ZERO


class BacktestExchange:
    """Simulated venue over recorded candles; see the module docstring for the fill rules."""

    venue = "backtest"

    def __init__(
        self,
        candles: Candles,
        instrument: Instrument,
        fee_rate: Decimal,
        *,
        settings: FillSettings | None = None,
        draws: Draws | None = None,
    ) -> None:
        """Simulate ``instrument`` over ``candles``; ``fee_rate`` is the taker rate.

        Raises:
            ValueError: failures are injected but no ``draws`` were given, or a model needs
                volumes the candles do not carry.
        """
        self._candles = candles
        self._instrument = instrument
        self._settings = settings if settings is not None else FillSettings()
        self._taker = fee_rate
        maker = self._settings.maker_fee
        self._maker = fee_rate if maker is None else maker
        if self._settings.failure_rate > ZERO and draws is None:
            msg = "failure injection needs seeded draws"
            raise ValueError(msg)
        if needs_volume(self._settings) and candles.volume is None:
            msg = f"{candles.source} has no volumes; the {self._settings.describe()} fill model needs them"
            raise ValueError(msg)
        self._draws = draws
        self._close_ms = candles.open_time_ms + candles.interval_ms
        self._bar = 0
        self._working: dict[str, _Working] = {}
        self._acks: dict[str, VenueAck] = {}
        self._trades = 0

    def advance_to(self, bar: int) -> None:
        """Move the simulated market to ``bar``; polls report what happened up to its close."""
        self._bar = bar

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Accept an order; resubmitting the same client order id returns the same ack.

        Raises:
            VenueRejectedError: the injected API failure refused the submission.
        """
        ack = self._acks.get(order.client_order_id)
        if ack is not None:
            return ack
        rate = self._settings.failure_rate
        if self._draws is not None and rate > ZERO:
            draw = self._draws.uniform(f"submit:{order.client_order_id}")
            if draw < rate:
                msg = f"simulated API failure (draw {draw:.6f} < failure rate {rate})"
                raise VenueRejectedError(API_FAILURE, msg)
        latency = self._settings.latency_ms
        ack = VenueAck(
            client_order_id=order.client_order_id,
            venue_order_id=f"bt-{len(self._acks) + 1}",
            accepted_at=order.occurred_at + timedelta(milliseconds=latency),  # when it arrives
        )
        self._acks[order.client_order_id] = ack
        arrival_ms = _ms(order.occurred_at) + latency
        working = _Working(
            order=order,
            arrival_ms=arrival_ms,
            arrival_bar=int(np.searchsorted(self._close_ms, arrival_ms, side="right")),
        )
        if order.order_type is OrderType.LIMIT:
            if order.price_limit is None:  # OrderPlaced guarantees a limit on a limit order
                msg = f"limit order {order.client_order_id} has no price_limit"
                raise InvariantViolationError(msg)
            working.limit = working_limit(order.side, order.price_limit, self._instrument.price_tick)
        self._working[order.client_order_id] = working
        return ack

    async def poll_fills(self) -> list[Report]:
        """Return what happened to the working orders up to the current bar's close."""
        if not self._working:  # most visited bars: nothing is working
            return []
        reports: list[Report] = []
        for working in list(self._working.values()):
            found = self._work(working)
            reports.extend(found)
            if found and not working.resting:
                del self._working[working.order.client_order_id]
        return reports

    def _work(self, working: _Working) -> list[Report]:
        last = len(self._candles) - 1
        if working.arrival_bar > last:
            if self._bar < last:
                return []
            return [self._ended(working, "the order arrives after the last bar", self._close(last))]
        if working.arrival_bar > self._bar:
            return []
        if not working.resting:
            arrived = self._on_arrival(working)
            if arrived is not None:
                return arrived
        return self._rest(working)

    def _on_arrival(self, working: _Working) -> list[Report] | None:
        # A market order, or a marketable limit, takes liquidity now; a passive limit starts resting.
        order, bar = working.order, self._quote(working.arrival_bar)
        at_ms = max(working.arrival_ms, bar.open_ms)
        mid = price_at(bar, working.arrival_ms, self._instrument.price_tick)
        if self._settings.model is FillModel.ORDERBOOK:
            found = self._walk(order, bar, mid)
            whole = not found.short and found.qty >= self._instrument.qty_min
            if working.limit is None or (whole and self._within(order.side, found.price, working.limit)):
                return self._book_reports(working, found, at_ms)
        else:
            price = self._market_price(order, bar, mid)
            if working.limit is None or self._within(order.side, price, working.limit):
                return [self._fill(order, price, at_ms, self._taker)]
        self._start_resting(working)
        return None

    def _market_price(self, order: OrderPlaced, bar: BarQuote, mid: Decimal) -> Decimal:
        settings, tick = self._settings, self._instrument.price_tick
        with localcontext(LEDGER_CONTEXT):
            qty = order.qty if order.qty is not None else (order.qty_quote or ZERO) / mid
        fraction = slippage_fraction(settings.slippage, impact=settings.impact, qty=qty, bar=bar)
        return slipped_price(
            order.side,
            reference=mid,
            fraction=fraction,
            floor=half_spread(mid, tick, settings.spread_bps),
            tick=tick,
            model=settings.slippage,
        )

    def _walk(self, order: OrderPlaced, bar: BarQuote, mid: Decimal) -> BookFill:
        tick = self._instrument.price_tick
        floor = half_spread(mid, tick, self._settings.spread_bps)
        levels = synthesized_side(order.side, mid=mid, bar=bar, half_spread=floor, tick=tick)
        return walk(
            levels, order.side, qty=order.qty, qty_quote=order.qty_quote, qty_step=self._instrument.qty_step
        )

    def _book_reports(self, working: _Working, found: BookFill, at_ms: int) -> list[Report]:
        if found.qty < self._instrument.qty_min or found.qty == ZERO:
            return [self._ended(working, f"the book at arrival fills only {found.qty}", at_ms)]
        reports: list[Report] = [self._report(working.order, found.qty, found.price, at_ms, self._taker)]
        if found.short:
            reports.append(self._ended(working, f"insufficient depth: {found.qty} filled", at_ms))
        return reports

    @staticmethod
    def _within(side: Side, price: Decimal, limit: Decimal) -> bool:
        return price <= limit if side is Side.BUY else price >= limit

    def _start_resting(self, working: _Working) -> None:
        first = working.arrival_bar
        if int(self._candles.open_time_ms[first]) < working.arrival_ms:
            first += 1  # arrived inside a bar: the part of it before the arrival is unknown
        working.resting = True
        working.next_bar = first
        working.expires_ms = working.arrival_ms + self._settings.limit_timeout_s * 1000
        fraction = self._settings.queue_ahead
        if fraction is not None:
            closed = max(0, working.arrival_bar - 1)
            with localcontext(LEDGER_CONTEXT):
                working.queue_ahead = fraction * self._candles.volume_at(closed)

    def _rest(self, working: _Working) -> list[Report]:
        limit, tick = working.limit, self._instrument.price_tick
        if limit is None:  # only limit orders rest
            msg = f"order {working.order.client_order_id} rests without a limit"
            raise InvariantViolationError(msg)
        last = len(self._candles) - 1
        for index in range(working.next_bar, min(self._bar, last) + 1):
            bar = self._quote(index)
            if bar.open_ms >= working.expires_ms:
                reason = f"limit not filled within {self._settings.limit_timeout_s} s"
                return [self._ended(working, reason, working.expires_ms)]
            working.next_bar = index + 1
            if working.queue_ahead is None:
                filled = traded_through(working.order.side, limit, bar.low, bar.high)
            else:
                with localcontext(LEDGER_CONTEXT):
                    working.queue_traded += volume_at_or_through(working.order.side, limit, bar, tick)
                filled = working.queue_traded > working.queue_ahead
            if filled:
                working.resting = False
                return [self._fill(working.order, limit, bar.close_ms, self._maker)]
        if self._bar >= last and working.next_bar > last:
            at_ms = min(working.expires_ms, self._close(last))
            return [self._ended(working, "the data ends before the limit filled", at_ms)]
        return []

    def _quote(self, bar: int) -> BarQuote:
        candles = self._candles
        volume = candles.volume_at(bar) if needs_volume(self._settings) else ZERO
        return BarQuote(
            open=candles.price(candles.open[bar]),
            high=candles.price(candles.high[bar]),
            low=candles.price(candles.low[bar]),
            close=candles.price(candles.close[bar]),
            volume=volume,
            open_ms=int(candles.open_time_ms[bar]),
            close_ms=self._close(bar),
        )

    def _close(self, bar: int) -> int:
        return int(self._close_ms[bar])

    def _fill(self, order: OrderPlaced, price: Decimal, at_ms: int, fee_rate: Decimal) -> Report:
        report = fill_at_open(
            order,
            price=price,
            at=_at(at_ms),
            instrument=self._instrument,
            fee_rate=fee_rate,
            trade_id=f"bt-t-{self._trades + 1}",
            venue=self.venue,
        )
        if isinstance(report, FillReport):
            self._trades += 1
        return report

    def _report(
        self, order: OrderPlaced, qty: Decimal, price: Decimal, at_ms: int, fee_rate: Decimal
    ) -> FillReport:
        self._trades += 1
        with localcontext(LEDGER_CONTEXT):
            fee = qty * price * fee_rate
        return FillReport(
            client_order_id=order.client_order_id,
            venue=self.venue,
            venue_trade_id=f"bt-t-{self._trades}",
            side=order.side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset=self._instrument.quote_asset,
            occurred_at=_at(at_ms),
        )

    def _ended(self, working: _Working, reason: str, at_ms: int) -> OrderEnded:
        working.resting = False
        return OrderEnded(
            client_order_id=working.order.client_order_id, reason=reason, occurred_at=_at(at_ms)
        )


def needs_volume(settings: FillSettings) -> bool:
    """Return whether ``settings`` read the candles' volumes (book, slippage or queue)."""
    return (
        settings.model is FillModel.ORDERBOOK
        or settings.slippage is not SlippageModel.NONE
        or settings.queue_ahead is not None
    )


def _ms(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _at(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)


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

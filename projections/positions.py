"""Positions by average cost, fees included in the entry price.

Method (the seed's, stated once here and in the README):

* A fill that opens or increases a position moves the average entry price to
  ``(|qty_open| * price_avg + qty * price + fee) / |qty_after|`` for a long, and
  ``(|qty_open| * price_avg + qty * price - fee) / |qty_after|`` for a short, so buy-side fees
  are part of the cost basis. The division is quantized to ``PRICE_AVG_EXPONENT``.
* A fill that reduces a position realizes ``(price - price_avg) * qty_closed * direction - fee``.
* A fill that crosses zero closes the old position and reopens the rest at the fill price; its
  fee is split between the two parts in proportion to quantity.
* A fee charged in the base asset (Binance takes a buy's fee from the coins bought) changes the
  quantity instead: a buy of ``qty`` adds ``qty - fee`` at the cost of ``qty * price``, so the
  fee is in the entry price all the same; a sell's base fee leaves the position with the sold
  quantity and the fee.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from ledger.domain.events import OrderFilled, Side
from ledger.domain.numbers import LEDGER_CONTEXT, PRICE_AVG_EXPONENT, ZERO, quantize_price_avg


@dataclass(frozen=True, kw_only=True)
class Position:
    """One instrument's position within a run."""

    instrument: str
    qty_open: Decimal = ZERO  # signed: positive long, negative short
    price_avg: Decimal = ZERO
    pnl_realized: Decimal = ZERO
    fee_total: Decimal = ZERO
    price_last: Decimal | None = None

    def marked(self, price: Decimal) -> Position:
        """Return this position with ``price`` as the last price seen."""
        return Position(
            instrument=self.instrument,
            qty_open=self.qty_open,
            price_avg=self.price_avg,
            pnl_realized=self.pnl_realized,
            fee_total=self.fee_total,
            price_last=price,
        )

    def pnl_unrealized(self, price_mark: Decimal | None = None) -> Decimal:
        """Return the open quantity's PnL at ``price_mark`` (default: the last price seen)."""
        mark = self.price_last if price_mark is None else price_mark
        if mark is None or self.qty_open == ZERO:
            return ZERO
        with localcontext(LEDGER_CONTEXT):
            return (mark - self.price_avg) * self.qty_open


@dataclass(frozen=True, kw_only=True)
class Close:
    """A fill that reduced a position and what it realized (net of fees)."""

    pnl: Decimal


def apply_fill(position: Position, fill: OrderFilled, *, fee_in_quote: bool) -> tuple[Position, Close | None]:
    """Return the position after ``fill`` and the close it realized, if any; pure."""
    fee = fill.fee if fee_in_quote else ZERO
    fee_base = fill.fee if fill.fee_asset == fill.instrument.split("/", 1)[0] else ZERO
    with localcontext(LEDGER_CONTEXT):
        qty_signed = fill.qty - fee_base if fill.side is Side.BUY else -(fill.qty + fee_base)
        position = Position(  # built directly: dataclasses.replace costs twice as much per fill
            instrument=position.instrument,
            qty_open=position.qty_open,
            price_avg=position.price_avg,
            pnl_realized=position.pnl_realized,
            fee_total=position.fee_total + fee,
            price_last=fill.price,
        )
        if position.qty_open == ZERO or (position.qty_open > ZERO) == (qty_signed > ZERO):
            # The whole fill is paid for, the coins that paid a base fee included.
            return _increase(position, fill.price * fill.qty, qty_signed, fee), None
        return _reduce(position, fill.price, qty_signed, fee)


def _increase(position: Position, notional: Decimal, qty_signed: Decimal, fee: Decimal) -> Position:
    qty_after = position.qty_open + qty_signed
    # A long pays the fee on top of its cost; a short receives less for what it sold.
    fee_signed = fee if qty_signed > ZERO else -fee
    cost = position.price_avg * abs(position.qty_open) + notional + fee_signed
    return Position(
        instrument=position.instrument,
        qty_open=qty_after,
        price_avg=quantize_price_avg(cost / abs(qty_after)),
        pnl_realized=position.pnl_realized,
        fee_total=position.fee_total,
        price_last=position.price_last,
    )


def _reduce(position: Position, price: Decimal, qty_signed: Decimal, fee: Decimal) -> tuple[Position, Close]:
    direction = Decimal(1) if position.qty_open > ZERO else Decimal(-1)
    qty_closed = min(abs(qty_signed), abs(position.qty_open))
    qty_rest = abs(qty_signed) - qty_closed
    # Split the fee by quantity when the fill also reopens; quantize the share so replays agree.
    fee_close = fee if qty_rest == ZERO else (fee * qty_closed / abs(qty_signed)).quantize(PRICE_AVG_EXPONENT)
    pnl = (price - position.price_avg) * qty_closed * direction - fee_close
    qty_after = position.qty_open + qty_signed
    closed = Position(
        instrument=position.instrument,
        qty_open=qty_after if qty_rest == ZERO else ZERO,
        price_avg=position.price_avg if qty_after != ZERO else ZERO,
        pnl_realized=position.pnl_realized + pnl,
        fee_total=position.fee_total,
        price_last=position.price_last,
    )
    if qty_rest == ZERO:
        return closed, Close(pnl=pnl)
    reopened = _increase(closed, price * abs(qty_after), qty_after, fee - fee_close)
    return reopened, Close(pnl=pnl)

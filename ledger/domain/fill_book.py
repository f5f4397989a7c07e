"""The order-book fill model over candle data: a book synthesized from the bar, then walked.

No recorded order book lines up with the candle files (the recorded snapshots in
``shared/data/orderbook`` are single moments of a futures market in 2020 and 2022), so the book an
order meets is built from the bar it arrives in, with these stated assumptions:

- the mid is the market at the order's arrival (``fill_models.price_at``);
- the best ask is ``mid + spread / 2`` rounded up to the tick, the best bid ``mid - spread / 2``
  rounded down (the spread as in ``fill_models.half_spread``);
- each side holds ``BOOK_LEVELS`` levels, ``step = max(tick, (high - low) / BOOK_LEVELS)`` apart
  (rounded up to the tick), so the book spans the bar's range away from the mid;
- every level holds ``volume / BOOK_LEVELS`` base units: one bar's traded volume rests on each
  side; a bar with no volume has an empty book.

The walk is ``slippage.estimate_fill`` (the same walk as the pre-trade estimate); one order
fills once, at the walk's average price, for what the book holds, and the rest of a market
order is not filled (the venue ends it: "insufficient depth").
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, localcontext

from ledger.domain.events import Side
from ledger.domain.fill_models import BarQuote, to_tick
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, round_down_to_step
from ledger.domain.slippage import estimate_fill

# Why 20 levels: enough for the average price to move smoothly with size, few enough that a
# one-tick book (a quiet bar) still spreads its volume over a visible price range.
BOOK_LEVELS = 20


@dataclass(frozen=True, kw_only=True)
class BookFill:
    """What walking the synthesized book gives one order: size, average price, and the rest."""

    qty: Decimal  # base units, a whole number of steps; 0 when the book cannot fill one step
    price: Decimal  # the walk's average price (18 decimals)
    short: bool  # the book could not fill the whole order


def synthesized_side(
    side: Side, *, mid: Decimal, bar: BarQuote, half_spread: Decimal, tick: Decimal
) -> list[tuple[Decimal, Decimal]]:
    """Return the levels an order on ``side`` walks (asks for a buy, bids for a sell), best first."""
    if bar.volume <= ZERO:
        return []
    with localcontext(LEDGER_CONTEXT):
        step = max(tick, to_tick((bar.high - bar.low) / BOOK_LEVELS, tick, ROUND_CEILING))
        qty = bar.volume / BOOK_LEVELS
        if side is Side.BUY:
            best = to_tick(mid + half_spread, tick, ROUND_CEILING)
            return [(best + step * i, qty) for i in range(BOOK_LEVELS)]
        best = to_tick(mid - half_spread, tick, ROUND_FLOOR)
        return [(best - step * i, qty) for i in range(BOOK_LEVELS) if best - step * i > ZERO]


def walk(
    levels: list[tuple[Decimal, Decimal]],
    side: Side,
    *,
    qty: Decimal | None,
    qty_quote: Decimal | None,
    qty_step: Decimal,
) -> BookFill:
    """Return the fill of an order walking ``levels``, its size rounded down to ``qty_step``.

    A quote-sized order first walks by quote to find the base size it can afford, which is
    rounded down to the step and walked again, so the cost never exceeds ``qty_quote``.
    """
    if not levels:
        return BookFill(qty=ZERO, price=ZERO, short=True)
    first = estimate_fill(levels, side=side, qty=qty, qty_quote=qty_quote, depth_levels=len(levels))
    size = round_down_to_step(first.qty_fillable, qty_step)
    if size <= ZERO:
        return BookFill(qty=ZERO, price=ZERO, short=True)
    final = estimate_fill(levels, side=side, qty=size, depth_levels=len(levels))
    with localcontext(LEDGER_CONTEXT):
        while qty_quote is not None and size * final.price_avg > qty_quote:
            # The average is rounded half-even; one step less keeps the cost within the budget.
            size -= qty_step
            if size <= ZERO:
                return BookFill(qty=ZERO, price=ZERO, short=True)
            final = estimate_fill(levels, side=side, qty=size, depth_levels=len(levels))
        short = first.insufficient_depth or (qty is not None and size < qty)
    return BookFill(qty=size, price=final.price_avg, short=short)

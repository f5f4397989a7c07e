"""A synthetic order book around the current bar, deterministic for a seed.

Model (per symbol and bar; ``tick`` and ``step`` from the symbol's filters):

- Best bid is the bar's close (rounded down to the tick); best ask is ``spread_ticks`` ticks
  above it (1 by default, BTCUSDT's usual one-cent spread).
- ``levels`` price levels per side, ``spacing`` apart, where ``spacing`` is the bar's
  high-low range divided by ``levels`` (at least one tick): a busy bar gives a deeper,
  coarser book.
- Each side shows ``depth_fraction`` (default 0.1) of the bar's base volume, split over the
  levels by integer weights drawn from ``numpy.random.default_rng([seed, crc32(symbol), bar])``
  in [50, 150], each level rounded down to the lot step and at least ``size_min_steps`` steps.
  The same seed, symbol and bar always give the same book, whatever the request order.
- Orders that take liquidity consume it: the book of a bar remembers what was taken until the
  clock moves to another bar, which draws a fresh book.

``empty=True`` gives a book with no levels (a halted or drained market).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal, localcontext

import numpy as np

from ledger.adapters.exchange_sim.market import Bar
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D, round_down_to_step

WEIGHT_MIN = 50
WEIGHT_MAX = 150
DEPTH_FRACTION_DEFAULT = D("0.1")


@dataclass(frozen=True)
class BookModel:
    """Parameters of the synthetic book (see the module docstring)."""

    levels: int = 20
    depth_fraction: Decimal = DEPTH_FRACTION_DEFAULT
    spread_ticks: int = 1
    size_min_steps: int = 100
    empty: bool = False


@dataclass(frozen=True)
class Take:
    """Liquidity taken at one price level."""

    price: Decimal
    qty: Decimal


class Book:
    """Bid and ask levels (best first) as mutable ``[price, qty]`` pairs."""

    def __init__(self, bids: list[list[Decimal]], asks: list[list[Decimal]]) -> None:
        self.bids = bids
        self.asks = asks

    @classmethod
    def synthesize(  # noqa: PLR0913 - the model needs the bar, the symbol's steps and the seed
        cls,
        bar: Bar,
        *,
        bar_index: int,
        symbol: str,
        tick: Decimal,
        step: Decimal,
        seed: int,
        model: BookModel,
    ) -> Book:
        """Return the book for ``bar`` under ``model`` (see the module docstring)."""
        if model.empty or model.levels <= 0:
            return cls([], [])
        rng = np.random.default_rng([seed, zlib.crc32(symbol.encode()), bar_index])
        with localcontext(LEDGER_CONTEXT):
            bid_best = round_down_to_step(bar.close, tick)
            ask_best = bid_best + tick * max(1, model.spread_ticks)
            spacing = max(tick, round_down_to_step((bar.high - bar.low) / model.levels, tick))
            bids = [bid_best - spacing * i for i in range(model.levels)]
            asks = [ask_best + spacing * i for i in range(model.levels)]
            bids = [price for price in bids if price > 0]
            side_total = bar.volume * model.depth_fraction
            size_min = step * model.size_min_steps
            sides = []
            for prices in (bids, asks):
                weights = [int(w) for w in rng.integers(WEIGHT_MIN, WEIGHT_MAX + 1, size=len(prices))]
                weight_sum = sum(weights) or 1
                sizes = [
                    max(size_min, round_down_to_step(side_total * w / weight_sum, step)) for w in weights
                ]
                sides.append([[p, q] for p, q in zip(prices, sizes, strict=True)])
        return cls(sides[0], sides[1])

    def plan(
        self, side: str, step: Decimal, qty: Decimal | None, quote: Decimal | None, limit: Decimal | None
    ) -> list[Take]:
        """Return what a ``side`` order would take, best level first, without taking it.

        Args:
            side: ``BUY`` (takes asks) or ``SELL`` (takes bids).
            step: the lot step; quote-sized takes are rounded down to it.
            qty: base quantity to take, or None when sized by ``quote``.
            quote: quote amount to spend (buy) or receive (sell), or None.
            limit: take only levels at this price or better; None for any price.
        """
        levels = self.asks if side == "BUY" else self.bids
        takes: list[Take] = []
        remaining = qty if qty is not None else quote if quote is not None else ZERO
        with localcontext(LEDGER_CONTEXT):
            for price, available in levels:
                if remaining <= 0:
                    break
                if limit is not None and (price > limit if side == "BUY" else price < limit):
                    break
                if qty is not None:
                    take = min(available, remaining)
                    remaining -= take
                else:
                    take = min(available, round_down_to_step(remaining / price, step))
                    remaining -= take * price
                if take <= 0:
                    break
                takes.append(Take(price, take))
        return takes

    def consume(self, side: str, takes: list[Take]) -> None:
        """Remove ``takes`` (from ``plan``) from the book."""
        levels = self.asks if side == "BUY" else self.bids
        with localcontext(LEDGER_CONTEXT):
            for take in takes:
                for level in levels:
                    if level[0] == take.price:
                        level[1] -= take.qty
                        break
            levels[:] = [level for level in levels if level[1] > 0]

    def depth(self, limit: int) -> tuple[list[list[Decimal]], list[list[Decimal]]]:
        """Return up to ``limit`` bid and ask levels."""
        return self.bids[:limit], self.asks[:limit]

"""Slippage: a pre-trade estimate from order-book depth and a running record per symbol (C5).

Everything stays in Decimal under ``LEDGER_CONTEXT``: the volatility is a statistic, but
``Decimal.ln`` and ``Decimal.sqrt`` give it without floats, so an estimate replays digit for digit.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, localcontext
from itertools import pairwise

from ledger.domain.errors import BadInputError
from ledger.domain.events import Side
from ledger.domain.numbers import LEDGER_CONTEXT, ONE, PRICE_AVG_EXPONENT, ZERO

# SPEC §7 defaults: walk 50 levels, 60 one-minute closes, keep the last 100 realized slippages.
DEPTH_LEVELS_DEFAULT = 50
VOLATILITY_CLOSES = 60
TRACKED_SLIPPAGES = 100
# Why 1e-8 bps: slippage comes from a division; a fixed exponent keeps replays identical and is
# far below any price tick. Ratios (depth used, volatility) keep 18 places like average prices.
SLIPPAGE_BPS_EXPONENT = Decimal("1e-8")
RATIO_EXPONENT = Decimal("1e-18")
BPS_PER_UNIT = Decimal(10_000)
# Impact class bounds on order size / depth considered (SPEC §7): <1 % negligible, <5 % low,
# <10 % moderate, else high.
_IMPACT_BOUNDS = ((Decimal("0.01"), "negligible"), (Decimal("0.05"), "low"), (Decimal("0.10"), "moderate"))


class SlippageInputError(BadInputError, ValueError):
    """A size, book or price series cannot be used; the message names it and the fix."""


class MarketImpact(enum.Enum):
    """How much of the visible depth an order takes; values are stable strings."""

    NEGLIGIBLE = "negligible"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


@dataclass(frozen=True, kw_only=True)
class SlippageEstimate:
    """What walking the book says an order would fill at, against the best price."""

    side: Side
    qty_requested: Decimal | None
    qty_quote_requested: Decimal | None
    qty_fillable: Decimal
    cost_fillable: Decimal
    price_best: Decimal
    price_avg: Decimal
    slippage_bps: Decimal
    insufficient_depth: bool
    levels_used: int
    depth_used: Decimal
    impact: MarketImpact


@dataclass(frozen=True, kw_only=True)
class VolatilityAdjustedSlippage:
    """A slippage estimate scaled by recent volatility: slippage x (1 + volatility)."""

    estimate: SlippageEstimate
    volatility: Decimal
    closes_used: int
    slippage_bps_adjusted: Decimal


def estimate_fill(
    book_side: Sequence[tuple[Decimal, Decimal]],
    *,
    side: Side,
    qty: Decimal | None = None,
    qty_quote: Decimal | None = None,
    depth_levels: int = DEPTH_LEVELS_DEFAULT,
) -> SlippageEstimate:
    """Return the estimated fill of an order that walks ``book_side``, best level first.

    Args:
        book_side: ``(price, qty)`` levels best first: the asks for a buy, the bids for a sell.
        side: the order's side; a buy expects prices rising, a sell falling.
        qty: the order size in the base asset; give exactly one of ``qty`` and ``qty_quote``.
        qty_quote: the order size in the quote asset (spend, or receive, this much).
        depth_levels: how many levels to consider.

    Returns:
        The estimate. When the levels considered cannot fill the order, ``insufficient_depth``
        is true and the average covers what they can fill.

    Raises:
        SlippageInputError: the size is missing, doubled, non-positive or not finite, the book
            is empty or unsorted, or a level is not a finite positive price with qty >= 0.
    """
    size = _order_size(qty, qty_quote)
    if depth_levels < 1:
        msg = f"depth_levels must be at least 1, was {depth_levels}"
        raise SlippageInputError(msg)
    levels = _checked_levels(book_side[:depth_levels], side)
    by_quote = qty_quote is not None
    with localcontext(LEDGER_CONTEXT):
        depth = sum((price * amount if by_quote else amount for price, amount in levels), ZERO)
        remaining, filled, cost, used = size, ZERO, ZERO, 0
        for price, amount in levels:
            if remaining <= 0:
                break
            if amount == 0:
                continue
            used += 1
            take = min(remaining, price * amount if by_quote else amount)
            # A quote-sized take buys take / price base units; round down so we never claim more.
            base = (take / price).quantize(PRICE_AVG_EXPONENT, ROUND_DOWN) if by_quote else take
            filled, cost, remaining = filled + base, cost + base * price, remaining - take
        if filled == 0:
            msg = "the order book has no quantity in the levels considered; pass a non-empty book"
            raise SlippageInputError(msg)
        # The best price is the first level that has quantity; empty levels are skipped.
        best = next(price for price, amount in levels if amount > 0)
        price_avg = (cost / filled).quantize(PRICE_AVG_EXPONENT)
        worse = price_avg - best if side is Side.BUY else best - price_avg
        ratio = size / depth
        return SlippageEstimate(
            side=side,
            qty_requested=qty,
            qty_quote_requested=qty_quote,
            qty_fillable=filled,
            cost_fillable=cost,
            price_best=best,
            price_avg=price_avg,
            slippage_bps=(worse / best * BPS_PER_UNIT).quantize(SLIPPAGE_BPS_EXPONENT),
            insufficient_depth=remaining > 0,
            levels_used=used,
            depth_used=ratio.quantize(RATIO_EXPONENT),
            impact=impact_class(ratio),
        )


def impact_class(depth_used: Decimal) -> MarketImpact:
    """Return the market-impact class of an order taking ``depth_used`` of the visible depth."""
    for bound, name in _IMPACT_BOUNDS:
        if depth_used < bound:
            return MarketImpact(name)
    return MarketImpact.HIGH


def volatility_adjusted(
    estimate: SlippageEstimate, closes: Sequence[Decimal], *, window: int = VOLATILITY_CLOSES
) -> VolatilityAdjustedSlippage:
    """Return ``estimate`` scaled by the volatility of the last ``window`` closes.

    Volatility is the sample standard deviation of the log returns between consecutive closes
    (one-minute closes by default, SPEC §7); adjusted slippage = slippage x (1 + volatility).

    Raises:
        SlippageInputError: fewer than three closes, or a close that is not finite and positive.
    """
    recent = list(closes[-window:])
    if len(recent) < 3:  # noqa: PLR2004 - two returns are the least a sample deviation needs
        msg = f"volatility needs at least 3 closes, was {len(recent)}; pass more candles"
        raise SlippageInputError(msg)
    for close in recent:
        _require_positive("close", close)
    with localcontext(LEDGER_CONTEXT):
        returns = [(now / before).ln() for before, now in pairwise(recent)]
        mean = sum(returns, ZERO) / len(returns)
        variance = sum(((r - mean) ** 2 for r in returns), ZERO) / (len(returns) - 1)
        volatility = variance.sqrt().quantize(RATIO_EXPONENT)
        adjusted = (estimate.slippage_bps * (ONE + volatility)).quantize(SLIPPAGE_BPS_EXPONENT)
    return VolatilityAdjustedSlippage(
        estimate=estimate,
        volatility=volatility,
        closes_used=len(recent),
        slippage_bps_adjusted=adjusted,
    )


class SlippageTracker:
    """The last ``window`` realized slippages per symbol (bps), with running average and worst."""

    def __init__(self, window: int = TRACKED_SLIPPAGES) -> None:
        if window < 1:
            msg = f"window must be at least 1, was {window}"
            raise SlippageInputError(msg)
        self._window = window
        self._by_symbol: dict[str, deque[Decimal]] = {}

    def record(self, symbol: str, slippage_bps: Decimal) -> None:
        """Add one realized slippage for ``symbol``; the oldest falls out past the window."""
        if not slippage_bps.is_finite():
            msg = f"slippage_bps must be finite, was {slippage_bps}"
            raise SlippageInputError(msg)
        self._by_symbol.setdefault(symbol, deque(maxlen=self._window)).append(slippage_bps)

    def count(self, symbol: str) -> int:
        """Return how many slippages are kept for ``symbol``."""
        return len(self._by_symbol.get(symbol, ()))

    def average_bps(self, symbol: str) -> Decimal | None:
        """Return the average of the kept slippages, or None when there are none."""
        kept = self._by_symbol.get(symbol)
        if not kept:
            return None
        with localcontext(LEDGER_CONTEXT):
            return (sum(kept, ZERO) / len(kept)).quantize(SLIPPAGE_BPS_EXPONENT)

    def worst_bps(self, symbol: str) -> Decimal | None:
        """Return the largest (most adverse) kept slippage, or None when there are none."""
        kept = self._by_symbol.get(symbol)
        return None if not kept else max(kept)


def _order_size(qty: Decimal | None, qty_quote: Decimal | None) -> Decimal:
    if qty is not None and qty_quote is None:
        return _require_positive("qty", qty)
    if qty_quote is not None and qty is None:
        return _require_positive("qty_quote", qty_quote)
    msg = "give exactly one of qty (base asset) and qty_quote (quote asset)"
    raise SlippageInputError(msg)


def _require_positive(name: str, value: Decimal) -> Decimal:
    if not value.is_finite() or value <= 0:
        msg = f"{name} must be a finite number above 0, was {value}"
        raise SlippageInputError(msg)
    return value


def _checked_levels(levels: Sequence[tuple[Decimal, Decimal]], side: Side) -> list[tuple[Decimal, Decimal]]:
    if not levels:
        msg = "the order book side is empty; pass the asks for a buy or the bids for a sell"
        raise SlippageInputError(msg)
    checked: list[tuple[Decimal, Decimal]] = []
    for index, (price, amount) in enumerate(levels):
        _require_positive(f"book level {index} price", price)
        if not amount.is_finite() or amount < 0:
            msg = f"book level {index} qty must be a finite number >= 0, was {amount}"
            raise SlippageInputError(msg)
        if checked and not (price > checked[-1][0] if side is Side.BUY else price < checked[-1][0]):
            order = "ascending asks" if side is Side.BUY else "descending bids"
            msg = f"book level {index} price {price} is out of order; a {side.value} walks {order}"
            raise SlippageInputError(msg)
        checked.append((price, amount))
    return checked

"""Backtest fill models: settings, the price at an order's arrival, slippage and seeded draws.

Pure functions in Decimal under ``LEDGER_CONTEXT``; the venue (``adapters.exchange_backtest``)
applies them bar by bar. Every formula is stated where it is computed and in the README
("Fill models"). A bar is one candle: open, high, low, close and traded volume (base asset).

- **Arrival.** An order decided at time ``t`` reaches the venue at ``t + latency_ms``. It meets
  the first bar that has not closed by then; when the arrival falls inside that bar the market
  is read off a straight line from the bar's open to its close (the candle does not say more):
  ``price = open + (close - open) x (arrival - bar open) / interval``, rounded half-even to the
  tick. With no latency the arrival is the next bar's open: the next-open model.
- **Slippage** of a market order of ``q`` base units in a bar of volume ``V`` and relative range
  ``r = (high - low) / open``, with participation ``p = q / max(V, q)`` (at most 1) and impact
  coefficient ``k``: linear ``k r p``; square root ``k r sqrt(p)``; logarithmic
  ``k r ln(1 + p) / ln 2``. All three equal ``k r`` at ``p = 1``: an order as large as the bar's
  whole volume moves the price by ``k`` times the bar's range. The square-root form is the
  square-root impact law (impact ~ Y sigma sqrt(Q/V), Y near 1) with the bar's range standing in
  for sigma; it does not depend on the bar length, since sigma grows and V shrinks together.
  The result has a floor of half the spread, and the fill price moves against the order by
  ``max(ref x fraction, spread / 2)``, rounded to the tick away from the order's favour.
- **Spread** of candle data (no quotes recorded): ``spread_bps`` of the price when given, else
  one price tick (BTC/USDT on Binance spot trades at a one-tick spread nearly always).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, localcontext
from typing import Protocol

from ledger.domain.events import Side
from ledger.domain.numbers import LEDGER_CONTEXT, ONE, ZERO

BPS_PER_UNIT = Decimal(10_000)
# Why 300 s: the partial-fill policy's default timeout (SPEC C4) is how long a limit order works.
LIMIT_TIMEOUT_S_DEFAULT = 300
_LN2 = Decimal(2).ln(LEDGER_CONTEXT)
# Why 2**64: a draw takes the first 8 bytes of a sha256 digest as a fraction of 2**64.
_DRAW_SPACE = Decimal(2**64)


class FillModel(enum.Enum):
    """Where a market order's price comes from; values appear in RunStarted.fill_model."""

    NEXT_OPEN = "next-open"
    ORDERBOOK = "orderbook"


class SlippageModel(enum.Enum):
    """How a market order's size moves its price (next-open model); values are stable."""

    NONE = "none"
    LINEAR = "linear"
    SQRT = "sqrt"
    LOG = "log"


@dataclass(frozen=True, kw_only=True)
class FillSettings:
    """A backtest venue's fill model and its parameters; the defaults are plain next-open.

    ``maker_fee`` None means makers pay the taker rate (``--fee``); ``spread_bps`` None means one
    tick; ``queue_ahead`` None means a resting limit fills when the market trades through it.
    """

    model: FillModel = FillModel.NEXT_OPEN
    slippage: SlippageModel = SlippageModel.NONE
    impact: Decimal = ONE
    spread_bps: Decimal | None = None
    latency_ms: int = 0
    failure_rate: Decimal = ZERO
    maker_fee: Decimal | None = None
    queue_ahead: Decimal | None = None
    limit_timeout_s: int = LIMIT_TIMEOUT_S_DEFAULT

    def describe(self) -> str:
        """Return the canonical text recorded as ``RunStarted.fill_model``.

        The model's name, then ``key=value`` for every setting that differs from its default,
        in a fixed order: ``next-open`` alone is the plain model, so runs recorded before the
        other settings existed read the same.
        """
        parts = [self.model.value]
        for name, value in self._non_default():
            parts.append(f"{name}={value}")
        return " ".join(parts)

    def _non_default(self) -> list[tuple[str, str]]:
        plain = FillSettings()
        found: list[tuple[str, str]] = []
        if self.slippage is not plain.slippage:
            found.append(("slippage", self.slippage.value))
        for name in ("impact", "spread_bps", "latency_ms", "failure_rate", "maker_fee", "queue_ahead"):
            value = getattr(self, name)
            if value != getattr(plain, name):
                found.append((name, _text(value)))
        if self.limit_timeout_s != plain.limit_timeout_s:
            found.append(("limit_timeout_s", str(self.limit_timeout_s)))
        return found


def _text(value: object) -> str:
    if isinstance(value, Decimal):
        # Plain notation without trailing zeros: 0.0010 and 1E-3 are one setting.
        with localcontext(LEDGER_CONTEXT):
            normal = value.normalize()
        return f"{normal:f}"
    return str(value)


def parse_described(text: str) -> dict[str, str]:
    """Return the settings in a ``describe()`` text as option name -> value (``model`` first).

    Raises:
        ValueError: an item is not ``key=value``.
    """
    name, *items = text.split(" ")
    found = {"model": name}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            msg = f"fill model setting {item!r} is not key=value"
            raise ValueError(msg)
        found[key] = value
    return found


@dataclass(frozen=True, kw_only=True)
class BarQuote:
    """One candle as the fill models see it: exact prices, volume and its time span (ms)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    open_ms: int
    close_ms: int


def price_at(bar: BarQuote, at_ms: int, tick: Decimal) -> Decimal:
    """Return the market at ``at_ms`` in ``bar``: its open, or the open-to-close line inside it.

    ``open + (close - open) x (at - open_ms) / (close_ms - open_ms)``, rounded half-even to
    ``tick``; an instant at or before the open is the open (a gap before the bar).
    """
    if at_ms <= bar.open_ms:
        return bar.open
    with localcontext(LEDGER_CONTEXT):
        share = Decimal(at_ms - bar.open_ms) / Decimal(bar.close_ms - bar.open_ms)
        return to_tick(bar.open + (bar.close - bar.open) * share, tick, ROUND_HALF_EVEN)


def half_spread(price: Decimal, tick: Decimal, spread_bps: Decimal | None) -> Decimal:
    """Return half the assumed spread at ``price``: ``spread_bps`` of it, at least one tick."""
    if spread_bps is None:
        return tick / 2
    with localcontext(LEDGER_CONTEXT):
        return max(tick, price * spread_bps / BPS_PER_UNIT) / 2


def slippage_fraction(model: SlippageModel, *, impact: Decimal, qty: Decimal, bar: BarQuote) -> Decimal:
    """Return the size-driven price move as a fraction of the price (before the spread floor).

    ``p = q / max(V, q)``, ``r = (high - low) / open``; linear ``k r p``, square root
    ``k r sqrt(p)``, logarithmic ``k r ln(1 + p) / ln 2``; ``none`` is 0.
    """
    if model is SlippageModel.NONE or qty <= ZERO:
        return ZERO
    with localcontext(LEDGER_CONTEXT):
        participation = qty / max(bar.volume, qty)
        spread_of_bar = (bar.high - bar.low) / bar.open
        if model is SlippageModel.LINEAR:
            shape = participation
        elif model is SlippageModel.SQRT:
            shape = participation.sqrt()
        else:
            shape = (ONE + participation).ln() / _LN2
        return impact * spread_of_bar * shape


def slipped_price(
    side: Side,
    *,
    reference: Decimal,
    fraction: Decimal,
    floor: Decimal,
    tick: Decimal,
    model: SlippageModel,
) -> Decimal:
    """Return the fill price of a market order: ``reference`` moved against it.

    The move is ``max(reference x fraction, floor)`` (``floor``: half the spread); a buy pays
    more, rounded up to the tick, a sell gets less, rounded down and never below one tick. The
    ``none`` model fills at ``reference`` exactly (no spread either), as next-open always did.
    """
    if model is SlippageModel.NONE:
        return reference
    with localcontext(LEDGER_CONTEXT):
        move = max(reference * fraction, floor)
        if side is Side.BUY:
            return to_tick(reference + move, tick, ROUND_CEILING)
        return max(tick, to_tick(reference - move, tick, ROUND_FLOOR))


def working_limit(side: Side, limit: Decimal, tick: Decimal) -> Decimal:
    """Return the tick a limit order works at: a buy rounds down, a sell up (never worse, C3)."""
    return to_tick(limit, tick, ROUND_FLOOR if side is Side.BUY else ROUND_CEILING)


def to_tick(value: Decimal, tick: Decimal, rounding: str) -> Decimal:
    """Return ``value`` as a whole number of ticks, rounded with ``rounding`` (any tick size)."""
    with localcontext(LEDGER_CONTEXT):
        return (value / tick).to_integral_value(rounding) * tick


def traded_through(side: Side, limit: Decimal, low: Decimal, high: Decimal) -> bool:
    """Return whether a bar from ``low`` to ``high`` traded strictly through ``limit``.

    Strictly: its low below a buy's limit, its high above a sell's; a touch is not a fill.
    """
    return low < limit if side is Side.BUY else high > limit


def volume_at_or_through(side: Side, limit: Decimal, bar: BarQuote, tick: Decimal) -> Decimal:
    """Return the bar's volume estimated to have traded at ``limit`` or beyond it.

    The volume is assumed spread evenly over the ticks of the bar's range, so the share at or
    through a buy limit is ``(floor((limit - low) / tick) + 1) / ((high - low) / tick + 1)``
    (mirrored for a sell), 0 when the limit is outside the range, 1 when it is beyond it.
    """
    beyond = limit - bar.low if side is Side.BUY else bar.high - limit
    if beyond < ZERO:
        return ZERO
    with localcontext(LEDGER_CONTEXT):
        ticks_total = (bar.high - bar.low) / tick + ONE
        ticks_hit = min(ticks_total, (beyond / tick).to_integral_value(ROUND_FLOOR) + ONE)
        return bar.volume * ticks_hit / ticks_total


class Draws(Protocol):
    """A seeded source of uniform draws in [0, 1), one per key (the failure injection's RNG)."""

    def uniform(self, key: str) -> Decimal:
        """Return the draw for ``key``; the same seed and key always give the same draw."""
        ...


class HashDraws:
    """``Draws`` from sha256(seed, key): order-independent, so one draw never shifts another.

    ``draw = int(first 8 bytes of sha256("{seed}:{key}")) / 2**64``, an exact Decimal.
    """

    def __init__(self, seed: int) -> None:
        """Draw for the run seeded with ``seed``."""
        self._seed = seed

    def uniform(self, key: str) -> Decimal:
        """Return the draw for ``key`` in [0, 1)."""
        digest = hashlib.sha256(f"{self._seed}:{key}".encode()).digest()
        with localcontext(LEDGER_CONTEXT):
            return Decimal(int.from_bytes(digest[:8], "big")) / _DRAW_SPACE

"""Exchange rules: steps, ticks and limits an order must meet before it leaves the process.

``prepare_order`` rounds on purpose and refuses with a machine-readable reason (SPEC C3):
quantities round down to the step, limit prices round to the tick in the direction that never
worsens the order (a buy down, a sell up), and then the venue's limits are checked.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext

from ledger.domain.errors import BadInputError
from ledger.domain.events import OrderType, Side
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D, round_down_to_step


class MarketRulesError(BadInputError, ValueError):
    """Venue market data cannot become rules; the message names the field and the fix."""


@dataclass(frozen=True, kw_only=True)
class PriceBand:
    """One row of a price-unit table: prices at or above ``price_from`` use ``tick``."""

    price_from: Decimal
    tick: Decimal


# Upbit KRW market price units (호가 단위), highest band first. Source: Upbit Developer Center,
# "원화(KRW) 마켓 주문 가격 단위 / 최소 주문 가능 금액", https://docs.upbit.com/kr/docs/krw-market-info
# (page updated 2026-05-04; table in force since the 2025-07-31 KRW tick change,
# https://docs.upbit.com/kr/changelog/krw_tick_unit_change_250731). The bands below 100 KRW
# could only be read from a copy of that table dated 2025-12-31; the bands at and above 100 KRW
# were checked against the official page. Upbit also serves per-pair ticks at
# GET /v1/orderbook/instruments, which wins over this table (USDT/KRW, for one, had its own).
UPBIT_KRW_PRICE_BANDS: tuple[PriceBand, ...] = tuple(
    PriceBand(price_from=D(low), tick=D(tick))
    for low, tick in (
        ("2000000", "1000"),
        ("1000000", "1000"),
        ("500000", "500"),
        ("100000", "100"),
        ("50000", "50"),
        ("10000", "10"),
        ("5000", "5"),
        ("1000", "1"),
        ("100", "1"),
        ("10", "0.1"),
        ("1", "0.01"),
        ("0.1", "0.001"),
        ("0.01", "0.0001"),
        ("0.001", "0.00001"),
        ("0.0001", "0.000001"),
        ("0.00001", "0.0000001"),
        ("0", "0.00000001"),
    )
)
# SPEC §7 and the same Upbit page: the smallest KRW order total is 5,000 KRW.
UPBIT_KRW_NOTIONAL_MIN = D("5000")


@dataclass(frozen=True, kw_only=True)
class MarketRules:
    """A venue market's step, tick (fixed or by price band) and limits; None means no limit."""

    symbol: str
    base: str
    quote: str
    qty_step: Decimal
    qty_min: Decimal = ZERO
    qty_max: Decimal | None = None
    qty_max_market: Decimal | None = None
    price_tick: Decimal | None = None
    price_bands: tuple[PriceBand, ...] = ()
    price_min: Decimal | None = None
    price_max: Decimal | None = None
    notional_min: Decimal = ZERO
    notional_max: Decimal | None = None

    def __post_init__(self) -> None:
        if (self.price_tick is None) == (not self.price_bands):
            msg = f"{self.symbol}: give either price_tick or price_bands, not both or neither"
            raise MarketRulesError(msg)
        ticks = [band.tick for band in self.price_bands]
        for name, value in (("qty_step", self.qty_step), ("price_tick", self.price_tick)):
            if value is not None and not (value.is_finite() and value > 0):
                msg = f"{self.symbol}: {name} must be a positive number, was {value}"
                raise MarketRulesError(msg)
        if any(not (tick.is_finite() and tick > 0) for tick in ticks):
            msg = f"{self.symbol}: every price band tick must be positive, was {ticks}"
            raise MarketRulesError(msg)
        lows = [band.price_from for band in self.price_bands]
        if lows and (lows != sorted(lows, reverse=True) or lows[-1] != 0):
            msg = f"{self.symbol}: price bands must run from the highest down to 0, were {lows}"
            raise MarketRulesError(msg)

    def tick_for(self, price: Decimal) -> Decimal:
        """Return the price tick that applies at ``price``."""
        if self.price_tick is not None:
            return self.price_tick
        for band in self.price_bands:
            if price >= band.price_from:
                return band.tick
        return self.price_bands[-1].tick


class RefusalReason(enum.Enum):
    """Why an order was refused before it left the process; values are machine-readable."""

    UNKNOWN_SYMBOL = "unknown_symbol"
    QTY_NOT_FINITE = "qty_not_finite"
    QTY_NON_POSITIVE = "qty_non_positive"
    QTY_BELOW_STEP = "qty_below_step"
    QTY_BELOW_MIN = "qty_below_min"
    QTY_ABOVE_MAX = "qty_above_max"
    PRICE_NOT_FINITE = "price_not_finite"
    PRICE_NON_POSITIVE = "price_non_positive"
    PRICE_MISSING = "price_missing"
    PRICE_ON_MARKET_ORDER = "price_on_market_order"
    PRICE_OUT_OF_RANGE = "price_out_of_range"
    NOTIONAL_BELOW_MIN = "notional_below_min"
    NOTIONAL_ABOVE_MAX = "notional_above_max"


@dataclass(frozen=True, kw_only=True)
class OrderRefusal:
    """An order that must not reach the venue: a machine-readable reason and a sentence."""

    reason: RefusalReason
    detail: str


@dataclass(frozen=True, kw_only=True)
class PreparedOrder:
    """An order rounded to the venue's rules; the requested values are kept beside them."""

    symbol: str
    side: Side
    order_type: OrderType
    qty_requested: Decimal
    qty: Decimal
    price_requested: Decimal | None
    price: Decimal | None
    price_reference: Decimal | None
    notional: Decimal


def lookup_rules(catalog: Mapping[str, MarketRules], symbol: str) -> MarketRules | OrderRefusal:
    """Return the rules for ``symbol``, or an ``unknown_symbol`` refusal naming the known ones."""
    rules = catalog.get(symbol)
    if rules is None:
        known = ", ".join(sorted(catalog)) or "none loaded"
        detail = f"no market rules for symbol {symbol!r}; use one of: {known}"
        return OrderRefusal(reason=RefusalReason.UNKNOWN_SYMBOL, detail=detail)
    return rules


def round_up_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Return ``value`` rounded up (toward +infinity) to a whole multiple of ``step``."""
    with localcontext(LEDGER_CONTEXT):
        return (value / step).to_integral_value(ROUND_CEILING) * step


def prepare_order(
    rules: MarketRules,
    *,
    side: Side,
    order_type: OrderType,
    qty: Decimal,
    price: Decimal | None,
    price_reference: Decimal | None = None,
) -> PreparedOrder | OrderRefusal:
    """Return the order rounded to ``rules``, or why it must not leave the process.

    Args:
        rules: the market's step, tick and limits.
        side: buy or sell; decides which way a limit price rounds.
        order_type: a limit order needs ``price``; a market order must not have one.
        qty: the requested base quantity; rounded down to the step, never up.
        price: the requested limit price; a buy rounds down to the tick, a sell up.
        price_reference: the price a market order's notional is checked at (best ask or bid).

    Returns:
        A ``PreparedOrder`` with requested and rounded values, or an ``OrderRefusal``.
    """
    with localcontext(LEDGER_CONTEXT):
        qty_refusal = _number_refusal("qty", qty)
        if qty_refusal is not None:
            return qty_refusal
        price_or_refusal = _rounded_price(rules, side=side, order_type=order_type, price=price)
        if isinstance(price_or_refusal, OrderRefusal):
            return price_or_refusal
        qty_or_refusal = _rounded_qty(rules, qty=qty, order_type=order_type)
        if isinstance(qty_or_refusal, OrderRefusal):
            return qty_or_refusal
        notional_price = price_or_refusal if price_or_refusal is not None else price_reference
        if notional_price is None:
            detail = "a market order needs price_reference (the best opposite price) for its notional"
            return OrderRefusal(reason=RefusalReason.PRICE_MISSING, detail=detail)
        reference_refusal = _number_refusal("price_reference", notional_price)
        if reference_refusal is not None:
            return reference_refusal
        notional = qty_or_refusal * notional_price
        notional_refusal = _notional_refusal(rules, notional)
        if notional_refusal is not None:
            return notional_refusal
        return PreparedOrder(
            symbol=rules.symbol,
            side=side,
            order_type=order_type,
            qty_requested=qty,
            qty=qty_or_refusal,
            price_requested=price,
            price=price_or_refusal,
            price_reference=price_reference,
            notional=notional,
        )


def _number_refusal(name: str, value: Decimal) -> OrderRefusal | None:
    is_qty = name == "qty"
    if not value.is_finite():
        reason = RefusalReason.QTY_NOT_FINITE if is_qty else RefusalReason.PRICE_NOT_FINITE
        return OrderRefusal(reason=reason, detail=f"{name} must be a finite number, was {value}")
    if value <= 0:
        reason = RefusalReason.QTY_NON_POSITIVE if is_qty else RefusalReason.PRICE_NON_POSITIVE
        return OrderRefusal(reason=reason, detail=f"{name} must be positive, was {value}")
    return None


def _rounded_qty(rules: MarketRules, *, qty: Decimal, order_type: OrderType) -> Decimal | OrderRefusal:
    rounded = round_down_to_step(qty, rules.qty_step)
    if rounded <= 0:
        detail = f"qty {qty} rounds down to 0 at the step {rules.qty_step}; order at least one step"
        return OrderRefusal(reason=RefusalReason.QTY_BELOW_STEP, detail=detail)
    if rounded < rules.qty_min:
        detail = f"qty {rounded} (requested {qty}) is below the minimum {rules.qty_min} {rules.base}"
        return OrderRefusal(reason=RefusalReason.QTY_BELOW_MIN, detail=detail)
    qty_max = rules.qty_max
    if order_type is OrderType.MARKET and rules.qty_max_market is not None:
        qty_max = rules.qty_max_market if qty_max is None else min(qty_max, rules.qty_max_market)
    if qty_max is not None and rounded > qty_max:
        kind = "market order " if qty_max == rules.qty_max_market else ""
        detail = f"qty {rounded} is above the {kind}maximum {qty_max} {rules.base}"
        return OrderRefusal(reason=RefusalReason.QTY_ABOVE_MAX, detail=detail)
    return rounded


def _rounded_price(
    rules: MarketRules, *, side: Side, order_type: OrderType, price: Decimal | None
) -> Decimal | OrderRefusal | None:
    if order_type is OrderType.MARKET:
        if price is not None:
            detail = f"a market order takes no price, was {price}; use a limit order or drop it"
            return OrderRefusal(reason=RefusalReason.PRICE_ON_MARKET_ORDER, detail=detail)
        return None
    if price is None:
        return OrderRefusal(reason=RefusalReason.PRICE_MISSING, detail="a limit order needs a price")
    refusal = _number_refusal("price", price)
    if refusal is not None:
        return refusal
    tick = rules.tick_for(price)
    rounded = round_down_to_step(price, tick) if side is Side.BUY else round_up_to_step(price, tick)
    if rounded <= 0:
        detail = f"price {price} rounds down to 0 at the tick {tick} {rules.quote}"
        return OrderRefusal(reason=RefusalReason.PRICE_NON_POSITIVE, detail=detail)
    too_low = rules.price_min is not None and rounded < rules.price_min
    too_high = rules.price_max is not None and rounded > rules.price_max
    if too_low or too_high:
        low = "-" if rules.price_min is None else str(rules.price_min)
        high = "-" if rules.price_max is None else str(rules.price_max)
        detail = f"price {rounded} is outside the allowed range {low} to {high} {rules.quote}"
        return OrderRefusal(reason=RefusalReason.PRICE_OUT_OF_RANGE, detail=detail)
    return rounded


def _notional_refusal(rules: MarketRules, notional: Decimal) -> OrderRefusal | None:
    if notional < rules.notional_min:
        detail = f"order value {notional} {rules.quote} is below the minimum {rules.notional_min}"
        return OrderRefusal(reason=RefusalReason.NOTIONAL_BELOW_MIN, detail=detail)
    if rules.notional_max is not None and notional > rules.notional_max:
        detail = f"order value {notional} {rules.quote} is above the maximum {rules.notional_max}"
        return OrderRefusal(reason=RefusalReason.NOTIONAL_ABOVE_MAX, detail=detail)
    return None

"""Turn ccxt's unified market structures (``load_markets``) into the ledger's ``MarketRules``.

ccxt gives precision and limits as floats (or strings when ``exchange.number = str``). Binance
markets also carry the venue's own filters in ``info['filters']`` as exact decimal strings, and
those win when present. Upbit KRW markets tick by price band, which ccxt does not model, so the
band table and the 5,000 KRW minimum come from ``ledger.domain.market_rules``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from ledger.domain.market_rules import (
    UPBIT_KRW_NOTIONAL_MIN,
    UPBIT_KRW_PRICE_BANDS,
    MarketRules,
    MarketRulesError,
)
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO

# ccxt's precision modes (ccxt.base.decimal_to_precision); ccxt 4.x loads binance and upbit in
# TICK_SIZE mode, where precision.amount is the step itself (1e-05), not a count of decimals (5).
# Copied rather than imported so this module does not load ccxt; a test pins them to ccxt's.
CCXT_DECIMAL_PLACES = 2
CCXT_TICK_SIZE = 4

_UPBIT_KRW_PREFIX = "KRW-"


def rules_from_ccxt_market(market: Mapping[str, Any], *, precision_mode: int = CCXT_TICK_SIZE) -> MarketRules:
    """Return the ``MarketRules`` of one ccxt unified market.

    Args:
        market: one value of ``exchange.markets`` (or of ``load_markets()``).
        precision_mode: the exchange's ``precisionMode``; ``CCXT_TICK_SIZE`` (the ccxt 4.x
            default for binance and upbit) or ``CCXT_DECIMAL_PLACES``.

    Raises:
        MarketRulesError: a field is missing, negative, zero where it must be positive, or not
            a number; the message names the field.
    """
    symbol = _text(market, "symbol")
    try:
        with localcontext(LEDGER_CONTEXT):
            if str(market.get("id", "")).startswith(_UPBIT_KRW_PREFIX):
                return _upbit_krw_rules(market, symbol=symbol, precision_mode=precision_mode)
            return _filtered_rules(market, symbol=symbol, precision_mode=precision_mode)
    except MarketRulesError as e:
        msg = f"market {symbol}: {e}"
        raise MarketRulesError(msg) from e


def _filtered_rules(market: Mapping[str, Any], *, symbol: str, precision_mode: int) -> MarketRules:
    # Binance's own filters are exact decimal strings; ccxt's unified fields are the fallback.
    filters = _binance_filters(market)
    lot = filters.get("LOT_SIZE", {})
    price_filter = filters.get("PRICE_FILTER", {})
    notional = filters.get("NOTIONAL", filters.get("MIN_NOTIONAL", {}))
    step = _filter_number(lot, "stepSize")
    if step is None:
        step = _precision(market, "amount", precision_mode)
    tick = _filter_number(price_filter, "tickSize")
    if tick is None:
        tick = _precision(market, "price", precision_mode)
    qty_min = _either(_filter_number(lot, "minQty"), _limit(market, "amount", "min"))
    notional_min = _either(_filter_number(notional, "minNotional"), _limit(market, "cost", "min"))
    return MarketRules(
        symbol=symbol,
        base=_text(market, "base"),
        quote=_text(market, "quote"),
        qty_step=step,
        qty_min=ZERO if qty_min is None else qty_min,
        qty_max=_either(_filter_number(lot, "maxQty"), _limit(market, "amount", "max")),
        qty_max_market=_either(
            _filter_number(filters.get("MARKET_LOT_SIZE", {}), "maxQty"), _limit(market, "market", "max")
        ),
        price_tick=tick,
        price_min=_either(_filter_number(price_filter, "minPrice"), _limit(market, "price", "min")),
        price_max=_either(_filter_number(price_filter, "maxPrice"), _limit(market, "price", "max")),
        notional_min=ZERO if notional_min is None else notional_min,
        notional_max=_either(_filter_number(notional, "maxNotional"), _limit(market, "cost", "max")),
    )


def _either(first: Decimal | None, second: Decimal | None) -> Decimal | None:
    return second if first is None else first


def rules_from_ccxt_markets(
    markets: Mapping[str, Mapping[str, Any]], *, precision_mode: int = CCXT_TICK_SIZE
) -> dict[str, MarketRules]:
    """Return ``MarketRules`` per unified symbol for every market in ``markets``.

    Raises:
        MarketRulesError: one market is malformed; the message names the market and field.
    """
    return {
        symbol: rules_from_ccxt_market(market, precision_mode=precision_mode)
        for symbol, market in sorted(markets.items())
    }


def _upbit_krw_rules(market: Mapping[str, Any], *, symbol: str, precision_mode: int) -> MarketRules:
    # ccxt's fetch_market puts Upbit's `ask.min_total` (a KRW amount) into limits.amount.min, so
    # the amount limits are not trusted here; the venue's minimum is an order total in KRW.
    cost_min = _limit(market, "cost", "min")
    notional_min = UPBIT_KRW_NOTIONAL_MIN if cost_min is None else max(cost_min, UPBIT_KRW_NOTIONAL_MIN)
    return MarketRules(
        symbol=symbol,
        base=_text(market, "base"),
        quote=_text(market, "quote"),
        qty_step=_precision(market, "amount", precision_mode),
        price_bands=UPBIT_KRW_PRICE_BANDS,
        notional_min=notional_min,
        notional_max=_limit(market, "cost", "max"),
    )


def _text(market: Mapping[str, Any], key: str) -> str:
    value = market.get(key)
    if not isinstance(value, str) or not value:
        msg = f"ccxt market field {key!r} must be a non-empty string, was {value!r}; reload the markets"
        raise MarketRulesError(msg)
    return value


def _number(value: object, field: str) -> Decimal:
    # str() of a float is its shortest round-trip form: 1e-05 -> '1e-05' -> Decimal('0.00001').
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        msg = f"ccxt market field {field} must be a number, was {value!r}; reload the markets"
        raise MarketRulesError(msg)
    try:
        number = Decimal(str(value))
    except InvalidOperation as e:
        msg = f"ccxt market field {field} must be a number, was {value!r}; reload the markets"
        raise MarketRulesError(msg) from e
    if not number.is_finite() or number < 0:
        msg = f"ccxt market field {field} must be a finite number >= 0, was {value!r}; reload the markets"
        raise MarketRulesError(msg)
    return _canonical(number)


def _canonical(number: Decimal) -> Decimal:
    # Drop trailing zeros ('0.01000000' -> '0.01') without an exponent form ('1E+1' -> '10').
    normal = number.normalize(LEDGER_CONTEXT)
    exponent = normal.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normal.quantize(Decimal(1), context=LEDGER_CONTEXT)
    return normal


def _precision(market: Mapping[str, Any], key: str, precision_mode: int) -> Decimal:
    field = f"precision.{key}"
    precision = market.get("precision")
    value = precision.get(key) if isinstance(precision, Mapping) else None
    if value is None:
        msg = f"ccxt market field {field} is missing; reload the markets or give the step by hand"
        raise MarketRulesError(msg)
    number = _number(value, field)
    if precision_mode == CCXT_DECIMAL_PLACES:
        if number != number.to_integral_value():
            msg = f"ccxt market field {field} must count decimal places in DECIMAL_PLACES mode, was {value!r}"
            raise MarketRulesError(msg)
        return _canonical(Decimal(1).scaleb(-int(number), LEDGER_CONTEXT))
    if precision_mode != CCXT_TICK_SIZE:
        msg = f"precision_mode must be CCXT_TICK_SIZE or CCXT_DECIMAL_PLACES, was {precision_mode}"
        raise MarketRulesError(msg)
    if number == 0:
        msg = f"ccxt market field {field} must be a positive step, was {value!r}; reload the markets"
        raise MarketRulesError(msg)
    return number


def _limit(market: Mapping[str, Any], key: str, bound: str) -> Decimal | None:
    limits = market.get("limits")
    limit = limits.get(key) if isinstance(limits, Mapping) else None
    value = limit.get(bound) if isinstance(limit, Mapping) else None
    if value is None:
        return None
    number = _number(value, f"limits.{key}.{bound}")
    # ccxt reports "no limit" as 0 for some venues (binance limits.market.min); 0 is no limit.
    return None if number == 0 else number


def _binance_filters(market: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    info = market.get("info")
    raw = info.get("filters") if isinstance(info, Mapping) else None
    if not isinstance(raw, list):
        return {}
    return {
        str(entry["filterType"]): entry
        for entry in raw
        if isinstance(entry, Mapping) and "filterType" in entry
    }


def _filter_number(entry: Mapping[str, Any], key: str) -> Decimal | None:
    # Binance writes "0.00000000" for a disabled filter value (tickSize, maxPrice, ...).
    value = entry.get(key)
    if value is None:
        return None
    number = _number(value, f"info.filters.{entry.get('filterType', '?')}.{key}")
    return None if number == 0 else number

"""Symbol rules read from a recorded ``exchangeInfo`` and Binance's order filter checks.

Each failed check raises -1013 ``Filter failure: <FILTER>`` worded as Binance does. Checked:
``PRICE_FILTER`` (min/max/tick), ``LOT_SIZE`` and, for market orders, ``MARKET_LOT_SIZE``
(min/max/step; a zero step or max disables that part, as on Binance), ``MIN_NOTIONAL`` or
``NOTIONAL`` (market orders use the average price of the last ``avgPriceMins`` bars),
``PERCENT_PRICE`` against the same average, and ``MAX_NUM_ORDERS``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, localcontext
from importlib import resources
from pathlib import Path
from typing import Any

from ledger.adapters.exchange_sim.protocol import filter_failure
from ledger.domain.errors import DataFileError
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D

EXCHANGE_INFO_RESOURCE = "data/exchange/binance_spot_exchange_info.json"


def load_exchange_info(path: Path | None = None) -> dict[str, Any]:
    """Return the recorded ``exchangeInfo`` reply (the bundled one when ``path`` is None).

    Raises:
        DataFileError: the file is missing or is not an exchangeInfo JSON object.
    """
    try:
        if path is None:
            text = resources.files("ledger").joinpath(EXCHANGE_INFO_RESOURCE).read_text("utf-8")
        else:
            text = path.read_text("utf-8")
        info = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        msg = f"exchangeInfo {path or EXCHANGE_INFO_RESOURCE}: cannot read it ({e}); reinstall tradeledger"
        raise DataFileError(msg) from e
    if not isinstance(info, dict) or not isinstance(info.get("symbols"), list):
        name = path or EXCHANGE_INFO_RESOURCE
        msg = f"exchangeInfo {name}: no 'symbols' list; give a Binance exchangeInfo reply"
        raise DataFileError(msg)
    return info


@dataclass(frozen=True)
class SymbolRules:
    """Trading rules of one symbol, as Decimals (zero means "no limit" where Binance says so)."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick: Decimal
    price_min: Decimal
    price_max: Decimal
    step: Decimal
    qty_min: Decimal
    qty_max: Decimal
    market_step: Decimal
    market_qty_min: Decimal
    market_qty_max: Decimal
    notional_filter: str  # "MIN_NOTIONAL", "NOTIONAL" or "" (none)
    notional_min: Decimal
    notional_max: Decimal
    notional_applies_to_market: bool
    avg_price_mins: int
    percent_up: Decimal
    percent_down: Decimal
    orders_open_max: int
    commission_exponent: Decimal

    @classmethod
    def from_exchange_info(cls, entry: dict[str, Any]) -> SymbolRules:
        """Build the rules of one ``symbols[]`` entry of an exchangeInfo reply."""
        filters = {f["filterType"]: f for f in entry.get("filters", [])}
        price = filters.get("PRICE_FILTER", {})
        lot = filters.get("LOT_SIZE", {})
        market_lot = filters.get("MARKET_LOT_SIZE", {})
        notional_name = "NOTIONAL" if "NOTIONAL" in filters else ""
        notional_name = "MIN_NOTIONAL" if "MIN_NOTIONAL" in filters else notional_name
        notional = filters.get(notional_name, {})
        percent = filters.get("PERCENT_PRICE", {})
        applies = notional.get("applyToMarket", notional.get("applyMinToMarket", True))
        return cls(
            symbol=entry["symbol"],
            base_asset=entry["baseAsset"],
            quote_asset=entry["quoteAsset"],
            tick=_d(price, "tickSize"),
            price_min=_d(price, "minPrice"),
            price_max=_d(price, "maxPrice"),
            step=_d(lot, "stepSize"),
            qty_min=_d(lot, "minQty"),
            qty_max=_d(lot, "maxQty"),
            market_step=_d(market_lot, "stepSize"),
            market_qty_min=_d(market_lot, "minQty"),
            market_qty_max=_d(market_lot, "maxQty"),
            notional_filter=notional_name,
            notional_min=_d(notional, "minNotional"),
            notional_max=_d(notional, "maxNotional"),
            notional_applies_to_market=bool(applies),
            avg_price_mins=int(notional.get("avgPriceMins", percent.get("avgPriceMins", 5))),
            percent_up=_d(percent, "multiplierUp"),
            percent_down=_d(percent, "multiplierDown"),
            orders_open_max=int(filters.get("MAX_NUM_ORDERS", {}).get("maxNumOrders", 0)),
            commission_exponent=Decimal(1).scaleb(-int(entry.get("baseCommissionPrecision", 8))),
        )

    def check_limit(self, price: Decimal, qty: Decimal, price_avg: Decimal, orders_open: int) -> None:
        """Refuse a LIMIT order that breaks a filter.

        Raises:
            BinanceError: -1013 naming the failed filter.
        """
        self._check_price(price, price_avg)
        _check_lot("LOT_SIZE", qty, self.qty_min, self.qty_max, self.step)
        with localcontext(LEDGER_CONTEXT):
            self._check_notional(price * qty)
        if self.orders_open_max and orders_open >= self.orders_open_max:
            raise filter_failure("MAX_NUM_ORDERS").error()

    def check_market(self, qty: Decimal | None, quote_qty: Decimal | None, price_avg: Decimal) -> None:
        """Refuse a MARKET order (by base ``qty`` or by ``quote_qty``) that breaks a filter.

        Raises:
            BinanceError: -1013 naming the failed filter.
        """
        with localcontext(LEDGER_CONTEXT):
            if qty is not None:
                _check_lot("LOT_SIZE", qty, self.qty_min, self.qty_max, self.step)
                _check_lot("MARKET_LOT_SIZE", qty, self.market_qty_min, self.market_qty_max, self.market_step)
                notional = qty * price_avg
            else:
                notional = quote_qty if quote_qty is not None else ZERO
            if self.notional_applies_to_market:
                self._check_notional(notional)

    def _check_price(self, price: Decimal, price_avg: Decimal) -> None:
        with localcontext(LEDGER_CONTEXT):
            if price < self.price_min or (self.price_max and price > self.price_max):
                raise filter_failure("PRICE_FILTER").error()
            if self.tick and (price - self.price_min) % self.tick != 0:
                raise filter_failure("PRICE_FILTER").error()
            if (
                self.percent_up
                and price_avg > 0
                and (price > price_avg * self.percent_up or price < price_avg * self.percent_down)
            ):
                raise filter_failure("PERCENT_PRICE").error()

    def _check_notional(self, notional: Decimal) -> None:
        if not self.notional_filter:
            return
        if notional < self.notional_min or (self.notional_max and notional > self.notional_max):
            raise filter_failure(self.notional_filter).error()


def _check_lot(name: str, qty: Decimal, qty_min: Decimal, qty_max: Decimal, step: Decimal) -> None:
    with localcontext(LEDGER_CONTEXT):
        if qty < qty_min or (qty_max and qty > qty_max) or qty <= 0:
            raise filter_failure(name).error()
        if step and (qty - qty_min) % step != 0:
            raise filter_failure(name).error()


def _d(values: dict[str, Any], key: str) -> Decimal:
    raw = values.get(key)
    return ZERO if raw is None else D(str(raw))

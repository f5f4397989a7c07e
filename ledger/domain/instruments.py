"""Instruments: the precision and limits an order must respect."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ledger.domain.errors import UnknownSymbolError
from ledger.domain.numbers import D


@dataclass(frozen=True, kw_only=True)
class Instrument:
    """A spot market: base and quote asset, step, tick and minimum notional."""

    symbol: str
    base_asset: str
    quote_asset: str
    qty_step: Decimal
    price_tick: Decimal
    qty_min: Decimal
    notional_min: Decimal


# Binance spot filters as served by exchangeInfo (see ledger/data/MANIFEST.md): BTCUSDT
# LOT_SIZE step 0.00001, PRICE_FILTER tick 0.01, NOTIONAL min 5; ETHUSDT step 0.0001.
# Venue data replaces these once the exchange-rules work loads markets through ccxt.
BUILTIN_INSTRUMENTS: dict[str, Instrument] = {
    "BTC/USDT": Instrument(
        symbol="BTC/USDT",
        base_asset="BTC",
        quote_asset="USDT",
        qty_step=D("0.00001"),
        price_tick=D("0.01"),
        qty_min=D("0.00001"),
        notional_min=D("5"),
    ),
    "ETH/USDT": Instrument(
        symbol="ETH/USDT",
        base_asset="ETH",
        quote_asset="USDT",
        qty_step=D("0.0001"),
        price_tick=D("0.01"),
        qty_min=D("0.0001"),
        notional_min=D("5"),
    ),
}


def instrument_for(symbol: str) -> Instrument:
    """Return the instrument for ``symbol``.

    Raises:
        UnknownSymbolError: the symbol is not one the ledger knows.
    """
    instrument = BUILTIN_INSTRUMENTS.get(symbol)
    if instrument is None:
        known = ", ".join(sorted(BUILTIN_INSTRUMENTS))
        msg = f"--symbol: unknown symbol {symbol!r}; use one of {known}"
        raise UnknownSymbolError(msg)
    return instrument

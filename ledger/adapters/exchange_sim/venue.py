"""The state one simulated venue keeps: account engine, credentials, faults, clock, weights."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiohttp import web

from ledger.adapters.clock import SystemClock
from ledger.adapters.exchange_sim.auth import Credentials
from ledger.adapters.exchange_sim.faults import FaultInjector, FaultSpec
from ledger.adapters.exchange_sim.filters import SymbolRules, load_exchange_info
from ledger.adapters.exchange_sim.market import MarketReplay, load_series
from ledger.adapters.exchange_sim.matching import FEE_RATE_DEFAULT, MatchingEngine
from ledger.adapters.exchange_sim.protocol import INVALID_SYMBOL, BinanceError, mandatory
from ledger.domain.errors import ParameterError
from ledger.domain.numbers import D

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BALANCES_DEFAULT: Mapping[str, str] = {"USDT": "10000", "BTC": "0", "ETH": "0"}
# Binance's REQUEST_WEIGHT limit in the recorded exchangeInfo; every request weighs 1 here.
WEIGHT_LIMIT_DEFAULT = 1200
MINUTE_MS = 60_000


def venue_of(request: web.Request) -> Venue:
    """Return the venue an application serves."""
    return request.app[VENUE_KEY]


def params_of(request: web.Request) -> dict[str, str]:
    """Return the request's Binance parameters (set by the server's middleware)."""
    return request[PARAMS_KEY]


def wall_clock_ms() -> int:
    """Return the wall clock in epoch milliseconds (read through ``SystemClock``)."""
    return (SystemClock().now() - EPOCH) // timedelta(milliseconds=1)


class Venue:
    """Everything the HTTP layer serves from.

    Args:
        credentials: the accepted API key and secret.
        data_dir: directory of candle files, or None for the bundled BTCUSDT sample.
        faults: the fault spec (no faults when None).
        balances: starting free balances (decimal strings), default ``BALANCES_DEFAULT``.
        fee_rate: maker and taker commission rate (default 0.001).
        seed: seed of the synthetic books.
        start_bar: bars to skip at the start of the data before the clock starts.
        clock: epoch-millisecond wall clock for timestamps and recvWindow checks.
        weight_limit: requests per minute before 429 -1003.

    Raises:
        DataFileError: the data directory or a candle file is unusable.
        ParameterError: a balance or the fee rate is not a non-negative decimal.
    """

    def __init__(  # noqa: PLR0913 - the venue's whole configuration, all keyword-only
        self,
        credentials: Credentials,
        *,
        data_dir: Path | None = None,
        faults: FaultSpec | None = None,
        balances: Mapping[str, str] | None = None,
        fee_rate: str = str(FEE_RATE_DEFAULT),
        seed: int = 0,
        start_bar: int = 0,
        clock: Callable[[], int] = wall_clock_ms,
        weight_limit: int = WEIGHT_LIMIT_DEFAULT,
    ) -> None:
        self.credentials = credentials
        self.clock = clock
        self.exchange_info: dict[str, Any] = load_exchange_info()
        self.rules = {
            entry["symbol"]: SymbolRules.from_exchange_info(entry) for entry in self.exchange_info["symbols"]
        }
        self.replay = MarketReplay(load_series(data_dir, set(self.rules)), start_bar=start_bar)
        starting = {
            asset: _amount(f"balance {asset}", text)
            for asset, text in (BALANCES_DEFAULT if balances is None else balances).items()
        }
        rate = _amount("fee rate", fee_rate)
        self.engine = MatchingEngine(self.rules, self.replay, starting, rate, rate, seed)
        self.injector = FaultInjector(faults if faults is not None else FaultSpec())
        self.weight_limit = weight_limit
        self._weight_minute = -1
        self.weight_used = 0
        self.requests = 0

    def now_ms(self) -> int:
        """Return the wall clock in epoch milliseconds."""
        return self.clock()

    def rules_of(self, params: Mapping[str, str]) -> SymbolRules:
        """Return the rules of the ``symbol`` parameter.

        Raises:
            BinanceError: -1102 when absent, -1121 when unknown.
        """
        symbol = params.get("symbol", "")
        if not symbol:
            raise mandatory("symbol").error()
        rules = self.rules.get(symbol)
        if rules is None:
            raise INVALID_SYMBOL.error()
        return rules

    def spend_weight(self) -> bool:
        """Count one request; return False when this minute's weight limit is used up."""
        minute = self.now_ms() // MINUTE_MS
        if minute != self._weight_minute:
            self._weight_minute = minute
            self.weight_used = 0
        self.weight_used += 1
        self.requests += 1
        return self.weight_used <= self.weight_limit

    def set_faults(self, spec: FaultSpec) -> None:
        """Replace the fault spec (and restart its seeded draws)."""
        self.injector = FaultInjector(spec)


def _amount(name: str, text: str) -> Decimal:
    try:
        value = D(text)
    except (TypeError, ValueError) as e:
        msg = f"{name}: {text!r} is not a decimal number; give a plain decimal such as 10000"
        raise ParameterError(msg) from e
    if value < 0:
        msg = f"{name}: {text} is negative; give zero or more"
        raise ParameterError(msg)
    return value


VENUE_KEY: web.AppKey[Venue] = web.AppKey("venue", Venue)
PARAMS_KEY: web.RequestKey[dict[str, str]] = web.RequestKey("binance_params", dict)

__all__ = ["BinanceError", "Venue", "params_of", "venue_of", "wall_clock_ms"]

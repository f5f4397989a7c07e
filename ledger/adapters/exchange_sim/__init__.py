"""A local exchange that speaks Binance's spot REST protocol, for paper runs and fault tests.

It serves the subset of ``/api/v3`` that ccxt's ``binance`` client uses for spot trading,
backed by a simulated account (``matching.py``), recorded candles replayed on a market clock
(``market.py``), a seeded synthetic order book (``book.py``) and seeded fault injection
(``faults.py``). Point ccxt at it by setting ``exchange.urls['api']['public']`` and
``['private']`` to ``RunningExchangeSim.api_url`` and ``options={'fetchMarkets': {'types':
['spot']}, 'fetchCurrencies': False}``.
"""

from __future__ import annotations

from ledger.adapters.exchange_sim.faults import FaultSpec, parse_faults
from ledger.adapters.exchange_sim.runner import (
    RunningExchangeSim,
    main_exchange_sim,
    make_venue,
    running_exchange_sim,
    serve,
)
from ledger.adapters.exchange_sim.venue import Venue

__all__ = [
    "FaultSpec",
    "RunningExchangeSim",
    "Venue",
    "main_exchange_sim",
    "make_venue",
    "parse_faults",
    "running_exchange_sim",
    "serve",
]

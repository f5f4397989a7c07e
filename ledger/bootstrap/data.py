"""Where a backtest's candles come from: ``--data`` as a file or a ccxt source, and the gap policy.

``--data`` is one of:

- a path to a candle file: CSV, gzip'd CSV or Parquet (``ledger.adapters.candles_files``);
- ``ccxt:EXCHANGE:SYMBOL:TIMEFRAME:START:END``: downloaded once through ccxt ``fetch_ohlcv``
  into the cache directory, then read from there (``ledger.adapters.candles_ccxt``). The run
  records the cache file's path as its data source, so ``tradeledger replay`` re-reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ledger.adapters import candles_ccxt
from ledger.adapters.candles_gaps import GapPolicy, GapReport, apply_gap_policy, gap_policy
from ledger.application.candles import Candles
from ledger.domain.errors import ParameterError

__all__ = ["DataChoice", "GapPolicy", "GapReport", "checked_gaps", "resolve_data"]


@dataclass(frozen=True, kw_only=True)
class DataChoice:
    """The file a ``--data`` value stands for and the label its runs record."""

    path: Path | None  # None: the bundled sample
    label: str | None  # None: the file's name
    downloaded: bool = False  # a ccxt source fetched now (False: a file, or read from the cache)


def resolve_data(
    text: str | None,
    *,
    exchange_url: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> DataChoice:
    """Return the candle file ``--data TEXT`` names, downloading a ccxt source once.

    Args:
        text: the ``--data`` value; None for the bundled sample.
        exchange_url: a server speaking the exchange's REST protocol instead of its own
            (tests: the local exchange sim); only for ccxt sources.
        environ: where ``TRADELEDGER_CACHE`` is read (default: the process environment).

    Raises:
        ParameterError: a malformed ccxt source, or ``exchange_url`` without one.
        DataFileError: the exchange cannot be reached or sent unusable data.
    """
    if text is None or not candles_ccxt.is_ccxt_source(text):
        if exchange_url is not None:
            msg = "--exchange-url: only a ccxt: --data source reads from an exchange; drop the option"
            raise ParameterError(msg)
        return DataChoice(path=None if text is None else Path(text), label=None)
    source = candles_ccxt.parse_ccxt_source(text)
    if exchange_url is not None:
        candles_ccxt.api_base(exchange_url)  # refuse a malformed URL before any network
    cache_dir = candles_ccxt.default_cache_dir(os.environ if environ is None else environ)
    path, downloaded = candles_ccxt.cached_candles_file(
        source, cache_dir=cache_dir, exchange_url=exchange_url
    )
    return DataChoice(path=path, label=str(path), downloaded=downloaded)


def checked_gaps(path: Path, candles: Candles, policy: str) -> GapReport:
    """Return the gap report of ``candles`` when ``policy`` (``refuse``/``allow``) accepts it.

    Raises:
        ParameterError: an unknown policy.
        DataFileError: gaps under ``refuse``, or bars off the series' interval grid.
    """
    return apply_gap_policy(path, candles, gap_policy(policy))

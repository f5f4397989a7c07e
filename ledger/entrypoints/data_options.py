"""The market-data options of the commands that run backtests: ``--data``, ``--gaps``, ``--exchange-url``.

Kept apart from ``cli.py`` so every command that reads candles (``backtest``, ``sweep``) offers
the same options with the same help and the same notes on stderr.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.adapters.candles_ccxt import SPEC_HELP
from ledger.adapters.candles_gaps import GapReport, gap_policy
from ledger.bootstrap import bundled_sample
from ledger.bootstrap.data import DataChoice, resolve_data

DATA_HELP = (
    "candles: a CSV(.gz) or Parquet file (columns timestamp,open,high,low,close,volume), or "
    f"{SPEC_HELP} (bars opening in [START, END) UTC, fetched once through ccxt fetch_ohlcv "
    "and cached under $TRADELEDGER_CACHE, else ~/.cache/tradeledger); "
    "default: the bundled real BTC/USDT sample"
)
GAPS_HELP = (
    "missing bars: refuse (stop with their count and the largest gap) or allow (run on the "
    "bars as recorded, never filled; the gaps are reported on stderr and in --json)"
)
EXCHANGE_URL_HELP = (
    "with a ccxt: --data source, the server to fetch from instead of the exchange's own, "
    "e.g. the local exchange sim at http://127.0.0.1:8123 (binance protocol)"
)

DataOption = Annotated[str | None, typer.Option("--data", help=DATA_HELP)]
GapsOption = Annotated[str, typer.Option("--gaps", help=GAPS_HELP)]
ExchangeUrlOption = Annotated[str | None, typer.Option("--exchange-url", help=EXCHANGE_URL_HELP)]


def resolve(data: str | None, gaps: str, exchange_url: str | None) -> DataChoice:
    """Return the candle file for ``--data``, checking ``--gaps`` first (before any download).

    A ccxt source is downloaded once (a note on stderr says where it went) and then read from
    the cache.

    Raises:
        ParameterError: a bad ``--gaps``, ``--exchange-url`` or ccxt source.
        DataFileError: the exchange cannot be reached or sent unusable data.
    """
    gap_policy(gaps)
    choice = resolve_data(data, exchange_url=exchange_url)
    if choice.downloaded:
        _note(f"data: {data} downloaded to {choice.path}")
    return choice


def report_gaps(report: GapReport, choice: DataChoice) -> dict[str, Any]:
    """Say on stderr when a run goes across gaps; return the ``data`` object of ``--json``."""
    source = choice.label or (choice.path or bundled_sample()).name
    if report.gaps:
        _note(f"data: {_short(source)}: {report.summary()}; running on the bars as recorded (--gaps allow)")
    return {"source": source, **report.as_dict()}


def _short(source: str) -> str:
    return Path(source).name if "/" in source else source


def _note(message: str) -> None:
    # Notes go to stderr so stdout stays one JSON object under --json.
    sys.stderr.write(message + "\n")
    sys.stderr.flush()

"""The fill-model options of ``backtest`` and ``--config FILE``: option given > file > default.

Kept apart from ``cli.py`` so the option help (the formulas in one line each) and the merge of
a TOML config with the command line live together. README "Fill models" states every formula.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any

import typer

from ledger.bootstrap.fill_options import BacktestConfig, FillOptions, load_backtest_config

FillModelOption = Annotated[
    str | None,
    typer.Option(
        help="next-open (the market at arrival: next bar's open, or its open-to-close line with "
        "latency) | orderbook (walk a book synthesized from the arrival bar); default next-open"
    ),
]
SlippageOption = Annotated[
    str | None,
    typer.Option(
        help="next-open slippage: none | linear (k*r*p) | sqrt (k*r*sqrt(p)) | log (k*r*ln(1+p)/ln2), "
        "p = qty / max(bar volume, qty), r = bar range / open, floor half the spread; default none"
    ),
]
ImpactOption = Annotated[str | None, typer.Option(help="slippage coefficient k; default 1")]
SpreadOption = Annotated[
    str | None, typer.Option("--spread-bps", help="assumed spread in bps of the price; default one tick")
]
LatencyOption = Annotated[
    int | None, typer.Option(help="orders reach the venue this many ms after the decision; default 0")
]
FailureOption = Annotated[
    str | None,
    typer.Option(help="probability in [0, 1] that the venue refuses a submission (seeded); default 0"),
]
MakerFeeOption = Annotated[
    str | None, typer.Option(help="fee rate of resting limit orders; default: the --fee rate")
]
QueueOption = Annotated[
    str | None,
    typer.Option(
        help="a resting limit queues behind this many times the last closed bar's volume and "
        "fills once the volume traded at or through it exceeds that; default: fill on trade-through"
    ),
]
TimeoutOption = Annotated[
    int | None,
    typer.Option("--limit-timeout-s", help="resting limits expire after this; default 300"),
]
ConfigOption = Annotated[
    Path | None,
    typer.Option(help='TOML file with backtest options by name (fee = "0.001"); given options win'),
]


_DEFAULTS: dict[str, Any] = {
    "symbol": "BTC/USDT",
    "strategy": "sma",
    "cash": "10000",
    "fee": "0.001",
    "seed": 0,
    "fill_model": "next-open",
}


@dataclass(frozen=True, kw_only=True)
class MergedOptions:
    """What ``backtest`` runs with: the data option and the request's keyword arguments."""

    data: str | None
    request: dict[str, Any]


def merge(given: BacktestConfig, config_path: Path | None) -> MergedOptions:
    """Return the options to run: each given option, else the config file's, else the default.

    ``given`` holds the command line's options in the config file's own model (None where an
    option was not given), so both sources are read field by field the same way.

    Strategy parameters merge key by key, a ``--param`` winning over the file's ``params``.

    Raises:
        BadInputError: the config file is missing, not TOML, or has an unknown or mistyped key.
    """
    config = BacktestConfig() if config_path is None else load_backtest_config(config_path)

    def pick(name: str) -> Any:
        value = getattr(given, name)
        if value is None:
            value = getattr(config, name)
        return _DEFAULTS.get(name) if value is None else value

    fill_values = {f.name: pick(f.name) for f in fields(FillOptions)}
    request = {name: pick(name) for name in _DEFAULTS}
    request["params"] = {**(config.params or {}), **(given.params or {})}
    request["fill"] = FillOptions(**{k: v for k, v in fill_values.items() if v is not None})
    data = given.data
    if data is None and config.data is not None:
        data = _beside(config_path, config.data)
    return MergedOptions(data=data, request=request)


def _beside(config_path: Path | None, data: str) -> str:
    # A relative file in a config file is relative to that file; a ccxt: source is left as it is.
    if config_path is None or ":" in data or Path(data).is_absolute():
        return data
    return str(config_path.parent / data)

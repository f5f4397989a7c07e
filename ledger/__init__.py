"""tradeledger: an event-sourced trading ledger engine for crypto spot trading.

The embedding API the CLI itself uses::

    from ledger import BacktestRequest, run_backtest_request, open_ledger

The names are loaded on first use (PEP 562), so importing ``ledger.domain`` or the read side
never pulls in the composition root and its adapters.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.2.0"

__all__ = ["BacktestRequest", "__version__", "open_ledger", "run_backtest_request"]

_API = {"BacktestRequest", "open_ledger", "run_backtest_request"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from ledger import bootstrap  # noqa: PLC0415 - lazy on purpose, see the docstring

        return getattr(bootstrap, name)
    msg = f"module 'ledger' has no attribute {name!r}"
    raise AttributeError(msg)

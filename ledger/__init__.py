"""tradeledger: an event-sourced trading ledger engine for crypto spot trading.

The embedding API the CLI itself uses::

    from ledger import BacktestRequest, run_backtest_request, open_ledger
"""

from __future__ import annotations

__version__ = "0.1.0"

from ledger.bootstrap import BacktestRequest, open_ledger, run_backtest_request

__all__ = ["BacktestRequest", "__version__", "open_ledger", "run_backtest_request"]

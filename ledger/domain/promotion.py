"""Promotion gates: what a paper run's own record must show before its strategy trades live.

The defaults are the design supplement's: at least 100 trades, a win rate of at least 55 %,
a maximum drawdown no worse than -20 % and at least 30 days of running. Every criterion is
measured and reported, passed or not, so a refusal names each failure with its value.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, plain


@dataclass(frozen=True, kw_only=True)
class PromotionGates:
    """The thresholds a paper record must meet (all inclusive)."""

    min_trades: int = 100
    min_win_rate: Decimal = Decimal("0.55")  # a fraction of closed trades with a positive PnL
    max_drawdown: Decimal = Decimal("0.20")  # the deepest fall below a running peak, as a fraction
    min_days: Decimal = Decimal(30)


@dataclass(frozen=True, kw_only=True)
class PaperRecord:
    """A paper run's record, measured exactly from its events."""

    trades: int  # closing (position-reducing) fills
    wins: int  # closing fills that realized a positive PnL
    drawdown_max: Decimal  # deepest fall below the running equity peak, a fraction >= 0
    days: Decimal  # from the run's start to its last event


@dataclass(frozen=True, kw_only=True)
class Criterion:
    """One gate: what it requires, what the record shows, and whether it passed."""

    name: str
    required: str
    measured: str
    passed: bool


def win_rate(record: PaperRecord) -> Decimal:
    """Return the fraction of closed trades that won (0 with no trades)."""
    if record.trades == 0:
        return ZERO
    with localcontext(LEDGER_CONTEXT):
        return Decimal(record.wins) / Decimal(record.trades)


def evaluate(record: PaperRecord, gates: PromotionGates) -> list[Criterion]:
    """Measure ``record`` against every gate, in a fixed order."""
    rate = win_rate(record)
    return [
        Criterion(
            name="trades",
            required=f">= {gates.min_trades}",
            measured=str(record.trades),
            passed=record.trades >= gates.min_trades,
        ),
        Criterion(
            name="win_rate",
            required=f">= {plain(gates.min_win_rate)}",
            measured=plain(rate.quantize(Decimal("0.0001"))),
            passed=record.trades > 0 and rate >= gates.min_win_rate,
        ),
        Criterion(
            name="drawdown_max",
            required=f">= -{plain(gates.max_drawdown)}",
            measured=plain(-record.drawdown_max.quantize(Decimal("0.0001"))),
            passed=record.drawdown_max <= gates.max_drawdown,
        ),
        Criterion(
            name="days",
            required=f">= {plain(gates.min_days)}",
            measured=plain(record.days.quantize(Decimal("0.01"))),
            passed=record.days >= gates.min_days,
        ),
    ]

"""Threshold rebalancing: which trades bring holdings back to target weights.

The design supplement's rule, exact in Decimal: with total equity ``E`` (cash plus every
holding at its price) and each asset's current weight ``w = value / E`` (CASH is the free
quote balance), nothing trades while every target's deviation ``|w - target|`` is at most the
band (5 % by default). Once one deviates beyond it, every non-cash asset is traded toward
``target x E``; a difference smaller than the minimum trade size (100 quote units by default)
is skipped. Trades come out largest deviation first, so the most wrong position is fixed
before money runs short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, localcontext

from ledger.domain.events import Side
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO

CASH = "CASH"
BAND_DEFAULT = Decimal("0.05")
MIN_TRADE_DEFAULT = Decimal(100)


@dataclass(frozen=True, kw_only=True)
class RebalanceTrade:
    """One trade toward an asset's target: its side, quote value and base quantity."""

    asset: str
    side: Side
    value: Decimal  # quote amount, positive
    qty: Decimal  # base quantity, positive, unrounded (the exchange rules round it)
    weight_now: Decimal
    weight_target: Decimal

    @property
    def deviation(self) -> Decimal:
        """Return how far the asset is from its target, as a fraction of equity."""
        return abs(self.weight_now - self.weight_target)


def weights(
    holdings: Mapping[str, Decimal], prices: Mapping[str, Decimal], cash: Decimal
) -> dict[str, Decimal]:
    """Return each asset's share of equity, CASH included (empty when equity is not positive)."""
    with localcontext(LEDGER_CONTEXT):
        values = {asset: qty * prices[asset] for asset, qty in holdings.items()}
        total = cash + sum(values.values(), ZERO)
        if total <= ZERO:
            return {}
        shares = {asset: value / total for asset, value in values.items()}
        shares[CASH] = cash / total
    return shares


def rebalance_trades(
    *,
    targets: Mapping[str, Decimal],
    holdings: Mapping[str, Decimal],
    prices: Mapping[str, Decimal],
    cash: Decimal,
    band: Decimal = BAND_DEFAULT,
    min_trade: Decimal = MIN_TRADE_DEFAULT,
) -> list[RebalanceTrade]:
    """Return the trades that restore ``targets`` (largest deviation first), or none.

    ``targets`` maps assets (and CASH) to weights summing to 1; ``holdings`` maps assets to
    base quantities and ``prices`` them to quote prices; every target asset needs a price.
    """
    now = weights({a: holdings.get(a, ZERO) for a in targets if a != CASH}, prices, cash)
    if not now or all(abs(now.get(asset, ZERO) - target) <= band for asset, target in targets.items()):
        return []
    trades = []
    with localcontext(LEDGER_CONTEXT):
        total = cash + sum((holdings.get(a, ZERO) * prices[a] for a in targets if a != CASH), ZERO)
        for asset, target in targets.items():
            if asset == CASH:
                continue
            difference = target * total - holdings.get(asset, ZERO) * prices[asset]
            if abs(difference) < min_trade or difference == ZERO:
                continue
            trades.append(
                RebalanceTrade(
                    asset=asset,
                    side=Side.BUY if difference > ZERO else Side.SELL,
                    value=abs(difference),
                    qty=abs(difference) / prices[asset],
                    weight_now=now[asset],
                    weight_target=target,
                )
            )
    return sorted(trades, key=lambda t: (-t.deviation, t.asset))

"""What to do with a working limit order that is partly filled, or stuck (SPEC §7, the seed's rule).

Checked every few seconds per order, in this order:

1. filled at least ``finish_ratio`` (80 %) but not all: cancel the rest and send it at market;
2. the market is more than ``max_distance`` (2 %) away from the limit: cancel the rest;
3. working for ``timeout_s`` (300 s) or more: cancel the rest;
4. otherwise wait.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D


class PolicyStep(enum.Enum):
    """What the policy asks for."""

    WAIT = "wait"
    CANCEL = "cancel"
    FINISH_AT_MARKET = "finish_at_market"


@dataclass(frozen=True, kw_only=True)
class PartialFillPolicy:
    """The thresholds; the defaults are the seed's."""

    finish_ratio: Decimal = Decimal("0.8")
    max_distance: Decimal = Decimal("0.02")
    timeout_s: float = 300.0
    check_every_s: float = 5.0


@dataclass(frozen=True, kw_only=True)
class PolicyVerdict:
    """The step and why, in words for the event's reason."""

    step: PolicyStep
    reason: str


def verdict(
    policy: PartialFillPolicy,
    *,
    qty: Decimal,
    qty_filled: Decimal,
    price_limit: Decimal,
    price_market: Decimal,
    age_s: float,
) -> PolicyVerdict:
    """Return what to do with a working limit order now."""
    with localcontext(LEDGER_CONTEXT):
        ratio = qty_filled / qty
        if policy.finish_ratio <= ratio < 1:
            return PolicyVerdict(
                step=PolicyStep.FINISH_AT_MARKET,
                reason=f"{(ratio * 100).quantize(D('0.01'))}% filled (>= {policy.finish_ratio * 100}%): "
                "the rest goes at market",
            )
        distance = abs(price_market - price_limit) / price_limit
        if distance > policy.max_distance:
            return PolicyVerdict(
                step=PolicyStep.CANCEL,
                reason=f"the market ({price_market}) is {(distance * 100).quantize(D('0.01'))}% from the "
                f"limit ({price_limit}), more than {policy.max_distance * 100}%",
            )
    if age_s >= policy.timeout_s:
        return PolicyVerdict(
            step=PolicyStep.CANCEL, reason=f"working for {age_s:.0f} s, the limit is {policy.timeout_s:.0f} s"
        )
    return PolicyVerdict(step=PolicyStep.WAIT, reason="")


def remaining(qty: Decimal, qty_filled: Decimal) -> Decimal:
    """Return what is left to fill (never negative)."""
    with localcontext(LEDGER_CONTEXT):
        return max(qty - qty_filled, ZERO)

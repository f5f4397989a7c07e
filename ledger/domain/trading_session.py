"""The trading session: run lifecycle, kill switch and the pre-trade gate (pure)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal, localcontext

from ledger.domain.events import KillSwitchEngaged, KillSwitchReleased, LedgerEvent, OrderPlaced
from ledger.domain.instruments import Instrument
from ledger.domain.numbers import LEDGER_CONTEXT, round_down_to_step


@dataclass(frozen=True, kw_only=True)
class Denial:
    """Why the gate refused an order: a machine-readable reason and a sentence."""

    reason: str
    detail: str


@dataclass(frozen=True, kw_only=True)
class KillSwitchState:
    """The ledger-wide kill switch as the control stream leaves it."""

    engaged: bool
    reason: str = ""
    actor: str = ""
    since: datetime | None = None
    liquidate: bool = False
    version: int = 0  # the control stream's version (for appending after it)


def kill_switch_state(control_events: list[LedgerEvent]) -> KillSwitchState:
    """Return the kill switch after ``control_events`` (the control stream, in order)."""
    state = KillSwitchState(engaged=False)
    for event in control_events:
        if isinstance(event, KillSwitchEngaged):
            state = KillSwitchState(
                engaged=True,
                reason=event.reason,
                actor=event.actor,
                since=event.occurred_at,
                liquidate=event.liquidate,
                version=event.originator_version,
            )
        elif isinstance(event, KillSwitchReleased):
            state = KillSwitchState(
                engaged=False, reason=event.reason, actor=event.actor, since=event.occurred_at
            )
        state = replace(state, version=event.originator_version)
    return state


def kill_switch_engaged(control_events: list[LedgerEvent]) -> bool:
    """Return whether the ledger-wide kill switch is engaged after ``control_events``."""
    engaged = False
    for event in control_events:
        if isinstance(event, KillSwitchEngaged):
            engaged = True
        elif isinstance(event, KillSwitchReleased):
            engaged = False
    return engaged


def gate(
    order: OrderPlaced,
    instrument: Instrument,
    *,
    halted: bool,
    quote_free: Decimal,
    base_free: Decimal,
) -> Denial | None:
    """Return why ``order`` must not leave the process, or None when it may.

    Checks, in order: the kill switch, the instrument's step and minimums, and the free
    balance the order would spend.
    """
    if halted:
        return Denial(reason="kill_switch", detail="the kill switch is engaged; release it first")
    with localcontext(LEDGER_CONTEXT):
        if order.qty is not None:
            if round_down_to_step(order.qty, instrument.qty_step) != order.qty:
                return Denial(
                    reason="qty_step", detail=f"qty {order.qty} is not a multiple of {instrument.qty_step}"
                )
            if order.qty < instrument.qty_min:
                return Denial(reason="qty_min", detail=f"qty {order.qty} is below {instrument.qty_min}")
        notional = _notional(order)
        if notional is not None and notional < instrument.notional_min:
            return Denial(
                reason="notional_min",
                detail=f"order value {notional} {instrument.quote_asset} is below {instrument.notional_min}",
            )
        return _balance_denial(order, instrument, quote_free=quote_free, base_free=base_free)


def _notional(order: OrderPlaced) -> Decimal | None:
    if order.qty_quote is not None:
        return order.qty_quote
    price = order.price_limit if order.price_limit is not None else order.price_expected
    if price is None or order.qty is None:
        return None
    return order.qty * price


def _balance_denial(
    order: OrderPlaced, instrument: Instrument, *, quote_free: Decimal, base_free: Decimal
) -> Denial | None:
    if order.side.value == "sell":
        if order.qty is not None and order.qty > base_free:
            return Denial(
                reason="insufficient_balance",
                detail=f"sell {order.qty} exceeds free {base_free} {instrument.base_asset}",
            )
        return None
    spend = _notional(order)
    if spend is not None and spend > quote_free:
        return Denial(
            reason="insufficient_balance",
            detail=f"buy of {spend} exceeds free {quote_free} {instrument.quote_asset}",
        )
    return None

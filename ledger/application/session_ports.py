"""What a paper or live session runs on: its ports, its spec and the venue's answers.

Split from ``session.py`` (the loop) so each stays readable; ``session`` re-exports these names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Protocol

from ledger.application.candles import Bar
from ledger.application.market_watch import MaintenanceWindow, WatchPolicy
from ledger.domain.errors import LedgerError
from ledger.domain.events import OrderPlaced, TradingMode
from ledger.domain.instruments import Instrument
from ledger.domain.market_rules import MarketRules
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO
from ledger.domain.order import FillReport, OrderEnded, VenueAck
from ledger.domain.partial_fills import PartialFillPolicy
from ledger.domain.trading_session import KillSwitchState
from ledger.ports import Clock, EventStore, IdGenerator


class VenueRejectedError(LedgerError):
    """The venue refused an order; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str) -> None:
        """Keep the reason and the venue's words."""
        super().__init__(detail)
        self.reason = reason


class VenueOrderUnknownError(LedgerError):
    """The venue's answer was lost and lookups by client order id did not settle whether it exists."""


class VenueOrderAbsentError(VenueOrderUnknownError):
    """The venue answered, repeatedly, that it has no order with this client order id."""


class SessionVenue(Protocol):
    """Where a session's orders go: the paper simulator or a live exchange."""

    venue: str

    def on_bar(self, bar: Bar) -> None:
        """See a newly closed bar (the paper venue fills on it; a live venue ignores it)."""
        ...

    async def submit_order(self, order: OrderPlaced) -> VenueAck:
        """Send an order once; raise VenueRejectedError or VenueOrderUnknownError."""
        ...

    async def recover(self, client_order_id: str) -> VenueAck:
        """Find an order by client order id; raise VenueOrderUnknownError if the venue has none."""
        ...

    async def poll_fills(self) -> list[FillReport | OrderEnded]:
        """Return fills and ends reported since the last call."""
        ...

    async def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel what is left of an order (its end comes through poll_fills)."""
        ...


@dataclass(frozen=True, kw_only=True)
class OrderBook:
    """The venue's visible book, best level first on each side."""

    bids: list[tuple[Decimal, Decimal]]
    asks: list[tuple[Decimal, Decimal]]


class MarketFeed(Protocol):
    """Closed bars and the order book of the session's instrument from the venue."""

    async def closed_bars(self, since_ms: int | None) -> list[Bar]:
        """Return closed bars opening at or after ``since_ms`` (None: the latest window)."""
        ...

    async def order_book(self, depth: int) -> OrderBook | None:
        """Return the top ``depth`` levels per side (None: the venue did not answer)."""
        ...

    async def ping(self) -> str | None:
        """Ask the venue for its time; return None when it answered, else what went wrong."""
        ...


class TapeWriter(Protocol):
    """Where a session records every bar it saw, and when (its market-data tape)."""

    def write(self, bar: Bar, seen_at: datetime, *, history: bool = False) -> None:
        """Append one bar (``history``: a warm-up bar the session did not decide on)."""
        ...

    def close(self) -> tuple[str, str, int]:
        """Finish the tape; return its name, sha256 and number of bars."""
        ...


@dataclass(frozen=True, kw_only=True)
class Limit:
    """A working limit order under the partial-fill policy."""

    price_limit: Decimal
    qty: Decimal
    since: datetime  # when it was sent
    checked: datetime  # when the policy last looked at it


@dataclass(frozen=True, kw_only=True)
class Reconciliation:
    """What the venue holds against what the ledger expected, at a live start-up."""

    venue: dict[str, Decimal]
    ledger: dict[str, Decimal]
    orders_unknown: list[str]  # client order ids open at the venue that the ledger does not know

    def differences(self) -> dict[str, Decimal]:
        """Return venue minus ledger for every asset where they differ."""
        with localcontext(LEDGER_CONTEXT):
            found = {
                a: self.venue.get(a, ZERO) - self.ledger.get(a, ZERO)
                for a in self.venue.keys() | self.ledger.keys()
            }
        return {a: d for a, d in sorted(found.items()) if d != ZERO}


def canonical(value: object) -> str:
    """Return ``value`` as canonical JSON (sorted keys, no spaces) for event fields."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True, kw_only=True)
class SessionSpec:
    """What a session records in ``RunStarted`` and trades with."""

    mode: TradingMode
    instrument: Instrument
    rules: MarketRules  # the venue's exchange rules for the instrument
    cash_initial: Decimal
    fee_rate: Decimal
    seed: int
    config_hash: str
    code_version: str
    interval_ms: int
    data_source: str  # e.g. "binance:BTC/USDT:1m"
    halted: bool = False
    max_drawdown: Decimal | None = None  # engage the kill switch beyond this drawdown (a fraction)
    watch: WatchPolicy = field(default_factory=WatchPolicy)
    maintenance: tuple[MaintenanceWindow, ...] = ()
    partial_fills: PartialFillPolicy = field(default_factory=PartialFillPolicy)
    # Why the run is in its mode, recorded as TradingModeSwitched (promotion_from -> mode) right
    # after RunStarted: a live run's gates verdict or waiver (paper -> live), or the backtest a
    # paper run follows (backtest -> paper).
    promotion: str | None = None
    promotion_from: TradingMode = TradingMode.PAPER


class KillSwitch(Protocol):
    """The ledger-wide kill switch, shared by every process on the ledger."""

    def state(self) -> KillSwitchState:
        """Return the kill switch as the ledger holds it now."""
        ...

    def engage(self, *, reason: str, actor: str, liquidate: bool) -> KillSwitchState:
        """Engage it (an automatic trigger or a signal); return the new state."""
        ...


class NoKillSwitch:
    """For sessions wired without one (tests of the order path): never engaged."""

    def state(self) -> KillSwitchState:
        """Return a kill switch that is not engaged."""
        return KillSwitchState(engaged=False)

    def engage(self, *, reason: str, actor: str, liquidate: bool) -> KillSwitchState:
        """Return the engaged state, recording nothing (there is no ledger behind it)."""
        return KillSwitchState(engaged=True, reason=reason, actor=actor, liquidate=liquidate)


@dataclass(frozen=True, kw_only=True)
class SessionWiring:
    """The ports a session runs on."""

    store: EventStore
    venue: SessionVenue
    feed: MarketFeed
    ids: IdGenerator
    clock: Clock
    tape: TapeWriter
    kill_switch: KillSwitch = field(default_factory=NoKillSwitch)

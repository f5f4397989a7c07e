"""Alerts: what the operator is told about, and the port that tells them.

``alerts_for`` maps one logged event to the alerts it raises; it is pure and stateless. The
stateful part (backtest muting, daily summaries, run summaries) is ``alert_feed.AlertFeed``,
and delivery is ``alert_dispatch.AlertDispatcher``. Texts are plain (no Markdown), so a chat
never misreads an instrument such as ``BTC_USDT`` as formatting.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, fields, is_dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from ledger.domain.errors import LedgerError
from ledger.domain.events import (
    KillSwitchActed,
    KillSwitchEngaged,
    KillSwitchReleased,
    OrderFilled,
    OrderRejected,
    RunEnded,
    VenueReconciled,
)
from ledger.domain.numbers import plain

# Why: events that do not exist yet (venue outages, trading halts) alert by type name prefix,
# so adding them to the domain needs no change here.
FUTURE_KINDS_BY_PREFIX = (
    ("ExchangeOutage", "OUTAGE", "Exchange outage"),
    ("SymbolHalted", "HALT", "Symbol halted"),
)
# Fields every event has; the generic text of a future event leaves them out.
_BASE_FIELDS = frozenset({"originator_id", "originator_version", "occurred_at", "run_id"})


class AlertKind(enum.Enum):
    """What an alert is about; values are persisted in the dispatcher's checkpoint."""

    KILL_SWITCH_ENGAGED = "kill_switch_engaged"
    KILL_SWITCH_RELEASED = "kill_switch_released"
    ORDER_FILLED = "order_filled"
    ORDER_REJECTED = "order_rejected"
    VENUE_MISMATCH = "venue_mismatch"
    RUN_ENDED = "run_ended"
    OUTAGE = "outage"
    HALT = "halt"
    DAILY_SUMMARY = "daily_summary"


@dataclass(frozen=True, kw_only=True)
class Alert:
    """One message for the operator, raised by the event at ``seq`` of the log."""

    kind: AlertKind
    title: str
    text: str
    run_id: UUID | None  # None for ledger-wide alerts (daily summary)
    seq: int
    occurred_at: datetime

    def message(self) -> str:
        """Return the alert as plain chat text: title, text, then where it came from."""
        origin = f"seq {self.seq}" if self.run_id is None else f"run {str(self.run_id)[:8]}, seq {self.seq}"
        return f"{self.title}\n{self.text}\n({origin}, {self.occurred_at.isoformat()})"

    def to_json(self) -> dict[str, Any]:
        """Return the alert as a JSON-ready dict (see ``alert_from_json``)."""
        return {
            "kind": self.kind.value,
            "title": self.title,
            "text": self.text,
            "run_id": None if self.run_id is None else str(self.run_id),
            "seq": self.seq,
            "occurred_at": self.occurred_at.isoformat(),
        }


def alert_from_json(data: dict[str, Any]) -> Alert:
    """Return the alert ``Alert.to_json`` wrote."""
    run_id = data["run_id"]
    return Alert(
        kind=AlertKind(data["kind"]),
        title=str(data["title"]),
        text=str(data["text"]),
        run_id=None if run_id is None else UUID(run_id),
        seq=int(data["seq"]),
        occurred_at=datetime.fromisoformat(data["occurred_at"]),
    )


class NotifierError(LedgerError):
    """A notifier could not deliver an alert; the dispatcher keeps it and retries later."""


class NotifierRateLimited(NotifierError):  # noqa: N818 - the name the Notifier port was specified with
    """The channel refused for now (HTTP 429); retry after ``retry_after_s`` seconds."""

    def __init__(self, msg: str, *, retry_after_s: float) -> None:
        super().__init__(msg)
        self.retry_after_s = retry_after_s


class Notifier(Protocol):
    """Where alerts go (a chat, a log file); one implementation per channel."""

    async def send(self, alert: Alert) -> None:
        """Deliver one alert.

        Raises:
            NotifierRateLimited: the channel asked to wait before the next message.
            NotifierError: the alert was not delivered.
        """
        ...


def alerts_for(seq: int, event: object) -> list[Alert]:
    """Return the alerts the event at ``seq`` raises, without any state (pure).

    Args:
        seq: the event's position in the log.
        event: a ledger event; unknown types alert only through the name-prefix hook.

    Returns:
        Zero or more alerts, in the order they should be delivered.
    """
    match event:
        case KillSwitchEngaged():
            return [_alert(AlertKind.KILL_SWITCH_ENGAGED, "Kill switch engaged", _who(event), seq, event)]
        case KillSwitchReleased():
            return [_alert(AlertKind.KILL_SWITCH_RELEASED, "Kill switch released", _who(event), seq, event)]
        case KillSwitchActed():
            target = f" {event.client_order_id}" if event.client_order_id else ""
            text = f"{event.action}{target}: {event.outcome}"
            return [_alert(AlertKind.KILL_SWITCH_ENGAGED, "Kill switch action", text, seq, event)]
        case OrderFilled():
            return [_alert(AlertKind.ORDER_FILLED, "Order filled", fill_line(event), seq, event)]
        case OrderRejected():
            text = f"{event.client_order_id}: {event.reason} ({event.detail})"
            return [_alert(AlertKind.ORDER_REJECTED, "Order rejected", text, seq, event)]
        case VenueReconciled():
            return _reconciled(seq, event)
        case RunEnded():
            return [_alert(AlertKind.RUN_ENDED, "Run ended", _run_ended_line(event), seq, event)]
        case _:
            return _future_event(seq, event)


def fill_line(fill: OrderFilled) -> str:
    """Return a fill as one line: side, quantity, instrument, price and fee."""
    return (
        f"{fill.side.value.upper()} {plain(fill.qty)} {fill.instrument} @ {plain(fill.price)}, "
        f"fee {plain(fill.fee)} {fill.fee_asset}"
    )


def _alert(kind: AlertKind, title: str, text: str, seq: int, event: Any) -> Alert:
    return Alert(
        kind=kind, title=title, text=text, run_id=event.run_id, seq=seq, occurred_at=event.occurred_at
    )


def _who(event: KillSwitchEngaged | KillSwitchReleased) -> str:
    return f"{event.reason} (by {event.actor})"


def _run_ended_line(event: RunEnded) -> str:
    mark = "" if event.price_mark is None else f", marked at {plain(event.price_mark)}"
    return f"{event.reason}; final equity {plain(event.equity_final)}{mark}"


def _reconciled(seq: int, event: VenueReconciled) -> list[Alert]:
    differences: dict[str, str] = json.loads(event.differences)
    unknown: list[str] = json.loads(event.orders_unknown)
    if not differences and not unknown:
        return []
    parts = []
    if differences:
        shown = ", ".join(f"{asset} {amount}" for asset, amount in sorted(differences.items()))
        parts.append(f"balances (venue - ledger): {shown}")
    if unknown:
        parts.append(f"open orders unknown to the ledger: {', '.join(unknown)}")
    title = f"Venue {event.venue} differs from the ledger"
    return [_alert(AlertKind.VENUE_MISMATCH, title, "; ".join(parts), seq, event)]


def _future_event(seq: int, event: object) -> list[Alert]:
    name = type(event).__name__
    for prefix, kind, title in FUTURE_KINDS_BY_PREFIX:
        if name.startswith(prefix):
            values = (
                vars(event)
                if not is_dataclass(event)
                else {f.name: getattr(event, f.name) for f in fields(event)}
            )
            text = ", ".join(f"{key}={value}" for key, value in values.items() if key not in _BASE_FIELDS)
            return [_alert(AlertKind(kind.lower()), f"{title}: {name}", text or name, seq, event)]
    return []

"""`tradeledger alerts`: wire the notifiers from the environment and run the dispatcher."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import anyio

from ledger.adapters.notify_log import LogNotifier
from ledger.adapters.notify_telegram import TelegramNotifier
from ledger.adapters.store import LedgerStore
from ledger.application.alert_dispatch import AlertDispatcher, DispatchPolicy
from ledger.application.alerts import Notifier


def notifiers(log: Path | None) -> dict[str, Notifier]:
    """Return the log notifier, and Telegram when its token and chat id are in the environment.

    The names are the keys under which each notifier's retry queue is saved; keep them stable.
    """
    found: dict[str, Notifier] = {"log": LogNotifier(log) if log is not None else LogNotifier()}
    token = os.environ.get("TRADELEDGER_TELEGRAM_TOKEN")
    chat = os.environ.get("TRADELEDGER_TELEGRAM_CHAT_ID")
    if token and chat:
        base = os.environ.get("TRADELEDGER_TELEGRAM_API", "https://api.telegram.org")
        found["telegram"] = TelegramNotifier(token=token, chat_id=chat, base_url=base)
    return found


def run_alerts(
    store: LedgerStore,
    *,
    follow: bool,
    interval_s: float,
    duration_s: float | None,
    log: Path | None,
    from_beginning: bool,
) -> int:
    """Deliver what is new (once, or until stopped with --follow); return deliveries made."""
    dispatcher = AlertDispatcher(
        store, store, notifiers(log), policy=DispatchPolicy(from_beginning=from_beginning)
    )
    stopped = {"signal": False}
    deadline = None if duration_s is None else time.monotonic() + duration_s

    def stop() -> bool:
        return stopped["signal"] or (deadline is not None and time.monotonic() >= deadline)

    async def main() -> int:
        sent = 0
        while True:
            report = await dispatcher.step()
            sent += report.sent
            for error in report.errors:
                sys.stderr.write(f"alerts: {error}\n")
            caught_up = report.events < DispatchPolicy().page_size and not report.blocked
            if (not follow and caught_up) or stop():
                return sent
            if caught_up:
                await anyio.sleep(interval_s)

    def handler(signum: int, frame: object) -> None:  # noqa: ARG001 - signal API
        stopped["signal"] = True

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return anyio.run(main)
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

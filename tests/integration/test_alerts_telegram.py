"""Alerts end to end: a real SQLite ledger, a local server playing Telegram's Bot API, a log file."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiohttp import web

from factories import (
    T0,
    a_fill,
    a_kill_switch_engaged,
    a_kill_switch_released,
    a_run_ended,
    a_run_started,
    an_order_rejected,
)
from ledger.adapters.notify_log import LogNotifier
from ledger.adapters.notify_telegram import TelegramNotifier
from ledger.adapters.store import LedgerStore, open_store
from ledger.application.alert_dispatch import AlertDispatcher, DispatchPolicy
from ledger.application.alert_feed import AlertFeed
from ledger.application.alerts import Alert, Notifier, NotifierError, NotifierRateLimited, alerts_for
from ledger.domain.events import LedgerEvent, Side, TradingMode

pytestmark = pytest.mark.anyio

TOKEN = "123456:SECRET-token-abc"  # noqa: S105 - a made-up token for the local server
CHAT = "-1001"
RATE_LIMITED = {
    "ok": False,
    "error_code": 429,
    "description": "Too Many Requests: retry after 1",
    "parameters": {"retry_after": 1},
}
POLICY = DispatchPolicy(from_beginning=True, backoff_s_initial=0.05, backoff_s_max=0.2, send_timeout_s=2)


@dataclass
class FakeTelegram:
    """Plays the Bot API's sendMessage; ``script`` answers the next calls ("429", "500", "hang")."""

    url: str = ""
    script: list[str] = field(default_factory=list)
    calls: list[float] = field(default_factory=list)  # monotonic time of every request
    messages: list[dict[str, Any]] = field(default_factory=list)  # delivered payloads
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def send_message(self, request: web.Request) -> web.Response:
        self.calls.append(time.monotonic())
        if request.match_info["token"] != TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        mode = self.script.pop(0) if self.script else "ok"
        if mode == "429":
            return web.json_response(RATE_LIMITED, status=429)
        if mode == "500":
            return web.json_response({"ok": False, "error_code": 500, "description": "Internal"}, status=500)
        if mode == "hang":
            await asyncio.wait_for(self.release.wait(), 5)
        self.messages.append(await request.json())
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})


@asynccontextmanager
async def telegram_server(port: int = 0) -> AsyncIterator[FakeTelegram]:
    fake = FakeTelegram()
    app = web.Application()
    app.router.add_post("/bot{token}/sendMessage", fake.send_message)
    runner = web.AppRunner(app, shutdown_timeout=1)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        host, bound = runner.addresses[0][:2]
        fake.url = f"http://{host}:{bound}"
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def history() -> list[LedgerEvent]:
    """A paper day: start, a buy and a sale, a rejection, the end; the kill switch the next day."""
    return [
        a_run_started(mode=TradingMode.PAPER),
        a_fill(order=1, trade=1, qty="1", price="100", fee="0.1"),
        a_fill(order=2, trade=2, side=Side.SELL, qty="1", price="110", fee="0.11"),
        an_order_rejected(order=3),
        a_run_ended(occurred_at=T0 + timedelta(hours=20)),
        a_kill_switch_engaged(occurred_at=T0 + timedelta(days=1)),
    ]


def ledger_with(path: str, events: Sequence[LedgerEvent]) -> LedgerStore:
    store = open_store(path, create=True)
    store.append(events)
    return store


def telegram(url: str, timeout_s: float = 1) -> TelegramNotifier:
    return TelegramNotifier(token=TOKEN, chat_id=CHAT, base_url=url, timeout_s=timeout_s)


def logged(path: Path) -> list[tuple[int, str]]:
    return [(row["seq"], row["kind"]) for row in map(json.loads, path.read_text().splitlines())]


def texts(fake: FakeTelegram) -> list[str]:
    return [m["text"] for m in fake.messages]


async def drain(dispatcher: AlertDispatcher, steps: int = 20) -> None:
    for _ in range(steps):
        report = await dispatcher.step()
        if report.pending == 0 and report.last_seq == dispatcher._reader.max_seq():
            return
        await anyio.sleep(0.05)
    pytest.fail(f"alerts still pending after {steps} steps")


async def test_every_alert_reaches_telegram_and_the_log_once_in_log_order(sqlite_ledger, tmp_path):
    store = ledger_with(sqlite_ledger, history())
    log = tmp_path / "alerts.jsonl"
    try:
        async with telegram_server() as fake:
            notifiers: dict[str, Notifier] = {"telegram": telegram(fake.url), "log": LogNotifier(log)}
            dispatcher = AlertDispatcher(store, store, notifiers, policy=POLICY)
            report = await dispatcher.step()
            assert (report.events, report.alerts, report.sent, report.failed) == (6, 6, 12, 0)
            calls = len(fake.calls)
            for _ in range(3):  # nothing new: no request at all
                assert (await dispatcher.step()).events == 0
            assert len(fake.calls) == calls == 6
    finally:
        store.close()
    kinds = [
        "order_filled",
        "order_filled",
        "order_rejected",
        "run_ended",
        "daily_summary",
        "kill_switch_engaged",
    ]
    assert logged(log) == list(zip([2, 3, 4, 5, 6, 6], kinds, strict=True))
    assert fake.messages[0] == {"chat_id": CHAT, "text": texts(fake)[0], "disable_web_page_preview": True}
    assert texts(fake)[0].startswith("Order filled\nBUY 1 BTC/USDT @ 100, fee 0.1 USDT\n")
    assert texts(fake)[4].startswith(
        "Daily summary 2025-05-20 (UTC)\nfills 2, runs ended 1\nrealized PnL 9.79 USDT"
    )


async def test_a_429_is_retried_after_retry_after_and_nothing_overtakes_it(sqlite_ledger):
    store = ledger_with(sqlite_ledger, history()[:3])
    try:
        async with telegram_server() as fake:
            fake.script = ["429"]
            dispatcher = AlertDispatcher(store, store, {"telegram": telegram(fake.url)}, policy=POLICY)
            with anyio.fail_after(5):
                await dispatcher.run(lambda: len(fake.messages) == 2, poll_s=0.05)
    finally:
        store.close()
    assert fake.calls[1] - fake.calls[0] >= 1.0  # retry_after honoured
    assert [t.splitlines()[1] for t in texts(fake)] == [
        "BUY 1 BTC/USDT @ 100, fee 0.1 USDT",
        "SELL 1 BTC/USDT @ 110, fee 0.11 USDT",
    ]


async def test_telegram_errors_carry_the_description_never_the_token():
    [alert] = alerts_for(1, a_kill_switch_released())
    notifier = telegram("http://127.0.0.1:1", timeout_s=0.3)
    assert TOKEN not in repr(notifier)
    assert "123456:***" in repr(notifier)
    async with telegram_server() as fake:
        fake.script = ["429", "500", "hang"]
        notifier = telegram(fake.url, timeout_s=0.3)
        with pytest.raises(NotifierRateLimited) as limited:
            await notifier.send(alert)
        with pytest.raises(NotifierError, match="HTTP 500: Internal") as failed:
            await notifier.send(alert)
        with pytest.raises(NotifierError, match=r"timed out after 0\.3 s") as hung:
            await notifier.send(alert)
        bad = TelegramNotifier(
            token="999:wrong",  # noqa: S106 - a made-up token
            chat_id=CHAT,
            base_url=fake.url,
        )
        with pytest.raises(NotifierError, match="HTTP 401: Unauthorized") as unauthorized:
            await bad.send(alert)
    with pytest.raises(NotifierError) as refused:
        await telegram(closed_port_url()).send(alert)
    assert limited.value.retry_after_s == 1
    for error in (limited, failed, hung, unauthorized, refused):
        assert "SECRET" not in str(error.value)
        assert error.value.__cause__ is None


async def test_a_dead_telegram_holds_up_nothing_and_its_queue_survives_a_restart(sqlite_ledger, tmp_path):
    log = tmp_path / "alerts.jsonl"
    store = ledger_with(sqlite_ledger, history())
    try:
        notifiers: dict[str, Notifier] = {"telegram": telegram(closed_port_url()), "log": LogNotifier(log)}
        dead = AlertDispatcher(store, store, notifiers, policy=POLICY)
        with anyio.fail_after(3):
            report = await dead.step()
        assert (report.events, report.pending, report.failed) == (6, 6, 1)  # one try, the rest queue
        assert len(logged(log)) == 6
    finally:
        store.close()
    store = open_store(sqlite_ledger, create=False)
    try:
        store.append([a_kill_switch_released(occurred_at=T0 + timedelta(days=1))])
        async with telegram_server() as fake:
            notifiers = {"telegram": telegram(fake.url), "log": LogNotifier(log)}
            await drain(AlertDispatcher(store, store, notifiers, policy=POLICY))
    finally:
        store.close()
    assert [t.split("\n", 1)[0] for t in texts(fake)] == [
        "Order filled",
        "Order filled",
        "Order rejected",
        "Run ended",
        "Daily summary 2025-05-20 (UTC)",
        "Kill switch engaged",
        "Kill switch released",
    ]
    assert [seq for seq, _ in logged(log)] == [2, 3, 4, 5, 6, 6, 7]


async def test_a_restart_resumes_without_duplicates_or_losses(sqlite_ledger):
    events = history()
    store = ledger_with(sqlite_ledger, events[:3])
    async with telegram_server() as fake:
        try:
            await drain(AlertDispatcher(store, store, {"telegram": telegram(fake.url)}, policy=POLICY))
        finally:
            store.close()
        store = open_store(sqlite_ledger, create=False)
        try:
            store.append(events[3:])
            restarted = AlertDispatcher(store, store, {"telegram": telegram(fake.url)}, policy=POLICY)
            await drain(restarted)
            await restarted.step()
        finally:
            store.close()
    expected: list[Alert] = []
    again = AlertFeed()
    for seq, event in enumerate(events, 1):
        expected.extend(again.apply(seq, event))
    assert texts(fake) == [a.message() for a in expected]

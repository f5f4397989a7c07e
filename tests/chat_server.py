"""A small OpenAI-compatible chat-completions server on 127.0.0.1 for the agent's tests.

``POST /v1/chat/completions`` answers from a script (one reply per request, in order), then
from a default policy once the script runs out: flat -> buy to half of equity, long -> sell
to flat (``weight_target``), so a backtest trades. Replies: a content text (valid or not), an
HTTP status with a body, a slow answer, a body that is no chat completion, a refusal. Every
request's parsed body and headers are kept for assertions. It runs on its own event loop in a
background thread, so both in-process code and ``tradeledger`` subprocesses can call it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from aiohttp import web


@dataclass(frozen=True, kw_only=True)
class Reply:
    """One scripted reply: a status and body, after an optional delay."""

    status: int = 200
    body: str = ""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


def completion(content: str | None, *, refusal: str | None = None) -> str:
    """Return a chat-completions response body whose first message is ``content``."""
    message = {"role": "assistant", "content": content, "refusal": refusal}
    return json.dumps(
        {
            "id": "chatcmpl-test",
            "object": "chat.completion",
            "model": "scripted",
            "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        }
    )


def answer(**fields: Any) -> str:
    """Return an agent answer's JSON text: a HOLD on BTC/USDT, with ``fields`` replacing defaults."""
    base: dict[str, Any] = {
        "instrument": "BTC/USDT",
        "action": "hold",
        "qty": None,
        "qty_quote": None,
        "weight_target": None,
        "confidence": 0.5,
        "rationale": "scripted",
    }
    base.update(fields)
    return json.dumps(base)


def says(content: str, *, delay_s: float = 0.0) -> Reply:
    """Return a 200 reply whose message content is ``content``."""
    return Reply(body=completion(content), delay_s=delay_s)


def policy_answer(request: dict[str, Any]) -> str:
    """Return the default policy's answer to ``request``: buy to 50 % when flat, else sell all."""
    user = request["messages"][-1]["content"]
    state = json.loads(user.split("\n")[1])
    flat = Decimal(state["position_qty"]) == 0
    return answer(
        instrument=state["instrument"],
        action="buy" if flat else "sell",
        weight_target="0.5" if flat else 0,
        confidence=0.75,
        rationale=f"flat: buy half at {state['price_close']}" if flat else "long: take profit",
    )


class ChatServer:
    """The server; use ``running()`` to start and stop it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        """Return the base URL a client is given (``.../v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue ``replies`` for the next requests, in order."""
        with self._lock:
            self._script.extend(replies)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            self.headers.append(dict(request.headers))
            reply = self._script.popleft() if self._script else None
        if reply is None:
            reply = says(policy_answer(body))
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        return web.Response(
            status=reply.status, text=reply.body, content_type="application/json", headers=reply.headers
        )


@contextmanager
def running() -> Iterator[ChatServer]:
    """Start a ``ChatServer`` on a free 127.0.0.1 port; stop it on exit."""
    server = ChatServer()
    loop = asyncio.new_event_loop()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", server._handle)
    runner = web.AppRunner(app, handle_signals=False)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    server.port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()

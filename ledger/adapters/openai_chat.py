"""A chat-completions client for any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama).

``POST {base_url}/chat/completions`` with the agent's request bytes as they are; the answer
is ``{"choices": [{"message": {"content": "...", "refusal": null}}]}``. Each attempt is bounded
by ``timeout_ms``; a 429, a 5xx or a failed connection is retried up to ``retries`` times
after an exponential backoff (a 429's ``Retry-After`` seconds when longer, at most
``BACKOFF_MS_MAX``). Other 4xx answers are the request's fault and are not retried; neither
is a timeout, because a model that missed the limit once is likely to miss it again while the
bar it was asked about goes stale.

The API key comes from the encrypted key store when the endpoint names a ``key_label`` (a key
added with ``tradeledger keys add --exchange llm``; the file and passphrase as
``ledger.adapters.keystore.labeled_key`` finds them), else from ``$TRADELEDGER_LLM_API_KEY``,
else ``$OPENAI_API_KEY``; without one no ``Authorization`` header is sent (local servers need
none). It is never part of the request body (so never of the input digest), a ``repr``, an
error or a recorded event; errors are raised ``from None`` so that aiohttp's exception chain
cannot carry request details along.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import anyio

from ledger.adapters.keystore import LLM, labeled_key
from ledger.domain.errors import ParameterError
from ledger.strategies.chat import HTTP_ERROR, REFUSED, TIMEOUT, ChatEndpoint, ChatFailedError

API_KEY_ENVS = ("TRADELEDGER_LLM_API_KEY", "OPENAI_API_KEY")
KEY_LABEL_FIELD = "--param key_label"
# Why 30 s: a rate limit asking for longer is better recorded as a failed decision than
# allowed to stall the run; the next candidate bar asks again.
BACKOFF_MS_MAX = 30_000
# Why: enough of an error page to see what the server said, small enough for an event field.
EXCERPT_MAX = 300
# Why: the raw answer is recorded in the event; a runaway server must not bloat the log.
OUTPUT_MAX = 20_000
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
HTTP_OK_RANGE = range(200, 300)

Sleep = Callable[[float], Awaitable[None]]


class OpenAIChat:
    """Send chat-completions requests to one OpenAI-compatible server."""

    def __init__(self, endpoint: ChatEndpoint, *, api_key: str | None, sleep: Sleep = anyio.sleep) -> None:
        """Bind a server and, optionally, a bearer API key.

        Args:
            endpoint: the server's base URL (``.../v1``), attempt timeout and retry budget.
            api_key: sent as ``Authorization: Bearer ...``; None or empty sends none.
            sleep: waits between retries (an injected port, so tests need not wait).
        """
        self._endpoint = endpoint
        self._url = f"{endpoint.base_url.rstrip('/')}/chat/completions"
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._api_key = api_key or ""
        self._sleep = sleep

    @classmethod
    def connect(cls, endpoint: ChatEndpoint) -> OpenAIChat:
        """Return a client for ``endpoint`` (a ``ChatConnector``) with its API key.

        The key is the key store's ``endpoint.key_label`` when set, else the environment's.

        Raises:
            ParameterError: ``$TRADELEDGER_KEYS_PASSPHRASE`` is not set, the label is unknown,
                or it names an exchange's key (exit 2).
            KeyStoreError: no key file, a wrong passphrase, a damaged file (exit 2).
            KeyFileTooOpenError: the key file's mode is wider than 0600 (exit 4).
        """
        if endpoint.key_label is None:
            key = next((os.environ[name] for name in API_KEY_ENVS if os.environ.get(name)), None)
            return cls(endpoint, api_key=key)
        stored = labeled_key(endpoint.key_label, field=KEY_LABEL_FIELD)
        if stored.exchange != LLM:
            msg = (
                f"{KEY_LABEL_FIELD}: key {stored.label!r} is a {stored.exchange} exchange key, not an LLM "
                f"API key; add one with `tradeledger keys add --exchange {LLM} --label NAME --api-key KEY`"
            )
            raise ParameterError(msg)
        return cls(endpoint, api_key=stored.api_key)

    def __repr__(self) -> str:
        key = "***" if self._api_key else "none"
        return f"OpenAIChat(url={self._url!r}, api_key={key})"

    async def complete(self, body: bytes) -> str:
        """Post ``body`` and return the first choice's message content.

        Raises:
            ChatFailedError: ``timeout`` (an attempt ran past ``timeout_ms``), ``http_error``
                (an error status, a failed connection after the retries, or an answer that is
                not a chat completion) or ``refused`` (the model's refusal).
        """
        attempts = self._endpoint.retries + 1
        failure, output = "", ""
        for attempt in range(1, attempts + 1):
            try:
                status, text, retry_after_s = await self._post(body)
            except TimeoutError:
                seconds = self._endpoint.timeout_ms / 1000
                msg = f"no answer within {seconds:g} s (attempt {attempt} of {attempts}, not retried)"
                raise ChatFailedError(TIMEOUT, msg) from None
            except aiohttp.ClientError as e:
                failure, output, retry_after_s = f"connection failed: {self._scrub(_describe(e))}", "", None
            else:
                if status in HTTP_OK_RANGE:
                    return _content(text)
                failure, output = f"HTTP {status}: {self._scrub(text[:EXCERPT_MAX])}", text[:OUTPUT_MAX]
                if status != HTTP_TOO_MANY_REQUESTS and status < HTTP_SERVER_ERROR:
                    raise ChatFailedError(HTTP_ERROR, f"{failure} (not retried)", output) from None
            if attempt < attempts:
                await self._sleep(self._delay_ms(attempt, retry_after_s) / 1000)
        raise ChatFailedError(HTTP_ERROR, f"{failure} (after {attempts} attempts)", output)

    async def _post(self, body: bytes) -> tuple[int, str, int | None]:
        timeout = aiohttp.ClientTimeout(total=self._endpoint.timeout_ms / 1000)
        # One session per request: decisions are minutes apart, and nothing is left open.
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(self._url, data=body, headers=self._headers) as response,
        ):
            text = await response.text()
            return response.status, text, _retry_after_s(response.headers.get("Retry-After"))

    def _delay_ms(self, attempt: int, retry_after_s: int | None) -> int:
        delay = self._endpoint.backoff_ms << (attempt - 1)
        if retry_after_s is not None:
            delay = max(delay, retry_after_s * 1000)
        return min(delay, BACKOFF_MS_MAX)

    def _scrub(self, text: str) -> str:
        return text.replace(self._api_key, "***") if self._api_key else text


def _describe(error: aiohttp.ClientError) -> str:
    return str(error) or type(error).__name__


def _retry_after_s(header: str | None) -> int | None:
    # Only the delay-seconds form; an HTTP date is treated as absent (the backoff applies).
    text = "" if header is None else header.strip()
    return int(text) if text.isdigit() else None


def _content(text: str) -> str:
    output = text[:OUTPUT_MAX]
    try:
        answer: Any = json.loads(text)
        message = answer["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        msg = f"the answer is not a chat completion: {text[:EXCERPT_MAX]!r}"
        raise ChatFailedError(HTTP_ERROR, msg, output) from None
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content
    refusal = message.get("refusal") if isinstance(message, dict) else None
    if isinstance(refusal, str) and refusal:
        raise ChatFailedError(REFUSED, f"the model refused: {refusal[:EXCERPT_MAX]}", output)
    msg = f"the chat completion has no message content: {text[:EXCERPT_MAX]!r}"
    raise ChatFailedError(HTTP_ERROR, msg, output)

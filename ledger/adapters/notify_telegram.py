"""A notifier that posts alerts to a Telegram chat through the Bot API's ``sendMessage``.

``POST {base_url}/bot{token}/sendMessage`` with ``{"chat_id", "text",
"disable_web_page_preview": true}``; Telegram answers ``{"ok": true, ...}`` or ``{"ok": false,
"error_code", "description", "parameters": {"retry_after"}}``. Texts are sent without a
``parse_mode``, so nothing in them is read as markup.

The bot token is a secret: it is masked in ``repr`` and scrubbed from every error message, and
errors are raised ``from None`` because aiohttp's exceptions can carry the request URL, which
holds the token.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from ledger.application.alerts import Alert, NotifierError, NotifierRateLimited

DEFAULT_BASE_URL = "https://api.telegram.org"
DEFAULT_TIMEOUT_S = 10.0
# Why: Telegram refuses messages longer than 4,096 characters.
TEXT_LENGTH_MAX = 4096
# Why: a 429 without a readable retry_after still must not be retried at once.
RETRY_AFTER_S_DEFAULT = 1.0
HTTP_TOO_MANY_REQUESTS = 429


class TelegramNotifier:
    """Send each alert as one plain-text message to one chat."""

    def __init__(
        self,
        *,
        token: str,
        chat_id: str,
        base_url: str = DEFAULT_BASE_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Bind a bot and a chat.

        Args:
            token: the bot token (``123456:ABC...``), from the environment, never a file.
            chat_id: the chat, group or channel id (``-100...``) or ``@channelname``.
            base_url: the Bot API server (a local one in tests).
            timeout_s: the whole request's limit, connecting included.
        """
        if not token or not chat_id:
            msg = "a Telegram notifier needs a bot token and a chat id"
            raise ValueError(msg)
        self._token = token
        self._chat_id = chat_id
        self._url = f"{base_url.rstrip('/')}/bot{token}/sendMessage"
        self._base_url = base_url
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    def __repr__(self) -> str:
        bot = _masked(self._token)
        return f"TelegramNotifier(bot={bot!r}, chat_id={self._chat_id!r}, base_url={self._base_url!r})"

    async def send(self, alert: Alert) -> None:
        """Post ``alert`` to the chat.

        Raises:
            NotifierRateLimited: Telegram answered 429; ``retry_after_s`` is its
                ``parameters.retry_after``.
            NotifierError: the request failed, timed out, or Telegram answered an error (its
                ``description`` is in the message).
        """
        payload = {
            "chat_id": self._chat_id,
            "text": alert.message()[:TEXT_LENGTH_MAX],
            "disable_web_page_preview": True,
        }
        try:
            # One session per alert: alerts are rare, and nothing is left open between them.
            async with (
                aiohttp.ClientSession(timeout=self._timeout) as session,
                session.post(self._url, json=payload) as response,
            ):
                status = response.status
                body = await response.text()
        except TimeoutError:
            msg = f"Telegram sendMessage timed out after {self._timeout.total:g} s"
            raise NotifierError(msg) from None
        except aiohttp.ClientError as e:
            msg = f"Telegram sendMessage failed: {self._scrub(str(e)) or type(e).__name__}"
            raise NotifierError(msg) from None
        self._check(status, body)

    def _check(self, status: int, body: str) -> None:
        answer = _json_object(body)
        ok = answer.get("ok") is True
        if 200 <= status < 300 and ok:  # noqa: PLR2004 - the HTTP success range
            return
        description = self._scrub(str(answer.get("description") or body[:200] or "no description"))
        if status == HTTP_TOO_MANY_REQUESTS or answer.get("error_code") == HTTP_TOO_MANY_REQUESTS:
            msg = f"Telegram sendMessage rate limited: {description}"
            raise NotifierRateLimited(msg, retry_after_s=_retry_after_s(answer))
        msg = f"Telegram sendMessage failed: HTTP {status}: {description}"
        raise NotifierError(msg)

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, _masked(self._token))


def _masked(token: str) -> str:
    # The part before ":" is the bot's public user id; the rest is the secret.
    bot_id, _, _ = token.partition(":")
    return f"{bot_id}:***"


def _json_object(body: str) -> dict[str, Any]:
    try:
        answer = json.loads(body)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def _retry_after_s(answer: dict[str, Any]) -> float:
    parameters = answer.get("parameters")
    retry_after = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(retry_after, int | float) and not isinstance(retry_after, bool) and retry_after >= 0:
        return float(retry_after)
    return RETRY_AFTER_S_DEFAULT

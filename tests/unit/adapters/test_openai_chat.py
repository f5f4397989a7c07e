"""The chat-completions client against the local OpenAI-compatible test server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import chat_server
from chat_server import ChatServer, Reply, answer, says
from ledger.adapters.keystore import KeyStore
from ledger.adapters.openai_chat import BACKOFF_MS_MAX, OpenAIChat
from ledger.domain.errors import ParameterError
from ledger.strategies.chat import ChatEndpoint, ChatFailedError

KEY = "sk-unit-secret-456"
BODY = b'{"messages":[],"model":"m"}'


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with chat_server.running() as running:
        yield running


class Sleeps:
    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


def client(url: str, *, retries: int = 2, timeout_ms: int = 2000, sleeps: Sleeps | None = None) -> OpenAIChat:
    endpoint = ChatEndpoint(base_url=url, timeout_ms=timeout_ms, retries=retries, backoff_ms=100)
    return OpenAIChat(endpoint, api_key=KEY, sleep=sleeps or Sleeps())


@pytest.mark.anyio
async def test_the_body_is_sent_as_is_with_the_key_in_a_header(server: ChatServer) -> None:
    server.script(says(answer(action="hold")))
    content = await client(server.url).complete(BODY)
    assert content == answer(action="hold")
    assert server.requests == [{"messages": [], "model": "m"}]
    assert server.headers[0]["Authorization"] == f"Bearer {KEY}"


@pytest.mark.anyio
async def test_5xx_and_429_are_retried_with_backoff_and_retry_after(server: ChatServer) -> None:
    server.script(
        Reply(status=503, body="busy"),
        Reply(status=429, body="slow down", headers={"Retry-After": "3"}),
        says("ok"),
    )
    sleeps = Sleeps()
    assert await client(server.url, sleeps=sleeps).complete(BODY) == "ok"
    assert sleeps.seconds == [0.1, 3.0]  # 100 ms, then Retry-After beats 200 ms
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_retries_are_bounded_and_the_last_failure_is_reported(server: ChatServer) -> None:
    server.script(*[Reply(status=500, body=f"boom {KEY}")] * 3, says("never reached"))
    sleeps = Sleeps()
    with pytest.raises(ChatFailedError) as raised:
        await client(server.url, retries=2, sleeps=sleeps).complete(BODY)
    assert raised.value.reason == "http_error"
    assert raised.value.detail == "HTTP 500: boom *** (after 3 attempts)"
    assert sleeps.seconds == [0.1, 0.2]
    assert len(server.requests) == 3


@pytest.mark.anyio
async def test_a_4xx_is_not_retried(server: ChatServer) -> None:
    server.script(Reply(status=401, body='{"error": "bad key"}'), says("never reached"))
    with pytest.raises(ChatFailedError, match="HTTP 401") as raised:
        await client(server.url).complete(BODY)
    assert raised.value.output == '{"error": "bad key"}'
    assert len(server.requests) == 1


@pytest.mark.anyio
async def test_a_slow_answer_is_a_timeout_and_is_not_retried(server: ChatServer) -> None:
    server.script(says("late", delay_s=2.0), says("never reached"))
    with pytest.raises(ChatFailedError) as raised:
        await client(server.url, timeout_ms=300).complete(BODY)
    assert raised.value.reason == "timeout"
    assert raised.value.detail == "no answer within 0.3 s (attempt 1 of 3, not retried)"


@pytest.mark.anyio
async def test_a_refused_connection_is_retried_then_reported() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once the socket closes
    sleeps = Sleeps()
    with pytest.raises(ChatFailedError, match="connection failed") as raised:
        await client(f"http://127.0.0.1:{port}/v1", sleeps=sleeps).complete(BODY)
    assert raised.value.reason == "http_error"
    assert len(sleeps.seconds) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (Reply(body=chat_server.completion(None, refusal="no")), "refused"),
        (Reply(body="<html>proxy</html>"), "http_error"),
        (Reply(body='{"choices": []}'), "http_error"),
        (Reply(body=chat_server.completion(None)), "http_error"),
    ],
)
async def test_an_answer_without_content_is_a_failure(server: ChatServer, reply: Reply, reason: str) -> None:
    server.script(reply)
    with pytest.raises(ChatFailedError) as raised:
        await client(server.url).complete(BODY)
    assert raised.value.reason == reason
    assert raised.value.output == reply.body


def test_the_key_is_never_in_the_repr() -> None:
    shown = repr(client("http://127.0.0.1:1/v1"))
    assert KEY not in shown
    assert "***" in shown


def test_backoff_is_capped() -> None:
    chat = client("http://127.0.0.1:1/v1")
    assert chat._delay_ms(30, None) == BACKOFF_MS_MAX


STORED_KEY = "sk-unit-stored-key-789"
PASSPHRASE = "unit key store passphrase"  # noqa: S105 - a made-up test value


@pytest.fixture
def key_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> KeyStore:
    """A key file with the LLM key ``llm`` and the exchange key ``ex``, opened from the environment."""
    store = KeyStore(tmp_path / "keys.enc", scrypt_n=2**14)
    store.add(PASSPHRASE, exchange="llm", label="llm", api_key=STORED_KEY, api_secret="", permissions="read")
    store.add(
        PASSPHRASE, exchange="binance", label="ex", api_key="k" * 20, api_secret="s" * 20, permissions="read"
    )
    monkeypatch.setenv("TRADELEDGER_KEYS", str(store.path))
    monkeypatch.setenv("TRADELEDGER_KEYS_PASSPHRASE", PASSPHRASE)
    monkeypatch.setenv("TRADELEDGER_LLM_API_KEY", KEY)
    return store


def _endpoint(url: str, key_label: str | None) -> ChatEndpoint:
    return ChatEndpoint(base_url=url, timeout_ms=2000, retries=0, backoff_ms=100, key_label=key_label)


@pytest.mark.anyio
@pytest.mark.usefixtures("key_store")
async def test_connect_takes_the_key_from_the_store_when_a_label_is_given(server: ChatServer) -> None:
    server.script(says("stored"), says("environment"))
    assert await OpenAIChat.connect(_endpoint(server.url, "llm")).complete(BODY) == "stored"
    assert await OpenAIChat.connect(_endpoint(server.url, None)).complete(BODY) == "environment"
    assert [h["Authorization"] for h in server.headers] == [f"Bearer {STORED_KEY}", f"Bearer {KEY}"]


@pytest.mark.usefixtures("key_store")
def test_connect_refuses_an_exchange_key_or_an_unknown_label_naming_the_param() -> None:
    with pytest.raises(
        ParameterError, match=r"^--param key_label: key 'ex' is a binance exchange key"
    ) as raised:
        OpenAIChat.connect(_endpoint("http://127.0.0.1:1/v1", "ex"))
    assert "s" * 20 not in str(raised.value)
    with pytest.raises(ParameterError, match=r"^--param key_label: no key 'none'"):
        OpenAIChat.connect(_endpoint("http://127.0.0.1:1/v1", "none"))

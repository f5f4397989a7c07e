"""The port an agent asks a chat model through, and the failures it can report.

An agent serialises its whole request (model, messages, response format) to canonical JSON
bytes, and the transport sends exactly those bytes to ``{base_url}/chat/completions``. The
sha256 of the bytes is the decision's ``input_digest``: it covers every word the model saw and
nothing else (the API key travels in a header, never in the body).

Two transports implement the port: ``ledger.adapters.openai_chat.OpenAIChat`` (HTTP, with
timeout and bounded retries) and ``RecordedChat`` (an audit replay: answers from a run's
recorded decisions, matched by input digest, without opening a socket).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from ledger.domain.errors import LedgerError
from ledger.domain.events import DecisionMade, DecisionRejected, LedgerEvent

# Reasons a transport reports instead of an answer; an agent records them as DecisionRejected.
TIMEOUT = "timeout"
HTTP_ERROR = "http_error"
REFUSED = "refused"
NOT_RECORDED = "not_recorded"
TRANSPORT_REASONS = frozenset({TIMEOUT, HTTP_ERROR, REFUSED, NOT_RECORDED})


class ChatFailedError(LedgerError):
    """The chat model gave no usable answer: a timeout, an HTTP error, a refusal.

    ``reason`` is one of ``TRANSPORT_REASONS``; ``output`` is whatever the server sent (empty
    when nothing arrived), kept so that the record shows it.
    """

    def __init__(self, reason: str, detail: str, output: str = "") -> None:
        """Describe the failure; ``detail`` must never carry a secret."""
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.output = output


@dataclass(frozen=True, kw_only=True)
class ChatEndpoint:
    """Where and how patiently to ask: the server, a per-attempt limit, bounded retries.

    ``timeout_ms`` bounds one attempt (connecting included); up to ``retries`` more attempts
    follow a 429, a 5xx or a failed connection, after ``backoff_ms``, then twice that, and so
    on (a 429's ``Retry-After`` is honoured up to ``BACKOFF_MS_MAX`` of the adapter).
    ``key_label`` names the API key in the encrypted key store (a label, never the key); None
    leaves the key to the environment. A recorded transport ignores it.
    """

    base_url: str
    timeout_ms: int
    retries: int
    backoff_ms: int
    key_label: str | None = None


class ChatTransport(Protocol):
    """Sends one chat-completions request body and returns the answer's message content."""

    async def complete(self, body: bytes) -> str:
        """Return the content of the first choice's message.

        Raises:
            ChatFailedError: no answer arrived in time, the server answered an error, or the
                model refused.
        """
        ...


ChatConnector = Callable[[ChatEndpoint], ChatTransport]


def request_digest(body: bytes) -> str:
    """Return the hex sha256 of a request body: the decision's ``input_digest``."""
    return hashlib.sha256(body).hexdigest()


class RecordedChat:
    """A transport that serves a recorded run's answers and never opens a socket.

    Each recorded ``DecisionMade`` or ``DecisionRejected`` is filed under its input digest (in
    log order, so a prompt asked twice gets its answers in turn). A request whose digest was
    never recorded means the prompt differs from the recorded run's; it fails with reason
    ``not_recorded``, which the replay's event comparison then reports as the divergence.
    """

    def __init__(self, events: Iterable[LedgerEvent]) -> None:
        """File the decisions among ``events`` by input digest."""
        self._answers: dict[str, deque[DecisionMade | DecisionRejected]] = defaultdict(deque)
        for event in events:
            if isinstance(event, DecisionMade | DecisionRejected) and event.input_digest:
                self._answers[event.input_digest].append(event)

    def connect(self, endpoint: ChatEndpoint) -> RecordedChat:
        """Return this transport whatever the endpoint (a ``ChatConnector``)."""
        del endpoint  # a replay never talks to the recorded run's server
        return self

    async def complete(self, body: bytes) -> str:
        """Return the recorded answer to exactly ``body``, or re-raise the recorded failure.

        Raises:
            ChatFailedError: the recorded request failed (same reason, detail and output), or
                ``body`` was never asked in the recorded run (reason ``not_recorded``).
        """
        digest = request_digest(body)
        queue = self._answers.get(digest)
        if not queue:
            detail = f"no recorded answer for input sha256 {digest}; the prompt differs from the run's"
            raise ChatFailedError(NOT_RECORDED, detail)
        recorded = queue.popleft()
        if isinstance(recorded, DecisionRejected) and recorded.reason in TRANSPORT_REASONS:
            raise ChatFailedError(recorded.reason, recorded.detail, recorded.output)
        return recorded.output

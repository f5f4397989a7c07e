"""Binance's SIGNED-endpoint checks: API key header, HMAC-SHA256 signature, timestamp window.

Order of checks (as Binance answers a request with several faults): the ``X-MBX-APIKEY``
header (-2014 when missing or malformed, -2015 when unknown), then ``timestamp`` and
``signature`` being present (-1102), the signature (-1022), then the time window (-1021).

The signature is the lowercase hex HMAC-SHA256, keyed with the API secret, of Binance's
``totalParams``: the raw query string followed directly by the raw request body, each without
its ``signature=...`` pair (ccxt puts the signature last in whichever part carries the rest).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from ledger.adapters.exchange_sim.protocol import (
    API_KEY_FORMAT,
    API_KEY_REJECTED,
    INVALID_SIGNATURE,
    RECV_WINDOW_TOO_LARGE,
    TIMESTAMP_AHEAD,
    TIMESTAMP_OUTSIDE,
    BinanceError,
    mandatory,
)

# Binance's defaults: recvWindow 5000 ms when not sent, at most 60000 ms, and a request may be
# at most 1000 ms ahead of the server clock.
RECV_WINDOW_DEFAULT_MS = 5_000
RECV_WINDOW_MAX_MS = 60_000
AHEAD_MAX_MS = 1_000
# Why 128: Binance keys are 64 characters; any key up to twice that is compared with the
# account's, and only an empty or absurdly long header is "format invalid" (-2014).
API_KEY_LENGTH_MAX = 128


@dataclass(frozen=True)
class Credentials:
    """The one API key pair the simulated account accepts."""

    api_key: str
    api_secret: str


def check_signed(
    credentials: Credentials,
    api_key: str | None,
    raw_query: str,
    raw_body: str,
    params: Mapping[str, str],
    now_ms: int,
) -> None:
    """Accept a SIGNED request or raise Binance's refusal.

    Args:
        credentials: the account's key pair.
        api_key: the ``X-MBX-APIKEY`` header, or None when absent.
        raw_query: the query string exactly as received (still percent-encoded).
        raw_body: the request body exactly as received.
        params: the decoded parameters (body and query merged).
        now_ms: the server time in epoch milliseconds.

    Raises:
        BinanceError: -2014, -2015, -1102, -1022, -1131 or -1021.
    """
    if api_key is None or not api_key.strip() or len(api_key) > API_KEY_LENGTH_MAX:
        raise API_KEY_FORMAT.error()
    if not hmac.compare_digest(api_key.encode(), credentials.api_key.encode()):
        raise API_KEY_REJECTED.error()
    timestamp = _integer(params, "timestamp")
    signature = params.get("signature", "")
    if not signature:
        raise mandatory("signature").error()
    payload = _without_signature(raw_query) + _without_signature(raw_body)
    expected = hmac.new(credentials.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature.lower()):
        raise INVALID_SIGNATURE.error()
    window = RECV_WINDOW_DEFAULT_MS if "recvWindow" not in params else _integer(params, "recvWindow")
    if window > RECV_WINDOW_MAX_MS:
        raise RECV_WINDOW_TOO_LARGE.error()
    if timestamp >= now_ms + AHEAD_MAX_MS:
        raise TIMESTAMP_AHEAD.error()
    if now_ms - timestamp > window:
        raise TIMESTAMP_OUTSIDE.error()


def _integer(params: Mapping[str, str], name: str) -> int:
    text = params.get(name, "")
    if not text.isdigit():
        raise mandatory(name).error()
    return int(text)


def _without_signature(raw: str) -> str:
    if "signature=" not in raw:
        return raw
    return "&".join(pair for pair in raw.split("&") if not pair.startswith("signature="))


def sign(secret: str, payload: str) -> str:
    """Return Binance's signature of ``payload`` (for tests and tools that call the server)."""
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


__all__ = ["BinanceError", "Credentials", "check_signed", "sign"]

"""Seeded fault injection: what can go wrong between a client and a Binance-like venue.

Spec text (``--faults``), comma-separated ``key=value`` pairs, all optional::

    latency=50,timeout_after_accept=0.1,http5xx=0.05,rate_limit=0.02,malformed=0.05,seed=7

``latency``
    milliseconds added before every reply (public and signed).
``seed``
    seed of the draws (default 0).
``orders_only``
    1: draw faults only for new orders (``POST /api/v3/order``), so lookups, balances and
    cancels answer normally (how a test kills a process while an order's answer is in flight).
``hang_ms``
    how long a ``timeout_after_accept`` reply is held (default 15000, above ccxt's 10 s
    default timeout); the server gives up after that, so nothing waits forever.

Probabilities, each in [0, 1] and summing to at most 1, drawn once per SIGNED request (one
``numpy.random.default_rng(seed)`` uniform per request, compared against the rates in the order
below), so the same seed and the same request order give the same faults:

``rate_limit``   429 ``{"code":-1003,...}`` with ``Retry-After``; the request is not executed.
``ban``          418 ``{"code":-1003,"msg":"Way too much request weight used; IP banned..."}``;
                 not executed.
``http5xx``      503 with the plain-text body ``Service Unavailable.`` (a front end with no
                 backend); not executed.
``http500``      500 ``{"code":-1001,"msg":"Internal error; unable to process your request.
                 Please try again."}``; not executed.
``timeout_after_accept``  executed (an order is recorded and matched), then the reply is held
                 ``hang_ms``: the client times out without knowing the order exists.
``drop``         executed, then the connection is closed without a reply.
``malformed``    executed, then the JSON reply is cut in half (a truncated body).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import numpy as np

from ledger.domain.errors import ParameterError

RATE_KEYS = ("rate_limit", "ban", "http5xx", "http500", "timeout_after_accept", "drop", "malformed")
HANG_MS_DEFAULT = 15_000
# Why a cap: a hang or a latency past ten minutes is a typo, and every wait must be bounded.
WAIT_MS_MAX = 600_000


@dataclass(frozen=True)
class FaultSpec:
    """Fault rates and delays (see the module docstring); all zero means no faults."""

    latency: int = 0
    orders_only: int = 0
    hang_ms: int = HANG_MS_DEFAULT
    seed: int = 0
    rate_limit: float = 0.0
    ban: float = 0.0
    http5xx: float = 0.0
    http500: float = 0.0
    timeout_after_accept: float = 0.0
    drop: float = 0.0
    malformed: float = 0.0

    def __post_init__(self) -> None:
        for key in RATE_KEYS:
            rate = getattr(self, key)
            if not (math.isfinite(rate) and 0.0 <= rate <= 1.0):
                msg = f"--faults: {key}={rate} is not a probability; give a number from 0 to 1"
                raise ParameterError(msg)
        total = sum(getattr(self, key) for key in RATE_KEYS)
        if total > 1.0:
            msg = f"--faults: the rates add up to {total:g}, more than 1; lower some of them"
            raise ParameterError(msg)
        for key in ("latency", "hang_ms"):
            value = getattr(self, key)
            if not 0 <= value <= WAIT_MS_MAX:
                msg = f"--faults: {key}={value} ms is out of range; give 0 to {WAIT_MS_MAX} milliseconds"
                raise ParameterError(msg)


def parse_faults(text: str | None) -> FaultSpec:
    """Return the spec of ``text`` (``key=value,...``); None or blank means no faults.

    Raises:
        ParameterError: an unknown key, a repeated key, or a value that is not a number in range.
    """
    if text is None or not text.strip():
        return FaultSpec()
    known = {f.name: f.type for f in fields(FaultSpec)}
    values: dict[str, int | float] = {}
    for part in text.split(","):
        key, sep, raw = (s.strip() for s in part.partition("="))
        if not sep or key not in known:
            msg = f"--faults: {part.strip()!r} is not key=value with a key among {', '.join(known)}"
            raise ParameterError(msg)
        if key in values:
            msg = f"--faults: {key} is given twice; give each key once"
            raise ParameterError(msg)
        values[key] = _number(key, raw, integer=key not in RATE_KEYS)
    return FaultSpec(**values)  # type: ignore[arg-type]  # keys and types checked above


def _number(key: str, raw: str, *, integer: bool) -> int | float:
    try:
        return int(raw) if integer else float(raw)
    except ValueError as e:
        kind = "a whole number" if integer else "a probability from 0 to 1"
        msg = f"--faults: {key}={raw!r} is not a number; give {kind}"
        raise ParameterError(msg) from e


class FaultInjector:
    """Draws the fault of each signed request from a seeded generator.

    Args:
        spec: the fault rates and delays.
    """

    def __init__(self, spec: FaultSpec) -> None:
        self.spec = spec
        self._rng = np.random.default_rng(spec.seed)
        self.counts: dict[str, int] = dict.fromkeys(RATE_KEYS, 0)

    def draw(self) -> str | None:
        """Return the fault for the next signed request (a ``RATE_KEYS`` name) or None."""
        if not any(getattr(self.spec, key) for key in RATE_KEYS):
            return None
        u = float(self._rng.random())
        edge = 0.0
        for key in RATE_KEYS:
            edge += getattr(self.spec, key)
            if u < edge:
                self.counts[key] += 1
                return key
        return None

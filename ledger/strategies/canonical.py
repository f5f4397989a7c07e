"""Canonical JSON for rule-based decision sources: what they saw (digested) and what they said."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

# One encoder for every call: ``json.dumps(..., sort_keys=True)`` builds a new one each time,
# which cost more than the encoding on a backtest's decision path. Same bytes.
_CANONICAL = json.JSONEncoder(sort_keys=True)


def canonical_json(value: Mapping[str, object]) -> str:
    """Return ``value`` as canonical JSON text: keys sorted, ``json.dumps``'s separators."""
    return _CANONICAL.encode(value)


def input_digest(seen: Mapping[str, object]) -> str:
    """Return the sha256 hex digest of what a rule-based source saw, as canonical JSON."""
    return hashlib.sha256(_CANONICAL.encode(seen).encode()).hexdigest()

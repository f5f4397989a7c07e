"""Deterministic identifiers: stream ids are uuid5 of natural keys."""

from __future__ import annotations

from functools import lru_cache
from uuid import UUID, uuid5

# Why a fixed namespace: every id below is a pure function of its natural key, so two runs
# with the same inputs and seed name every stream the same way (determinism contract).
LEDGER_NAMESPACE = UUID("6f1c7e0a-3b5d-5a8e-9c2f-4d7b1e0a9c31")

# The kill switch belongs to the whole ledger, not to one run: its events live in this stream.
CONTROL_RUN_ID = uuid5(LEDGER_NAMESPACE, "control")


# Why cached: the engine names a run's stream for every event it writes and an order's for
# each of its four to six events; uuid5 (a sha1) was a tenth of a backtest's CPU. 4096 keeps
# every working order of a session and the runs of a sweep.
@lru_cache(maxsize=4096)
def run_stream_id(run_id: UUID) -> UUID:
    """Return the stream id of a run's trading session."""
    return uuid5(LEDGER_NAMESPACE, f"run:{run_id}")


@lru_cache(maxsize=4096)
def order_stream_id(client_order_id: str) -> UUID:
    """Return the stream id of one client order."""
    return uuid5(LEDGER_NAMESPACE, f"order:{client_order_id}")


def run_id_for(natural_key: str) -> UUID:
    """Return the run id for a natural key (inputs digest, seed and attempt number)."""
    return uuid5(LEDGER_NAMESPACE, f"run-id:{natural_key}")

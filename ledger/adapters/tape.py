"""Market-data tapes: every bar a paper or live session saw, and when, one JSON line each.

A tape is a file beside the ledger (``<ledger>.tapes/<run id>.jsonl``), not events: tapes are
bulky and have a retention policy, while the log is never deleted. The run records the tape's
name, sha256 and bar count (``MarketTapeRecorded``), so a replay can prove it reads the very
bytes the session wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from ledger.application.candles import Bar


class JsonlTape:
    """Append bars to a tape file; ``close`` returns its name, digest and length."""

    def __init__(self, folder: Path, name: str) -> None:
        """Create (or truncate) ``folder/name``."""
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / name
        self._handle = self.path.open("wb")
        self._digest = hashlib.sha256()
        self._bars = 0

    def write(self, bar: Bar, seen_at: datetime, *, history: bool = False) -> None:
        """Append one bar with the moment the session saw it (flushed: a crash keeps it).

        ``history`` marks the bars fetched at start-up to warm the strategy up, on which the
        session did not decide.
        """
        record = {
            "history": history,
            "open_ms": bar.open_ms,
            "open": str(bar.open),
            "high": str(bar.high),
            "low": str(bar.low),
            "close": str(bar.close),
            "volume": str(bar.volume),
            "seen_at": seen_at.isoformat(),
        }
        line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        self._handle.write(line)
        self._handle.flush()
        self._digest.update(line)
        self._bars += 1

    def close(self) -> tuple[str, str, int]:
        """Sync and close the file; return (name, sha256, bars)."""
        os.fsync(self._handle.fileno())
        self._handle.close()
        return self.path.name, self._digest.hexdigest(), self._bars


def read_tape(path: Path) -> list[tuple[Bar, bool]]:
    """Return a tape's bars and their history flags, in the order they were written.

    Raises:
        ValueError: a line is not a tape record (the caller checks the file's digest first).
    """
    rows = []
    for line in path.read_text().splitlines():
        r = json.loads(line)
        bar = Bar(
            open_ms=int(r["open_ms"]),
            open=Decimal(r["open"]),
            high=Decimal(r["high"]),
            low=Decimal(r["low"]),
            close=Decimal(r["close"]),
            volume=Decimal(r["volume"]),
        )
        rows.append((bar, bool(r.get("history", False))))
    return rows

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

    def write(self, bar: Bar, seen_at: datetime) -> None:
        """Append one bar with the moment the session saw it (flushed: a crash keeps it)."""
        record = {
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

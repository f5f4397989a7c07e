"""Slices of the bundled real BTC/USDT 1m sample for tests: its rows, or a CSV of its first bars."""

from __future__ import annotations

import gzip
from pathlib import Path

from ledger.bootstrap import bundled_sample


def sample_rows(bars: int) -> list[str]:
    """Return the sample's header line and its first ``bars`` rows, without line ends."""
    return gzip.decompress(bundled_sample().read_bytes()).decode().split("\n")[: bars + 1]


def write_sample(path: Path, bars: int) -> Path:
    """Write the sample's header and first ``bars`` rows to ``path`` as a CSV; return the path."""
    path.write_text("\n".join(sample_rows(bars)) + "\n")
    return path

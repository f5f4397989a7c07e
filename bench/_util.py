"""Small helpers shared by the bench scripts (medians, percentiles, real candles, machine note)."""

from __future__ import annotations

import gzip
import os
import platform
import statistics
import sys
from pathlib import Path

SHARED = Path(os.environ.get("TRADELEDGER_SHARED", "/work/shared"))
REAL_1M = SHARED / "data" / "candles" / "binance_spot_BTCUSDT_1m_20250520_20250818.csv.gz"
SYNTH_TOOL = SHARED / "data" / "tools" / "gen_synthetic_1m.py"
PG_URL_DEFAULT = os.environ.get("TRADELEDGER_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")


def median(values: list[float]) -> float:
    """Return the median of ``values``."""
    return statistics.median(values)


def percentile(sorted_values: list[float], q: float) -> float:
    """Return the ``q`` quantile (0..1) of already-sorted values, nearest-rank."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def real_closes() -> list[tuple[int, str, str]]:
    """Return (open time ms, open, close) strings of every bar of the real BTC/USDT 1m file."""
    rows: list[tuple[int, str, str]] = []
    with gzip.open(REAL_1M, "rt") as f:
        header = f.readline().strip().split(",")
        it, io, ic = header.index("timestamp"), header.index("open"), header.index("close")
        for line in f:
            fields = line.rstrip("\n").split(",")
            rows.append((int(fields[it]), fields[io], fields[ic]))
    return rows


def machine_note() -> str:
    """Return a one-line description of the machine the figures come from."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import sqlite3  # noqa: PLC0415

    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, {platform.system()} {platform.release()}"
    )


def table(rows: list[list[str]], header: list[str]) -> str:
    """Return a GitHub-markdown table."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("| " + " | ".join("-" * w for w in widths) + " |")
    out.extend(
        "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows
    )
    return "\n".join(out)


def say(text: str = "") -> None:
    """Print and flush (progress lines appear while long benchmarks run)."""
    print(text, flush=True)
    sys.stdout.flush()

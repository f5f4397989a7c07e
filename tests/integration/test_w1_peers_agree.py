"""bench/w1_peers.py: each peer engine, run as the bench runs it, agrees with the ledger.

Every engine child of the bench script runs W1 on the first 5,000 bars of the bundled real
sample; each must report the ledger's number of fills and a final equity within 0.01 USDT
of the ledger's exact one (the bench's own agreement rule). Needs the ``bench`` extra (the
peers are not test dependencies): an engine that is not installed is skipped with a reason.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.bootstrap import bundled_sample

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "bench" / "w1_peers.py"
BARS = 5000
PEERS = {"numpy": "numpy", "backtesting": "backtesting", "backtrader": "backtrader", "vectorbt": "vectorbt"}


@pytest.fixture(scope="module")
def candles(tmp_path_factory):
    path = tmp_path_factory.mktemp("w1peers") / "w1_slice.csv"
    with gzip.open(bundled_sample(), "rt") as src, path.open("w") as out:
        for i, line in enumerate(src):
            if i > BARS:
                break
            out.write(line)
    return path


def run_child(engine: str, data: Path) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--child", engine, str(data)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.fixture(scope="module")
def ledger_result(candles):
    return run_child("tradeledger", candles)


def test_the_slice_trades(ledger_result) -> None:
    assert ledger_result["fills"] >= 100  # enough round trips for the comparison to mean something
    assert ledger_result["maxrss_mb"] > 0
    assert ledger_result["engine"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("engine", sorted(PEERS))
def test_peer_reports_the_ledgers_fills_and_equity(engine, candles, ledger_result) -> None:
    pytest.importorskip(PEERS[engine], reason=f"{engine} comes with the bench extra")
    peer = run_child(engine, candles)
    assert peer["fills"] == ledger_result["fills"]
    assert abs(Decimal(peer["equity"]) - Decimal(ledger_result["equity"])) <= Decimal("0.01")

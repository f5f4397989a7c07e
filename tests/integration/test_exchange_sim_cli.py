"""`tradeledger exchange-sim` serves the Binance protocol on 127.0.0.1 and refuses bad options."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310 - http://127.0.0.1 only
        return json.loads(reply.read())  # type: ignore[no-any-return]


def test_the_command_serves_time_and_the_recorded_markets_until_interrupted(
    tmp_path: Path, tradeledger_argv
) -> None:
    port = _free_port()
    server = subprocess.Popen(
        [*tradeledger_argv, "exchange-sim", "--port", str(port), "--api-key", "k", "--api-secret", "s"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                served = _get(f"http://127.0.0.1:{port}/api/v3/time")
                break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "exchange-sim did not answer in time"
                time.sleep(0.1)
        info = _get(f"http://127.0.0.1:{port}/api/v3/exchangeInfo")
        server.send_signal(signal.SIGINT)
        server.communicate(timeout=20)
    finally:
        server.kill()

    assert isinstance(served["serverTime"], int)
    symbols = {s["symbol"]: s for s in info["symbols"]}  # type: ignore[attr-defined]
    lot = next(f for f in symbols["BTCUSDT"]["filters"] if f["filterType"] == "LOT_SIZE")
    assert lot["stepSize"] == "0.00001000"
    assert server.returncode == 0


def test_a_bad_fault_spec_is_bad_input_naming_faults(cli) -> None:
    code, _, err = cli(
        "exchange-sim", "--port", "1", "--api-key", "k", "--api-secret", "s", "--faults", "x=1"
    )

    assert code == 2
    assert err.startswith("--faults")

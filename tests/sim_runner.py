"""Starting and stopping `tradeledger exchange-sim` for tests (a real process on 127.0.0.1).

One launcher for every test module that needs the local exchange: it picks a free port,
waits (bounded) until the server answers `/api/v3/ping`, and stops it with SIGINT, then
SIGKILL if it lingers.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_sim(
    argv: Sequence[str],
    cwd: Path,
    *options: str,
    key: str = "k",
    secret: str = "s",  # noqa: S107 - the local sim's test key
) -> Iterator[str]:
    """Run ``tradeledger exchange-sim`` with ``options``; yield its base URL (``http://127.0.0.1:P``)."""
    port = free_port()
    server = subprocess.Popen(
        [*argv, "exchange-sim", "--port", str(port), "--api-key", key, "--api-secret", secret, *options],
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{base}/api/v3/ping", timeout=5):  # noqa: S310 - 127.0.0.1
                    break
            except OSError:
                assert server.poll() is None, server.communicate()[1]
                assert time.monotonic() < deadline, "exchange-sim did not answer in time"
                time.sleep(0.1)
        yield base
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.communicate(timeout=STOP_TIMEOUT_S)
        finally:
            server.kill()

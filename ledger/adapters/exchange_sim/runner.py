"""Start and stop the simulated exchange: a blocking CLI entry, a coroutine, a test helper.

- ``main_exchange_sim(port, api_key, api_secret, data_dir, faults)``: what
  ``tradeledger exchange-sim`` calls; validates everything, then serves until Ctrl-C.
- ``serve(host, port, api_key, api_secret, ...)``: a coroutine that serves until cancelled.
- ``running_exchange_sim(...)``: an async context manager that serves on a free port of
  127.0.0.1 in the current event loop and yields a ``RunningExchangeSim`` (its ``api_url`` is
  what ccxt's ``urls['api']['public'|'private']`` should be); leaving it stops the server within
  ``SHUTDOWN_TIMEOUT_S``.

The market clock advances by itself at ``speed`` bars per bar interval of wall time (1: real
time, 60: a one-minute bar per second, 0: only ``POST /sim/advance`` moves it).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from ledger.adapters.exchange_sim.auth import Credentials
from ledger.adapters.exchange_sim.faults import FaultSpec, parse_faults
from ledger.adapters.exchange_sim.server import build_app
from ledger.adapters.exchange_sim.venue import WEIGHT_LIMIT_DEFAULT, Venue
from ledger.domain.errors import ParameterError

HOST_DEFAULT = "127.0.0.1"
# Why short: a held (timeout_after_accept) reply must not keep a test's teardown waiting.
SHUTDOWN_TIMEOUT_S = 1.0
SPEED_DEFAULT = 1.0
PORT_MAX = 65_535


@dataclass(frozen=True)
class RunningExchangeSim:
    """A server started by ``running_exchange_sim``."""

    venue: Venue
    host: str
    port: int

    @property
    def base_url(self) -> str:
        """Return ``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    @property
    def api_url(self) -> str:
        """Return the Binance spot REST base, ``http://host:port/api/v3``."""
        return f"{self.base_url}/api/v3"


def make_venue(  # noqa: PLR0913 - the CLI's options plus the test knobs, keyword-only
    api_key: str,
    api_secret: str,
    *,
    data_dir: str | Path | None = None,
    faults: str | FaultSpec | None = None,
    balances: Mapping[str, str] | None = None,
    fee_rate: str = "0.001",
    seed: int = 0,
    start_bar: int = 0,
    weight_limit: int | None = None,
) -> Venue:
    """Return a venue after checking every input.

    Raises:
        ParameterError: an empty key or secret, a bad fault spec, balance or fee rate.
        DataFileError: an unusable data directory or candle file.
    """
    if not api_key.strip():
        msg = "--api-key is empty; give the API key clients will send in X-MBX-APIKEY"
        raise ParameterError(msg)
    if not api_secret.strip():
        msg = "--api-secret is empty; give the secret clients will sign requests with"
        raise ParameterError(msg)
    spec = faults if isinstance(faults, FaultSpec) else parse_faults(faults)
    return Venue(
        Credentials(api_key, api_secret),
        data_dir=None if data_dir is None else Path(data_dir),
        faults=spec,
        balances=balances,
        fee_rate=fee_rate,
        seed=seed,
        start_bar=start_bar,
        weight_limit=WEIGHT_LIMIT_DEFAULT if weight_limit is None else weight_limit,
    )


@contextlib.asynccontextmanager
async def _started(venue: Venue, host: str, port: int) -> AsyncIterator[int]:
    runner = web.AppRunner(
        build_app(venue), shutdown_timeout=SHUTDOWN_TIMEOUT_S, handler_cancellation=True, access_log=None
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        address = runner.addresses[0]
        yield int(address[1])
    finally:
        async with asyncio.timeout(SHUTDOWN_TIMEOUT_S * 5):
            await runner.cleanup()


async def _replay(venue: Venue, speed: float) -> None:
    if speed <= 0:
        return
    pause_s = venue.replay.step_ms / 1000 / speed
    while True:
        await asyncio.sleep(pause_s)
        if venue.engine.advance(1, venue.now_ms()) == 0:
            return


@contextlib.asynccontextmanager
async def running_exchange_sim(
    venue: Venue, *, host: str = HOST_DEFAULT, port: int = 0, speed: float = 0.0
) -> AsyncIterator[RunningExchangeSim]:
    """Serve ``venue`` in this event loop (port 0: a free one) while the block runs."""
    async with _started(venue, host, port) as bound:
        replay = asyncio.create_task(_replay(venue, speed))
        try:
            yield RunningExchangeSim(venue, host, bound)
        finally:
            replay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await replay


async def serve(  # noqa: PLR0913 - mirrors the CLI command's options
    host: str,
    port: int,
    api_key: str,
    api_secret: str,
    data_dir: str | Path | None = None,
    faults: str | FaultSpec | None = None,
    *,
    speed: float = SPEED_DEFAULT,
    balances: Mapping[str, str] | None = None,
    seed: int = 0,
) -> None:
    """Serve a fresh simulated account on ``host:port`` until cancelled.

    Raises:
        ParameterError: a bad option (see ``make_venue``).
        DataFileError: an unusable data directory or candle file.
    """
    venue = make_venue(api_key, api_secret, data_dir=data_dir, faults=faults, balances=balances, seed=seed)
    await _serve_venue(venue, host, port, speed)


async def _serve_venue(venue: Venue, host: str, port: int, speed: float) -> None:
    async with running_exchange_sim(venue, host=host, port=port, speed=speed) as running:
        sys.stderr.write(
            f"exchange-sim: Binance spot REST on {running.api_url} "
            f"({', '.join(venue.replay.series)}; Ctrl-C stops)\n"
        )
        await asyncio.Event().wait()


def main_exchange_sim(  # noqa: PLR0913 - the CLI command's options
    port: int,
    api_key: str,
    api_secret: str,
    data_dir: str | Path | None,
    faults: str | None,
    *,
    speed: float = SPEED_DEFAULT,
    start_bar: int = 0,
) -> None:
    """Run ``tradeledger exchange-sim`` on 127.0.0.1 until interrupted.

    ``speed`` is bars per bar interval of wall time (60: a one-minute bar every second; 0: the
    market moves only through ``POST /sim/advance``); ``start_bar`` is the first bar served.

    Raises:
        ParameterError: a bad port, key, secret, speed or fault spec (before anything listens).
        DataFileError: an unusable data directory or candle file.
    """
    if not 0 < port <= PORT_MAX:
        msg = f"--port {port} is out of range; give a port from 1 to {PORT_MAX}"
        raise ParameterError(msg)
    if not speed >= 0:
        msg = f"--speed {speed} is negative; give bars per bar interval, e.g. 60, or 0 to step by hand"
        raise ParameterError(msg)
    venue = make_venue(api_key, api_secret, data_dir=data_dir, faults=faults, start_bar=start_bar)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve_venue(venue, HOST_DEFAULT, port, speed))

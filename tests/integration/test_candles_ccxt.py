"""ccxt candles: the real ccxt client pages through the local exchange sim's klines into the cache.

The sim replays the bundled sample, so the cached file must hold exactly the sample's rows.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from ledger.adapters.candles_ccxt import cache_file, download_to_cache, parse_ccxt_source
from ledger.adapters.candles_files import load_candles
from ledger.adapters.exchange_sim import make_venue, running_exchange_sim
from ledger.domain.errors import DataFileError, ParameterError
from sample_data import sample_rows

pytestmark = pytest.mark.anyio

# 2160 one-minute bars: three klines pages of at most 1000.
SOURCE = "ccxt:binance:BTC/USDT:1m:2025-05-20:2025-05-21T12:00"
BARS = 2160
NOW_MS = 1_800_000_000_000  # 2027: every range in the sample has ended


async def test_a_range_is_fetched_once_and_then_read_from_the_cache(tmp_path: Path) -> None:
    source = parse_ccxt_source(SOURCE)
    async with running_exchange_sim(make_venue("k", "s", start_bar=3000)) as sim:
        path, fetched = await download_to_cache(
            source, cache_dir=tmp_path, exchange_url=sim.base_url, now_ms=lambda: NOW_MS
        )
        url = sim.base_url
    # The server is gone: the second call can only succeed from the cache.
    again, fetched_again = await download_to_cache(
        source, cache_dir=tmp_path, exchange_url=url, now_ms=lambda: NOW_MS
    )

    assert (fetched, fetched_again) == (True, False)
    assert again == path == cache_file(source, tmp_path, url)
    lines = gzip.decompress(path.read_bytes()).decode().split("\n")
    assert lines[:-1] == sample_rows(BARS)  # byte for byte the recorded rows
    assert lines[-1] == ""
    assert len(load_candles(path)) == BARS
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


async def test_a_range_the_server_has_not_reached_is_not_cached(tmp_path: Path) -> None:
    source = parse_ccxt_source(SOURCE)
    # The sim's market clock stands at bar 1000: the last 1160 bars of the range are not served.
    async with running_exchange_sim(make_venue("k", "s", start_bar=1000)) as sim:
        with pytest.raises(
            DataFileError, match=r"last BTC/USDT bar in the range opens at 2025-05-20 16:40 UTC"
        ):
            await download_to_cache(
                source, cache_dir=tmp_path, exchange_url=sim.base_url, now_ms=lambda: NOW_MS
            )

    assert list(tmp_path.rglob("*")) == []


async def test_a_range_before_the_data_starts_is_refused(tmp_path: Path) -> None:
    source = parse_ccxt_source("ccxt:binance:BTC/USDT:1m:2025-05-19T23:00:2025-05-20T01:00")
    async with running_exchange_sim(make_venue("k", "s", start_bar=3000)) as sim:
        with pytest.raises(
            DataFileError, match="first BTC/USDT bar in the range opens at 2025-05-20 00:00 UTC"
        ):
            await download_to_cache(
                source, cache_dir=tmp_path, exchange_url=sim.base_url, now_ms=lambda: NOW_MS
            )

    assert list(tmp_path.rglob("*.csv.gz")) == []


async def test_an_unlisted_symbol_is_refused(tmp_path: Path) -> None:
    source = parse_ccxt_source("ccxt:binance:DOGE/EUR:1m:2025-05-20:2025-05-21")
    async with running_exchange_sim(make_venue("k", "s")) as sim:
        with pytest.raises(ParameterError, match="binance does not list DOGE/EUR"):
            await download_to_cache(
                source, cache_dir=tmp_path, exchange_url=sim.base_url, now_ms=lambda: NOW_MS
            )


async def test_a_range_ending_in_the_future_is_refused_before_any_request(tmp_path: Path) -> None:
    source = parse_ccxt_source(SOURCE)

    with pytest.raises(ParameterError, match="ends after now"):
        await download_to_cache(
            source, cache_dir=tmp_path, exchange_url="http://127.0.0.1:9", now_ms=lambda: source.end_ms - 1
        )


async def test_an_unreachable_server_is_one_clear_error(tmp_path: Path) -> None:
    source = parse_ccxt_source(SOURCE)

    with pytest.raises(DataFileError, match=r"cannot reach http://127\.0\.0\.1:9 .*check --exchange-url"):
        await download_to_cache(
            source, cache_dir=tmp_path, exchange_url="http://127.0.0.1:9", now_ms=lambda: NOW_MS
        )


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("ccxt:binance:BTC/USDT:1m:2025-05-20", "is not a ccxt source"),
        ("ccxt:nosuchx:BTC/USDT:1m:2025-05-20:2025-05-21", "no exchange 'nosuchx'"),
        ("ccxt:binance:BTC/USDT:1m:2025-05-21:2025-05-20", "END must be after START"),
        ("ccxt:binance:BTC/USDT:1m:2025-02-30:2025-03-01", "'2025-02-30' is not a date"),
        ("ccxt:binance:btc/usdt:1m:2025-05-20:2025-05-21", "is not a ccxt source"),
    ],
)
def test_malformed_sources_are_refused(text: str, fragment: str) -> None:
    with pytest.raises(ParameterError) as refused:
        parse_ccxt_source(text)

    assert fragment in str(refused.value)
    assert str(refused.value).startswith("--data: ")


def test_cache_paths_name_the_exchange_server_symbol_and_range(tmp_path: Path) -> None:
    source = parse_ccxt_source(SOURCE)

    assert cache_file(source, tmp_path, None) == (
        tmp_path / "ccxt" / "binance" / "BTC-USDT_1m_20250520T0000Z_20250521T1200Z.csv.gz"
    )
    assert cache_file(source, tmp_path, "http://127.0.0.1:8123").parent.name == "binance@127.0.0.1_8123"
    assert source.text() == SOURCE

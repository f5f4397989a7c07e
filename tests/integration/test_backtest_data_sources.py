"""`tradeledger backtest --data` with Parquet files, gapped files and ccxt sources, end to end.

Each run goes through the installed command; replays re-read the recorded data file by digest.
"""

from __future__ import annotations

import gzip
import json
import urllib.request
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ledger.bootstrap import bundled_sample
from sample_data import sample_rows
from sim_runner import running_sim

MONEY_FIELDS = ("events", "orders", "fills", "equity_final", "pnl_realized", "fees")
CCXT_SOURCE = "ccxt:binance:BTC/USDT:1m:2025-05-20:2025-05-21T12:00"  # 2160 bars


def _json(result: Any) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


@pytest.mark.slow
def test_a_parquet_copy_of_the_sample_gives_the_same_run_and_replays(cli, tmp_path: Path) -> None:
    csv_path = tmp_path / "sample.csv"
    csv_path.write_bytes(gzip.decompress(bundled_sample().read_bytes()))
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv_path}', header=true, columns={{'timestamp':'BIGINT',"
            "'open':'DOUBLE','high':'DOUBLE','low':'DOUBLE','close':'DOUBLE','volume':'DOUBLE'})) "
            f"TO '{tmp_path / 'sample.parquet'}' (FORMAT parquet)"
        )

    from_csv = _json(cli("--ledger", "a.db", "backtest", "--json", cwd=tmp_path))
    from_parquet = _json(
        cli("--ledger", "b.db", "backtest", "--data", "sample.parquet", "--json", cwd=tmp_path)
    )
    replayed = cli("--ledger", "b.db", "replay", from_parquet["run_id"], "--json", cwd=tmp_path)

    assert {k: from_parquet[k] for k in MONEY_FIELDS} == {k: from_csv[k] for k in MONEY_FIELDS}
    assert from_csv["fills"] > 0
    assert from_parquet["data"]["source"] == "sample.parquet"
    assert (from_parquet["data"]["bars"], from_parquet["data"]["gaps"]) == (43_200, 0)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_gaps_are_refused_by_default_and_reported_when_allowed(cli, tmp_path: Path) -> None:
    rows = sample_rows(300)
    del rows[101:106]  # five missing minutes after 2025-05-20 01:39
    (tmp_path / "gapped.csv").write_text("\n".join(rows) + "\n")

    refused = cli("--ledger", "refused.db", "backtest", "--data", "gapped.csv", cwd=tmp_path)
    allowed = cli(
        "--ledger",
        "allowed.db",
        "backtest",
        "--data",
        "gapped.csv",
        "--gaps",
        "allow",
        "--json",
        cwd=tmp_path,
    )

    assert refused.returncode == 2
    assert refused.stderr.strip() == (
        "gapped.csv: 295 bars of 1m, 1 gap(s) with 5 missing bar(s); the largest is 5m after the "
        "bar opening 2025-05-20 01:39 UTC; pass --gaps allow to run on the bars as recorded, or "
        "choose a range without gaps"
    )
    assert not (tmp_path / "refused.db").exists()
    summary = _json(allowed)
    assert summary["data"]["gaps"] == 1
    assert summary["data"]["missing_bars"] == 5
    assert summary["data"]["largest_gap_ms"] == 300_000
    assert "1 gap(s) with 5 missing bar(s)" in allowed.stderr


def test_an_unknown_gap_policy_is_refused(cli, tmp_path: Path) -> None:
    result = cli("--ledger", "x.db", "backtest", "--gaps", "fill", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.strip() == "--gaps: 'fill' is not a gap policy; use refuse|allow"
    assert not (tmp_path / "x.db").exists()


def _advance(url: str) -> None:
    # The market clock starts at the first bar; move it past the range's end.
    request = urllib.request.Request(f"{url}/sim/advance?bars=3000", method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - http://127.0.0.1 only
        pass


@pytest.mark.slow
def test_a_ccxt_source_is_fetched_from_the_sim_then_read_from_the_cache(
    cli, tradeledger_argv, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    env = {"TRADELEDGER_CACHE": str(cache)}
    with running_sim(tradeledger_argv, tmp_path) as url:
        _advance(url)
        first = cli(
            "--ledger",
            "a.db",
            "backtest",
            "--data",
            CCXT_SOURCE,
            "--exchange-url",
            url,
            "--json",
            cwd=tmp_path,
            env=env,
        )
    # The server is gone: this run can only read the cache.
    second = cli(
        "--ledger",
        "b.db",
        "backtest",
        "--data",
        CCXT_SOURCE,
        "--exchange-url",
        url,
        "--json",
        cwd=tmp_path,
        env=env,
    )
    replayed = cli("--ledger", "a.db", "replay", _json(first)["run_id"], "--json", cwd=tmp_path, env=env)

    (cached,) = cache.rglob("*.csv.gz")
    assert gzip.decompress(cached.read_bytes()).decode().split("\n")[:-1] == sample_rows(2160)
    assert "downloaded to" in first.stderr
    assert "downloaded" not in second.stderr
    one, two = _json(first), _json(second)
    assert (one["run_id"], one["chain_head"]) == (two["run_id"], two["chain_head"])
    assert one["data"]["source"] == str(cached)
    assert one["data"]["bars"] == 2160
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr


def test_exchange_url_without_a_ccxt_source_is_refused(cli, tmp_path: Path) -> None:
    result = cli("--ledger", "x.db", "backtest", "--exchange-url", "http://127.0.0.1:9", cwd=tmp_path)

    assert result.returncode == 2
    assert result.stderr.startswith("--exchange-url: only a ccxt: --data source")
    assert not (tmp_path / "x.db").exists()

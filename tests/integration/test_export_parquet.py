"""`export RUN --format parquet`: the same events as the JSON-lines export, typed, queryable."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import duckdb

from ledger.bootstrap import BacktestRequest, run_backtest_request
from sample_data import write_sample


def test_parquet_export_holds_the_jsonl_export_row_for_row(cli, bundled_backtest, tmp_path: Path) -> None:
    ledger, summary = bundled_backtest
    run_id = summary["run_id"]
    target = tmp_path / "run.parquet"

    code, _, err = cli("--ledger", ledger, "export", run_id, "--format", "parquet", "--out", target)
    assert code == 0, err
    code, jsonl, err = cli("--ledger", ledger, "export", run_id, "--format", "jsonl")
    assert code == 0, err

    lines = [json.loads(line) for line in jsonl.splitlines()]
    con = duckdb.connect()
    rows = con.execute(
        "SELECT n, topic, hash_prev, hash, event::VARCHAR FROM read_parquet(?) ORDER BY n", [str(target)]
    ).fetchall()
    assert len(rows) == len(lines) == summary["events"]
    for (n, topic, hash_prev, digest, event), line in zip(rows, lines, strict=True):
        assert (n, topic, hash_prev, digest) == (line["n"], line["topic"], line["hash_prev"], line["hash"])
        assert json.loads(event) == line["event"]
    assert rows[-1][3] == summary["chain_head"]


def test_parquet_export_answers_sql_with_exact_fees(cli, bundled_backtest, tmp_path: Path) -> None:
    ledger, summary = bundled_backtest
    target = tmp_path / "run.parquet"
    code, _, err = cli(
        "--ledger", ledger, "export", summary["run_id"], "--format", "parquet", "--out", target
    )
    assert code == 0, err

    row = (
        duckdb.connect()
        .execute(
            "SELECT count(*), sum(CAST(event->>'fee' AS DECIMAL(38,18))) FROM read_parquet(?) "
            "WHERE topic = 'ledger.domain.events:OrderFilled'",
            [str(target)],
        )
        .fetchone()
    )

    assert row is not None
    fills, fees = row
    assert fills == summary["fills"]
    assert fees == Decimal(summary["fees"])


def test_duckdb_reads_a_folder_of_run_exports_as_one_log(cli, tmp_path: Path) -> None:
    """For logs too big for one file: one Parquet file per run, queried together by a glob."""
    data = write_sample(tmp_path / "first_day.csv", 1440)
    ledger = tmp_path / "two.db"
    runs = []
    for seed in (0, 1):
        result, store = run_backtest_request(
            BacktestRequest(ledger_url=str(ledger), data_path=data, seed=seed)
        )
        runs.append((str(result.run_id), result.events))
        store.close()
    folder = tmp_path / "exports"
    folder.mkdir()
    for run_id, _ in runs:
        code, _, err = cli(
            "--ledger", ledger, "export", run_id, "--format", "parquet", "--out", folder / f"{run_id}.parquet"
        )
        assert code == 0, err

    rows = (
        duckdb.connect()
        .execute(
            "SELECT filename, count(*) FROM read_parquet(?, filename = true) "
            "GROUP BY filename ORDER BY filename",
            [str(folder / "*.parquet")],
        )
        .fetchall()
    )

    assert sorted((Path(name).stem, n) for name, n in rows) == sorted(runs)

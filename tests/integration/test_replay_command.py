"""`tradeledger replay RUN`: every check agrees on an honest run; each kind of divergence is named.

Runs are real backtests of the bundled sample's first day. Divergences are made the way they
happen: an edited row (chain), a hand-edited DuckDB file (analytics), a stale or corrupted saved
projection (projection), a history whose fill disagrees with what its inputs produce, appended
with a valid chain (rerun and checkpoint). Edits go through the databases' own clients.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path
from typing import Any

import duckdb
import pytest

from factories import a_kill_switch_engaged, a_kill_switch_released
from ledger.adapters.store import open_store
from ledger.bootstrap import BacktestRequest, run_backtest_request
from ledger.domain.events import OrderFilled, RunCheckpointed
from ledger.domain.numbers import D
from sample_data import write_sample

EXIT_BAD_INPUT = 2
EXIT_INTEGRITY = 3
BARS = 1440


@pytest.fixture(scope="module")
def first_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("data") / "first_day.csv", BARS)


def _backtest(ledger: Path, data: Path) -> str:
    result, store = run_backtest_request(BacktestRequest(ledger_url=str(ledger), data_path=data))
    store.close()
    return str(result.run_id)


def _replay(cli, ledger: Path, run_id: str, *extra: str):
    code, out, err = cli("--ledger", ledger, "replay", run_id, "--json", *extra)
    return code, (json.loads(out) if out.strip() else None), err


def _status(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


def test_an_honest_backtest_replays_with_every_check_in_agreement(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    assert cli("--ledger", ledger, "query", "SELECT 1").returncode == 0  # the DuckDB file exists

    code, report, err = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == 0, err
    assert report["ok"] is True
    assert report["divergence"] is None
    assert _status(report) == dict.fromkeys(("chain", "checkpoint", "projection", "analytics", "rerun"), "ok")
    assert report["events"] == 266


def test_the_human_output_names_every_check(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)

    code, out, _ = cli("--ledger", ledger, "replay", run_id[:8], "--data", str(first_day))

    assert code == 0
    for name in ("chain", "checkpoint", "projection", "analytics", "rerun"):
        assert name in out
    assert "every check agrees" in out


def test_an_edited_row_is_a_chain_divergence_and_stops_the_replay(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    connection = sqlite3.connect(ledger)
    with connection:
        seq, state = connection.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%OrderFilled' ORDER BY rowid LIMIT 1"
        ).fetchone()
        connection.execute(
            "UPDATE stored_events SET state = ? WHERE rowid = ?",
            (state.replace(b'"fee_asset":"USDT"', b'"fee_asset":"BTC"'), seq),
        )
    connection.close()

    code, report, err = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == EXIT_INTEGRITY
    assert report["divergence"]["check"] == "chain"
    assert report["divergence"]["seq"] == seq
    assert report["divergence"]["event"] == "OrderFilled"
    assert set(_status(report).values()) == {"diverged", "skipped"}
    assert f"seq {seq}" in err


def test_an_edited_duckdb_row_is_an_analytics_divergence(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    assert cli("--ledger", ledger, "query", "SELECT 1").returncode == 0
    con = duckdb.connect(str(ledger.with_suffix(".duckdb")))
    [(seq,)] = con.execute("SELECT min(seq) FROM fills").fetchall()
    con.execute("UPDATE fills SET price = price + 1 WHERE seq = ?", [seq])
    con.close()

    code, report, _ = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == EXIT_INTEGRITY
    assert _status(report)["analytics"] == "diverged"
    assert {k: report["divergence"][k] for k in ("check", "event", "field", "seq")} == {
        "check": "analytics",
        "event": "fills",
        "field": "price",
        "seq": seq,
    }
    assert D(report["divergence"]["recorded"]) == D(report["divergence"]["replayed"]) + 1


def test_a_corrupted_saved_projection_is_a_projection_divergence(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    assert cli("--ledger", ledger, "sessions").returncode == 0
    assert cli("--ledger", ledger, "rebuild").returncode == 0  # the writer saves the portfolio
    connection = sqlite3.connect(ledger)
    with connection:
        (state,) = connection.execute(
            "SELECT state FROM projection_checkpoints WHERE name = 'portfolio'"
        ).fetchone()
        snapshot = json.loads(state)
        snapshot["runs"][0]["fills"] += 1
        connection.execute(
            "UPDATE projection_checkpoints SET state = ? WHERE name = 'portfolio'",
            (json.dumps(snapshot, separators=(",", ":")).encode(),),
        )
    connection.close()

    code, report, _ = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == EXIT_INTEGRITY
    assert _status(report)["projection"] == "diverged"
    assert report["divergence"]["check"] == "projection"
    assert report["divergence"]["field"] == "fills"


def test_a_fill_its_inputs_do_not_produce_is_named_at_its_own_row(
    cli, tmp_path: Path, first_day: Path
) -> None:
    """A history appended with a valid chain but a fill price the data never gave.

    The chain verifies; the re-run names the fill itself, which comes before the first
    checkpoint that also disagrees, so the report's divergence is the fill's row.
    """
    honest = tmp_path / "honest.db"
    _backtest(honest, first_day)
    source = open_store(str(honest), create=False)
    events = [e for _, e in source.read_log(0, 10_000)]
    source.close()
    third = [i for i, e in enumerate(events) if isinstance(e, OrderFilled)][2]
    fill = events[third]
    assert isinstance(fill, OrderFilled)
    events[third] = dataclasses.replace(fill, price=fill.price + D("0.01"))
    forged = tmp_path / "forged.db"
    store = open_store(str(forged), create=True)
    store.append(events)
    store.close()
    run_id = str(fill.run_id)

    code, report, err = _replay(cli, forged, run_id, "--data", str(first_day))

    assert code == EXIT_INTEGRITY
    assert _status(report)["chain"] == "ok"
    assert _status(report)["checkpoint"] == "diverged"
    assert _status(report)["rerun"] == "diverged"
    divergence = report["divergence"]
    assert (divergence["check"], divergence["seq"], divergence["event"], divergence["field"]) == (
        "rerun",
        third + 1,
        "OrderFilled",
        "price",
    )
    assert D(divergence["recorded"]) == D(divergence["replayed"]) + D("0.01")
    checkpoint_seq = next(i + 1 for i, e in enumerate(events) if isinstance(e, RunCheckpointed))
    assert checkpoint_seq > third + 1
    assert "OrderFilled.price" in err


def test_a_run_under_an_engaged_kill_switch_replays_with_the_switch_as_it_stood(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    writer = open_store(str(ledger), create=True)
    writer.append([a_kill_switch_engaged(reason="drill")])
    writer.close()
    run_id = _backtest(ledger, first_day)
    writer = open_store(str(ledger), create=False)
    writer.append([a_kill_switch_released()])  # released after the run: the replay must not care
    writer.close()

    code, report, err = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == 0, err
    assert _status(report)["rerun"] == "ok"


def test_the_bundled_sample_is_found_without_data(cli, bundled_backtest) -> None:
    code, report, err = _replay(cli, Path(bundled_backtest.ledger), bundled_backtest.summary["run_id"])

    assert code == 0, err
    assert "binance_spot_BTCUSDT_1m" in next(c["detail"] for c in report["checks"] if c["name"] == "rerun")


def test_a_missing_data_file_is_bad_input_naming_data(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)

    code, out, err = cli("--ledger", ledger, "replay", run_id, cwd=tmp_path / "..")

    assert code == EXIT_BAD_INPUT
    assert out == ""
    assert "--data" in err
    assert "first_day.csv" in err


def test_a_different_data_file_is_refused_by_digest(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    other = tmp_path / "other.csv"
    lines = first_day.read_text().splitlines()
    other.write_text("\n".join(lines[:-1]) + "\n")  # one bar short

    code, _, err = cli("--ledger", ledger, "replay", run_id, "--data", other)

    assert code == EXIT_BAD_INPUT
    assert "sha256" in err
    assert "--data" in err


def test_an_unknown_run_is_bad_input(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    _backtest(ledger, first_day)

    code, _, err = cli("--ledger", ledger, "replay", "ffffffff")

    assert code == EXIT_BAD_INPUT
    assert "ffffffff" in err


def test_replay_never_writes_to_the_ledger(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    run_id = _backtest(ledger, first_day)
    before = ledger.read_bytes()

    code, _, _ = _replay(cli, ledger, run_id, "--data", str(first_day))

    assert code == 0
    assert ledger.read_bytes() == before

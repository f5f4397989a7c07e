"""The command-line contract outside checks rely on (SPEC §4.1): names, JSON shapes, exit codes."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest

from ledger.domain.numbers import D

DECIMAL_TEXT = re.compile(r"-?\d+(\.\d+)?")
HEX_64 = re.compile(r"[0-9a-f]{64}")
UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(scope="module")
def ledger(bundled_backtest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the bundled backtest's ledger (the session's copy stays read-only)."""
    source = Path(bundled_backtest.ledger)
    directory = tmp_path_factory.mktemp("contract")
    for path in source.parent.iterdir():
        if path.name.startswith(source.stem):
            shutil.copyfile(path, directory / path.name)
    return directory / source.name


def _json(cli, ledger: Path, *args: str):
    code, out, err = cli("--ledger", ledger, *args)
    assert code == 0, err
    return json.loads(out)


def _is_decimal_text(value: object) -> bool:
    return isinstance(value, str) and DECIMAL_TEXT.fullmatch(value) is not None


def test_backtest_json_has_the_contract_keys(bundled_backtest) -> None:
    summary = bundled_backtest.summary

    assert UUID_TEXT.fullmatch(summary["run_id"])
    assert summary["mode"] == "backtest"
    for key in ("events", "orders", "fills"):
        assert isinstance(summary[key], int)
        assert not isinstance(summary[key], bool)
    assert summary["events"] > summary["orders"] >= summary["fills"] > 0
    for key in ("equity_final", "pnl_realized", "fees"):
        assert _is_decimal_text(summary[key]), (key, summary[key])
    assert HEX_64.fullmatch(summary["chain_head"])
    assert isinstance(summary["metrics"], dict)
    for key in ("return_total", "drawdown_max", "sharpe", "win_rate", "profit_factor", "trades", "exposure"):
        assert key in summary["metrics"]


def test_backtest_json_figures_agree_with_the_log(cli, ledger: Path, bundled_backtest) -> None:
    summary = bundled_backtest.summary
    code, out, err = cli("--ledger", ledger, "export", summary["run_id"], "--format", "jsonl")
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    topics = [line["topic"].rsplit(":", 1)[-1] for line in lines]
    fills = [line["event"] for line, topic in zip(lines, topics, strict=True) if topic == "OrderFilled"]

    assert len(lines) == summary["events"]
    assert topics.count("OrderPlaced") == summary["orders"]
    assert len(fills) == summary["fills"]
    assert lines[-1]["hash"] == summary["chain_head"]
    assert sum((D(f["fee"]) for f in fills), Decimal(0)) == D(summary["fees"])
    [ended] = [line["event"] for line, topic in zip(lines, topics, strict=True) if topic == "RunEnded"]
    assert D(ended["equity_final"]) == D(summary["equity_final"])
    assert [line["n"] for line in lines] == list(range(1, len(lines) + 1))


def test_sessions_json_lists_runs_newest_first(cli, tmp_path: Path, bundled_backtest) -> None:
    own = tmp_path / "ledger.db"
    source = Path(bundled_backtest.ledger)
    shutil.copyfile(source, own)
    code, out, err = cli(
        "--ledger", own, "backtest", "--seed", "3", "--param", "fast=5", "--param", "slow=20", "--json"
    )
    assert code == 0, err
    newer = json.loads(out)

    rows = _json(cli, own, "sessions", "--json")

    assert isinstance(rows, list)
    assert [r["run_id"] for r in rows] == [newer["run_id"], bundled_backtest.summary["run_id"]]
    for row in rows:
        assert {"run_id", "mode", "started_at", "events"} <= set(row)
        assert row["mode"] == "backtest"
        assert isinstance(row["events"], int)
        assert row["started_at"].startswith("2025-05-20T00:00:00")
    assert rows[0]["events"] == newer["events"]
    assert rows[1]["events"] == bundled_backtest.summary["events"]


def test_positions_mark_changes_unrealized_pnl_exactly(cli, ledger: Path, bundled_backtest) -> None:
    """pnl_unrealized = (mark - price_avg) x qty_open; equity = USDT total + qty_open x mark."""
    run_id = bundled_backtest.summary["run_id"]
    plain = _json(cli, ledger, "positions", run_id, "--json")
    marked = _json(cli, ledger, "positions", run_id, "--mark", "BTC/USDT=100000", "--json")

    [before] = plain["positions"]
    [after] = marked["positions"]
    qty, avg = D(before["qty_open"]), D(before["price_avg"])
    assert qty > 0, "the bundled run should end long so the mark matters"
    assert D(before["pnl_unrealized"]) == (D(before["price_mark"]) - avg) * qty
    assert D(after["price_mark"]) == D("100000")
    assert D(after["pnl_unrealized"]) == (D("100000") - avg) * qty
    assert after["qty_open"] == before["qty_open"]
    assert after["pnl_realized"] == before["pnl_realized"]
    usdt = next(b for b in marked["balances"] if b["asset"] == "USDT")
    assert D(marked["equity"]) == D(usdt["total"]) + qty * D("100000")
    assert D(plain["equity"]) == D(bundled_backtest.summary["equity_final"])
    assert marked["run_id"] == run_id


def test_query_json_returns_row_objects(cli, ledger: Path, bundled_backtest) -> None:
    summary = bundled_backtest.summary
    rows = _json(
        cli,
        ledger,
        "query",
        "SELECT count(*) AS n, sum(fee) AS fees FROM fills WHERE run_id = '" + summary["run_id"] + "'",
        "--json",
    )

    assert isinstance(rows, list)
    [row] = rows
    assert row["n"] == summary["fills"]
    assert D(str(row["fees"])) == D(summary["fees"])
    by_side = _json(
        cli, ledger, "query", "SELECT side, count(*) AS n FROM fills GROUP BY side ORDER BY side", "--json"
    )
    assert [r["side"] for r in by_side] == ["buy", "sell"]
    assert sum(r["n"] for r in by_side) == summary["fills"]


def test_query_json_lists_every_contract_table(cli, ledger: Path) -> None:
    for table in ("events", "orders", "fills", "positions", "balances", "equity", "decisions"):
        rows = _json(cli, ledger, "query", f"SELECT count(*) AS n FROM {table}", "--json")
        assert rows[0]["n"] > 0, table


def test_verify_exits_zero_on_an_intact_ledger(cli, ledger: Path, bundled_backtest) -> None:
    for args in (
        ["verify"],
        ["verify", bundled_backtest.summary["run_id"]],
        ["verify", bundled_backtest.summary["run_id"][:8]],
    ):
        code, out, err = cli("--ledger", ledger, *args)
        assert code == 0, err
        assert "intact" in out


def test_verify_exits_three_on_a_tampered_ledger(cli, ledger: Path, tmp_path: Path) -> None:
    tampered = tmp_path / "tampered.db"
    shutil.copyfile(ledger, tampered)
    with sqlite3.connect(tampered) as connection:
        rowid, state = connection.execute(
            "SELECT rowid, state FROM stored_events WHERE topic LIKE '%OrderFilled' ORDER BY rowid LIMIT 1"
        ).fetchone()
        edited = re.sub(rb'"fee":"[0-9.]+"', b'"fee":"0"', state, count=1)
        assert edited != state
        connection.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (edited, rowid))
    connection.close()

    code, _, err = cli("--ledger", tampered, "verify")

    assert "edited" in err
    assert code == 3


def test_export_to_a_file_equals_export_to_stdout(
    cli, ledger: Path, tmp_path: Path, bundled_backtest
) -> None:
    run_id = bundled_backtest.summary["run_id"]
    code, out, err = cli("--ledger", ledger, "export", run_id, "--format", "jsonl")
    assert code == 0, err
    target = tmp_path / "run.jsonl"

    code, out_file, err = cli("--ledger", ledger, "export", run_id, "--format", "jsonl", "--out", target)

    assert code == 0, err
    assert out_file == ""
    assert target.read_bytes() == out.encode()
    assert out.endswith("\n")


def test_export_by_unique_prefix_equals_export_by_full_id(cli, ledger: Path, bundled_backtest) -> None:
    run_id = bundled_backtest.summary["run_id"]
    _, full, _ = cli("--ledger", ledger, "export", run_id)
    code, prefix, err = cli("--ledger", ledger, "export", run_id[:8])

    assert code == 0, err
    assert prefix == full


@pytest.mark.parametrize(
    "command", [[], ["backtest"], ["sessions"], ["positions"], ["verify"], ["export"], ["query"], ["report"]]
)
def test_help_everywhere(cli, tmp_path: Path, command: list[str]) -> None:
    code, out, _ = cli(*command, "--help")

    assert code == 0
    assert "Usage" in out
    assert list(tmp_path.iterdir()) == []


def test_no_command_is_a_usage_error(cli) -> None:
    code, _, err = cli()

    assert code == 2
    assert "unexpected" not in err


def test_rebuild_drops_and_rebuilds_every_projection_identically(cli, tmp_path) -> None:
    ledger = tmp_path / "rb.db"
    code, out, err = cli("--ledger", ledger, "backtest", "--json")
    assert code == 0, err
    run_id = json.loads(out)["run_id"]
    sql = "SELECT side, count(*) AS n, sum(fee) AS fees FROM fills GROUP BY side ORDER BY side"
    reads = (("positions", "--json"), ("query", sql, "--json"), ("export", run_id))
    before = [cli("--ledger", ledger, *args) for args in reads]
    assert all(r.returncode == 0 for r in before)

    code, out, err = cli("--ledger", ledger, "rebuild")

    assert code == 0, err
    assert "rebuilt" in out
    assert (tmp_path / "rb.duckdb").exists()
    after = [cli("--ledger", ledger, *args) for args in reads]
    # Same positions and SQL answers from rebuilt projections; the log's export is unchanged.
    assert [r.stdout for r in after] == [r.stdout for r in before]

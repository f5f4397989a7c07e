"""The determinism contract (SPEC C7, STYLE §7): the same inputs and seed give the same history.

Two fresh ledgers that run the same backtest export byte-identical JSONL and end on the same
chain head; repeating the run inside one ledger takes a new (still reproducible) run id, and
every chain verifies.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest


def _backtest(cli, ledger: Path, *extra: str) -> dict[str, Any]:
    code, out, err = cli("--ledger", ledger, "backtest", "--seed", "7", *extra, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _export(cli, ledger: Path, run_id: str) -> str:
    code, out, err = cli("--ledger", ledger, "export", run_id, "--format", "jsonl")
    assert code == 0, err
    return out  # type: ignore[no-any-return]


@pytest.mark.slow
def test_same_inputs_and_seed_in_two_fresh_ledgers_export_identical_bytes(cli, tmp_path: Path) -> None:
    first_ledger, second_ledger = tmp_path / "a" / "one.db", tmp_path / "b" / "two.db"
    first_ledger.parent.mkdir()
    second_ledger.parent.mkdir()

    first = _backtest(cli, first_ledger)
    second = _backtest(cli, second_ledger)

    assert first["run_id"] == second["run_id"]
    assert first["chain_head"] == second["chain_head"]
    first_export = _export(cli, first_ledger, first["run_id"])
    assert first_export == _export(cli, second_ledger, second["run_id"])
    lines = first_export.splitlines()
    assert len(lines) == first["events"]
    assert json.loads(lines[-1])["hash"] == first["chain_head"]
    assert first == second  # every figure, metrics included


@pytest.mark.slow
def test_a_different_seed_or_input_changes_the_run_id(cli, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"
    base = _backtest(cli, ledger)
    code, out, err = cli("--ledger", ledger, "backtest", "--seed", "8", "--json")
    assert code == 0, err
    other = json.loads(out)

    assert other["run_id"] != base["run_id"]
    # The seed names ids only; the trading itself is the same.
    assert other["equity_final"] == base["equity_final"]
    assert other["chain_head"] != base["chain_head"]


@pytest.mark.slow
def test_repeating_a_run_in_one_ledger_takes_a_new_run_id_and_both_verify(cli, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.db"

    first = _backtest(cli, ledger)
    second = _backtest(cli, ledger)

    assert second["run_id"] != first["run_id"]
    assert second["equity_final"] == first["equity_final"]
    assert second["fills"] == first["fills"]
    for run_id in (first["run_id"], second["run_id"], None):
        args = ["--ledger", ledger, "verify"] + ([] if run_id is None else [run_id])
        code, out, err = cli(*args)
        assert code == 0, err
        assert "chain intact" in out
    code, out, err = cli("--ledger", ledger, "sessions", "--json")
    assert code == 0, err
    assert [row["run_id"] for row in json.loads(out)] == [second["run_id"], first["run_id"]]

    # The repeated run is itself reproducible: a fresh ledger that runs twice names it the same.
    again = tmp_path / "again.db"
    _backtest(cli, again)
    assert _backtest(cli, again)["run_id"] == second["run_id"]
    assert _export(cli, again, second["run_id"]) == _export(cli, ledger, second["run_id"])

"""The threshold rebalancer through the CLI on the bundled real sample: trades, record, replay."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from cli_runner import run_cli
from ledger.adapters.store import open_store
from ledger.domain.events import DecisionMade, OrderFilled, PriceMarked

ARGS = ["--strategy", "rebalance", "--param", "targets=BTC:0.6,CASH:0.4", "--param", "band=0.01"]


def test_a_rebalance_backtest_holds_its_target_band_and_replays_byte_for_byte(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"

    code, out, err = run_cli(["--ledger", ledger, "backtest", *ARGS, "--json"], cwd=tmp_path)

    assert code == 0, err
    summary = json.loads(out)
    assert summary["fills"] >= 5  # the first buy, then a trade each time BTC drifts a point
    store = open_store(str(ledger), create=False)
    try:
        events = [e for _, e in store.read_log(0, 100_000)]
    finally:
        store.close()
    decisions = [e for e in events if isinstance(e, DecisionMade)]
    assert len(decisions) == summary["fills"]
    assert decisions[0].rationale.startswith("BTC at 0 of equity vs target 0.6 (band 0.01): buy 6000 worth")
    assert all('"weight_target": "0.6"' in d.output for d in decisions)
    # After each fill, at the next hourly mark, BTC's share of equity is back near 0.6.
    cash, btc = Decimal(10000), Decimal(0)
    for event in events:
        if isinstance(event, OrderFilled):
            sign = 1 if event.side.value == "buy" else -1
            btc += sign * event.qty
            cash -= sign * event.qty * event.price + event.fee
        elif isinstance(event, PriceMarked) and btc:
            share = btc * event.price / (cash + btc * event.price)
            assert Decimal("0.55") < share < Decimal("0.65")

    replay = run_cli(["--ledger", ledger, "replay", summary["run_id"], "--json"], cwd=tmp_path)

    assert replay.returncode == 0, replay.stdout + replay.stderr
    report = json.loads(replay.stdout)
    assert report["ok"] is True
    # Same code version: the re-run's stored rows were compared byte for byte.
    assert report["code_version"]["recorded"] == report["code_version"]["replaying"]
    assert {c["name"]: c["status"] for c in report["checks"]}["rerun"] == "ok"


def test_rebalance_decisions_are_queryable_with_their_raw_output(tmp_path: Path) -> None:
    ledger = tmp_path / "l.db"
    assert run_cli(["--ledger", ledger, "backtest", *ARGS], cwd=tmp_path).returncode == 0

    code, out, err = run_cli(
        [
            "--ledger",
            ledger,
            "query",
            "SELECT action, output, rejected_reason FROM decisions LIMIT 1",
            "--json",
        ],
        cwd=tmp_path,
    )

    assert code == 0, err
    assert json.loads(out) == [
        {"action": "buy", "output": '{"action": "buy", "weight_target": "0.6"}', "rejected_reason": None}
    ]

"""Fill models end to end on real candles: every model is deterministic, recorded and replayable.

Two days (2,880 one-minute bars) of the bundled Binance BTC/USDT sample, SMA(5)/SMA(20) so
there are many orders. Each run goes into a real SQLite ledger; determinism is checked on the
stored rows (envelopes, hash chain included), byte for byte.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from ledger.adapters import audit
from ledger.bootstrap import BacktestRequest, run_backtest_request
from ledger.bootstrap.fill_options import FillOptions
from ledger.domain.events import (
    LedgerEvent,
    OrderAccepted,
    OrderFilled,
    OrderRejected,
    OrderSubmitted,
    RunStarted,
)
from sample_data import write_sample

BARS = 2_880
PARAMS = {"fast": "5", "slow": "20"}
LIMIT = {**PARAMS, "limit_offset_bps": "3"}

# name -> (fill model, options, strategy params)
MODELS = {
    "next-open": ("next-open", FillOptions(), PARAMS),
    "linear": ("next-open", FillOptions(slippage="linear", impact="2"), PARAMS),
    "sqrt": ("next-open", FillOptions(slippage="sqrt", spread_bps="1"), PARAMS),
    "log": ("next-open", FillOptions(slippage="log"), PARAMS),
    "latency": ("next-open", FillOptions(latency_ms=45_000), PARAMS),
    "orderbook": ("orderbook", FillOptions(latency_ms=250), PARAMS),
    "failures": ("next-open", FillOptions(failure_rate="0.3"), PARAMS),
    "limit": ("next-open", FillOptions(maker_fee="0.0002"), LIMIT),
    "limit-queue": ("next-open", FillOptions(queue_ahead="0.2", limit_timeout_s=600), LIMIT),
}


@pytest.fixture(scope="module")
def two_days(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("data") / "btc_two_days.csv", BARS)


def _run(data: Path, ledger: Path, name: str, *, seed: int = 1) -> tuple[list[bytes], list[LedgerEvent]]:
    model, options, params = MODELS[name]
    request = BacktestRequest(
        ledger_url=str(ledger), data_path=data, params=params, seed=seed, fill_model=model, fill=options
    )
    result, store = run_backtest_request(request)
    try:
        rows = [bytes(row.state) for row in audit.iter_rows(store)]
        events = [event for _, event in store.read_log(0, 1_000_000) if event.run_id == result.run_id]
    finally:
        store.close()
    return rows, events


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_fill_model_gives_byte_identical_rows_for_the_same_inputs_and_seed(
    name: str, two_days: Path, tmp_path: Path
) -> None:
    first, events = _run(two_days, tmp_path / "a.db", name)
    second, _ = _run(two_days, tmp_path / "b.db", name)

    assert first == second
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert len(fills) > 10, "the scenario must trade"
    [started] = [e for e in events if isinstance(e, RunStarted)]
    assert started.fill_model.split(" ")[0] == MODELS[name][0]


def test_failure_draws_depend_on_the_seed_and_are_recorded_as_rejections(
    two_days: Path, tmp_path: Path
) -> None:
    def pattern(seed: int, ledger: str) -> list[int]:
        _, events = _run(two_days, tmp_path / ledger, "failures", seed=seed)
        rejected = [e for e in events if isinstance(e, OrderRejected)]
        assert rejected, "a 30 % failure rate must refuse some submissions"
        assert {(e.reason, e.originator_version) for e in rejected} == {("api_failure", 3)}
        return [int(e.client_order_id.rsplit("-", 1)[-1]) for e in rejected]

    one, again, other = pattern(1, "a.db"), pattern(1, "b.db"), pattern(2, "c.db")

    assert one == again
    assert one != other


@pytest.mark.parametrize(("name", "latency_ms"), [("next-open", 0), ("latency", 45_000), ("orderbook", 250)])
def test_the_acknowledgement_is_stamped_when_the_order_reaches_the_venue(
    name: str, latency_ms: int, two_days: Path, tmp_path: Path
) -> None:
    _, events = _run(two_days, tmp_path / "ack.db", name)
    sent = {e.client_order_id: e.occurred_at for e in events if isinstance(e, OrderSubmitted)}
    acks = [e for e in events if isinstance(e, OrderAccepted)]
    fills = {e.client_order_id: e.occurred_at for e in events if isinstance(e, OrderFilled)}

    assert acks
    assert {(e.occurred_at - sent[e.client_order_id]).total_seconds() * 1000 for e in acks} == {latency_ms}
    assert all(fills[e.client_order_id] >= e.occurred_at for e in acks if e.client_order_id in fills)


def test_the_seed_changes_nothing_but_ids_without_randomness(two_days: Path, tmp_path: Path) -> None:
    def prices(seed: int) -> list[tuple[str, str]]:
        _, events = _run(two_days, tmp_path / f"s{seed}.db", "sqrt", seed=seed)
        return [(str(e.price), str(e.qty)) for e in events if isinstance(e, OrderFilled)]

    assert prices(1) == prices(2)


def test_slippage_models_cost_more_than_none_and_differ_from_each_other(
    two_days: Path, tmp_path: Path
) -> None:
    def buys(name: str) -> list[Decimal]:
        _, events = _run(two_days, tmp_path / f"{name}.db", name)
        return [e.price for e in events if isinstance(e, OrderFilled) and e.side.value == "buy"]

    plain, linear, sqrt = buys("next-open"), buys("linear"), buys("sqrt")
    assert len(plain) == len(linear) == len(sqrt)
    assert all(a > b for a, b in zip(linear, plain, strict=True))  # at least the half-spread floor
    assert all(a > b for a, b in zip(sqrt, plain, strict=True))
    assert linear != sqrt


def test_limit_orders_rest_pay_the_maker_fee_and_some_expire(two_days: Path, tmp_path: Path) -> None:
    _, events = _run(two_days, tmp_path / "limit.db", "limit")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    names = {type(e).__name__ for e in events}

    assert "OrderExpired" in names
    maker = [f for f in fills if f.fee == f.qty * f.price * 2 / 10_000]
    assert maker, "resting limits that trade through pay the maker rate"


def _cli_backtest(cli, ledger: Path, *args: str) -> dict[str, Any]:
    code, out, err = cli("--ledger", ledger, "backtest", *args, "--json", timeout=300)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ("--slippage", "sqrt", "--latency-ms", "250", "--failure-rate", "0.2", "--seed", "5"),
        ("--fill-model", "orderbook", "--spread-bps", "0.5"),
        ("--param", "limit_offset_bps=3", "--queue-ahead", "0.3", "--maker-fee", "0.0002"),
    ],
    ids=["sqrt-latency-failures", "orderbook", "limit-queue"],
)
def test_replay_reruns_a_fill_model_backtest_byte_for_byte(cli, two_days: Path, tmp_path: Path, args) -> None:
    ledger = tmp_path / "ledger.db"
    run = _cli_backtest(
        cli, ledger, "--data", str(two_days), "--param", "fast=5", "--param", "slow=20", *args
    )

    code, out, err = cli(
        "--ledger", ledger, "replay", run["run_id"], "--data", str(two_days), "--json", timeout=300
    )

    assert code == 0, err
    report = json.loads(out)
    checks = {c["name"]: c["status"] for c in report["checks"]}
    assert checks["rerun"] == "ok", report


def test_a_config_file_supplies_options_and_the_command_line_wins(
    cli, two_days: Path, tmp_path: Path
) -> None:
    config = tmp_path / "bt.toml"
    config.write_text(
        f'data = "{two_days.name}"\n'
        "fee = 0.002\n"
        'slippage = "log"\n'
        "latency_ms = 1000\n"
        'maker_fee = "0.0001"\n'
        "[params]\nfast = 5\nslow = 20\n"
    )
    (tmp_path / two_days.name).write_bytes(two_days.read_bytes())  # data is relative to the file
    ledger = tmp_path / "ledger.db"

    run = _cli_backtest(cli, ledger, "--config", str(config), "--fee", "0.001", "--param", "slow=25")

    code, out, err = cli("--ledger", ledger, "export", run["run_id"], "--format", "jsonl")
    assert code == 0, err
    started = json.loads(out.splitlines()[0])["event"]
    assert started["fee_rate"] == "0.001"
    assert started["fill_model"] == "next-open slippage=log latency_ms=1000 maker_fee=0.0001"
    assert json.loads(started["params"]) == {"fast": "5", "slow": "25", "size": "0.1"}


def test_a_config_file_with_an_unknown_key_is_refused_in_one_sentence(cli, tmp_path: Path) -> None:
    config = tmp_path / "bt.toml"
    config.write_text('slipage = "sqrt"\n')
    ledger = tmp_path / "ledger.db"

    code, out, err = cli("--ledger", ledger, "backtest", "--config", str(config), "--json")

    assert code == 2
    assert out == ""
    [line] = err.strip().splitlines()
    assert "slipage" in line
    assert "--config" in line
    assert not ledger.exists()

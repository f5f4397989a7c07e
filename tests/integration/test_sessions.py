"""Paper and live sessions against the local Binance-protocol server, through the real ccxt client.

The server (`tradeledger exchange-sim`) replays the bundled real BTC/USDT candles at 120 bars
per minute of wall time; sessions run SMA(1,2), which trades on most turns of the market, so a
few seconds give several orders. Every session is a real `tradeledger paper|live` process.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import chat_server
import factories
from cli_runner import run_cli
from ledger.adapters.store import open_store
from ledger.domain.events import (
    DecisionMade,
    DecisionRejected,
    MarketTapeRecorded,
    OrderAccepted,
    OrderFilled,
    OrderPlaced,
    OrderSubmitted,
    RunEnded,
    RunStarted,
    Side,
    TradingMode,
    TradingModeRefused,
    TradingModeSwitched,
)
from ledger.domain.identifiers import run_id_for
from ledger.domain.numbers import D
from sample_data import write_sample
from sim_runner import running_sim

KEY, SECRET = "test-key", "test-secret"
KILL_POINTS = 20


def _http(url: str, method: str = "GET") -> Any:
    request = urllib.request.Request(url, method=method)  # noqa: S310 - http://127.0.0.1 only
    with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
        return json.loads(reply.read())


class Sim:
    def __init__(self, base: str) -> None:
        self.base = base
        self.api = f"{self.base}/api/v3"

    def orders(self) -> list[dict[str, Any]]:
        return _http(f"{self.base}/sim/orders")  # type: ignore[no-any-return]

    def faults(self, spec: str) -> None:
        _http(f"{self.base}/sim/faults?spec={spec}", method="POST")

    def balances(self) -> dict[str, Any]:
        return _http(f"{self.base}/sim/state")["balances"]  # type: ignore[no-any-return]


@pytest.fixture
def sim(tmp_path: Path, tradeledger_argv: list[str]) -> Iterator[Sim]:
    options = ("--speed", "120", "--start-bar", "600")
    with running_sim(tradeledger_argv, tmp_path, *options, key=KEY, secret=SECRET) as base:
        yield Sim(base)


def _config(path: Path, sim: Sim, *, seconds: float, extra: str = "") -> Path:
    path.write_text(
        f"""
[session]
symbol = "BTC/USDT"
strategy = "sma"
params = {{ fast = "1", slow = "2" }}
poll_seconds = 0.1
duration_seconds = {seconds}
{extra}
[promotion]
required = false
[venue]
api_url = "{sim.api}"
timeout_ms = 15000
"""
    )
    return path


ENV = {"TRADELEDGER_API_KEY": KEY, "TRADELEDGER_API_SECRET": SECRET}


def _events(ledger: Path) -> list[Any]:
    store = open_store(str(ledger), create=False)
    try:
        return [e for _, e in store.read_log(0, 100_000)]
    finally:
        store.close()


def test_a_paper_session_fills_at_the_next_bar_open_it_saw_and_keeps_its_tape(
    cli, tmp_path: Path, sim: Sim
) -> None:
    config = _config(tmp_path / "paper.toml", sim, seconds=5)

    code, out, err = cli("--ledger", tmp_path / "p.db", "paper", "--config", config, "--json")

    assert code == 0, err
    summary = json.loads(out)
    events = _events(tmp_path / "p.db")
    started = next(e for e in events if isinstance(e, RunStarted))
    assert (started.mode.value, started.venue, started.fill_model) == ("paper", "paper", "next-open")
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert summary["fills"] == len(fills) > 0
    assert sim.orders() == []  # paper orders never reach the venue
    tape_event = next(e for e in events if isinstance(e, MarketTapeRecorded))
    tape = tmp_path / "p.db.tapes" / tape_event.tape
    assert hashlib.sha256(tape.read_bytes()).hexdigest() == tape_event.digest
    bars = [json.loads(line) for line in tape.read_text().splitlines()]
    assert len(bars) == tape_event.bars
    opens = {D(b["open"]) for b in bars}
    assert all(f.price in opens for f in fills)  # each fill at the open of a bar the session saw
    assert all(f.fee == f.qty * f.price * D("0.001") for f in fills)
    assert isinstance(events[-1], RunEnded)
    code, _, err = cli("--ledger", tmp_path / "p.db", "replay", started.run_id.hex[:8])
    assert code == 0, err


def test_a_live_session_agrees_with_the_venue(cli, tmp_path: Path, sim: Sim) -> None:
    config = _config(tmp_path / "live.toml", sim, seconds=5)
    usdt_before = D(sim.balances()["USDT"]["free"])

    code, out, err = cli("--ledger", tmp_path / "l.db", "live", "--config", config, "--json", env=ENV)

    assert code == 0, err
    events = _events(tmp_path / "l.db")
    accepted = {e.client_order_id: e.venue_order_id for e in events if isinstance(e, OrderAccepted)}
    venue = {o["clientOrderId"]: o for o in sim.orders()}
    assert accepted
    assert set(venue) == set(accepted)  # one venue order per ledger order, no more
    for cid, order in venue.items():
        assert str(order["orderId"]) == accepted[cid]
        filled = sum((e.qty for e in events if isinstance(e, OrderFilled) and e.client_order_id == cid), D(0))
        assert filled == D(order["executedQty"])
    balances = json.loads(out)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.cash_initial == usdt_before
    code, out, _ = cli("--ledger", tmp_path / "l.db", "positions", "--json")
    ledger_balances = {b["asset"]: D(b["total"]) for b in json.loads(out)["balances"]}
    venue_balances = sim.balances()
    for asset in ("USDT", "BTC"):
        venue_total = D(venue_balances[asset]["free"]) + D(venue_balances[asset]["locked"])
        assert ledger_balances.get(asset, D(0)) == venue_total, (asset, balances)


def test_live_without_keys_is_bad_input_naming_the_variable(cli, tmp_path: Path, sim: Sim) -> None:
    config = _config(tmp_path / "live.toml", sim, seconds=1)

    code, _, err = cli("--ledger", tmp_path / "l.db", "live", "--config", config)

    assert code == 2
    assert "TRADELEDGER_API_KEY" in err
    assert not (tmp_path / "l.db").exists()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ('colour = "blue"', "session.colour"),
        ('cash = "-5"', "session.cash"),
        ("poll_seconds = 0", "session.poll_seconds"),
        ('timeframe = "7m"', "session.timeframe"),
    ],
)
def test_a_bad_config_is_one_sentence_naming_the_field(cli, tmp_path: Path, extra: str, field: str) -> None:
    config = tmp_path / "c.toml"
    config.write_text(f"[session]\n{extra}\n")

    code, _, err = cli("--ledger", tmp_path / "x.db", "paper", "--config", config)

    assert code == 2
    assert field in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.db").exists()


def _wait_for_venue_order(sim: Sim, known: int, deadline_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        orders = sim.orders()
        if len(orders) > known:
            return orders[-1]
        time.sleep(0.02)
    pytest.fail("the session placed no order in time")


@pytest.mark.slow
def test_sigkill_between_sending_an_order_and_recording_the_answer_loses_nothing(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    """Kill the live process while the venue holds an accepted order's answer; restart; repeat.

    The venue accepts each order and holds the reply (a timeout after acceptance), so when
    the process dies the ledger has ``OrderSubmitted`` and nothing else. The restart must find
    the order by its client order id, record it and its fills, and never send it again.
    """
    ledger = tmp_path / "k.db"
    rng = random.Random(20261125)  # noqa: S311 - seeded kill points, not security
    env = {**os.environ, **ENV}
    env = {k: v for k, v in env.items() if not k.startswith("TRADELEDGER_LEDGER")}
    crash = _config(tmp_path / "crash.toml", sim, seconds=60)
    resume = _config(tmp_path / "resume.toml", sim, seconds=0.5)
    for point in range(KILL_POINTS):
        sim.faults("orders_only=1,timeout_after_accept=1,hang_ms=20000")
        known = len(sim.orders())
        process = subprocess.Popen(
            [*tradeledger_argv, "--ledger", str(ledger), "live", "--config", str(crash)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_for_venue_order(sim, known, 30)
            time.sleep(rng.uniform(0, 0.5))  # somewhere while the answer is held
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=10)
        finally:
            process.kill()
        assert process.returncode == -signal.SIGKILL, f"kill point {point}"
        submitted = [e for e in _events(ledger) if isinstance(e, OrderSubmitted)]
        answered = {e.client_order_id for e in _events(ledger) if isinstance(e, OrderAccepted)}
        assert [e.client_order_id for e in submitted if e.client_order_id not in answered], point

        sim.faults("")
        done = subprocess.run(
            [*tradeledger_argv, "--ledger", str(ledger), "live", "--config", str(resume), "--json"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    events = _events(ledger)
    venue = {o["clientOrderId"]: o for o in sim.orders()}
    sent = [e.client_order_id for e in events if isinstance(e, OrderSubmitted)]
    accepted = {e.client_order_id: e.venue_order_id for e in events if isinstance(e, OrderAccepted)}
    assert len(sent) == len(set(sent))
    assert len(venue) >= KILL_POINTS
    assert set(venue) == set(accepted) == set(sent)  # exactly one venue order each, all recorded
    for cid, order in venue.items():
        assert str(order["orderId"]) == accepted[cid]
        filled = sum(
            (e.qty for e in events if isinstance(e, OrderFilled) and e.client_order_id == cid), Decimal(0)
        )
        assert filled == D(order["executedQty"]), cid
    runs = [e for e in events if isinstance(e, RunStarted)]
    ended = {e.run_id for e in events if isinstance(e, RunEnded)}
    assert {r.run_id for r in runs} == ended  # every killed run was closed by the next start-up


def _run_live(tradeledger_argv: list[str], ledger: Path, config: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELEDGER_")}
    return subprocess.run(
        [*tradeledger_argv, "--ledger", str(ledger), "live", "--config", str(config), "--json"],
        cwd=ledger.parent,
        env={**env, **ENV},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    "fault",
    [
        "rate_limit=0.2",
        "ban=0.2",
        "http5xx=0.2",
        "http500=0.2",
        "timeout_after_accept=0.2,hang_ms=1500",
        "drop=0.2",
        "malformed=0.2",
    ],
)
def test_under_each_fault_no_event_is_lost_and_no_order_is_doubled(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str], fault: str
) -> None:
    ledger = tmp_path / "f.db"
    sim.faults(f"{fault},seed=3")
    faulty = (
        _config(tmp_path / "faulty.toml", sim, seconds=6)
        .read_text()
        .replace("timeout_ms = 15000", "timeout_ms = 1000")
    )
    (tmp_path / "faulty.toml").write_text(faulty)

    during = _run_live(tradeledger_argv, ledger, tmp_path / "faulty.toml")
    sim.faults("")
    after = _run_live(tradeledger_argv, ledger, _config(tmp_path / "clean.toml", sim, seconds=0.5))

    assert during.returncode == 0, during.stderr
    assert after.returncode == 0, after.stderr
    events = _events(ledger)
    venue_orders = sim.orders()
    venue = {o["clientOrderId"]: o for o in venue_orders}
    assert len(venue) == len(venue_orders)  # no client order id twice at the venue
    sent = [e.client_order_id for e in events if isinstance(e, OrderSubmitted)]
    accepted = {e.client_order_id: e.venue_order_id for e in events if isinstance(e, OrderAccepted)}
    rejected = {e.client_order_id for e in events if type(e).__name__ == "OrderRejected"}
    assert sent
    assert set(sent) == set(accepted) | rejected  # every order was answered, one way or the other
    assert set(venue) == set(accepted)  # accepted exactly when the venue has it
    for cid, order in venue.items():
        assert str(order["orderId"]) == accepted[cid]
        filled = sum((e.qty for e in events if isinstance(e, OrderFilled) and e.client_order_id == cid), D(0))
        assert filled == D(order["executedQty"]), cid
    store = open_store(str(ledger), create=False)
    try:
        from ledger.adapters import audit  # noqa: PLC0415

        assert audit.verify(store).ok
    finally:
        store.close()


def _direct_client(sim: Sim) -> Any:
    import ccxt  # noqa: PLC0415 - the synchronous client, only here

    client = ccxt.binance(
        {
            "apiKey": KEY,
            "secret": SECRET,
            "options": {
                "defaultType": "spot",
                "fetchMarkets": {"types": ["spot"]},
                "fetchCurrencies": False,
                "fetchMargins": False,
            },
        }
    )
    client.urls["api"] = {**client.urls["api"], "public": sim.api, "private": sim.api}
    client.load_markets()
    return client


def test_a_live_start_up_records_what_changed_at_the_venue_behind_the_ledgers_back(
    cli, tmp_path: Path, sim: Sim
) -> None:
    ledger = tmp_path / "r.db"
    code, _, err = cli(
        "--ledger", ledger, "live", "--config", _config(tmp_path / "a.toml", sim, seconds=2), env=ENV
    )
    assert code == 0, err
    positions = json.loads(cli("--ledger", ledger, "positions", "--json").stdout)
    expected = {b["asset"]: D(b["total"]) for b in positions["balances"] if D(b["total"]) != 0}
    # Behind the ledger's back: a deposit, and an order placed by hand (a far-away resting limit).
    usdt = D(sim.balances()["USDT"]["free"])
    _http(f"{sim.base}/sim/balances?USDT={usdt + D('250')}", method="POST")
    manual = _direct_client(sim).create_order(
        "BTC/USDT", "limit", "buy", 0.001, 50000, {"newClientOrderId": "manual-order-1"}
    )

    code, out, err = cli(
        "--ledger",
        ledger,
        "live",
        "--config",
        _config(tmp_path / "b.toml", sim, seconds=0.3),
        "--json",
        env=ENV,
    )

    assert code == 0, err
    reconciliation = json.loads(out)["reconciliation"]
    [event] = [e for e in _events(ledger) if type(e).__name__ == "VenueReconciled"][-1:]
    assert json.loads(event.orders_unknown) == ["manual-order-1"] == reconciliation["orders_unknown"]
    locked = D("0.001") * D("50000")  # the manual order holds 50 USDT at the venue
    differences = {k: D(v) for k, v in json.loads(event.differences).items()}
    assert (
        json.loads(event.balances_ledger) == {k: str(v) for k, v in expected.items()}
        or {k: D(v) for k, v in json.loads(event.balances_ledger).items()} == expected
    )
    assert differences["USDT"] == D("250")  # total is free + locked: the deposit is the difference
    assert manual["status"] == "open"
    assert locked == D("50")


def test_the_partial_fill_policy_cancels_live_limit_orders_the_market_left(
    cli, tmp_path: Path, sim: Sim
) -> None:
    config = _config(
        tmp_path / "limit.toml",
        sim,
        seconds=5,
        extra="partial_fill_check_seconds = 0.2\n",
    )
    text = config.read_text().replace(
        'params = { fast = "1", slow = "2" }', 'params = { fast = "1", slow = "2", limit_offset_bps = "300" }'
    )
    config.write_text(text)

    code, _, err = cli("--ledger", tmp_path / "l.db", "live", "--config", config, env=ENV)

    assert code == 0, err
    events = _events(tmp_path / "l.db")
    requested = [e for e in events if type(e).__name__ == "OrderCancelRequested"]
    canceled = {e.client_order_id for e in events if type(e).__name__ == "OrderCanceled"}
    assert requested
    assert all("more than 2" in e.reason for e in requested)
    venue = {o["clientOrderId"]: o for o in sim.orders()}
    for e in requested:
        assert venue[e.client_order_id]["status"] == "CANCELED"
        assert e.client_order_id in canceled or e is requested[-1]  # the last may end after the run
    placed = [e for e in events if isinstance(e, OrderSubmitted)]
    assert set(venue) == {e.client_order_id for e in placed}


def test_a_paper_limit_order_fills_at_its_limit_when_the_market_trades_through(
    cli, tmp_path: Path, sim: Sim
) -> None:
    config = _config(tmp_path / "plimit.toml", sim, seconds=5)
    config.write_text(
        config.read_text().replace(
            'params = { fast = "1", slow = "2" }',
            'params = { fast = "1", slow = "2", limit_offset_bps = "1" }',
        )
    )

    code, _, err = cli("--ledger", tmp_path / "p.db", "paper", "--config", config)

    assert code == 0, err
    events = _events(tmp_path / "p.db")
    limits = {e.client_order_id: e.price_limit for e in events if isinstance(e, OrderPlaced)}
    fills = [e for e in events if isinstance(e, OrderFilled)]
    assert fills
    assert all(f.price == limits[f.client_order_id] for f in fills)


def test_a_symbol_the_venue_does_not_list_is_bad_input_and_no_ledger_is_made(
    cli, tmp_path: Path, sim: Sim
) -> None:
    config = _config(tmp_path / "c.toml", sim, seconds=1)
    config.write_text(config.read_text().replace('symbol = "BTC/USDT"', 'symbol = "DOGE/USDT"'))

    code, _, err = cli("--ledger", tmp_path / "x.db", "paper", "--config", config)

    assert code == 2
    assert "DOGE/USDT" in err
    assert "symbol" in err
    assert not (tmp_path / "x.db").exists()


# -- tapes: replay --as-backtest and retention -----------------------------------------------------


@pytest.fixture
def paper_run(cli, tmp_path: Path, sim: Sim) -> tuple[Path, str]:
    ledger = tmp_path / "t.db"
    code, out, err = cli(
        "--ledger", ledger, "paper", "--config", _config(tmp_path / "t.toml", sim, seconds=4), "--json"
    )
    assert code == 0, err
    return ledger, json.loads(out)["run_id"]


def test_a_paper_run_replayed_on_its_tape_matches_the_simulation_fill_for_fill(cli, paper_run) -> None:
    ledger, run_id = paper_run

    code, out, err = cli("--ledger", ledger, "replay", run_id, "--as-backtest", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["fills"]["live"] == report["fills"]["simulated"] > 0
    # The backtest never acts on a signal at the tape's last bar (it could not fill); the session
    # may have decided there just before it stopped, leaving that one order unfilled.
    filled = {f.client_order_id for f in _events(ledger) if isinstance(f, OrderFilled)}
    assert report["decisions"]["simulated"] == len(filled)
    assert report["decisions"]["live"] - len(filled) in (0, 1)
    assert report["equity_final"]["live"] == report["equity_final"]["simulated"]
    assert all(p["price_diff_bps"] == "0" for p in report["pairs"])  # same fill model, same bars
    assert report["first_divergence"] is None
    tape_bars = [
        json.loads(line) for line in (ledger.parent / "t.db.tapes" / report["tape"]).read_text().splitlines()
    ]
    assert report["bars"] == len(tape_bars)
    assert any(b["history"] for b in tape_bars)
    assert not tape_bars[-1]["history"]


def test_a_live_run_replayed_on_its_tape_reports_what_differed(cli, tmp_path: Path, sim: Sim) -> None:
    ledger = tmp_path / "lt.db"
    code, out, err = cli(
        "--ledger",
        ledger,
        "live",
        "--config",
        _config(tmp_path / "lt.toml", sim, seconds=4),
        "--json",
        env=ENV,
    )
    assert code == 0, err
    run_id = json.loads(out)["run_id"]

    code, out, err = cli("--ledger", ledger, "replay", run_id, "--as-backtest", "--json")

    assert code == 0, err
    report = json.loads(out)
    assert report["mode"] == "live"
    assert report["fills"]["live"] > 0
    assert report["ack_latency_ms"]["live"] > 0
    # How many decisions the simulation makes depends on where the live fills left the
    # position (the live venue's fills and timing are its own); the paper test above compares
    # exactly what a paper run makes comparable. Here: the whole tape was simulated.
    assert report["bars"] > 0
    assert isinstance(report["decisions"]["simulated"], int)


def test_a_missing_or_edited_tape_is_named(cli, paper_run) -> None:
    ledger, run_id = paper_run
    [tape] = (ledger.parent / "t.db.tapes").iterdir()
    original = tape.read_bytes()

    tape.write_bytes(original.replace(b'"close":"', b'"close":"1', 1))
    edited = cli("--ledger", ledger, "replay", run_id, "--as-backtest")
    tape.unlink()
    missing = cli("--ledger", ledger, "replay", run_id, "--as-backtest")

    assert edited.returncode == 3
    assert "sha256" in edited.stderr
    assert missing.returncode == 2
    assert "missing" in missing.stderr
    assert str(tape) in missing.stderr


def test_pruning_says_what_it_removes_and_replays_say_why_the_tape_is_gone(cli, paper_run) -> None:
    ledger, run_id = paper_run
    tapes = ledger.parent / "t.db.tapes"

    dry = cli("--ledger", ledger, "tapes", "prune", "--older-than-days", "0", "--dry-run")
    kept = list(tapes.iterdir())
    done = cli("--ledger", ledger, "tapes", "prune", "--older-than-days", "0")
    listed = json.loads(cli("--ledger", ledger, "tapes", "list", "--json").stdout)
    replayed = cli("--ledger", ledger, "replay", run_id, "--as-backtest")
    audited = cli("--ledger", ledger, "replay", run_id)

    assert dry.returncode == done.returncode == 0
    assert "would remove" in dry.stdout
    assert len(kept) == 1
    assert f"replay {run_id} --as-backtest" in done.stdout
    assert list(tapes.iterdir()) == []
    assert [(t["run_id"], t["present"], t["pruned"]) for t in listed] == [(run_id, False, True)]
    assert replayed.returncode == 2
    assert "retention" in replayed.stderr
    assert audited.returncode == 0, audited.stderr  # the log itself is intact


# -- the kill switch in sessions ------------------------------------------------------------------

PASSPHRASE = "correct horse battery staple"  # noqa: S105 - a test passphrase


def _start_live(tradeledger_argv: list[str], ledger: Path, config: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELEDGER_")}
    return subprocess.Popen(
        [*tradeledger_argv, "--ledger", str(ledger), "live", "--config", str(config)],
        cwd=ledger.parent,
        env={**env, **ENV},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


def test_kill_from_another_process_cancels_a_running_sessions_orders_and_holds_across_restarts(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "k.db"
    config = _config(tmp_path / "k.toml", sim, seconds=60, extra="partial_fill_check_seconds = 600\n")
    config.write_text(config.read_text().replace('slow = "2" }', 'slow = "2", limit_offset_bps = "300" }'))
    session = _start_live(tradeledger_argv, ledger, config)
    try:
        _wait_for(lambda: any(o["status"] == "NEW" for o in sim.orders()))  # a resting limit order
        assert cli("--ledger", ledger, "kill", "--reason", "drill").returncode == 0
        _, err = session.communicate(timeout=30)
    finally:
        session.kill()

    assert session.returncode == 0, err
    events = _events(ledger)
    acted = [(e.action, e.outcome) for e in events if type(e).__name__ == "KillSwitchActed"]
    assert ("cancel", "cancel requested at the venue") in acted
    assert acted[-1][0] == "stop"
    assert [e.reason for e in events if isinstance(e, RunEnded)] == ["kill switch engaged: drill"]
    assert all(o["status"] != "NEW" for o in sim.orders())  # nothing left working at the venue
    status = json.loads(cli("--ledger", ledger, "kill", "--status", "--json").stdout)
    assert (status["engaged"], status["reason"]) == (True, "drill")

    # A restart while engaged: every new order is denied, none reaches the venue. The restart
    # rebalances to 50 % on every bar, so its first closed bar asks for an order (an SMA cross
    # may not come within a short session on a loaded machine).
    before = len(sim.orders())
    again = _config(tmp_path / "again.toml", sim, seconds=6)
    again.write_text(
        again.read_text()
        .replace('strategy = "sma"', 'strategy = "rebalance"')
        .replace('{ fast = "1", slow = "2" }', '{ targets = "BTC:0.5,CASH:0.5", every = "1" }')
    )
    code, _, err = cli("--ledger", ledger, "live", "--config", again, env=ENV)
    assert code == 0, err
    denied = [e.reason for e in _events(ledger) if type(e).__name__ == "OrderDenied"]
    assert denied
    assert set(denied) == {"kill_switch"}
    assert len(sim.orders()) == before

    # Release needs the admin passphrase; a wrong one changes nothing.
    assert (
        cli(
            "--ledger", ledger, "admin", "set-passphrase", env={"TRADELEDGER_ADMIN_PASSPHRASE": PASSPHRASE}
        ).returncode
        == 0
    )
    size = ledger.stat().st_size
    wrong = cli(
        "--ledger", ledger, "kill", "--release", env={"TRADELEDGER_ADMIN_PASSPHRASE": "not the passphrase"}
    )
    assert wrong.returncode == 4
    assert json.loads(cli("--ledger", ledger, "kill", "--status", "--json").stdout)["engaged"] is True
    assert ledger.stat().st_size == size
    right = cli("--ledger", ledger, "kill", "--release", env={"TRADELEDGER_ADMIN_PASSPHRASE": PASSPHRASE})
    assert right.returncode == 0, right.stderr
    assert PASSPHRASE.encode() not in ledger.read_bytes()


def test_sigterm_engages_the_kill_switch_and_the_session_ends_cleanly(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "s.db"
    session = _start_live(tradeledger_argv, ledger, _config(tmp_path / "s.toml", sim, seconds=60))
    try:
        _wait_for(lambda: len(sim.orders()) > 0)
        session.send_signal(signal.SIGTERM)
        _, err = session.communicate(timeout=30)
    finally:
        session.kill()

    assert session.returncode == 0, err
    status = json.loads(cli("--ledger", ledger, "kill", "--status", "--json").stdout)
    assert (status["engaged"], status["actor"], status["reason"]) == (True, "signal", "SIGTERM received")
    assert isinstance(_events(ledger)[-1], RunEnded)


def test_kill_with_liquidate_flattens_the_position_at_market(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "q.db"
    config = _config(tmp_path / "q.toml", sim, seconds=60)
    config.write_text(
        config.read_text().replace(
            'params = { fast = "1", slow = "2" }', 'params = { fast = "5", slow = "40" }'
        )
    )
    session = _start_live(tradeledger_argv, ledger, config)
    try:
        _wait_for(lambda: D(sim.balances()["BTC"]["free"]) > D("0.001"), seconds=60)  # holding BTC
        assert cli("--ledger", ledger, "kill", "--reason", "flatten", "--liquidate").returncode == 0
        _, err = session.communicate(timeout=30)
    finally:
        session.kill()

    assert session.returncode == 0, err
    events = _events(ledger)
    [liquidation] = [e for e in events if type(e).__name__ == "KillSwitchActed" and e.action == "liquidate"]
    assert liquidation.client_order_id
    sells = [
        e for e in events if isinstance(e, OrderFilled) and e.client_order_id == liquidation.client_order_id
    ]
    assert sells
    assert (
        D(sim.balances()["BTC"]["free"]) < D("0.00001") * 2
    )  # what is left is below one step or the fee dust


def test_a_drawdown_beyond_the_limit_engages_the_kill_switch(cli, tmp_path: Path, sim: Sim) -> None:
    ledger = tmp_path / "d.db"
    config = _config(tmp_path / "d.toml", sim, seconds=20, extra="max_drawdown = 0.00001\n")

    code, _, err = cli("--ledger", ledger, "live", "--config", config, env=ENV)

    assert code == 0, err
    status = json.loads(cli("--ledger", ledger, "kill", "--status", "--json").stdout)
    assert (status["engaged"], status["actor"]) == (True, "drawdown")
    assert "beyond the limit 0.00001" in status["reason"]


# -- exchange health, halts, maintenance (C11) ----------------------------------------------------


def test_an_empty_book_halts_the_symbol_and_its_return_resumes_it(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "h.db"
    config = _config(tmp_path / "h.toml", sim, seconds=60, extra="halt_resume_check_seconds = 0.3\n")
    session = _start_live(tradeledger_argv, ledger, config)
    try:
        _wait_for(lambda: len(sim.orders()) > 0)
        _http(f"{sim.base}/sim/market?symbol=BTCUSDT&book=empty", method="POST")
        _wait_for(
            lambda: ledger.exists() and any(type(e).__name__ == "SymbolHalted" for e in _events(ledger))
        )
        time.sleep(1.5)  # bars go on closing while halted: decisions are denied
        _http(f"{sim.base}/sim/market?symbol=BTCUSDT&book=normal", method="POST")
        _wait_for(lambda: any(type(e).__name__ == "SymbolResumed" for e in _events(ledger)))
        session.send_signal(signal.SIGTERM)
        _, err = session.communicate(timeout=30)
    finally:
        session.kill()

    assert session.returncode == 0, err
    events = _events(ledger)
    [halted] = [e for e in events if type(e).__name__ == "SymbolHalted"]
    [resumed] = [e for e in events if type(e).__name__ == "SymbolResumed"]
    assert halted.reason == "the book has no bids"
    assert resumed.price_before == halted.price_last
    assert resumed.review is (resumed.gap > D("0.10"))
    between = events[events.index(halted) : events.index(resumed)]
    submitted = [e for e in between if isinstance(e, OrderSubmitted)]
    assert submitted == []  # nothing reached the venue while halted


def test_three_failed_health_checks_are_an_outage_that_engages_the_kill_switch(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "o.db"
    config = _config(tmp_path / "o.toml", sim, seconds=60, extra="health_check_seconds = 0.2\n")
    config.write_text(config.read_text().replace("timeout_ms = 15000", "timeout_ms = 1000"))
    session = _start_live(tradeledger_argv, ledger, config)
    try:
        _wait_for(
            lambda: (
                ledger.exists() and any(type(e).__name__ == "ExchangeHealthChecked" for e in _events(ledger))
            )
        )
        sim.faults("latency=2500")  # every answer now comes after the client gave up
        _, err = session.communicate(timeout=60)
    finally:
        session.kill()
        sim.faults("")

    assert session.returncode == 0, err
    events = _events(ledger)
    checks = [e for e in events if type(e).__name__ == "ExchangeHealthChecked"]
    assert [c.failures for c in checks if not c.ok][:3] == [1, 2, 3]
    [outage] = [e for e in events if type(e).__name__ == "ExchangeOutageDetected"]
    assert outage.failures == 3
    status = json.loads(cli("--ledger", ledger, "kill", "--status", "--json").stdout)
    assert (status["engaged"], status["actor"]) == (True, "outage")
    assert isinstance(events[-1], RunEnded)


def test_ten_minutes_before_maintenance_the_session_is_flat_and_opens_nothing(
    cli, tmp_path: Path, sim: Sim
) -> None:
    from datetime import UTC, datetime, timedelta  # noqa: PLC0415

    start = datetime.now(tz=UTC) + timedelta(minutes=5)
    end = start + timedelta(hours=1)
    window = f"maintenance = [{{ start = {start:%Y-%m-%dT%H:%M:%SZ}, end = {end:%Y-%m-%dT%H:%M:%SZ} }}]\n"
    config = _config(tmp_path / "m.toml", sim, seconds=4, extra=window)

    code, _, err = cli("--ledger", tmp_path / "m.db", "live", "--config", config, env=ENV)

    assert code == 0, err
    events = _events(tmp_path / "m.db")
    assert [e.action for e in events if type(e).__name__ == "MaintenanceApproached"] == ["flatten"]
    assert sim.orders() == []  # no new positions: every buy was denied before the venue
    assert {e.reason for e in events if type(e).__name__ == "OrderDenied"} <= {"maintenance"}


# -- keys (C12): a live session on a stored key; the secret appears nowhere -----------------------


def test_a_live_session_on_a_stored_key_never_writes_the_secret_anywhere(
    cli, tmp_path: Path, sim: Sim
) -> None:
    keys = tmp_path / "keys" / "keys.enc"
    env = {"TRADELEDGER_KEYS_PASSPHRASE": "a passphrase for the key store"}
    added = cli(
        "keys", "add", "--keys", keys, "--exchange", "binance", "--label", "sim",
        "--api-key", KEY, "--api-secret", SECRET, "--permissions", "read,trade", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    ledger = tmp_path / "sk.db"
    config = _config(tmp_path / "sk.toml", sim, seconds=4)  # [venue] is last: the key comes from the store
    config.write_text(config.read_text() + f'key_label = "sim"\nkeys_file = "{keys}"\n')

    run = cli("--ledger", ledger, "live", "--config", config, "--json", env=env)
    query = cli("--ledger", ledger, "query", "SELECT * FROM events", "--json")
    export = cli("--ledger", ledger, "export", json.loads(run.stdout)["run_id"])

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["orders"] > 0  # it really traded with the stored key
    places = [run.stdout, run.stderr, query.stdout, export.stdout, config.read_text()]
    files = [ledger, ledger.with_suffix(".duckdb"), *(ledger.parent / "sk.db.tapes").iterdir(), keys]
    places.extend(path.read_bytes().decode(errors="replace") for path in files)
    assert all(SECRET not in text for text in places)


def test_a_read_only_key_cannot_trade_live(cli, tmp_path: Path, sim: Sim) -> None:
    keys = tmp_path / "keys.enc"
    env = {"TRADELEDGER_KEYS_PASSPHRASE": "a passphrase for the key store"}
    added = cli(
        "keys", "add", "--keys", keys, "--exchange", "binance", "--label", "ro",
        "--api-key", KEY, "--api-secret", SECRET, "--permissions", "read", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    config = _config(tmp_path / "ro.toml", sim, seconds=1)
    config.write_text(config.read_text() + f'key_label = "ro"\nkeys_file = "{keys}"\n')

    code, _, err = cli("--ledger", tmp_path / "ro.db", "live", "--config", config, env=env)

    assert code == 4
    assert "trade" in err
    assert not (tmp_path / "ro.db").exists()


def test_config_check_validates_without_running(cli, tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[session]\nsymbol = "BTC/USDT"\n[venue]\napi_url = "http://127.0.0.1:1/api/v3"\n')
    bad = tmp_path / "bad.toml"
    bad.write_text("[session]\nmax_drawdown = 3\n")
    weights = tmp_path / "weights.toml"
    weights.write_text('[session]\nstrategy = "rebalance"\nparams = { targets = "BTC:0.7,CASH:0.4" }\n')

    ok = cli("config", "check", good)
    refused = cli("config", "check", bad)
    unbalanced = cli("config", "check", weights)

    assert ok.returncode == 0, ok.stderr
    assert "valid" in ok.stdout
    assert refused.returncode == 2
    assert "session.max_drawdown" in refused.stderr
    assert unbalanced.returncode == 2
    assert "session.params" in unbalanced.stderr
    assert "the weights sum to 1.1; make them sum to exactly 1" in unbalanced.stderr


# -- paper -> live: the promotion gates ---------------------------------------------------------


def _paper_history(ledger: Path, *, trades: int, wins: int, days: int) -> str:
    """Write a finished paper run of SMA(1,2) with ``trades`` round trips over ``days`` days.

    Each trip buys 0.01 BTC at 100000 and sells it at 101000 (a win) or 99000 (a loss); the
    fee is 1 USDT per fill, so a win realizes +8 and a loss -12.
    """
    run_id = run_id_for(f"paper-history:{trades}:{wins}:{days}")
    step = timedelta(days=days) / (2 * trades + 1)
    events: list[Any] = [
        factories.a_run_started(
            run_id=run_id,
            mode=TradingMode.PAPER,
            venue="paper",
            params={"fast": "1", "slow": "2", "size": "0.1"},
        )
    ]
    for trade in range(trades):
        for leg, side in enumerate((Side.BUY, Side.SELL)):
            order = 1000 * (trades + 1) + 2 * trade + leg  # unique per history
            when = factories.T0 + step * (2 * trade + leg + 1)
            price = "100000" if side is Side.BUY else ("101000" if trade < wins else "99000")
            events += [
                factories.an_order_placed(
                    run_id=run_id, order=order, side=side, qty="0.01", occurred_at=when
                ),
                factories.an_order_submitted(run_id=run_id, order=order, occurred_at=when),
                factories.an_order_accepted(run_id=run_id, order=order, occurred_at=when),
                factories.a_fill(
                    run_id=run_id,
                    order=order,
                    side=side,
                    qty="0.01",
                    price=price,
                    fee="1",
                    occurred_at=when,
                    venue_trade_id=f"h-{order}",
                ),
            ]
    events.append(
        factories.a_run_ended(
            run_id=run_id,
            version=2,
            occurred_at=factories.T0 + timedelta(days=days),
            equity_final="10000",
            price_mark=None,
        )
    )
    store = open_store(str(ledger), create=True)
    try:
        store.append(events)
    finally:
        store.close()
    return str(run_id)


def _promotion_config(path: Path, sim: Sim, promotion: str) -> Path:
    config = _config(path, sim, seconds=1)
    config.write_text(
        config.read_text().replace("[promotion]\nrequired = false\n", f"[promotion]\n{promotion}\n")
    )
    return config


def test_live_is_refused_and_the_refusal_recorded_when_the_paper_record_fails_the_gates(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "l.db"
    paper = _paper_history(ledger, trades=10, wins=6, days=2)
    config = _promotion_config(tmp_path / "live.toml", sim, f'paper_run = "{paper[:8]}"')

    result = _run_live(tradeledger_argv, ledger, config)

    assert result.returncode == 4, result.stderr
    assert "trades 10 (needs >= 100)" in result.stderr
    assert "days 2 (needs >= 30)" in result.stderr
    assert "win_rate" not in result.stderr  # 6 of 10 won: 0.6 passes 0.55
    events = _events(ledger)
    assert not [e for e in events if isinstance(e, RunStarted) and e.mode is TradingMode.LIVE]
    refused = [e for e in events if isinstance(e, TradingModeRefused)]
    assert len(refused) == 1
    assert str(refused[0].run_id) == paper
    assert (refused[0].mode_from, refused[0].mode_to) == (TradingMode.PAPER, TradingMode.LIVE)
    criteria = {c["name"]: c for c in json.loads(refused[0].criteria)}
    assert criteria["trades"] == {"name": "trades", "required": ">= 100", "measured": "10", "passed": False}
    assert criteria["win_rate"]["measured"] == "0.6"
    assert criteria["win_rate"]["passed"] is True
    assert criteria["days"]["passed"] is False
    assert criteria["drawdown_max"]["passed"] is True
    assert sim.orders() == []  # the venue never heard of it


def test_live_starts_after_passing_gates_and_records_the_switch_with_the_measured_record(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "l.db"
    paper = _paper_history(ledger, trades=10, wins=6, days=2)
    gates = "min_trades = 10\nmin_win_rate = 0.6\nmin_days = 2\nmax_drawdown = 0.05"
    config = _promotion_config(tmp_path / "live.toml", sim, f'paper_run = "{paper}"\n{gates}')

    result = _run_live(tradeledger_argv, ledger, config)

    assert result.returncode == 0, result.stderr
    events = _events(ledger)
    live = next(e for e in events if isinstance(e, RunStarted) and e.mode is TradingMode.LIVE)
    switched = [e for e in events if isinstance(e, TradingModeSwitched) and e.run_id == live.run_id]
    assert len(switched) == 1
    assert switched[0].originator_version == 2  # right after RunStarted, before any decision
    assert (switched[0].mode_from, switched[0].mode_to) == (TradingMode.PAPER, TradingMode.LIVE)
    assert paper in switched[0].reason
    assert '"measured": "10"' in switched[0].reason
    assert not [e for e in events if isinstance(e, TradingModeRefused)]


def test_live_refuses_a_paper_record_earned_by_another_strategy(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "l.db"
    paper = _paper_history(ledger, trades=10, wins=6, days=2)
    config = _promotion_config(tmp_path / "live.toml", sim, f'paper_run = "{paper}"\nmin_trades = 1')
    config.write_text(config.read_text().replace('slow = "2"', 'slow = "3"'))

    result = _run_live(tradeledger_argv, ledger, config)

    assert result.returncode == 4
    assert "promote a paper run of this very strategy" in result.stderr
    assert not [e for e in _events(ledger) if isinstance(e, RunStarted) and e.mode is TradingMode.LIVE]


def _backtest_run(cli, ledger: Path, slow: str) -> str:
    """Backtest SMA(1, slow) on the bundled sample's first 240 bars; return its run id."""
    data = write_sample(ledger.parent / "first_hours.csv", 240)
    code, out, err = cli(
        "--ledger", ledger, "backtest", "--data", data,
        "--param", "fast=1", "--param", f"slow={slow}", "--json",
    )  # fmt: skip
    assert code == 0, err
    return str(json.loads(out)["run_id"])


def test_a_paper_session_records_the_backtest_it_follows_as_a_mode_switch(
    cli, tmp_path: Path, sim: Sim
) -> None:
    ledger = tmp_path / "p.db"
    backtest = _backtest_run(cli, ledger, slow="2")
    config = _promotion_config(tmp_path / "paper.toml", sim, f'backtest_run = "{backtest[:8]}"')

    code, _, err = cli("--ledger", ledger, "paper", "--config", config)

    assert code == 0, err
    events = _events(ledger)
    paper = next(e for e in events if isinstance(e, RunStarted) and e.mode is TradingMode.PAPER)
    switched = [e for e in events if isinstance(e, TradingModeSwitched) and e.run_id == paper.run_id]
    assert len(switched) == 1
    assert switched[0].originator_version == 2  # right after RunStarted
    assert (switched[0].mode_from, switched[0].mode_to) == (TradingMode.BACKTEST, TradingMode.PAPER)
    assert switched[0].reason.startswith(f"follows backtest run {backtest}: ")
    criteria = {c["name"] for c in json.loads(switched[0].reason.split(": ", 1)[1])}
    assert criteria == {"trades", "win_rate", "drawdown_max", "days"}  # measured, not enforced


def test_a_paper_session_refuses_a_backtest_of_another_strategy_and_live_refuses_backtest_run(
    cli, tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "p.db"
    other = _backtest_run(cli, ledger, slow="3")
    paper = cli(
        "--ledger", ledger, "paper", "--config",
        _promotion_config(tmp_path / "paper.toml", sim, f'backtest_run = "{other}"'),
    )  # fmt: skip
    live = _run_live(
        tradeledger_argv, ledger, _promotion_config(tmp_path / "live.toml", sim, f'backtest_run = "{other}"')
    )

    assert paper.returncode == 2  # bad input: nothing to refuse for safety
    assert "promotion.backtest_run" in paper.stderr
    assert "name a backtest of this very strategy" in paper.stderr
    assert live.returncode == 2
    assert "promotion.backtest_run: a live session is promoted from a paper run" in live.stderr
    assert [e.mode for e in _events(ledger) if isinstance(e, RunStarted)] == [TradingMode.BACKTEST]
    assert sim.orders() == []


def test_live_without_a_paper_run_is_refused_and_gates_out_of_range_are_bad_input(
    tmp_path: Path, sim: Sim, tradeledger_argv: list[str]
) -> None:
    ledger = tmp_path / "l.db"
    missing = _run_live(tradeledger_argv, ledger, _promotion_config(tmp_path / "a.toml", sim, ""))
    bad = _run_live(
        tradeledger_argv, ledger, _promotion_config(tmp_path / "b.toml", sim, "min_win_rate = 1.5")
    )

    assert missing.returncode == 4
    assert "promotion.paper_run" in missing.stderr
    assert bad.returncode == 2
    assert "promotion.min_win_rate" in bad.stderr


def test_gates_reports_every_criterion_read_only_and_exits_4_when_the_record_would_be_refused(
    tmp_path: Path, sim: Sim
) -> None:
    ledger = tmp_path / "l.db"
    paper = _paper_history(ledger, trades=10, wins=6, days=2)
    lenient = _promotion_config(tmp_path / "g.toml", sim, "min_trades = 10\nmin_days = 1")
    before = len(_events(ledger))

    code, out, err = run_cli(["--ledger", ledger, "gates", paper[:8], "--json"], cwd=tmp_path)
    passed = run_cli(["--ledger", ledger, "gates", paper, "--config", lenient, "--json"], cwd=tmp_path)

    assert code == 4, err
    report = json.loads(out)
    assert report["passed"] is False
    assert [(c["name"], c["passed"]) for c in report["criteria"]] == [
        ("trades", False),
        ("win_rate", True),
        ("drawdown_max", True),
        ("days", False),
    ]
    assert passed.returncode == 0, passed.stderr
    assert json.loads(passed.stdout)["passed"] is True
    assert len(_events(ledger)) == before  # read-only


# -- the LLM agent in a paper session ----------------------------------------------------------


def test_an_llm_agent_trades_a_paper_session_through_the_exchange_rules_and_its_bad_answers_are_recorded(
    cli, tmp_path: Path, sim: Sim
) -> None:
    ledger = tmp_path / "agent.db"
    with chat_server.running() as server:
        server.script(chat_server.says("{not json"), chat_server.says(chat_server.answer(action="short")))
        config = _config(tmp_path / "agent.toml", sim, seconds=5)
        config.write_text(
            config.read_text().replace(
                'strategy = "sma"\nparams = { fast = "1", slow = "2" }',
                f'strategy = "llm"\nparams = {{ base_url = "{server.url}", model = "m", every = "1" }}',
            )
        )

        code, _, err = cli("--ledger", ledger, "paper", "--config", config, "--json")

        assert code == 0, err
        requests = list(server.requests)
    events = _events(ledger)
    rejected = [e for e in events if isinstance(e, DecisionRejected)]
    assert [r.reason for r in rejected[:2]] == ["malformed_json", "schema_violation"]
    assert rejected[0].output.endswith("{not json")  # the raw answer, as it came
    made = [e for e in events if isinstance(e, DecisionMade)]
    assert made
    assert all(e.source == "llm" for e in made)
    assert len(requests) == len(rejected) + len(made)
    assert requests[0]["response_format"]["type"] == "json_schema"
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    assert placed  # the policy answers buy half of equity when flat
    step = Decimal("0.00001")
    assert all(p.qty is not None and p.qty % step == 0 and p.qty_quote is None for p in placed)
    decided = {e.decision_id for e in made}
    assert all(p.decision_id in decided for p in placed)  # no order without its recorded decision

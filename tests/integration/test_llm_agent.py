"""`tradeledger backtest --strategy llm` against a local OpenAI-compatible server, then replay.

The server (``tests/chat_server.py``) runs on 127.0.0.1 with scripted answers; backtests are
real CLI processes on the bundled sample's first day, asking every 60 bars (23 decisions).
Replays run after the server is stopped: every answer comes from the record.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

import chat_server
from chat_server import Reply, answer, says
from ledger.adapters.store import open_store
from ledger.bootstrap import bundled_sample
from ledger.domain.events import DecisionMade, DecisionRejected, OrderDenied, OrderPlaced, RunStarted

BARS = 1440
EXIT_OK, EXIT_BAD_INPUT = 0, 2


@pytest.fixture(scope="module")
def first_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lines = gzip.decompress(bundled_sample().read_bytes()).decode().split("\n")
    path = tmp_path_factory.mktemp("data") / "first_day.csv"
    path.write_text("\n".join(lines[: BARS + 1]) + "\n")
    return path


def _backtest(cli, ledger: Path, data: Path, url: str, *params: str, env=None):
    args = ["--param", f"base_url={url}", "--param", "model=scripted-1"]
    for param in params:
        args += ["--param", param]
    return cli("--ledger", ledger, "backtest", "--data", data, "--strategy", "llm", *args, "--json", env=env)


def _events(ledger: Path):
    store = open_store(str(ledger), create=False)
    try:
        return [event for _, event in store.read_log(0, 100_000)]
    finally:
        store.close()


def _replay(cli, ledger: Path, run_id: str, data: Path):
    code, out, err = cli("--ledger", ledger, "replay", run_id, "--data", data, "--json")
    return code, (json.loads(out) if out.strip() else None), err


@pytest.mark.slow
def test_an_agent_backtest_trades_through_the_server_and_replays_without_it(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    with chat_server.running() as server:
        key = {"TRADELEDGER_LLM_API_KEY": "sk-test-secret-123"}
        code, out, err = _backtest(cli, ledger, first_day, server.url, env=key)
        requests, headers = server.requests, server.headers
    assert code == EXIT_OK, err
    summary = json.loads(out)
    assert len(requests) == 23  # bars 59, 119, ..., 1379 (1439 is the last bar, never filled)
    assert summary["orders"] == 23
    assert summary["fills"] == 23
    assert headers[0]["Authorization"] == "Bearer sk-test-secret-123"
    assert requests[0]["response_format"]["type"] == "json_schema"
    assert requests[0]["model"] == "scripted-1"

    events = _events(ledger)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.strategy == "llm"
    assert json.loads(started.params)["model"] == "scripted-1"
    made = [e for e in events if isinstance(e, DecisionMade)]
    assert len(made) == 23
    assert all(e.source == "llm" and e.rationale and len(e.input_digest) == 64 for e in made)
    assert json.loads(made[0].output)["weight_target"] == "0.5"
    assert made[0].qty_quote is not None  # the engine sized the weight as a quote amount
    log = Path(ledger).read_bytes()
    assert b"sk-test-secret-123" not in log

    # The server is gone: the replay must not need it, and agrees byte for byte.
    code, report, err = _replay(cli, ledger, summary["run_id"], first_day)
    assert code == EXIT_OK, (report, err)
    assert {c["name"]: c["status"] for c in report["checks"]}["rerun"] == "ok"


@pytest.mark.slow
def test_every_bad_answer_is_a_recorded_rejection_never_an_order(
    cli, tmp_path: Path, first_day: Path
) -> None:
    ledger = tmp_path / "l.db"
    script = [
        says("I think you should buy."),  # malformed_json
        says(answer(action="buy")),  # schema_violation: no size
        says(answer(instrument="ETH/USDT", action="buy", qty_quote=100)),  # unknown_symbol
        says(answer(action="buy", qty_quote="1000000")),  # out_of_bounds: more than the cash
        says(answer(action="sell", qty="0.1")),  # out_of_bounds: nothing to sell
        says(answer(action="hold"), delay_s=3.0),  # timeout (0.5 s, not retried)
        Reply(status=500, body='{"error": "boom"}'),  # http_error (retries=0)
        Reply(status=429, body='{"error": "slow down"}', headers={"Retry-After": "1"}),
        Reply(status=400, body='{"error": {"message": "bad request"}}'),
        Reply(body=chat_server.completion(None, refusal="I cannot help with trading.")),
        Reply(body="<html>not an API</html>"),  # http_error: not a chat completion
    ]
    with chat_server.running() as server:
        server.script(*script)
        code, out, err = _backtest(cli, ledger, first_day, server.url, "timeout_s=0.5", "retries=0")
    assert code == EXIT_OK, err
    summary = json.loads(out)
    events = _events(ledger)
    rejected = [e for e in events if isinstance(e, DecisionRejected)]
    assert [e.reason for e in rejected] == [
        "malformed_json",
        "schema_violation",
        "unknown_symbol",
        "out_of_bounds",
        "out_of_bounds",
        "timeout",
        "http_error",
        "http_error",
        "http_error",
        "refused",
        "http_error",
    ]
    assert rejected[0].output == "I think you should buy."
    assert "HTTP 500" in rejected[6].detail
    assert "429" in rejected[7].detail
    assert "not retried" in rejected[8].detail
    # The first order comes from the first valid answer, after all eleven rejections.
    placed = [e for e in events if isinstance(e, OrderPlaced)]
    first_order_at = events.index(placed[0])
    assert all(events.index(e) < first_order_at for e in rejected)
    decision_ids = {e.decision_id for e in events if isinstance(e, DecisionMade)}
    assert all(p.decision_id in decision_ids for p in placed)
    assert summary["orders"] == 23 - 11

    code, out, err = cli(
        "--ledger",
        ledger,
        "query",
        "SELECT rejected_reason, count(*) AS n FROM decisions "
        "WHERE rejected_reason IS NOT NULL GROUP BY 1 ORDER BY 1",
        "--json",
    )
    assert code == EXIT_OK, err
    assert {r["rejected_reason"]: r["n"] for r in json.loads(out)} == dict(
        Counter(e.reason for e in rejected)
    )

    code, report, err = _replay(cli, ledger, summary["run_id"], first_day)
    assert code == EXIT_OK, (report, err)


@pytest.mark.slow
def test_the_kill_switch_denies_an_agents_orders(cli, tmp_path: Path, first_day: Path) -> None:
    ledger = tmp_path / "l.db"
    code, _, err = cli("--ledger", ledger, "kill", "--reason", "test")
    assert code == EXIT_OK, err
    with chat_server.running() as server:
        code, out, err = _backtest(cli, ledger, first_day, server.url, "every=240")
    assert code == EXIT_OK, err
    events = _events(ledger)
    denied = [e for e in events if isinstance(e, OrderDenied)]
    assert denied
    assert {e.reason for e in denied} == {"kill_switch"}
    assert json.loads(out)["fills"] == 0


@pytest.mark.parametrize(
    ("params", "named"),
    [
        (["api_key=sk-x"], "--param api_key"),
        (["timeout_s=0"], "--param timeout_s"),
        (["every=0"], "--param every"),
    ],
)
def test_bad_agent_parameters_exit_2_naming_the_param(
    cli, tmp_path: Path, first_day: Path, params, named: str
) -> None:
    ledger = tmp_path / "l.db"
    code, _, err = _backtest(cli, ledger, first_day, "http://127.0.0.1:9/v1", *params)
    assert code == EXIT_BAD_INPUT
    assert named in err
    assert "sk-x" not in err
    assert not ledger.exists()

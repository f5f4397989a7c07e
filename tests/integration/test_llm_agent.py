"""`tradeledger backtest --strategy llm` against a local OpenAI-compatible server, then replay.

The server (``tests/chat_server.py``) runs on 127.0.0.1 with scripted answers; backtests are
real CLI processes on the bundled sample's first day, asking every 60 bars (23 decisions).
Replays run after the server is stopped: every answer comes from the record.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import chat_server
from chat_server import Reply, answer, says
from cli_runner import run_cli
from ledger.adapters.store import open_store
from ledger.domain.events import DecisionMade, DecisionRejected, OrderDenied, OrderPlaced, RunStarted
from sample_data import write_sample

BARS = 1440
EXIT_OK, EXIT_BAD_INPUT = 0, 2


@pytest.fixture(scope="module")
def first_day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("data") / "first_day.csv", BARS)


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


# -- the API key from the encrypted key store (`keys add --exchange llm`, --param key_label) --------

LLM_KEY = "sk-store-llm-key-0a1b2c3d4e5f"
EXCHANGE_SECRET = "exchange-secret-never-sent-9876"  # noqa: S105 - made-up test values
KEYS_PASSPHRASE = "a passphrase for the llm key store"  # noqa: S105
EXIT_REFUSED = 4


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A key file with the LLM key ``llm-main`` and the exchange key ``binance-main``."""
    folder = tmp_path_factory.mktemp("keys")
    keys = folder / "vault" / "keys.enc"
    env = {"TRADELEDGER_KEYS_PASSPHRASE": KEYS_PASSPHRASE}
    added = run_cli(
        ["keys", "add", "--exchange", "llm", "--label", "llm-main", "--api-key", LLM_KEY, "--keys", keys],
        cwd=folder,
        env=env,
    )
    assert added.returncode == EXIT_OK, added.stderr
    assert LLM_KEY not in added.stdout + added.stderr
    exchange = run_cli(
        ["keys", "add", "--exchange", "binance", "--label", "binance-main", "--api-key", "AKIAEXCHANGE0099",
         "--api-secret", EXCHANGE_SECRET, "--permissions", "read,trade", "--keys", keys],
        cwd=folder,
        env=env,
    )  # fmt: skip
    assert exchange.returncode == EXIT_OK, exchange.stderr
    return keys


def _store_env(keys: Path, **extra: str) -> dict[str, str]:
    return {"TRADELEDGER_KEYS": str(keys), "TRADELEDGER_KEYS_PASSPHRASE": KEYS_PASSPHRASE, **extra}


def test_keys_list_shows_an_llm_key_without_its_key(cli, key_file: Path) -> None:
    code, out, err = cli("keys", "list", "--json", env=_store_env(key_file))
    assert code == EXIT_OK, err
    rows = {row["label"]: row for row in json.loads(out)}
    assert rows["llm-main"]["exchange"] == "llm"
    assert rows["llm-main"]["permissions"] == ["read"]
    assert rows["llm-main"]["key_id"] == "sk-s…"
    code, table, err = cli("keys", "list", env=_store_env(key_file))
    assert code == EXIT_OK, err
    assert "llm-main" in table
    assert LLM_KEY not in out + table + err
    assert LLM_KEY.encode() not in key_file.read_bytes()


@pytest.mark.slow
def test_an_agent_sends_the_stored_key_and_records_only_its_label(
    cli, tmp_path: Path, first_day: Path, key_file: Path
) -> None:
    ledger = tmp_path / "l.db"
    # The environment's key loses to the label: a run names the key it means.
    env = _store_env(key_file, TRADELEDGER_LLM_API_KEY="sk-environment-key-not-this-one")
    with chat_server.running() as server:
        code, out, err = _backtest(
            cli, ledger, first_day, server.url, "every=240", "key_label=llm-main", env=env
        )
        headers = server.headers
    assert code == EXIT_OK, err
    assert len(headers) == 5  # bars 239, 479, ..., 1199
    assert {h["Authorization"] for h in headers} == {f"Bearer {LLM_KEY}"}

    started = next(e for e in _events(ledger) if isinstance(e, RunStarted))
    assert json.loads(started.params)["key_label"] == "llm-main"
    query = cli("--ledger", ledger, "query", "SELECT * FROM events", "--json")
    assert query.returncode == EXIT_OK, query.stderr
    assert "llm-main" in query.stdout  # the events are there, the label with them
    texts = [out, err, query.stdout, query.stderr]
    files = [ledger, ledger.with_suffix(".duckdb")]
    assert all(path.exists() for path in files)
    assert all(LLM_KEY not in text for text in texts)
    assert all(LLM_KEY.encode() not in path.read_bytes() for path in files)

    # No server, no key file, no passphrase: the replay serves the recorded answers.
    code, report, err = _replay(cli, ledger, json.loads(out)["run_id"], first_day)
    assert code == EXIT_OK, (report, err)
    assert {c["name"]: c["status"] for c in report["checks"]}["rerun"] == "ok"
    assert LLM_KEY not in err + json.dumps(report)


BAD_LABELS = {
    "unknown-label": ("nobody", {}, "no key 'nobody'"),
    "no-passphrase": ("llm-main", {"TRADELEDGER_KEYS_PASSPHRASE": ""}, "set $TRADELEDGER_KEYS_PASSPHRASE"),
    "wrong-passphrase": ("llm-main", {"TRADELEDGER_KEYS_PASSPHRASE": "not it"}, "wrong passphrase"),
    "exchange-key": ("binance-main", {}, "is a binance exchange key, not an LLM API key"),
    "no-key-file": ("llm-main", {"TRADELEDGER_KEYS": "/nonexistent/keys.enc"}, "no key file"),
}


@pytest.mark.parametrize("case", BAD_LABELS.values(), ids=BAD_LABELS.keys())
def test_a_key_label_that_opens_no_llm_key_exits_2_before_the_ledger_exists(
    cli, tmp_path: Path, first_day: Path, key_file: Path, case: tuple[str, dict[str, str], str]
) -> None:
    label, env, says = case
    ledger = tmp_path / "l.db"
    with chat_server.running() as server:
        code, out, err = _backtest(
            cli, ledger, first_day, server.url, f"key_label={label}", env={**_store_env(key_file), **env}
        )
        asked = len(server.requests)
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith("--param key_label: ")
    assert says in err
    assert asked == 0
    assert not ledger.exists()
    assert all(secret not in out + err for secret in (LLM_KEY, EXCHANGE_SECRET, KEYS_PASSPHRASE))


def test_a_key_file_others_can_read_is_refused_with_exit_4(
    cli, tmp_path: Path, first_day: Path, key_file: Path
) -> None:
    wide = tmp_path / "wide.enc"
    wide.write_bytes(key_file.read_bytes())
    wide.chmod(0o644)
    ledger = tmp_path / "l.db"
    code, _, err = _backtest(
        cli, ledger, first_day, "http://127.0.0.1:9/v1", "key_label=llm-main",
        env=_store_env(key_file, TRADELEDGER_KEYS=str(wide)),
    )  # fmt: skip
    assert code == EXIT_REFUSED
    assert f"chmod 600 {wide}" in err
    assert not ledger.exists()


def test_a_session_refuses_an_llm_key_as_its_exchange_key(cli, tmp_path: Path, key_file: Path) -> None:
    config = tmp_path / "s.toml"
    config.write_text(
        '[session]\nsymbol = "BTC/USDT"\n[venue]\napi_url = "http://127.0.0.1:1/api/v3"\n'
        f'key_label = "llm-main"\nkeys_file = "{key_file}"\n'
    )
    ledger = tmp_path / "s.db"
    code, _, err = cli("--ledger", ledger, "paper", "--config", config, env=_store_env(key_file))
    assert code == EXIT_BAD_INPUT, err
    assert "venue.key_label: key 'llm-main' is an LLM agent's API key" in err
    assert LLM_KEY not in err
    assert not ledger.exists()

"""An encrypted ledger through the installed `tradeledger` command, end to end.

One backtest of the bundled sample's first day goes into an encrypted ledger (key from
`tradeledger admin new-cipher-key`) and the same backtest into a plaintext one: every reader
must give the same answers from both, the encrypted file must hold none of the run's plaintext,
and every command without the key, or with another, must exit 2 naming $TRADELEDGER_CIPHER_KEY
and leave the ledger as it was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from cli_runner import run_cli
from ledger.adapters.store import new_cipher_key
from sample_data import write_sample
from sim_runner import running_sim

BARS = 1440  # the first day of the bundled 1-minute sample
ENV = "TRADELEDGER_CIPHER_KEY"
EXIT_BAD_INPUT = 2
EXIT_INTEGRITY = 3
TABLES = ("events", "orders", "fills", "positions", "balances", "equity", "decisions")


class Ledgers(NamedTuple):
    """The same backtest in an encrypted and a plaintext ledger."""

    work: Path
    key: str
    sealed: Path
    plain: Path
    summary: dict[str, Any]
    plain_summary: dict[str, Any]


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory) -> Ledgers:
    work = tmp_path_factory.mktemp("cipher_cli")
    data = write_sample(work / "first_day.csv", BARS)
    code, key, err = run_cli(["admin", "new-cipher-key"], cwd=work)
    assert code == 0, err
    key = key.strip()
    summaries = []
    for name, env in (("sealed.db", {ENV: key}), ("plain.db", {})):
        code, out, err = run_cli(
            ["--ledger", work / name, "backtest", "--data", data, "--json"], cwd=work, env=env
        )
        assert code == 0, err
        summaries.append(json.loads(out))
    return Ledgers(work, key, work / "sealed.db", work / "plain.db", summaries[0], summaries[1])


def _snapshot(ledger: Path) -> tuple[Any, ...]:
    # Every table the ledger writes, read with sqlite3 itself.
    with closing(sqlite3.connect(ledger)) as conn:
        events = conn.execute("SELECT rowid, originator_id, originator_version, state FROM stored_events")
        digest = hashlib.sha256(repr(events.fetchall()).encode()).hexdigest()
        return (
            digest,
            conn.execute("SELECT * FROM chain_segments ORDER BY run_id, n_from").fetchall(),
            conn.execute("SELECT * FROM projection_checkpoints ORDER BY name").fetchall(),
            conn.execute("SELECT * FROM ledger_meta").fetchall(),
        )


def _copy(ledger: Path, directory: Path) -> Path:
    for path in ledger.parent.iterdir():
        if path.name.startswith(f"{ledger.name}") and path.is_file():
            shutil.copyfile(path, directory / path.name)
    return directory / ledger.name


def _ok(cli, ledger: Path | str, *args: str | Path, key: str | None) -> str:
    code, out, err = cli("--ledger", ledger, *args, env={} if key is None else {ENV: key})
    assert code == 0, err
    return str(out)


def test_new_cipher_key_prints_one_aes_256_key_alone_on_stdout(cli) -> None:
    code, out, err = cli("admin", "new-cipher-key")

    assert code == 0, err
    assert out.count("\n") == 1
    assert len(base64.b64decode(out.strip(), validate=True)) == 32
    assert "key id" in err
    assert out.strip() not in err


def test_an_encrypted_backtest_reports_what_a_plaintext_one_does(ledgers: Ledgers) -> None:
    # The hash chain covers the plaintext, so even the chain head is the same.
    assert ledgers.summary == ledgers.plain_summary
    assert ledgers.summary["fills"] > 0


@pytest.mark.slow
def test_every_reader_with_the_key_answers_as_on_the_plaintext_ledger(
    cli, ledgers: Ledgers, tmp_path: Path
) -> None:
    sealed = _copy(ledgers.sealed, tmp_path)
    plain, key = ledgers.plain, ledgers.key
    run_id = ledgers.summary["run_id"]

    for args in (("sessions", "--json"), ("positions", "--json")):
        assert json.loads(_ok(cli, sealed, *args, key=key)) == json.loads(_ok(cli, plain, *args, key=None))
    for table in TABLES:
        sql = f"SELECT * FROM {table} ORDER BY ALL"
        assert _ok(cli, sealed, "query", sql, "--json", key=key) == _ok(
            cli, plain, "query", sql, "--json", key=None
        )
    export = ("export", run_id, "--format", "jsonl")
    assert _ok(cli, sealed, *export, key=key) == _ok(cli, plain, *export, key=None)
    assert "chain intact" in _ok(cli, sealed, "verify", key=key)
    replay = json.loads(
        _ok(cli, sealed, "replay", run_id, "--data", ledgers.work / "first_day.csv", "--json", key=key)
    )
    assert replay["ok"] is True
    assert {c["name"]: c["status"] for c in replay["checks"]} == dict.fromkeys(
        ("chain", "checkpoint", "projection", "analytics", "rerun"), "ok"
    )
    assert "synced up to seq" in _ok(cli, sealed, "sync", key=key)
    assert "rebuilt the portfolio" in _ok(cli, sealed, "rebuild", key=key)
    _ok(cli, sealed, "export", run_id, "--format", "parquet", "--out", tmp_path / "run.parquet", key=key)
    assert (tmp_path / "run.parquet").stat().st_size > 0


def test_the_encrypted_file_holds_none_of_the_runs_plaintext(ledgers: Ledgers) -> None:
    files = [p for p in ledgers.work.iterdir() if p.name.startswith("sealed.db")]  # db, -wal, -shm
    content = b"".join(p.read_bytes() for p in files)
    plain = ledgers.plain.read_bytes()
    query: list[str | Path] = [
        "--ledger",
        ledgers.plain,
        "query",
        "SELECT client_order_id FROM orders LIMIT 1",
        "--json",
    ]
    client_order_id = json.loads(run_cli(query, cwd=ledgers.work)[1])[0]["client_order_id"]

    for marker in (b"BTC/USDT", client_order_id.encode(), b'OrderFilled",', b'"instrument"'):
        assert marker not in content, marker
    assert b"BTC/USDT" in plain  # the control: the plaintext ledger shows both
    assert client_order_id.encode() in plain
    assert ledgers.key.encode() not in content
    assert base64.b64decode(ledgers.key) not in content
    with closing(sqlite3.connect(ledgers.sealed)) as conn:
        (recorded,) = conn.execute("SELECT value FROM ledger_meta WHERE name = 'payload_cipher'").fetchone()
    assert recorded.startswith("aes-256-gcm:")


COMMANDS = [
    ("sessions",),
    ("positions", "--json"),
    ("verify",),
    ("query", "SELECT count(*) FROM fills"),
    ("sync",),
    ("rebuild",),
    ("backtest", "--json"),
    ("kill", "--reason", "test"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "key"),
    [*((args, "missing") for args in COMMANDS), *((args, "another") for args in COMMANDS[::3])],
    ids=lambda value: value if isinstance(value, str) else value[0],
)
def test_without_the_right_key_every_command_exits_2_and_the_ledger_is_untouched(
    cli, ledgers: Ledgers, tmp_path: Path, args: tuple[str, ...], key: str
) -> None:
    sealed = _copy(ledgers.sealed, tmp_path)
    before = _snapshot(sealed)
    env = {} if key == "missing" else {ENV: new_cipher_key()}

    code, out, err = cli("--ledger", sealed, *args, env=env)

    assert code == EXIT_BAD_INPUT, (out, err)
    assert err.count("\n") == 1
    assert f"${ENV}" in err
    assert "the key it was created with" in err
    assert _snapshot(sealed) == before


def test_a_key_on_a_plaintext_ledger_exits_2_and_writes_nothing(
    cli, ledgers: Ledgers, tmp_path: Path
) -> None:
    plain = _copy(ledgers.plain, tmp_path)
    before = _snapshot(plain)

    code, _, err = cli("--ledger", plain, "backtest", "--json", env={ENV: ledgers.key})

    assert code == EXIT_BAD_INPUT
    assert f"${ENV} is set but the ledger" in err
    assert f"unset ${ENV}" in err
    assert _snapshot(plain) == before


def test_a_malformed_key_exits_2_and_creates_no_ledger(cli, tmp_path: Path) -> None:
    code, _, err = cli("--ledger", tmp_path / "new.db", "backtest", env={ENV: "c2hvcnQ="})

    assert code == EXIT_BAD_INPUT
    assert "decodes to 5 bytes, not the 32 of an AES-256 key" in err
    assert "tradeledger admin new-cipher-key" in err
    assert not (tmp_path / "new.db").exists()


def test_an_edited_encrypted_row_is_an_integrity_failure_at_its_seq(
    cli, ledgers: Ledgers, tmp_path: Path
) -> None:
    sealed = _copy(ledgers.sealed, tmp_path)
    with closing(sqlite3.connect(sealed)) as conn, conn:
        (state,) = conn.execute("SELECT state FROM stored_events WHERE rowid = 40").fetchone()
        edited = bytearray(state)
        edited[-3] ^= 0x20
        conn.execute("UPDATE stored_events SET state = ? WHERE rowid = 40", (bytes(edited),))

    run_id = ledgers.summary["run_id"]

    for args in (
        ("verify",),
        ("query", "SELECT count(*) FROM fills"),
        ("export", run_id, "--format", "jsonl"),
    ):
        code, out, err = cli("--ledger", sealed, *args, env={ENV: ledgers.key})
        assert code == EXIT_INTEGRITY, (args, err)
        assert "event seq 40 does not decrypt with the ledger's key" in err, args
        # export streams the lines before the edited row, as for any row it cannot read.
        assert out == "" or args[0] == "export", args


@pytest.mark.postgres
def test_an_encrypted_postgres_ledger_backtests_and_queries_with_the_key(
    cli, ledgers: Ledgers, postgres_url: str
) -> None:
    key = ledgers.key
    data = ledgers.work / "first_day.csv"

    summary = json.loads(_ok(cli, postgres_url, "backtest", "--data", data, "--json", key=key))
    rows = json.loads(_ok(cli, postgres_url, "query", "SELECT count(*) AS n FROM fills", "--json", key=key))
    code, _, err = cli("--ledger", postgres_url, "sessions")

    assert summary == ledgers.plain_summary
    assert rows == [{"n": summary["fills"]}]
    assert code == EXIT_BAD_INPUT
    assert f"set ${ENV} to the key it was created with" in err


# -- a paper session against the local exchange server --------------------------------------------

SIM_KEY, SIM_SECRET = "test-key", "test-secret"


@pytest.fixture
def sim_api(tmp_path: Path, tradeledger_argv: list[str]) -> Iterator[str]:
    """Run `tradeledger exchange-sim` (120 bars a minute) and yield its /api/v3 URL."""
    options = ("--speed", "120", "--start-bar", "600")
    with running_sim(tradeledger_argv, tmp_path, *options, key=SIM_KEY, secret=SIM_SECRET) as base:
        yield f"{base}/api/v3"


@pytest.mark.slow
def test_a_paper_session_writes_an_encrypted_ledger_its_readers_open_with_the_key(
    cli, tmp_path: Path, sim_api: str
) -> None:
    key = new_cipher_key()
    config = tmp_path / "paper.toml"
    config.write_text(
        '[session]\nsymbol = "BTC/USDT"\nstrategy = "sma"\nparams = { fast = "1", slow = "2" }\n'
        f'poll_seconds = 0.1\nduration_seconds = 4\n\n[venue]\napi_url = "{sim_api}"\ntimeout_ms = 15000\n'
    )
    ledger = tmp_path / "paper.db"

    summary = json.loads(_ok(cli, ledger, "paper", "--config", config, "--json", key=key))
    sessions = json.loads(_ok(cli, ledger, "sessions", "--json", key=key))
    fills = json.loads(_ok(cli, ledger, "query", "SELECT count(*) AS n FROM fills", "--json", key=key))
    replayed = json.loads(_ok(cli, ledger, "replay", summary["run_id"], "--json", key=key))

    assert [s["run_id"] for s in sessions] == [summary["run_id"]]
    assert sessions[0]["mode"] == "paper"
    assert fills == [{"n": summary["fills"]}]
    assert replayed["ok"] is True
    with closing(sqlite3.connect(ledger)) as conn:
        states = [bytes(s) for (s,) in conn.execute("SELECT state FROM stored_events")]
    assert len(states) == sessions[0]["events"]
    assert not any(b"BTC/USDT" in s or b"paper" in s for s in states)

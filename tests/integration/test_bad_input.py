"""Bad input through the command line (SPEC §4, §5): exit 2, one sentence, ledger untouched.

Every case checks, through the installed ``tradeledger`` command:

* the exit code is 2;
* stderr is exactly one line, naming the file / line / field at fault and how to fix it;
* with a fresh ``--ledger`` path, nothing is created (neither the ledger nor its DuckDB file);
* with an existing ledger, every file of it (the ``.db``, its ``-wal`` / ``-shm`` when present
  and the ``.duckdb`` projection) is byte-for-byte what it was.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from ledger.bootstrap import BacktestRequest, bundled_sample, run_backtest_request

HEADER = "timestamp,open,high,low,close,volume"
ROW_1 = "1747699200000,100,101,99,100,1"
ROW_2 = "1747699260000,100,101,99,100,1"


def _csv(*rows: str) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


def _truncated_gzip() -> bytes:
    data = bundled_sample().read_bytes()
    return data[: len(data) // 2]


# name -> (file name, bytes, fragments the one line must contain: file, line, field, fix)
DATA_FILES: dict[str, tuple[str, Callable[[], bytes], tuple[str, ...]]] = {
    "too_few_fields": (
        "few.csv",
        lambda: _csv(ROW_1, "1747699260000,100,101,99"),
        ("few.csv", ":3", "field"),
    ),
    "truncated_gzip": ("half.csv.gz", _truncated_gzip, ("half.csv.gz", "truncated", "copy")),
    "unsorted_timestamps": (
        "unsorted.csv",
        lambda: _csv(ROW_2, ROW_1),
        ("unsorted.csv", ":3", "timestamp", "sort"),
    ),
    "duplicate_timestamp": (
        "dup.csv",
        lambda: _csv(ROW_1, ROW_1),
        ("dup.csv", ":3", "timestamp", "duplicate"),
    ),
    "nan_price": (
        "nan.csv",
        lambda: _csv(ROW_1, "1747699260000,100,NaN,99,100,1"),
        ("nan.csv", ":3", "high", "finite"),
    ),
    "negative_price": (
        "neg.csv",
        lambda: _csv(ROW_1, "1747699260000,100,101,-99,100,1"),
        ("neg.csv", ":3", "low"),
    ),
    "zero_price": (
        "zero.csv",
        lambda: _csv(ROW_1, "1747699260000,100,101,99,0,1"),
        ("zero.csv", ":3", "close"),
    ),
    "high_below_low": (
        "hilo.csv",
        lambda: _csv(ROW_1, "1747699260000,100,95,105,100,1"),
        ("hilo.csv", ":3", "high", "low"),
    ),
    "missing_column": (
        "nocol.csv",
        lambda: b"timestamp,open,high,low,volume\n1747699200000,100,101,99,1\n",
        ("nocol.csv", ":1", "close", "header"),
    ),
    "empty_file": ("empty.csv", lambda: b"", ("empty.csv", "empty", "header")),
    "header_only": ("head.csv", _csv, ("head.csv", "row")),
    "timestamp_not_a_number": (
        "ts.csv",
        lambda: _csv(ROW_1, "yesterday,100,101,99,100,1"),
        ("ts.csv", ":3", "timestamp"),
    ),
    "not_utf8": ("latin.csv", lambda: _csv(ROW_1) + b"\xff\xfe\n", ("latin.csv", "UTF-8")),
    "gzip_of_garbage": ("junk.csv.gz", lambda: b"\x1f\x8b" + b"\x00" * 40, ("junk.csv.gz", "gzip")),
}
DATA_FILES_HUGE = {
    "price_too_large_for_int64_units": (
        "huge.csv",
        lambda: _csv(ROW_1, "1747699260000,99999999999999999999,99999999999999999999,99,100,1"),
        ("huge.csv", ":3", "open"),
    ),
}

# extra backtest arguments, fragments the line must contain
OPTIONS = [
    pytest.param(["--symbol", "DOGE/EUR"], ("--symbol", "DOGE/EUR", "BTC/USDT"), id="unknown_symbol"),
    pytest.param(["--strategy", "nope"], ("--strategy", "nope", "sma"), id="unknown_strategy"),
    pytest.param(["--param", "fast=abc"], ("--param", "fast", "abc"), id="param_not_a_number"),
    pytest.param(
        ["--param", "slow=5", "--param", "fast=10"], ("--param", "slow", "fast"), id="param_slow_not_longer"
    ),
    pytest.param(["--param", "speed=3"], ("--param", "speed", "fast"), id="param_unknown_key"),
    pytest.param(["--param", "fast=0"], ("--param", "fast"), id="param_fast_zero"),
    pytest.param(["--param", "size=NaN"], ("--param", "size"), id="param_size_nan"),
    pytest.param(["--cash", "-5"], ("--cash", "-5"), id="cash_negative"),
    pytest.param(["--cash", "0"], ("--cash", "0"), id="cash_zero"),
    pytest.param(["--cash", "Infinity"], ("--cash", "Infinity"), id="cash_infinite"),
    pytest.param(["--cash", "lots"], ("--cash", "lots"), id="cash_not_a_number"),
    pytest.param(["--fee", "2"], ("--fee", "2"), id="fee_too_large"),
    pytest.param(["--fee", "-0.001"], ("--fee", "-0.001"), id="fee_negative"),
    pytest.param(["--fill-model", "magic"], ("--fill-model", "magic", "next-open"), id="unknown_fill_model"),
    pytest.param(["--seed", "-1"], ("--seed", "-1"), id="negative_seed"),
    pytest.param(
        ["--seed", "x"],
        ("seed",),
        id="seed_not_an_integer",
    ),
    pytest.param(
        ["--frobnicate"],
        ("frobnicate",),
        id="unknown_option",
    ),
    pytest.param(
        ["--param", "nokeyvalue"],
        ("--param", "nokeyvalue", "KEY=VALUE"),
        id="param_without_equals",
    ),
    pytest.param(["--slippage", "quadratic"], ("--slippage", "quadratic", "sqrt"), id="unknown_slippage"),
    pytest.param(["--latency-ms", "-5"], ("--latency-ms", "-5"), id="negative_latency"),
    pytest.param(["--failure-rate", "1.5"], ("--failure-rate", "1.5", "1"), id="failure_rate_above_1"),
    pytest.param(["--failure-rate", "-0.1"], ("--failure-rate", "-0.1"), id="failure_rate_negative"),
    pytest.param(["--failure-rate", "NaN"], ("--failure-rate", "NaN"), id="failure_rate_nan"),
    pytest.param(["--maker-fee", "abc"], ("--maker-fee", "abc"), id="maker_fee_not_a_number"),
    pytest.param(["--queue-ahead", "-1"], ("--queue-ahead", "-1"), id="queue_ahead_negative"),
    pytest.param(["--limit-timeout-s", "0"], ("--limit-timeout-s", "0"), id="limit_timeout_zero"),
    pytest.param(
        ["--fill-model", "orderbook", "--slippage", "sqrt"],
        ("--slippage", "orderbook", "none"),
        id="orderbook_with_slippage_model",
    ),
    pytest.param(["--config", "no-such.toml"], ("--config", "no-such.toml"), id="config_missing"),
    pytest.param(
        ["--cash", "NaN"],
        ("--cash", "NaN"),
        id="cash_nan",
    ),
    pytest.param(
        ["--fee", "NaN"],
        ("--fee", "NaN"),
        id="fee_nan",
    ),
]


def _ledger_files(ledger: Path) -> dict[str, str]:
    # The store is the .db and its WAL / shared-memory files; the .duckdb beside it is a
    # projection that read commands may refresh, so it is not compared (only its creation is).
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(ledger.parent.iterdir())
        if p.name in {ledger.name, f"{ledger.name}-wal", f"{ledger.name}-shm"}
    }


@pytest.fixture(scope="module")
def existing_ledger(bundled_backtest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the bundled backtest's ledger (with its DuckDB file), in its own directory."""
    source = Path(bundled_backtest.ledger)
    directory = tmp_path_factory.mktemp("existing")
    for path in source.parent.iterdir():
        if path.name.startswith(source.stem):
            shutil.copyfile(path, directory / path.name)
    return directory / source.name


@pytest.fixture
def fresh_ledger(tmp_path: Path) -> Path:
    """A ledger path in an empty directory of its own: nothing may appear there."""
    directory = tmp_path / "ledger"
    directory.mkdir()
    return directory / "new.db"


@pytest.fixture(params=["fresh", "existing"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "fresh":
        fresh: Path = request.getfixturevalue("fresh_ledger")
        return fresh
    existing: Path = request.getfixturevalue("existing_ledger")
    return existing


def _assert_refused(result, fragments: tuple[str, ...]) -> None:
    code, out, err = result
    assert code == 2, f"exit {code}; stderr: {err!r}"
    lines = err.strip("\n").splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {err!r}"
    for fragment in fragments:
        assert fragment.lower() in lines[0].lower(), f"{fragment!r} not named in {lines[0]!r}"
    assert "Traceback" not in err
    assert out == ""


def _run_refused(cli, ledger: Path, args: list[str], fragments: tuple[str, ...], cwd: Path) -> None:
    fresh = not ledger.exists()
    before = _ledger_files(ledger)
    _assert_refused(cli("--ledger", ledger, *args, cwd=cwd), fragments)
    if fresh:
        assert list(ledger.parent.iterdir()) == [], "a refused command created files next to the ledger"
    else:
        assert _ledger_files(ledger) == before, "the ledger's bytes changed"


@pytest.mark.parametrize("case", sorted(DATA_FILES))
def test_bad_data_file_is_refused(cli, ledger: Path, tmp_path: Path, case: str) -> None:
    name, content, fragments = DATA_FILES[case]
    (tmp_path / name).write_bytes(content())

    _run_refused(cli, ledger, ["backtest", "--data", name], fragments, tmp_path)


@pytest.mark.parametrize("case", sorted(DATA_FILES_HUGE))
def test_price_too_large_is_refused(cli, fresh_ledger: Path, tmp_path: Path, case: str) -> None:
    name, content, fragments = DATA_FILES_HUGE[case]
    (tmp_path / name).write_bytes(content())

    _run_refused(cli, fresh_ledger, ["backtest", "--data", name], fragments, tmp_path)


def test_non_existent_data_file_is_refused(cli, ledger: Path, tmp_path: Path) -> None:
    _run_refused(cli, ledger, ["backtest", "--data", "missing.csv"], ("--data", "missing.csv"), tmp_path)


def test_data_path_that_is_a_directory_is_refused(cli, ledger: Path, tmp_path: Path) -> None:
    (tmp_path / "candles").mkdir()
    _run_refused(cli, ledger, ["backtest", "--data", "candles"], ("--data", "candles"), tmp_path)


@pytest.mark.parametrize(("args", "fragments"), OPTIONS)
def test_bad_backtest_option_is_refused(
    cli, ledger: Path, tmp_path: Path, args: list[str], fragments: tuple[str, ...]
) -> None:
    _run_refused(cli, ledger, ["backtest", *args], fragments, tmp_path)


def test_error_naming_a_long_path_stays_on_one_line(cli, fresh_ledger: Path, tmp_path: Path) -> None:
    deep = tmp_path / ("candles-archive-" + "x" * 120)
    deep.mkdir()
    (deep / "unsorted.csv").write_bytes(DATA_FILES["unsorted_timestamps"][1]())

    _run_refused(
        cli,
        fresh_ledger,
        ["backtest", "--data", str(deep / "unsorted.csv")],
        ("unsorted.csv", ":3"),
        tmp_path,
    )


@pytest.mark.parametrize(
    "command",
    [
        ["positions", "nosuchrun"],
        ["export", "nosuchrun", "--format", "jsonl"],
        ["verify", "nosuchrun"],
        ["report", "nosuchrun", "--out", "r.html"],
    ],
)
def test_unknown_run_is_refused(cli, existing_ledger: Path, tmp_path: Path, command: list[str]) -> None:
    _run_refused(cli, existing_ledger, command, ("nosuchrun",), tmp_path)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    "command",
    [
        ["sessions"],
        ["positions"],
        ["verify"],
        ["export", "abc"],
        ["query", "SELECT 1"],
        ["report", "--out", "r.html"],
    ],
)
def test_read_command_on_a_missing_ledger_is_refused_and_creates_nothing(
    cli, fresh_ledger: Path, tmp_path: Path, command: list[str]
) -> None:
    _run_refused(cli, fresh_ledger, command, ("--ledger", "new.db"), tmp_path)
    assert not (tmp_path / "r.html").exists()


def test_ledger_path_that_is_not_a_database_is_left_alone(cli, tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    directory.mkdir()
    (directory / "notes.db").write_text("my notes, not a ledger\n")

    _run_refused(cli, directory / "notes.db", ["backtest"], ("--ledger", "notes.db"), tmp_path)
    _run_refused(cli, directory / "notes.db", ["sessions"], ("--ledger", "notes.db"), tmp_path)


def test_read_command_on_a_foreign_sqlite_database_leaves_it_unchanged(cli, tmp_path: Path) -> None:
    import sqlite3  # noqa: PLC0415 - only this test builds a foreign database

    directory = tmp_path / "ledger"
    directory.mkdir()
    with sqlite3.connect(directory / "app.sqlite") as connection:
        connection.execute("CREATE TABLE notes (body TEXT)")
        connection.execute("INSERT INTO notes VALUES ('mine')")
    connection.close()

    _run_refused(cli, directory / "app.sqlite", ["sessions"], ("--ledger", "app.sqlite"), tmp_path)


def test_bad_mark_price_is_refused(cli, existing_ledger: Path, tmp_path: Path) -> None:
    _run_refused(
        cli, existing_ledger, ["positions", "--mark", "BTC/USDT=-1"], ("--mark", "BTC/USDT=-1"), tmp_path
    )


def test_mark_price_that_is_not_a_number_is_refused(cli, existing_ledger: Path, tmp_path: Path) -> None:
    _run_refused(cli, existing_ledger, ["positions", "--mark", "BTC/USDT=abc"], ("--mark", "abc"), tmp_path)


def test_unsupported_export_format_is_refused(cli, existing_ledger: Path, tmp_path: Path) -> None:
    _run_refused(cli, existing_ledger, ["export", "abc", "--format", "xml"], ("--format", "xml"), tmp_path)


def test_broken_sql_is_refused_with_duckdbs_message(cli, existing_ledger: Path, tmp_path: Path) -> None:
    db = existing_ledger
    before = hashlib.sha256(db.read_bytes()).hexdigest()

    result = cli("--ledger", db, "query", "SELEC broken", cwd=tmp_path)

    _assert_refused(result, ("syntax error", "SELEC"))
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def test_broken_sql_prints_duckdbs_message_in_one_line_and_leaves_the_ledger(
    cli, existing_ledger: Path, tmp_path: Path
) -> None:
    # This pins the message and the untouched store.
    before = hashlib.sha256(existing_ledger.read_bytes()).hexdigest()

    _, out, err = cli("--ledger", existing_ledger, "query", "SELEC broken", cwd=tmp_path)

    assert out == ""
    [line] = err.strip("\n").splitlines()
    assert "syntax error" in line
    assert "SELEC" in line
    assert hashlib.sha256(existing_ledger.read_bytes()).hexdigest() == before


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT count(*) AS n FROM events",
        "SELECT side, sum(qty) AS qty FROM fills GROUP BY side ORDER BY side",
        "SELECT * FROM equity ORDER BY marked_at DESC LIMIT 3",
    ],
)
def test_query_never_writes_to_the_store(cli, existing_ledger: Path, tmp_path: Path, sql: str) -> None:
    """A query may bring the .duckdb file up to date; the ledger .db stays byte-for-byte the same."""
    before = {
        p.name: p.read_bytes() for p in existing_ledger.parent.iterdir() if not p.name.endswith(".duckdb")
    }

    code, out, err = cli("--ledger", existing_ledger, "query", sql, "--json", cwd=tmp_path)

    assert code == 0, err
    assert out.startswith("[")
    after = {
        p.name: p.read_bytes() for p in existing_ledger.parent.iterdir() if not p.name.endswith(".duckdb")
    }
    assert after == before


def test_query_on_a_ledger_with_a_stale_checkpoint_never_writes_to_the_store(cli, tmp_path: Path) -> None:
    directory = tmp_path / "ledger"
    directory.mkdir()
    ledger = directory / "api.db"
    _, store = run_backtest_request(BacktestRequest(ledger_url=str(ledger)))  # no read side ran
    store.close()
    before = _ledger_files(ledger)

    code, out, err = cli(
        "--ledger", ledger, "query", "SELECT count(*) AS n FROM events", "--json", cwd=tmp_path
    )

    assert code == 0, err
    assert out.startswith("[")
    assert _ledger_files(ledger) == before


def test_query_cannot_modify_the_analytics_tables(cli, existing_ledger: Path, tmp_path: Path) -> None:
    before = hashlib.sha256(existing_ledger.read_bytes()).hexdigest()

    code, _, err = cli("--ledger", existing_ledger, "query", "DELETE FROM fills", cwd=tmp_path)

    assert code != 0 or "read-only" in err.lower()
    code, out, err = cli(
        "--ledger", existing_ledger, "query", "SELECT count(*) AS n FROM fills", "--json", cwd=tmp_path
    )
    assert code == 0, err
    assert '"n": 0' not in out
    assert hashlib.sha256(existing_ledger.read_bytes()).hexdigest() == before


def test_gzip_fixture_is_really_truncated() -> None:
    with pytest.raises(EOFError):
        gzip.decompress(_truncated_gzip())

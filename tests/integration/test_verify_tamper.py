"""Tampering with stored history is detected: `tradeledger verify` exits 3 naming the first bad event.

Each test runs two real backtests (the bundled sample's first day, seeds 0 and 1) into a fresh
ledger, so the second run's chain positions differ from its notification ids (seq = 265 + n),
then edits the stored rows with the database's own client, never through the ledger.
"""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import pytest

from ledger.adapters import audit, codec
from ledger.adapters.codec import ChainHead
from ledger.adapters.store import StoredRow, open_store
from ledger.bootstrap import BacktestRequest, run_backtest_request
from ledger.domain.events import OrderFilled, PriceMarked
from ledger.domain.numbers import D
from sample_data import write_sample

EXIT_INTEGRITY = 3
BARS = 1440  # the first day of the bundled 1-minute sample


@pytest.fixture(scope="module")
def first_day_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_sample(tmp_path_factory.mktemp("data") / "first_day.csv", BARS)


class Rows(Protocol):
    """Raw access to the stored-events table, bypassing the ledger."""

    def state(self, seq: int) -> bytes: ...
    def set_state(self, seq: int, state: bytes) -> None: ...
    def set_states(self, states: dict[int, bytes]) -> None: ...
    def delete(self, seq: int) -> None: ...
    def swap(self, seq_a: int, seq_b: int) -> None: ...
    def insert(self, row: StoredRow) -> None: ...


class SqliteRows:
    def __init__(self, path: str) -> None:
        self.path = path

    def _run(self, sql: str, *params: Any) -> list[Any]:
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                return connection.execute(sql, params).fetchall()
        finally:
            connection.close()

    def state(self, seq: int) -> bytes:
        return bytes(self._run("SELECT state FROM stored_events WHERE rowid = ?", seq)[0][0])

    def set_state(self, seq: int, state: bytes) -> None:
        self.set_states({seq: state})

    def set_states(self, states: dict[int, bytes]) -> None:
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                connection.executemany(
                    "UPDATE stored_events SET state = ? WHERE rowid = ?", [(v, k) for k, v in states.items()]
                )
        finally:
            connection.close()

    def delete(self, seq: int) -> None:
        self._run("DELETE FROM stored_events WHERE rowid = ?", seq)

    def swap(self, seq_a: int, seq_b: int) -> None:
        # Move whole rows (ids, topic, state) between the two positions.
        connection = sqlite3.connect(self.path)
        try:
            with connection:
                columns = "originator_id, originator_version, topic, state"
                a = connection.execute(
                    f"SELECT {columns} FROM stored_events WHERE rowid = ?", (seq_a,)
                ).fetchone()
                b = connection.execute(
                    f"SELECT {columns} FROM stored_events WHERE rowid = ?", (seq_b,)
                ).fetchone()
                connection.execute("DELETE FROM stored_events WHERE rowid IN (?, ?)", (seq_a, seq_b))
                insert = f"INSERT INTO stored_events (rowid, {columns}) VALUES (?, ?, ?, ?, ?)"
                connection.execute(insert, (seq_a, *b))
                connection.execute(insert, (seq_b, *a))
        finally:
            connection.close()

    def insert(self, row: StoredRow) -> None:
        self._run(
            "INSERT INTO stored_events (originator_id, originator_version, topic, state) VALUES (?, ?, ?, ?)",
            row.originator_id.hex,
            row.originator_version,
            row.topic,
            row.state,
        )


class PostgresRows:
    def __init__(self, url: str) -> None:
        parsed = urlparse(url)
        self.schema = parse_qs(parsed.query).get("schema", ["public"])[0]
        self.conninfo = parsed._replace(query="").geturl()
        self.table = f'"{self.schema}".stored_events'

    def _run(self, sql: str, *params: Any) -> list[Any]:
        import psycopg  # noqa: PLC0415 - only the PostgreSQL cases need it

        with psycopg.connect(self.conninfo, autocommit=False) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []

    def state(self, seq: int) -> bytes:
        return bytes(self._run(f"SELECT state FROM {self.table} WHERE notification_id = %s", seq)[0][0])

    def set_state(self, seq: int, state: bytes) -> None:
        self.set_states({seq: state})

    def set_states(self, states: dict[int, bytes]) -> None:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.conninfo) as connection, connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {self.table} SET state = %s WHERE notification_id = %s",
                [(v, k) for k, v in states.items()],
            )

    def delete(self, seq: int) -> None:
        self._run(f"DELETE FROM {self.table} WHERE notification_id = %s", seq)

    def swap(self, seq_a: int, seq_b: int) -> None:
        import psycopg  # noqa: PLC0415

        columns = "originator_id, originator_version, topic, state"
        with psycopg.connect(self.conninfo) as connection:
            select = f"SELECT {columns} FROM {self.table} WHERE notification_id = %s"
            a = connection.execute(select, (seq_a,)).fetchone()
            b = connection.execute(select, (seq_b,)).fetchone()
            assert a is not None
            assert b is not None
            connection.execute(f"DELETE FROM {self.table} WHERE notification_id IN (%s, %s)", (seq_a, seq_b))
            insert = f"INSERT INTO {self.table} (notification_id, {columns}) VALUES (%s, %s, %s, %s, %s)"
            connection.execute(insert, (seq_a, *b))
            connection.execute(insert, (seq_b, *a))

    def insert(self, row: StoredRow) -> None:
        self._run(
            f"INSERT INTO {self.table} (originator_id, originator_version, topic, state) "
            "VALUES (%s, %s, %s, %s)",
            row.originator_id,
            row.originator_version,
            row.topic,
            row.state,
        )


@dataclasses.dataclass
class Ledger:
    url: str
    rows: Rows
    runs: list[UUID]  # in the order they were run
    log: list[StoredRow]  # every stored row, before any tampering

    def run_rows(self, run: UUID) -> list[StoredRow]:
        return [r for r in self.log if codec.decode_envelope(r.state).r == run.hex]

    def first(self, run: UUID, kind: type) -> StoredRow:
        return next(r for r in self.run_rows(run) if r.topic.endswith(":" + kind.__name__))

    def verify(self) -> audit.VerifyReport:
        store = open_store(self.url, create=False)
        try:
            return audit.verify(store)
        finally:
            store.close()


BACKENDS = [
    pytest.param("sqlite_ledger", id="sqlite"),
    pytest.param("postgres_url", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def ledger(request: pytest.FixtureRequest, first_day_csv: Path) -> Ledger:
    url = str(request.getfixturevalue(request.param))
    runs = []
    for seed in (0, 1):
        result, store = run_backtest_request(
            BacktestRequest(ledger_url=url, data_path=first_day_csv, seed=seed)
        )
        runs.append(result.run_id)
        store.close()
    store = open_store(url, create=False)
    log = store.read_rows(0, 100_000)
    store.close()
    rows: Rows = SqliteRows(url) if request.param == "sqlite_ledger" else PostgresRows(url)
    return Ledger(url=url, rows=rows, runs=runs, log=log)


def _bad_event(stderr: str) -> tuple[str, str, str]:
    # "run <uuid>: first bad event at seq <N> (chain position <n>): <reason>"
    found = re.search(r"run (\S+): first bad event at (seq \d+|end of log) \(chain position (\d+)\)", stderr)
    assert found is not None, stderr
    return found.group(1), found.group(2), found.group(3)


def _change_a_price_digit(state: bytes) -> bytes:
    found = re.search(rb'"price":"(\d+)\.(\d+)"', state)
    assert found is not None
    digits = found.group(2)
    changed = digits[:-1] + str((int(digits[-1:]) + 1) % 10).encode()
    return state[: found.start(2)] + changed + state[found.end(2) :]


def test_an_untouched_ledger_verifies(ledger: Ledger, cli) -> None:
    code, out, err = cli("--ledger", ledger.url, "verify")

    assert code == 0, err
    assert f"verified {len(ledger.log)} events in 2 run(s)" in out
    report = ledger.verify()
    assert report.ok
    assert set(report.runs) == set(ledger.runs)


# Each tamper edits the stored rows and returns where verify must say the chain first breaks:
# (run, "seq N" or "end of log", chain position, a word of the reason).
Expected = tuple[UUID, str, int, str]


def _edit_a_fill_price(ledger: Ledger) -> Expected:
    run = ledger.runs[1]
    fill = ledger.first(run, OrderFilled)
    edited = _change_a_price_digit(ledger.rows.state(fill.seq))
    assert edited != fill.state
    ledger.rows.set_state(fill.seq, edited)
    return run, f"seq {fill.seq}", codec.decode_envelope(fill.state).n, "edited"


def _delete_a_middle_row(ledger: Ledger) -> Expected:
    # Reported at the next row, whose link now skips a position.
    run = ledger.runs[1]
    rows = ledger.run_rows(run)
    gone, following = rows[len(rows) // 2], rows[len(rows) // 2 + 1]
    ledger.rows.delete(gone.seq)
    return run, f"seq {following.seq}", codec.decode_envelope(gone.state).n, "deleted"


def _swap_two_rows(ledger: Ledger) -> Expected:
    run = ledger.runs[1]
    rows = ledger.run_rows(run)
    first, second = rows[40], rows[43]
    ledger.rows.swap(first.seq, second.seq)
    return run, f"seq {first.seq}", codec.decode_envelope(first.state).n, "reordered"


def _delete_the_last_rows_of_a_run(ledger: Ledger) -> Expected:
    # The first run's tail sits in the middle of the log, before the second run's rows; only
    # the head committed in chain_segments shows that anything is missing.
    run = ledger.runs[0]
    rows = ledger.run_rows(run)
    for row in rows[-3:]:
        ledger.rows.delete(row.seq)
    return run, "end of log", len(rows) - 2, f"committed up to event {len(rows)}"


def _overwrite_a_row_with_garbage(ledger: Ledger) -> Expected:
    run = ledger.runs[1]
    row = ledger.run_rows(run)[10]
    ledger.rows.set_state(row.seq, b"{not json")
    # The row names no run; the run it belonged to then breaks at the next row.
    return UUID(int=0), f"seq {row.seq}", 0, "not a ledger event"


TAMPERS = {
    "edit": _edit_a_fill_price,
    "delete": _delete_a_middle_row,
    "reorder": _swap_two_rows,
    "truncate": _delete_the_last_rows_of_a_run,
    "garbage": _overwrite_a_row_with_garbage,
}


@pytest.mark.parametrize("tamper", TAMPERS.values(), ids=TAMPERS.keys())
def test_verify_reports_the_first_bad_event(ledger: Ledger, cli, tamper) -> None:
    run, where, n, reason = tamper(ledger)

    code, _, err = cli("--ledger", ledger.url, "verify")

    assert code == EXIT_INTEGRITY, err
    assert _bad_event(err) == (str(run), where, str(n))
    assert reason in err
    first = ledger.verify().faults[0]
    assert (first.run_id, first.n) == (run, n)
    assert first.seq == (None if where == "end of log" else int(where.removeprefix("seq ")))


@pytest.mark.slow  # two CLI runs, the second rebuilding the portfolio
def test_verify_of_one_run_checks_only_that_run(ledger: Ledger, cli) -> None:
    _, where, _, _ = _edit_a_fill_price(ledger)

    clean = cli("--ledger", ledger.url, "verify", str(ledger.runs[0])[:12])
    broken = cli("--ledger", ledger.url, "verify", str(ledger.runs[1]))

    assert clean.returncode == 0, clean.stderr
    assert "verified" in clean.stdout
    assert broken.returncode == EXIT_INTEGRITY
    assert _bad_event(broken.stderr)[1] == where
    assert str(ledger.runs[0]) not in broken.stderr


# -- rewrites that keep every link valid: only the committed heads (chain_segments) can tell -------


def _forge_after(ledger: Ledger, run: UUID) -> StoredRow:
    # A price mark appended after the run's last event, correctly linked: sha256 has no key.
    last = ledger.run_rows(run)[-1]
    envelope = codec.decode_envelope(last.state)
    ended = codec.decode(last.topic, last.state)
    forged = PriceMarked(
        originator_id=ended.originator_id,
        originator_version=ended.originator_version + 1,
        occurred_at=ended.occurred_at,
        run_id=run,
        instrument="BTC/USDT",
        price=D("1"),
    )
    topic, state, _ = codec.encode(forged, ChainHead(n=envelope.n, hash=envelope.h))
    return StoredRow(0, topic, forged.originator_id, forged.originator_version, state)


def test_a_forged_event_after_the_committed_head_is_detected(ledger: Ledger, cli) -> None:
    ledger.rows.insert(_forge_after(ledger, ledger.runs[1]))

    assert ledger.verify().ok is False


def test_an_edit_with_the_rest_of_the_chain_rehashed_is_detected(ledger: Ledger, cli) -> None:
    run = ledger.runs[1]
    rows = ledger.run_rows(run)
    fill = ledger.first(run, OrderFilled)
    start = rows.index(fill)
    before = codec.decode_envelope(rows[start - 1].state)
    head = ChainHead(n=before.n, hash=before.h)
    rewritten = {}
    for row in rows[start:]:
        event = codec.decode(row.topic, row.state)
        if isinstance(event, OrderFilled) and row is fill:
            event = dataclasses.replace(event, price=event.price + 1)
        _, rewritten[row.seq], head = codec.encode(event, head)
    ledger.rows.set_states(rewritten)
    assert ledger.verify().events == len(ledger.log)  # every link still checks out

    assert ledger.verify().ok is False

"""Encrypted payloads on every backend: round trips, raw tables free of plaintext, key checks.

The raw tables are read and edited with the database's own client, never through the ledger, so
the tests see exactly what a copy of the database file (or a PostgreSQL dump) would show.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any
from urllib.parse import parse_qs, urlparse
from uuid import UUID

import pytest

from factories import RUN_ID, client_order_id, one_of_each_event
from ledger.adapters import audit, codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store import (
    CIPHER_KEY_ENV,
    CipherKeyError,
    LedgerStore,
    PayloadCipher,
    SealedRowError,
    is_postgres_url,
    new_cipher_key,
    open_store,
)
from ledger.domain.events import LedgerEvent

KEY = new_cipher_key()
# What must never be readable in a sealed table: the symbol, client order ids, prices, field names.
PLAINTEXT_MARKERS = (b"BTC", b"USDT", client_order_id(1).encode(), b"100.25", b"instrument", b"run_id")


class RawTables:
    """The ledger's tables through the database's own client (sqlite3 or psycopg)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pg = is_postgres_url(url)
        schema = parse_qs(urlparse(url).query).get("schema", ["public"])[0]
        self.prefix = f'"{schema}".' if self.pg else ""
        self.ph = "%s" if self.pg else "?"

    def run(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.pg:
            import psycopg  # noqa: PLC0415 - only the PostgreSQL cases pay for it

            with psycopg.connect(self.url.split("?", 1)[0], autocommit=True) as conn:
                cur = conn.execute(sql.replace("{p}", self.prefix).replace("?", "%s"), params)
                return cur.fetchall() if cur.description is not None else []
        with closing(sqlite3.connect(self.url)) as lite, lite:
            return lite.execute(sql.replace("{p}", ""), params).fetchall()

    def event_states(self) -> dict[int, bytes]:
        seq = "notification_id" if self.pg else "rowid"
        rows = self.run(f"SELECT {seq}, state FROM {{p}}stored_events ORDER BY {seq}")
        return {int(s): bytes(state) for s, state in rows}

    def set_event_states(self, states: dict[int, bytes]) -> None:
        seq = "notification_id" if self.pg else "rowid"
        for s, state in states.items():
            self.run(f"UPDATE {{p}}stored_events SET state = ? WHERE {seq} = ?", state, s)

    def checkpoint_states(self) -> dict[str, bytes]:
        return {n: bytes(s) for n, s in self.run("SELECT name, state FROM {p}projection_checkpoints")}

    def meta(self) -> dict[str, str]:
        return dict(self.run("SELECT name, value FROM {p}ledger_meta"))

    def snapshot(self) -> tuple[Any, ...]:
        segments = sorted(self.run("SELECT run_id, n_from, n_to, hash_to FROM {p}chain_segments"))
        return self.event_states(), self.checkpoint_states(), self.meta(), segments


@pytest.fixture
def raw(ledger_url: str) -> RawTables:
    return RawTables(ledger_url)


@pytest.fixture
def sealed(ledger_url: str) -> Iterator[LedgerStore]:
    """Yield a new ledger created encrypted with ``KEY``."""
    opened = open_store(ledger_url, create=True, cipher_key=KEY)
    try:
        yield opened
    finally:
        opened.close()


def _plaintext_states(events: list[LedgerEvent]) -> list[bytes]:
    # What a plaintext ledger stores for ``events`` appended to new runs: the chain over plaintext.
    heads: dict[UUID, ChainHead] = {}
    states = []
    for event in events:
        _, state, heads[event.run_id] = codec.encode(
            event, heads.get(event.run_id, ChainHead(0, GENESIS_HASH))
        )
        states.append(state)
    return states


def test_every_event_type_round_trips_and_readers_see_the_plaintext_chain(sealed: LedgerStore) -> None:
    events = one_of_each_event()

    seqs = sealed.append(events)

    assert sealed.encrypted
    assert [e for _, e in sealed.read_log(0, 1000)] == events
    for stream in dict.fromkeys(e.originator_id for e in events):
        assert sealed.read_stream(stream) == [e for e in events if e.originator_id == stream]
    rows = sealed.read_rows(0, 1000)
    assert [r.seq for r in rows] == seqs
    assert [r.state for r in rows] == _plaintext_states(events)  # same bytes, same chain, as plaintext
    assert all(r.fault is None for r in rows)
    assert audit.verify(sealed).ok


def test_the_raw_tables_hold_no_plaintext(sealed: LedgerStore, raw: RawTables) -> None:
    events = one_of_each_event()
    sealed.append(events)
    sealed.save_checkpoint("portfolio", 1, 5, b'{"positions":{"BTC/USDT":"0.5"}}', expected_seq=None)

    states = list(raw.event_states().values()) + list(raw.checkpoint_states().values())

    assert len(states) == len(events) + 1
    for state in states:
        for marker in PLAINTEXT_MARKERS:
            assert marker not in state, marker
    assert raw.meta() == {"payload_cipher": PayloadCipher(KEY).record}
    assert sealed.load_checkpoint("portfolio") == (1, 5, b'{"positions":{"BTC/USDT":"0.5"}}')


def test_a_plaintext_ledger_stores_the_same_rows_readably(ledger_url: str, raw: RawTables) -> None:
    # The control case for the scan above: the same markers are found when nothing is sealed.
    store = open_store(ledger_url, create=True)
    try:
        store.append(one_of_each_event())
    finally:
        store.close()

    joined = b"".join(raw.event_states().values())

    assert all(marker in joined for marker in PLAINTEXT_MARKERS)
    assert raw.meta() == {"payload_cipher": "none"}


def test_without_the_key_or_with_another_the_ledger_is_refused_untouched(
    sealed: LedgerStore, ledger_url: str, raw: RawTables
) -> None:
    sealed.append(one_of_each_event())
    before = raw.snapshot()

    with pytest.raises(CipherKeyError, match=rf"is encrypted .* set \${CIPHER_KEY_ENV} to the key"):
        open_store(ledger_url, create=True)
    with pytest.raises(CipherKeyError, match=r"is not the key of the ledger"):
        open_store(ledger_url, create=True, cipher_key=new_cipher_key())

    assert raw.snapshot() == before


def test_a_key_on_a_plaintext_ledger_is_refused_untouched(ledger_url: str, raw: RawTables) -> None:
    store = open_store(ledger_url, create=True)
    store.append(one_of_each_event())
    store.close()
    before = raw.snapshot()

    with pytest.raises(
        CipherKeyError, match=rf"\${CIPHER_KEY_ENV} is set but the ledger .* plaintext events"
    ):
        open_store(ledger_url, create=True, cipher_key=KEY)

    assert raw.snapshot() == before


def test_the_first_opening_decides_even_before_any_event(ledger_url: str, raw: RawTables) -> None:
    open_store(ledger_url, create=True).close()  # a plaintext ledger with no events yet

    with pytest.raises(CipherKeyError, match="stores plaintext events"):
        open_store(ledger_url, create=False, cipher_key=KEY)
    assert raw.meta() == {"payload_cipher": "none"}


def test_a_ledger_from_before_encryption_with_events_is_not_encrypted_by_a_key(
    ledger_url: str, raw: RawTables
) -> None:
    store = open_store(ledger_url, create=True)
    store.append(one_of_each_event())
    store.close()
    raw.run("DELETE FROM {p}ledger_meta")  # as a ledger written before payload encryption

    with pytest.raises(CipherKeyError, match="already holds plaintext events"):
        open_store(ledger_url, create=False, cipher_key=KEY)
    assert raw.meta() == {}
    open_store(ledger_url, create=False).close()
    assert raw.meta() == {"payload_cipher": "none"}


def test_an_edited_sealed_row_stops_readers_and_verify_names_it(sealed: LedgerStore, raw: RawTables) -> None:
    seqs = sealed.append(one_of_each_event())
    target = seqs[5]
    state = bytearray(raw.event_states()[target])
    state[-1] ^= 0x01
    raw.set_event_states({target: bytes(state)})

    with pytest.raises(SealedRowError, match=rf"event seq {target} does not decrypt with the ledger's key"):
        sealed.read_log(0, 1000)
    report = audit.verify(sealed)

    first = report.faults[0]
    assert (first.seq, "does not decrypt with the ledger's key" in first.reason) == (target, True)
    # The row's run is sealed inside it, so its run's next row also reports the missing link.
    assert all(f.seq is not None and f.seq > target for f in report.faults[1:])


def test_sealed_rows_swapped_between_events_break_the_chain(sealed: LedgerStore, raw: RawTables) -> None:
    # Each row still authenticates; the plaintext chain inside is what catches the swap.
    seqs = sealed.append(one_of_each_event())
    states = raw.event_states()
    a, b = seqs[3], seqs[4]
    raw.set_event_states({a: states[b], b: states[a]})

    report = audit.verify(sealed)

    assert not report.ok
    assert report.faults[0].run_id == RUN_ID
    assert report.faults[0].seq == a


def test_an_edited_sealed_checkpoint_is_refused(sealed: LedgerStore, raw: RawTables) -> None:
    sealed.save_checkpoint("portfolio", 1, 5, b"state", expected_seq=None)
    stored = bytearray(raw.checkpoint_states()["portfolio"])
    stored[20] ^= 0x01
    raw.run("UPDATE {p}projection_checkpoints SET state = ? WHERE name = ?", bytes(stored), "portfolio")

    with pytest.raises(SealedRowError, match="projection checkpoint 'portfolio' does not decrypt"):
        sealed.load_checkpoint("portfolio")


def test_a_second_writer_with_the_key_extends_the_same_chain(sealed: LedgerStore, ledger_url: str) -> None:
    events = one_of_each_event()
    sealed.append(events[:10])
    other = open_store(ledger_url, create=False, cipher_key=KEY)
    try:
        other.append(events[10:])
        assert [e for _, e in other.read_log(0, 1000)] == events
    finally:
        other.close()
    assert audit.verify(sealed).ok


def _open_or_refusal(url: str, key: str | None) -> str:
    try:
        open_store(url, create=True, cipher_key=key).close()
    except CipherKeyError:
        return "refused"
    return "opened"


@pytest.mark.parametrize("attempt", range(3))
def test_two_first_openings_at_once_agree_on_one_answer(
    ledger_url: str, raw: RawTables, attempt: int
) -> None:
    # One opener with the key, one without, racing on a new ledger: whichever records first
    # decides, and the other is refused; never both.
    del attempt
    with ThreadPoolExecutor(max_workers=2) as pool:
        sealed_try = pool.submit(_open_or_refusal, ledger_url, KEY)
        plain_try = pool.submit(_open_or_refusal, ledger_url, None)
        outcomes = (sealed_try.result(), plain_try.result())

    recorded = raw.meta()["payload_cipher"]
    if recorded == "none":
        assert outcomes == ("refused", "opened")
    else:
        assert recorded == PayloadCipher(KEY).record
        assert outcomes == ("opened", "refused")


@pytest.mark.postgres
def test_a_refusal_never_shows_the_dsn_password(postgres_url: str) -> None:
    open_store(postgres_url, create=True, cipher_key=KEY).close()
    parsed = urlparse(postgres_url)
    with_password = parsed._replace(
        netloc=f"{parsed.username}:hunter2pw@{parsed.hostname}:{parsed.port}"
    ).geturl()

    with pytest.raises(CipherKeyError) as caught:
        open_store(with_password, create=False)  # trust auth: the password is not checked

    assert "hunter2pw" not in str(caught.value)
    assert ":***@" in str(caught.value)

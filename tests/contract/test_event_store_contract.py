"""EventStore contract: what every LedgerStore backend (SQLite, PostgreSQL) must do.

Round trips compare decoded events with the originals (and their string renderings, since
golden files compare strings); concurrency checks assert that a refused batch wrote nothing.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from uuid import UUID

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factories import (
    OTHER_RUN_ID,
    RUN_ID,
    a_fill,
    a_price_marked,
    a_run_started,
    an_order_accepted,
    an_order_placed,
    an_order_submitted,
    client_order_id,
    one_of_each_event,
)
from ledger.adapters import audit, codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead
from ledger.adapters.store import LedgerStore, open_store
from ledger.adapters.store.schema import Row
from ledger.domain.errors import ConcurrencyConflictError
from ledger.domain.events import LedgerEvent, OrderFilled, Side
from ledger.domain.identifiers import order_stream_id, run_stream_id


def _rendered(event: LedgerEvent) -> dict[str, str]:
    return {name: str(value) for name, value in vars(event).items()}


def _streams(events: list[LedgerEvent]) -> dict[UUID, list[LedgerEvent]]:
    streams: dict[UUID, list[LedgerEvent]] = defaultdict(list)
    for event in events:
        streams[event.originator_id].append(event)
    return streams


def _fresh_head(ledger_url: str, run_id) -> ChainHead:
    # Another store instance: no cached head, so this is what is committed.
    other = open_store(ledger_url, create=False)
    try:
        return other.chain_head(run_id)
    finally:
        other.close()


# -- round trips ---------------------------------------------------------------------------------


def test_every_event_type_round_trips_through_read_stream(store: LedgerStore) -> None:
    events = one_of_each_event()
    store.append(events)

    for stream_id, originals in _streams(events).items():
        replayed = store.read_stream(stream_id)
        assert replayed == originals
        assert [type(e) for e in replayed] == [type(e) for e in originals]
        assert [_rendered(e) for e in replayed] == [_rendered(e) for e in originals]


def test_every_event_type_round_trips_through_read_log_in_append_order(store: LedgerStore) -> None:
    events = one_of_each_event()
    seqs = store.append(events)

    log = store.read_log(0, 1000)

    assert [seq for seq, _ in log] == seqs
    assert [event for _, event in log] == events
    assert [_rendered(e) for _, e in log] == [_rendered(e) for e in events]
    assert store.max_seq() == seqs[-1]


def test_every_field_comes_back_with_its_original_type(store: LedgerStore) -> None:
    """Enums as their Enum (not str), Decimals as Decimal, None as None, UUIDs as UUID."""
    events = one_of_each_event()
    store.append(events)

    for (_, replayed), original in zip(store.read_log(0, 1000), events, strict=True):
        for name, value in vars(original).items():
            assert type(getattr(replayed, name)) is type(value), f"{type(original).__name__}.{name}"


def test_read_stream_reads_backwards_and_limits(store: LedgerStore) -> None:
    events: list[LedgerEvent] = [
        an_order_placed(),
        an_order_submitted(),
        an_order_accepted(),
        a_fill(trade=1),
    ]
    store.append(events)
    stream = order_stream_id(client_order_id(1))

    assert store.read_stream(stream, desc=True) == events[::-1]
    assert store.read_stream(stream, limit=2) == events[:2]
    assert store.read_stream(stream, desc=True, limit=1) == [events[-1]]
    assert store.read_stream(order_stream_id("never-placed")) == []


def test_read_log_pages_after_a_seq(store: LedgerStore) -> None:
    events = one_of_each_event()
    seqs = store.append(events)

    first = store.read_log(0, 5)
    rest = store.read_log(first[-1][0], 1000)

    assert [s for s, _ in first + rest] == seqs
    assert store.read_log(seqs[-1], 10) == []


def test_read_rows_are_the_undecoded_stored_states(store: LedgerStore) -> None:
    events = one_of_each_event()
    seqs = store.append(events)

    rows = store.read_rows(0, 1000)

    assert [r.seq for r in rows] == seqs
    assert [(r.originator_id, r.originator_version) for r in rows] == [
        (e.originator_id, e.originator_version) for e in events
    ]
    assert [r.topic.rsplit(":", 1)[-1] for r in rows] == [type(e).__name__ for e in events]
    assert all(isinstance(r.state, bytes) for r in rows)


def test_an_empty_append_writes_nothing(store: LedgerStore) -> None:
    assert store.append([]) == []
    assert store.max_seq() == 0
    assert store.chain_heads() == {}


decimals = st.decimals(min_value="0.000000000000000001", max_value="1000000000", places=18)
fees = st.decimals(min_value="0", max_value="1000", places=18)
_orders = itertools.count(1000)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    qty=decimals,
    price=decimals,
    fee=fees,
    price_expected=st.none() | decimals,
    side=st.sampled_from(Side),
)
def test_order_filled_round_trips_through_the_store(
    store: LedgerStore, qty, price, fee, price_expected, side
) -> None:
    # A new order per example: the store is shared by every example of this test.
    event = a_fill(
        order=next(_orders),
        qty=str(qty),
        price=str(price),
        fee=str(fee),
        price_expected=None if price_expected is None else str(price_expected),
        side=side,
    )
    [seq] = store.append([event])

    [replayed] = store.read_stream(event.originator_id)
    [(logged_seq, logged)] = store.read_log(seq - 1, 1)

    assert replayed == event
    assert logged == event
    assert logged_seq == seq
    assert type(replayed.side) is Side
    assert _rendered(replayed) == _rendered(event)


# -- optimistic concurrency ---------------------------------------------------------------------


def test_appending_version_1_of_a_stream_twice_is_a_conflict_that_writes_nothing(
    store: LedgerStore, ledger_url: str
) -> None:
    store.append([a_run_started(), an_order_placed(order=1)])
    max_before = store.max_seq()
    head_before = _fresh_head(ledger_url, RUN_ID)

    batch: list[LedgerEvent] = [
        a_price_marked(version=2),
        an_order_placed(order=2),
        an_order_submitted(order=2),
        an_order_placed(order=1),  # version 1 of order 1 again
    ]
    with pytest.raises(ConcurrencyConflictError):
        store.append(batch)

    assert store.max_seq() == max_before
    assert store.read_log(0, 100)[-1][0] == max_before
    assert len(store.read_log(0, 100)) == 2
    assert store.read_stream(order_stream_id(client_order_id(2))) == []
    assert store.read_stream(run_stream_id(RUN_ID)) == [a_run_started()]
    assert _fresh_head(ledger_url, RUN_ID) == head_before
    assert store.chain_head(RUN_ID) == head_before


def test_a_batch_holding_the_same_version_twice_is_a_conflict_that_writes_nothing(store: LedgerStore) -> None:
    with pytest.raises(ConcurrencyConflictError):
        store.append([a_run_started(), an_order_placed(order=1), an_order_placed(order=1)])

    assert store.max_seq() == 0
    assert store.read_log(0, 10) == []
    assert store.chain_heads() == {}


def test_the_same_event_list_can_be_appended_after_fixing_the_conflicting_version(store: LedgerStore) -> None:
    store.append([a_run_started(), an_order_placed(order=1)])
    batch: list[LedgerEvent] = [a_price_marked(version=2), an_order_placed(order=2), an_order_placed(order=1)]
    with pytest.raises(ConcurrencyConflictError):
        store.append(batch)

    batch[2] = dataclasses.replace(an_order_submitted(order=1), originator_version=2)
    seqs = store.append(batch)

    assert [e for _, e in store.read_log(0, 100)] == [a_run_started(), an_order_placed(order=1), *batch]
    assert len(seqs) == 3
    assert store.chain_head(RUN_ID).n == 5
    assert audit.verify(store).ok


def test_two_writers_extending_one_run_from_the_same_head_conflict(
    store: LedgerStore, second_store: LedgerStore, ledger_url: str
) -> None:
    store.append([a_run_started()])
    head = store.chain_head(RUN_ID)
    assert second_store.chain_head(RUN_ID) == head  # both writers now hold the same head
    max_before = store.max_seq()

    store.append([an_order_placed(order=1), an_order_submitted(order=1)])
    with pytest.raises(ConcurrencyConflictError):
        # Another stream of the same run: only the chain can clash.
        second_store.append([an_order_placed(order=2), an_order_submitted(order=2)])

    assert store.max_seq() == max_before + 2
    assert second_store.read_stream(order_stream_id(client_order_id(2))) == []
    assert _fresh_head(ledger_url, RUN_ID).n == 3
    assert audit.verify(store).ok

    # The refused writer reloads the head and retries: the chain goes on, unforked.
    second_store.append([an_order_placed(order=2), an_order_submitted(order=2)])
    assert _fresh_head(ledger_url, RUN_ID).n == 5
    assert audit.verify(second_store).ok


def test_writers_on_different_runs_do_not_conflict(store: LedgerStore, second_store: LedgerStore) -> None:
    store.chain_head(RUN_ID)
    second_store.chain_head(OTHER_RUN_ID)

    store.append([a_run_started()])
    second_store.append([a_run_started(run_id=OTHER_RUN_ID)])

    assert set(store.chain_heads()) == {RUN_ID, OTHER_RUN_ID}
    assert audit.verify(store).ok


# -- the global order ---------------------------------------------------------------------------


def test_notification_order_is_append_order_across_streams_and_runs(store: LedgerStore) -> None:
    batches: list[list[LedgerEvent]] = [
        [a_run_started(), a_run_started(run_id=OTHER_RUN_ID)],
        [an_order_placed(order=1), a_price_marked(version=2), an_order_placed(order=2, run_id=OTHER_RUN_ID)],
        [an_order_submitted(order=2, run_id=OTHER_RUN_ID), an_order_submitted(order=1)],
        [
            a_price_marked(version=2, run_id=OTHER_RUN_ID),
            an_order_accepted(order=1),
            a_price_marked(version=3),
        ],
    ]
    appended: list[LedgerEvent] = []
    seqs: list[int] = []
    for batch in batches:
        seqs += store.append(batch)
        appended += batch

    log = store.read_log(0, 100)

    assert [e for _, e in log] == appended
    assert [s for s, _ in log] == seqs
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)


def test_chain_heads_count_each_runs_events(store: LedgerStore) -> None:
    store.append([a_run_started(), a_run_started(run_id=OTHER_RUN_ID), a_price_marked(version=2)])
    store.append([a_price_marked(version=3)])

    heads = store.chain_heads()

    assert {run: head.n for run, head in heads.items()} == {RUN_ID: 3, OTHER_RUN_ID: 1}
    assert heads[RUN_ID] == store.chain_head(RUN_ID)
    assert heads[RUN_ID].hash != GENESIS_HASH
    assert store.chain_head(run_stream_id(RUN_ID)) == ChainHead(n=0, hash=GENESIS_HASH)  # unknown run


def test_a_fill_stream_reads_back_as_order_filled_events(store: LedgerStore) -> None:
    events: list[LedgerEvent] = [an_order_placed(qty="1"), an_order_submitted(), an_order_accepted()]
    events += [a_fill(trade=t, qty="0.25", price=f"100.{t}") for t in range(1, 5)]
    store.append(events)

    fills = [e for e in store.read_stream(order_stream_id(client_order_id(1))) if isinstance(e, OrderFilled)]

    assert [f.venue_trade_id for f in fills] == ["t-1", "t-2", "t-3", "t-4"]
    assert sum(f.qty for f in fills) == 1


# -- projection checkpoints --------------------------------------------------------------------


def test_checkpoint_save_and_load(store: LedgerStore) -> None:
    assert store.load_checkpoint("portfolio") is None

    store.save_checkpoint("portfolio", 1, 10, b'{"a":1}', expected_seq=None)
    assert store.load_checkpoint("portfolio") == (1, 10, b'{"a":1}')

    store.save_checkpoint("portfolio", 2, 25, b"\x00\xffbinary", expected_seq=10)
    assert store.load_checkpoint("portfolio") == (2, 25, b"\x00\xffbinary")

    store.drop_checkpoint("portfolio")
    assert store.load_checkpoint("portfolio") is None


def test_checkpoint_compare_and_set_refuses_a_stale_position(
    store: LedgerStore, second_store: LedgerStore
) -> None:
    store.save_checkpoint("portfolio", 1, 10, b"ten", expected_seq=None)
    second_store.save_checkpoint("portfolio", 1, 20, b"twenty", expected_seq=10)

    with pytest.raises(ConcurrencyConflictError, match="portfolio"):
        store.save_checkpoint("portfolio", 1, 15, b"fifteen", expected_seq=10)

    assert store.load_checkpoint("portfolio") == (1, 20, b"twenty")


def test_checkpoints_are_kept_per_projection(store: LedgerStore) -> None:
    store.save_checkpoint("a", 1, 1, b"a", expected_seq=None)
    store.save_checkpoint("b", 3, 2, b"b", expected_seq=None)

    assert store.load_checkpoint("a") == (1, 1, b"a")
    assert store.load_checkpoint("b") == (3, 2, b"b")


def test_two_first_checkpoint_saves_conflict_with_a_concurrency_error(
    store: LedgerStore, second_store: LedgerStore
) -> None:
    store.save_checkpoint("portfolio", 1, 10, b"ten", expected_seq=None)

    with pytest.raises(ConcurrencyConflictError):
        second_store.save_checkpoint("portfolio", 1, 12, b"twelve", expected_seq=None)


# -- rows encoded elsewhere (a sweep's workers) ---------------------------------------------------


def _encoded(events: list[LedgerEvent], run_id: UUID, after: ChainHead) -> tuple[list[Row], ChainHead]:
    rows: list[Row] = []
    head = after
    digest = bytes.fromhex(head.hash)
    for event in events:
        n = head.n + 1
        topic, stream, state, digest, hex_digest = codec.encode_link(event, n, head.hash, digest, run_id.hex)
        rows.append((event.originator_id, stream, event.originator_version, topic, state))
        head = ChainHead(n=n, hash=hex_digest)
    return rows, head


def test_rows_encoded_elsewhere_are_stored_as_append_would_store_them(ledger_url: str) -> None:
    events: list[LedgerEvent] = [
        a_run_started(),
        a_price_marked(version=2),
        an_order_placed(),
        an_order_submitted(),
        an_order_accepted(),
        a_fill(),
    ]
    first, second = events[:3], events[3:]
    store = open_store(ledger_url, create=True)
    try:
        rows, head = _encoded(first, RUN_ID, ChainHead(n=0, hash=GENESIS_HASH))
        more, end = _encoded(second, RUN_ID, head)
        seqs = store.append_encoded(RUN_ID, rows, head_from=ChainHead(n=0, hash=GENESIS_HASH), head_to=head)
        seqs += store.append_encoded(RUN_ID, more, head_from=head, head_to=end)

        assert [e for _, e in store.read_log(0, 100)] == events
        assert seqs == [s for s, _ in store.read_log(0, 100)]
        assert store.chain_head(RUN_ID) == end
        assert _fresh_head(ledger_url, RUN_ID) == end
        assert audit.verify(store, RUN_ID).ok
    finally:
        store.close()


def test_rows_that_do_not_continue_the_committed_chain_are_refused_and_nothing_is_written(
    store: LedgerStore,
) -> None:
    store.append([a_run_started()])
    rows, head = _encoded([a_price_marked(version=2)], RUN_ID, ChainHead(n=0, hash=GENESIS_HASH))

    with pytest.raises(ConcurrencyConflictError, match="re-encode them after the current head"):
        store.append_encoded(RUN_ID, rows, head_from=ChainHead(n=0, hash=GENESIS_HASH), head_to=head)

    assert store.max_seq() == 1
    assert store.chain_head(RUN_ID).n == 1

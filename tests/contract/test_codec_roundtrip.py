"""The codec: every event type round-trips byte-deterministically; old schemas upcast; links hash.

These run without a database: ``codec.encode`` / ``codec.decode`` are what every store backend
writes and reads, so a field the codec cannot carry is caught here first.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from factories import a_fill, one_of_each_event
from ledger.adapters import codec
from ledger.adapters.codec import GENESIS_HASH, ChainHead, CodecError
from ledger.domain.events import EVENT_TYPES, LedgerEvent, OrderFilled

GENESIS = ChainHead(n=0, hash=GENESIS_HASH)

# -- strategies derived from each event's type hints --------------------------------------------

amounts = st.decimals(min_value="0.000000000000000001", max_value="1000000000000", places=18)
moments = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive by definition
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from(
        [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-5, minutes=-30))]
    ),
)


def _strategy(name: str, hint: Any) -> st.SearchStrategy[Any]:
    if isinstance(hint, types.UnionType):  # X | None
        [inner] = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return st.none() | _strategy(name, inner)
    if hint is Decimal:
        return amounts
    if hint is datetime:
        return moments
    if hint is UUID:
        return st.uuids()
    if hint is bool:  # before int: bool is an int subclass, and must come back a bool
        return st.booleans()
    if hint is int:
        return st.integers(min_value=1, max_value=2**62)
    if hint is str:
        return st.text(max_size=40)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(hint)
    msg = f"no strategy for {name}: {hint!r}; teach _strategy() the new field type"
    raise AssertionError(msg)


def events_of(cls: type[Any]) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(cls)
    fields = {f.name: _strategy(f.name, hints[f.name]) for f in dataclasses.fields(cls)}

    def build(kwargs: dict[str, Any]) -> Any:
        try:
            return cls(**kwargs)
        except ValueError:
            return None  # the event's own validation refused the combination

    return st.fixed_dictionaries(fields).map(build).filter(lambda event: event is not None)


def _rendered(event: Any) -> dict[str, tuple[type, str]]:
    return {name: (type(value), str(value)) for name, value in vars(event).items()}


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
@given(data=st.data())
def test_every_event_type_round_trips_through_the_codec(cls, data) -> None:
    event = data.draw(events_of(cls))

    topic, state, head = codec.encode(event, GENESIS)
    replayed = codec.decode(topic, state)

    assert replayed == event
    assert _rendered(replayed) == _rendered(event)
    assert codec.encode(replayed, GENESIS) == (topic, state, head)  # the bytes are a function of the event


# -- the envelope and the chain ------------------------------------------------------------------


def test_the_envelope_commits_to_the_previous_link_and_the_exact_payload() -> None:
    first, second = a_fill(trade=1), a_fill(trade=2)
    _, state_1, head_1 = codec.encode(first, GENESIS)
    topic, state_2, head_2 = codec.encode(second, head_1)

    envelope = codec.decode_envelope(state_2)

    assert (envelope.r, envelope.n, envelope.p, envelope.h, envelope.v) == (
        second.run_id.hex,
        2,
        head_1.hash,
        head_2.hash,
        OrderFilled.class_version,
    )
    assert envelope.h == codec.chain_hash(
        head_1.hash, topic, second.originator_id, second.originator_version, 2, 2, bytes(envelope.e)
    )
    assert head_2 == ChainHead(n=2, hash=envelope.h)
    assert json.loads(state_2)["e"] == json.loads(
        msgspec.json.Encoder(decimal_format="string").encode(second)
    )
    assert state_1 != state_2


def test_any_change_to_a_link_changes_its_hash() -> None:
    base = (GENESIS_HASH, "ledger.domain.events:OrderFilled", UUID(int=1), 4, 2, 1, b'{"qty":"1"}')
    digest = codec.chain_hash(*base)
    changes = [
        ("1" * 64, *base[1:]),
        (base[0], "ledger.domain.events:OrderPlaced", *base[2:]),
        (*base[:2], UUID(int=2), *base[3:]),
        (*base[:3], 5, *base[4:]),
        (*base[:4], 1, *base[5:]),
        (*base[:5], 2, base[6]),
        (*base[:6], b'{"qty":"1.0"}'),
    ]

    assert len({codec.chain_hash(*change) for change in changes} | {digest}) == len(changes) + 1


def test_encoding_is_deterministic_and_decimal_exponents_survive() -> None:
    event = a_fill(qty="1.50", price="100.000", fee="0E-8")

    _, first, _ = codec.encode(event, GENESIS)
    _, second, _ = codec.encode(event, GENESIS)
    replayed = codec.decode(codec.TOPICS[OrderFilled], first)

    assert first == second
    assert isinstance(replayed, OrderFilled)
    assert (str(replayed.qty), str(replayed.price), str(replayed.fee)) == ("1.50", "100.000", "0E-8")


# -- schema evolution -------------------------------------------------------------------------------


def _as_version_1(event: OrderFilled) -> bytes:
    # Today's payload without price_expected, in an envelope that says schema version 1.
    _, state, _ = codec.encode(event, GENESIS)
    envelope = json.loads(state)
    del envelope["e"]["price_expected"]
    envelope["v"] = 1
    return json.dumps(envelope, separators=(",", ":")).encode()


def test_a_version_1_fill_upcasts_with_no_expected_price() -> None:
    event = a_fill(price_expected="99.5")

    replayed = codec.decode(codec.TOPICS[OrderFilled], _as_version_1(event))

    assert replayed == dataclasses.replace(event, price_expected=None)
    assert isinstance(replayed, OrderFilled)
    assert type(replayed.qty) is Decimal


def test_an_upcast_event_still_passes_its_validation() -> None:
    state = _as_version_1(a_fill()).replace(b'"qty":"1"', b'"qty":"-1"')

    with pytest.raises(CodecError, match="qty must be positive"):
        codec.decode(codec.TOPICS[OrderFilled], state)


def test_an_unknown_topic_is_a_codec_error_naming_register_topic() -> None:
    _, state, _ = codec.encode(a_fill(), GENESIS)

    with pytest.raises(CodecError, match="register_topic"):
        codec.decode("old.module:TradeExecuted", state)


def test_a_registered_old_topic_decodes_to_the_renamed_class(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "CLASSES", dict(codec.CLASSES))  # undo the registration afterwards
    _, state, _ = codec.encode(a_fill(), GENESIS)

    codec.register_topic("old.module:TradeExecuted", OrderFilled)

    assert codec.decode("old.module:TradeExecuted", state) == a_fill()


@pytest.mark.parametrize(
    "state",
    [b"", b"{}", b"not json", b'{"r":"x","n":1,"p":"","h":"","v":1}', b"[1,2,3]"],
    ids=["empty", "no-fields", "garbage", "no-payload", "array"],
)
def test_a_state_that_is_not_an_envelope_is_a_codec_error(state: bytes) -> None:
    with pytest.raises(CodecError):
        codec.decode(codec.TOPICS[OrderFilled], state)


def test_a_payload_of_the_wrong_shape_is_a_codec_error() -> None:
    _, state, _ = codec.encode(a_fill(), GENESIS)

    with pytest.raises(CodecError, match="does not fit its schema"):
        codec.decode(codec.TOPICS[OrderFilled], state.replace(b'"side":"buy"', b'"side":"sideways"'))


def test_a_schema_version_newer_than_the_code_is_refused() -> None:
    _, state, _ = codec.encode(a_fill(), GENESIS)
    envelope = json.loads(state)
    envelope["v"] = OrderFilled.class_version + 1
    envelope["e"]["fee_rebate"] = "0.5"  # a field some future version added
    newer = json.dumps(envelope, separators=(",", ":")).encode()

    with pytest.raises(CodecError):
        codec.decode(codec.TOPICS[OrderFilled], newer)


def test_canonical_json_sorts_keys_and_keeps_decimals_as_strings() -> None:
    assert codec.canonical_json({"b": Decimal("1.50"), "a": [UUID(int=1)]}) == (
        b'{"a":["00000000-0000-0000-0000-000000000001"],"b":"1.50"}'
    )


def test_every_topic_names_its_class() -> None:
    events: list[LedgerEvent] = one_of_each_event()
    for event in events:
        topic, _, _ = codec.encode(event, GENESIS)
        assert topic == f"ledger.domain.events:{type(event).__name__}"
        assert codec.CLASSES[topic] is type(event)

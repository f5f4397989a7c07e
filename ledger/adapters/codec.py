"""Canonical event encoding and the per-run hash chain.

Why msgspec and not eventsourcing's JSON mapper: the library's transcoder walks every value
in Python and was measured at a quarter of raw SQLite's append rate; msgspec encodes our frozen
dataclasses (Decimal as string, UUID, aware datetime, plain Enum) in C, byte-for-byte
deterministically, and decodes them straight back into the dataclass. The stored state is::

    {"r":"<run hex>","n":N,"p":"<prev hash>","h":"<hash>","v":V,"e":{...event...}}

``h = sha256(p_bytes || header || e_bytes)`` where the header is topic, stream, version, schema
version and chain position, one per line: each event commits to
the previous event of the same run, so an edited, deleted or reordered row breaks the chain.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any, get_type_hints
from uuid import UUID

import msgspec

from ledger.domain.events import EVENT_TYPES, LedgerEvent

GENESIS_HASH = "0" * 64
TOPIC_PREFIX = "ledger.domain.events:"

TOPICS: dict[type[Any], str] = {cls: TOPIC_PREFIX + cls.__name__ for cls in EVENT_TYPES}
CLASSES: dict[str, type[Any]] = {topic: cls for cls, topic in TOPICS.items()}

_ENCODER = msgspec.json.Encoder(decimal_format="string")
_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(cls) for cls in EVENT_TYPES
}
_DICT_DECODER = msgspec.json.Decoder(dict[str, Any])
_CANONICAL = msgspec.json.Encoder(order="sorted", decimal_format="string")


class Envelope(msgspec.Struct, frozen=True):
    """The stored form of one event: chain fields plus the raw event bytes."""

    r: str
    n: int
    p: str
    h: str
    v: int
    e: msgspec.Raw


_ENVELOPE_DECODER = msgspec.json.Decoder(Envelope)


def _stored_form(cls: type[Any]) -> type[msgspec.Struct]:
    # A msgspec Struct with the event's fields and types. Decoding into it checks every type
    # (Decimal, UUID, aware datetime, enum) in C without running the dataclass's __post_init__:
    # replay trusts what was validated when the event was created (STYLE §4.2 rule 6), and the
    # hash chain, not re-validation, is what detects a row changed since.
    hints = get_type_hints(cls)
    return msgspec.defstruct(
        f"Stored{cls.__name__}", [(f.name, hints[f.name]) for f in fields(cls)], kw_only=True
    )


# The envelope with its event in stored form, per event class: decode()'s one-pass path.
_TYPED_ENVELOPE_DECODERS: dict[type[Any], msgspec.json.Decoder[Any]] = {
    cls: msgspec.json.Decoder(
        msgspec.defstruct(
            f"Envelope{cls.__name__}",
            [("r", str), ("n", int), ("p", str), ("h", str), ("v", int), ("e", _stored_form(cls))],
            frozen=True,
        )
    )
    for cls in EVENT_TYPES
}


def _from_stored_form(cls: type[Any], stored: msgspec.Struct) -> Any:
    # Build the frozen dataclass without __init__, as eventsourcing's mapper does on replay.
    event = object.__new__(cls)
    event.__dict__.update(msgspec.structs.asdict(stored))
    return event


@dataclass(frozen=True)
class ChainHead:
    """The last link of a run's chain: its position and hash."""

    n: int
    hash: str


class CodecError(Exception):
    """A stored state could not be decoded into a known event."""


def register_topic(topic: str, cls: type[Any]) -> None:
    """Resolve an old topic (a renamed or moved class) to its current class."""
    CLASSES[topic] = cls


def chain_hash(  # noqa: PLR0913, PLR0917 - one argument per hashed field, as auditors read it
    prev: str,
    topic: str,
    originator_id: UUID,
    originator_version: int,
    class_version: int,
    n: int,
    payload: bytes,
) -> str:
    """Return the hex hash of one link of the chain."""
    header = _link_header(topic, originator_id.hex, originator_version, class_version, n)
    return hashlib.sha256(bytes.fromhex(prev) + header + payload).hexdigest()


def _link_header(topic: str, stream_hex: str, originator_version: int, class_version: int, n: int) -> bytes:
    # What a link hashes besides the previous digest and the payload, one field per line.
    return f"{topic}\n{stream_hex}\n{originator_version}\n{class_version}\n{n}\n".encode()


def encode(event: LedgerEvent, prev: ChainHead) -> tuple[str, bytes, ChainHead]:
    """Return (topic, stored state, new head) for ``event`` appended after ``prev``."""
    n = prev.n + 1
    topic, _, state, _, digest = encode_link(event, n, prev.hash, bytes.fromhex(prev.hash), event.run_id.hex)
    return topic, state, ChainHead(n=n, hash=digest)


def encode_link(
    event: LedgerEvent, n: int, prev_hash: str, prev_digest: bytes, run_hex: str
) -> tuple[str, str, bytes, bytes, str]:
    """Return (topic, stream hex, stored state, digest, hex digest) of link ``n`` of a chain.

    The same bytes as ``encode`` (which calls it), for the store's hot path: the caller keeps
    the previous link's raw digest and the run's hex id instead of re-deriving them per event,
    and gets the stream's hex id back for its row. ``prev_digest`` is ``bytes.fromhex(prev_hash)``.
    """
    cls = type(event)
    topic = TOPICS[cls]
    payload = _ENCODER.encode(event)
    stream = event.originator_id.hex
    header = _link_header(topic, stream, event.originator_version, cls.class_version, n)
    digest = hashlib.sha256(prev_digest + header + payload).digest()
    hex_digest = digest.hex()
    state = b'{"r":"%s","n":%d,"p":"%s","h":"%s","v":%d,"e":%s}' % (
        run_hex.encode(),
        n,
        prev_hash.encode(),
        hex_digest.encode(),
        cls.class_version,
        payload,
    )
    return topic, stream, state, digest, hex_digest


def decode_envelope(state: bytes) -> Envelope:
    """Return the envelope of a stored state.

    Raises:
        CodecError: the bytes are not a stored event envelope.
    """
    try:
        return _ENVELOPE_DECODER.decode(state)
    except (msgspec.DecodeError, msgspec.ValidationError) as e:
        msg = f"stored state is not a ledger event envelope: {e}"
        raise CodecError(msg) from e


def decode_event(topic: str, envelope: Envelope) -> LedgerEvent:
    """Return the domain event in ``envelope``, upcasting old schema versions.

    Raises:
        CodecError: unknown topic, or a payload that does not fit the event's schema.
    """
    cls = CLASSES.get(topic)
    if cls is None:
        msg = f"unknown event topic {topic!r}; register_topic() the class it was renamed to"
        raise CodecError(msg)
    if envelope.v > cls.class_version:
        msg = (
            f"stored {topic} event has schema version {envelope.v}, newer than this code's "
            f"{cls.class_version}: it was written by a newer tradeledger; upgrade to read it"
        )
        raise CodecError(msg)
    try:
        if envelope.v == cls.class_version:
            return _DECODERS[cls].decode(envelope.e)  # type: ignore[no-any-return]
        state = _DICT_DECODER.decode(envelope.e)
        for version in range(envelope.v, cls.class_version):
            getattr(cls, f"upcast_v{version}_v{version + 1}")(state)
        return msgspec.convert(state, cls, strict=False)  # type: ignore[no-any-return]
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as e:
        msg = f"stored {topic} event does not fit its schema: {e}"
        raise CodecError(msg) from e


def decode(topic: str, state: bytes) -> LedgerEvent:
    """Return the domain event stored as ``state`` under ``topic``."""
    cls = CLASSES.get(topic)
    decoder = _TYPED_ENVELOPE_DECODERS.get(cls) if cls is not None else None
    if cls is not None and decoder is not None:
        # Fast path, one parse: envelope and current-version event together. Anything else
        # (an old schema version to upcast, a bad state to report) takes the two-step path.
        try:
            envelope = decoder.decode(state)
        except (msgspec.DecodeError, msgspec.ValidationError, ValueError):
            pass
        else:
            if envelope.v == cls.class_version:
                return _from_stored_form(cls, envelope.e)  # type: ignore[no-any-return]
    return decode_event(topic, decode_envelope(state))


def canonical_json(value: Any) -> bytes:
    """Return deterministic JSON bytes (sorted keys) for exports and digests."""
    return _CANONICAL.encode(value)

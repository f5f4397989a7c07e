"""Events: frozen, keyword-only, flat; validated once, when they are created."""

from __future__ import annotations

import dataclasses
import enum
from datetime import datetime
from decimal import Decimal

import pytest

from factories import (
    a_fill,
    a_price_marked,
    a_run_ended,
    a_run_started,
    an_order_placed,
    one_of_each_event,
)
from ledger.domain.events import (
    EVENT_TYPES,
    DecisionAction,
    OrderFilled,
    OrderType,
    Side,
    TradingMode,
)
from ledger.domain.numbers import D

EVENTS = one_of_each_event()


def _name(event) -> str:
    return f"{type(event).__name__}-v{event.originator_version}"


def test_the_factories_cover_every_event_type() -> None:
    assert {type(e) for e in EVENTS} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_events_are_frozen(event) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.originator_version = 99


@pytest.mark.parametrize("cls", EVENT_TYPES, ids=lambda c: c.__name__)
def test_events_are_keyword_only_unslotted_dataclasses_with_a_schema_version(cls) -> None:
    params = cls.__dataclass_params__
    assert params.frozen
    assert all(f.kw_only for f in dataclasses.fields(cls))
    assert not hasattr(cls, "__slots__")  # the store reads vars(event)
    assert isinstance(cls.class_version, int)
    assert cls.class_version >= 1


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_event_fields_are_flat_scalars(event) -> None:
    allowed = (str, int, Decimal, datetime, enum.Enum, type(None), type(event.run_id))
    for name, value in vars(event).items():
        assert isinstance(value, allowed), f"{type(event).__name__}.{name} is {type(value).__name__}"
        assert not isinstance(value, tuple | list | dict)


@pytest.mark.parametrize("enum_type", [Side, OrderType, TradingMode, DecisionAction])
def test_stored_enums_are_plain_enums_with_string_values(enum_type) -> None:
    assert not issubclass(enum_type, str)  # a StrEnum would come back from JSON as a plain str
    assert all(isinstance(member.value, str) for member in enum_type)


@pytest.mark.parametrize("event", EVENTS, ids=_name)
def test_every_event_refuses_a_naive_occurred_at(event) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        dataclasses.replace(event, occurred_at=datetime(2025, 5, 20, 12, 0))  # noqa: DTZ001 - the point


@pytest.mark.parametrize("event", EVENTS, ids=_name)
@pytest.mark.parametrize("version", [0, -1])
def test_every_event_refuses_a_stream_version_below_one(event, version) -> None:
    with pytest.raises(ValueError, match="originator_version starts at 1"):
        dataclasses.replace(event, originator_version=version)


@pytest.mark.parametrize("field", ["qty", "price"])
@pytest.mark.parametrize("value", ["0", "-1", "-0.00000001", "0E-18"])
def test_fill_refuses_a_non_positive_qty_or_price(field, value) -> None:
    with pytest.raises(ValueError, match=f"{field} must be positive"):
        a_fill(**{field: value})


def test_fill_refuses_a_negative_fee_but_accepts_a_zero_fee() -> None:
    with pytest.raises(ValueError, match="fee must not be negative"):
        a_fill(fee="-0.01")

    assert a_fill(fee="0").fee == D(0)


def test_fill_accepts_no_expected_price() -> None:
    assert a_fill(price_expected=None).price_expected is None


@pytest.mark.parametrize(
    ("qty", "qty_quote"),
    [("1", "100"), (None, None)],
    ids=["both", "neither"],
)
def test_order_placed_needs_exactly_one_of_qty_and_qty_quote(qty, qty_quote) -> None:
    with pytest.raises(ValueError, match="exactly one of qty and qty_quote"):
        an_order_placed(qty=qty, qty_quote=qty_quote)


def test_order_placed_accepts_a_quote_sized_order() -> None:
    placed = an_order_placed(qty=None, qty_quote="1000")

    assert placed.qty is None
    assert placed.qty_quote == D("1000")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"qty": "0"}, "qty must be positive"),
        ({"qty": "-2"}, "qty must be positive"),
        ({"qty": None, "qty_quote": "0"}, "qty_quote must be positive"),
        ({"qty": None, "qty_quote": "-5"}, "qty_quote must be positive"),
        ({"order_type": OrderType.LIMIT, "price_limit": "0"}, "price_limit must be positive"),
        ({"order_type": OrderType.LIMIT, "price_limit": None}, "a limit order needs price_limit"),
    ],
)
def test_order_placed_refuses_non_positive_amounts_and_limit_orders_without_a_limit(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        an_order_placed(**kwargs)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: a_run_started(cash_initial="0"), "cash_initial must be positive"),
        (lambda: a_run_started(fee_rate="-0.001"), "fee_rate must not be negative"),
        (lambda: a_price_marked(price="0"), "price must be positive"),
    ],
    ids=["run-cash", "run-fee", "mark-price"],
)
def test_run_stream_events_refuse_impossible_amounts(build, message) -> None:
    with pytest.raises(ValueError, match=message):
        build()


def test_run_ended_may_have_no_mark_price() -> None:
    assert a_run_ended(price_mark=None).price_mark is None


def test_order_filled_is_schema_version_2_and_upcasts_version_1_with_no_expected_price() -> None:
    state = {"qty": "1", "price": "100"}

    OrderFilled.upcast_v1_v2(state)

    assert OrderFilled.class_version == 2
    assert state == {"qty": "1", "price": "100", "price_expected": None}


def test_equal_inputs_build_equal_events() -> None:
    assert one_of_each_event() == one_of_each_event()
    assert a_fill(trade=2) != a_fill(trade=3)


# -- validation gaps: the constructor checks signs but not types or finiteness ------------------


def test_fill_refuses_an_infinite_qty() -> None:
    with pytest.raises(ValueError, match="qty"):
        dataclasses.replace(a_fill(), qty=Decimal("Infinity"))


def test_fill_refuses_float_amounts() -> None:
    with pytest.raises((TypeError, ValueError)):
        dataclasses.replace(a_fill(), fee=0.1)  # type: ignore[arg-type]

"""Numbers: D() builds every ledger Decimal, round_down_to_step rounds on purpose, plain() renders."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.numbers import LEDGER_CONTEXT, D, plain, quantize_price_avg, round_down_to_step


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.1", Decimal("0.1")),
        ("1.50", Decimal("1.50")),
        ("-3", Decimal(-3)),
        ("1e3", Decimal("1E+3")),
        (7, Decimal(7)),
        (0, Decimal(0)),
        (Decimal("2.25"), Decimal("2.25")),
        ("123456789.123456789012345678", Decimal("123456789.123456789012345678")),
    ],
)
def test_d_builds_exact_decimals_from_str_int_and_decimal(value, expected) -> None:
    number = D(value)

    assert type(number) is Decimal
    assert number == expected
    assert str(number) == str(expected)  # the exponent is kept: "1.50" stays "1.50"


@pytest.mark.parametrize(
    "value", [0.1, 1.0, float("nan"), float("inf"), True, False, None, b"1", [1], object()]
)
def test_d_refuses_floats_bools_and_non_numbers_with_type_error(value) -> None:
    with pytest.raises(TypeError, match="str, int or Decimal"):
        D(value)


@pytest.mark.parametrize(
    "value", ["NaN", "nan", "sNaN", "Infinity", "-Infinity", "inf", Decimal("NaN"), Decimal("-Infinity")]
)
def test_d_refuses_nan_and_infinity_with_value_error(value) -> None:
    with pytest.raises(ValueError, match="finite"):
        D(value)


@pytest.mark.parametrize("value", ["", "abc", "1,5", "1.2.3", "0x10", "--1"])
def test_d_refuses_strings_that_are_not_numbers_with_value_error(value) -> None:
    with pytest.raises(ValueError, match="not a decimal number"):
        D(value)


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("1.23456789", "0.00001", "1.23456"),
        ("0.00944", "0.00001", "0.00944"),  # already on the step: unchanged
        ("0.000009", "0.00001", "0"),  # below one step: nothing left
        ("100.74", "0.5", "100.5"),  # a 0.5 tick, not a power of ten
        ("100.99", "0.5", "100.5"),
        ("100.5", "0.5", "100.5"),
        ("101", "0.5", "101"),
        ("7.9", "0.25", "7.75"),
        ("-1.7", "0.5", "-1.5"),  # toward zero, never away from it
        ("12345", "10", "12340"),
    ],
)
def test_round_down_to_step_rounds_toward_zero_to_a_whole_multiple(value, step, expected) -> None:
    rounded = round_down_to_step(D(value), D(step))

    assert rounded == D(expected)
    with localcontext(LEDGER_CONTEXT):
        assert (rounded / D(step)) == (rounded / D(step)).to_integral_value()


steps = st.sampled_from([D("0.00001"), D("0.01"), D("0.5"), D("0.25"), D("1"), D("5"), D("0.0001")])
values = st.decimals(min_value="0", max_value="1000000", places=12, allow_nan=False, allow_infinity=False)


@given(value=values, step=steps)
def test_round_down_to_step_never_rounds_up_and_loses_less_than_one_step(value, step) -> None:
    rounded = round_down_to_step(value, step)

    with localcontext(LEDGER_CONTEXT):
        assert rounded <= value
        assert value - rounded < step
        assert (rounded / step) == (rounded / step).to_integral_value()
        assert round_down_to_step(rounded, step) == rounded  # idempotent


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (Decimal("1.50"), "1.5"),
        (Decimal("100"), "100"),  # normalize() alone would say 1E+2
        (Decimal("1E+2"), "100"),
        (Decimal("0E-47"), "0"),
        (Decimal("0.000000000000000001"), "0.000000000000000001"),
        (Decimal("1.0E-7"), "0.0000001"),
        (Decimal("-2.500"), "-2.5"),
        (Decimal("123456789.123456789012345678000"), "123456789.123456789012345678"),
        (Decimal("10000.00000000"), "10000"),
    ],
)
def test_plain_drops_trailing_zeros_and_exponents_but_not_digits(value, expected) -> None:
    assert plain(value) == expected


def test_plain_renders_negative_zero_as_zero() -> None:
    with localcontext(LEDGER_CONTEXT):
        # Position.pnl_unrealized of a 1 BTC short at 100 marked at 100: (100 - 100) x -1.
        negative_zero = (D("100") - D("100.000000000000000000")) * D(-1)

    assert plain(negative_zero) == "0"


def test_ledger_context_multiplies_exactly_where_the_default_28_digits_would_round() -> None:
    """123456789.123456789012345678 x 98765.4321 needs 36 significant digits.

    As integers: 123456789123456789012345678 x 987654321 = 121932631234567900124828531222374638,
    with 18 + 4 = 22 decimal places. 28 digits would cut it to 12193263123456.79001248285312.
    """
    a, b = D("123456789.123456789012345678"), D("98765.4321")
    with localcontext(LEDGER_CONTEXT):
        product = a * b

    assert 123456789123456789012345678 * 987654321 == 121932631234567900124828531222374638
    assert str(product) == "12193263123456.7900124828531222374638"


def test_ledger_context_traps_float_mixing() -> None:
    from decimal import FloatOperation  # noqa: PLC0415 - only this test needs the signal

    with localcontext(LEDGER_CONTEXT), pytest.raises(FloatOperation):
        _ = D("1") < 0.5


def test_quantize_price_avg_rounds_half_even_to_18_places() -> None:
    with localcontext(LEDGER_CONTEXT):
        third = D(100) / D(3)

    assert quantize_price_avg(third) == D("33.333333333333333333")
    assert quantize_price_avg(D("0.0000000000000000005")) == D("0E-18")  # half to even: 0
    assert quantize_price_avg(D("0.0000000000000000015")) == D("0.000000000000000002")

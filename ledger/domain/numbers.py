"""Exact ledger numbers: the one place that builds and rounds Decimals."""

from __future__ import annotations

from decimal import (
    ROUND_DOWN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    FloatOperation,
    InvalidOperation,
    Overflow,
    localcontext,
)

# Why 50 digits: an 18-decimal quantity times a price needs more than the default
# 28 significant digits, and Decimal would otherwise round the product silently.
LEDGER_CONTEXT = Context(
    prec=50,
    rounding=ROUND_HALF_EVEN,
    traps=[FloatOperation, InvalidOperation, DivisionByZero, Overflow],
)
ZERO = Decimal(0)
ONE = Decimal(1)

# Why 1e-18: average prices come from a division; quantizing to a fixed exponent makes every
# replay produce the same digits, and 18 places is below any venue's price precision.
PRICE_AVG_EXPONENT = Decimal("1e-18")


def D(value: str | int | Decimal) -> Decimal:  # noqa: N802 - Beancount-style constructor name
    """Return ``value`` as a finite Decimal; reject floats, bools and NaN.

    Raises:
        TypeError: ``value`` is a float, a bool or another non-number type.
        ValueError: ``value`` is not a number, or is NaN or infinite.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        msg = f"ledger numbers come from str, int or Decimal, was {type(value).__name__}"
        raise TypeError(msg)
    try:
        number = Decimal(value)
    except InvalidOperation as e:
        msg = f"not a decimal number: {value!r}"
        raise ValueError(msg) from e
    if not number.is_finite():
        msg = f"ledger numbers are finite, was {value!r}"
        raise ValueError(msg)
    return number


def round_down_to_step(value: Decimal, step: Decimal) -> Decimal:
    """Return ``value`` rounded toward zero to a whole multiple of ``step``.

    Works for steps that are not powers of ten (a 0.5 tick, say).
    """
    with localcontext(LEDGER_CONTEXT):
        return (value / step).to_integral_value(ROUND_DOWN) * step


def quantize_price_avg(value: Decimal) -> Decimal:
    """Return an average price rounded to ``PRICE_AVG_EXPONENT`` (half-even)."""
    with localcontext(LEDGER_CONTEXT):
        return value.quantize(PRICE_AVG_EXPONENT)


def plain(value: Decimal) -> str:
    """Return ``value`` as a plain decimal string without trailing zeros or exponent.

    For display and JSON output only: the number is unchanged, only its exponent is dropped
    (``0E-47`` becomes ``0``, ``1.50`` becomes ``1.5``, ``100`` stays ``100``).
    """
    text = f"{value.normalize(LEDGER_CONTEXT):f}"
    return "0" if text == "-0" else text

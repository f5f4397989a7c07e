"""The fold's one-operation sums run in LEDGER_CONTEXT (50 digits), not the default 28."""

from __future__ import annotations

from decimal import Decimal, localcontext

from ledger.domain.numbers import LEDGER_CONTEXT
from projections.portfolio import Balance

# 40 significant digits: the default context (28) would round this difference.
TOTAL = Decimal("123456789012345678901.1234567890123456789")
RESERVED = Decimal("0.0000000000000000001")


def test_free_is_exact_to_the_ledger_context() -> None:
    free = Balance(total=TOTAL, reserved=RESERVED).free
    assert free == Decimal("123456789012345678901.1234567890123456788")
    with localcontext(LEDGER_CONTEXT):
        assert free == TOTAL - RESERVED


def test_free_does_not_depend_on_the_callers_context() -> None:
    with localcontext() as ctx:
        ctx.prec = 5
        free = Balance(total=TOTAL, reserved=RESERVED).free
    assert free == Decimal("123456789012345678901.1234567890123456788")

"""The partial-fill policy: the seed's thresholds, checked in the documented order."""

from __future__ import annotations

import pytest

from ledger.domain.numbers import D
from ledger.domain.partial_fills import PartialFillPolicy, PolicyStep, remaining, verdict

POLICY = PartialFillPolicy()


def _step(
    qty_filled: str, market: str, age_s: float = 0, qty: str = "1", limit: str = "100000"
) -> PolicyStep:
    return verdict(
        POLICY,
        qty=D(qty),
        qty_filled=D(qty_filled),
        price_limit=D(limit),
        price_market=D(market),
        age_s=age_s,
    ).step


@pytest.mark.parametrize(
    ("filled", "market", "age", "expected"),
    [
        ("0", "100000", 0, PolicyStep.WAIT),
        ("0.79999", "100000", 0, PolicyStep.WAIT),  # just under 80 %
        ("0.8", "100000", 0, PolicyStep.FINISH_AT_MARKET),  # exactly 80 %
        ("0.95", "110000", 999, PolicyStep.FINISH_AT_MARKET),  # finishing comes first
        ("0.5", "102000", 0, PolicyStep.WAIT),  # exactly 2 % away is not more than 2 %
        ("0.5", "102000.01", 0, PolicyStep.CANCEL),
        ("0", "97999.99", 0, PolicyStep.CANCEL),  # away in either direction
        ("0.5", "100000", 299.9, PolicyStep.WAIT),
        ("0.5", "100000", 300, PolicyStep.CANCEL),  # the timeout
    ],
)
def test_the_seed_thresholds(filled: str, market: str, age: float, expected: PolicyStep) -> None:
    assert _step(filled, market, age) is expected


def test_a_filled_order_is_not_finished_again() -> None:
    assert _step("1", "100000") is PolicyStep.WAIT


def test_the_reason_names_the_measured_values() -> None:
    moved = verdict(
        POLICY, qty=D("1"), qty_filled=D("0"), price_limit=D("100000"), price_market=D("103000"), age_s=0
    )
    finished = verdict(
        POLICY, qty=D("2"), qty_filled=D("1.7"), price_limit=D("100000"), price_market=D("100000"), age_s=0
    )

    assert "3.00%" in moved.reason
    assert "103000" in moved.reason
    assert "85.00% filled" in finished.reason


def test_remaining_never_goes_negative() -> None:
    assert remaining(D("1"), D("0.85")) == D("0.15")
    assert remaining(D("1"), D("1.2")) == D("0")

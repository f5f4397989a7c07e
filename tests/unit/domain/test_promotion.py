"""The promotion gates: each criterion measured, inclusive thresholds, no trades never passes."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from ledger.application.promotion import criteria_json
from ledger.domain.promotion import PaperRecord, PromotionGates, evaluate, win_rate

D = Decimal


def _record(trades: int = 100, wins: int = 55, drawdown: str = "0.2", days: str = "30") -> PaperRecord:
    return PaperRecord(trades=trades, wins=wins, drawdown_max=D(drawdown), days=D(days))


def test_a_record_exactly_on_every_default_threshold_passes() -> None:
    criteria = evaluate(_record(), PromotionGates())

    assert [c.name for c in criteria] == ["trades", "win_rate", "drawdown_max", "days"]
    assert all(c.passed for c in criteria)
    assert [c.measured for c in criteria] == ["100", "0.55", "-0.2", "30"]


@pytest.mark.parametrize(
    ("record", "failing", "measured"),
    [
        (_record(trades=99, wins=55), "trades", "99"),
        (_record(wins=54), "win_rate", "0.54"),
        (_record(drawdown="0.2001"), "drawdown_max", "-0.2001"),
        (_record(days="29.99"), "days", "29.99"),
    ],
)
def test_one_short_of_a_threshold_fails_that_criterion_alone(
    record: PaperRecord, failing: str, measured: str
) -> None:
    criteria = evaluate(record, PromotionGates())

    assert [c.name for c in criteria if not c.passed] == [failing]
    assert next(c for c in criteria if c.name == failing).measured == measured


def test_no_trades_never_passes_the_win_rate_even_with_a_zero_threshold() -> None:
    gates = PromotionGates(min_trades=1, min_win_rate=D(0), max_drawdown=D(1), min_days=D(0))

    criteria = evaluate(_record(trades=0, wins=0, drawdown="0", days="0"), gates)

    assert win_rate(_record(trades=0, wins=0)) == 0
    assert {c.name for c in criteria if not c.passed} == {"trades", "win_rate"}


def test_criteria_json_is_canonical_and_complete() -> None:
    text = criteria_json(evaluate(_record(trades=3, wins=2), PromotionGates()))

    parsed = json.loads(text)
    assert parsed[0] == {"name": "trades", "required": ">= 100", "measured": "3", "passed": False}
    assert text == json.dumps(parsed, sort_keys=True)

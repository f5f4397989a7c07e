"""Sweep grids: ``--grid K=V1,V2`` options, their combinations in a fixed order, and refusals."""

from __future__ import annotations

import pytest

from ledger.application.sweep_grid import COMBINATIONS_MAX, GridAxis, combinations, describe, parse_grid
from ledger.domain.errors import ParameterError


def test_axes_keep_the_order_and_values_given() -> None:
    axes = parse_grid(["fast=5, 10,20", "slow=30,60"], fixed={"size": "0.1"})
    assert axes == [GridAxis("fast", ("5", "10", "20")), GridAxis("slow", ("30", "60"))]
    assert axes[0].option == "--grid fast=5,10,20"


def test_combinations_vary_the_first_axis_slowest() -> None:
    axes = parse_grid(["fast=5,10", "slow=30,60,90"], fixed={})
    assert [describe(c) for c in combinations(axes)] == [
        "fast=5 slow=30",
        "fast=5 slow=60",
        "fast=5 slow=90",
        "fast=10 slow=30",
        "fast=10 slow=60",
        "fast=10 slow=90",
    ]


def test_a_repeated_value_is_two_combinations() -> None:
    assert combinations(parse_grid(["fast=5,5"], fixed={})) == [{"fast": "5"}, {"fast": "5"}]


@pytest.mark.parametrize(
    ("options", "fixed", "words"),
    [
        ([], {}, "--grid: give at least one"),
        (["fast"], {}, "--grid 'fast': write a grid as KEY=V1,V2"),
        (["=5,10"], {}, "--grid '=5,10': write a grid as KEY=V1,V2"),
        (["fast="], {}, "--grid 'fast=': a value is empty"),
        (["fast=5,,10"], {}, "--grid 'fast=5,,10': a value is empty"),
        (["fast=5,10", "fast=20"], {}, "--grid 'fast=20': fast is swept twice"),
        (["fast=5,10"], {"fast": "7"}, "--grid 'fast=5,10': fast is also fixed by --param fast=7"),
    ],
)
def test_malformed_grids_are_refused_naming_the_option(
    options: list[str], fixed: dict[str, str], words: str
) -> None:
    with pytest.raises(ParameterError) as caught:
        parse_grid(options, fixed)
    assert str(caught.value).startswith(words)


def test_a_grid_beyond_the_bound_is_refused_with_its_size() -> None:
    values = ",".join(str(v) for v in range(1, 41))  # 40 x 40 x 1 = 1,600 > 1,000
    with pytest.raises(ParameterError, match=f"1600 combinations is more than {COMBINATIONS_MAX}"):
        parse_grid([f"fast={values}", f"slow={values}"], fixed={})

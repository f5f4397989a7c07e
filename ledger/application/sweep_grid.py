"""Parameter grids of a sweep: ``--grid K=V1,V2,...`` options into the combinations to run.

Every combination is the base ``--param`` values overridden by one value of each grid key.
The order is fixed: the first ``--grid`` varies slowest, values in the order given (the
cartesian product, as ``itertools.product`` lists it), so a sweep's runs are always dispatched,
written and numbered the same way. A repeated value (``fast=5,5``) is two combinations: each is
its own run (the second takes the next attempt number, as a repeated backtest does).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ledger.domain.errors import ParameterError

# Why 1,000: a sweep is one process's dispatch list and one comparison table; a grid larger
# than this is far more likely a typo (a value list pasted twice) than a plan.
COMBINATIONS_MAX = 1000


@dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` option: a parameter name and the values it takes."""

    key: str
    values: tuple[str, ...]

    @property
    def option(self) -> str:
        """Return the option as the user wrote it (values normalised), e.g. ``--grid fast=5,10``."""
        return f"--grid {self.key}={','.join(self.values)}"


def parse_grid(options: Sequence[str], fixed: Mapping[str, str]) -> list[GridAxis]:
    """Return the axes of ``--grid`` options, refusing malformed ones.

    ``fixed`` holds the ``--param`` values; a key may be fixed or swept, not both.

    Raises:
        ParameterError: no grid, a malformed option, an empty value, a key given twice or
            also given as ``--param``, or more than ``COMBINATIONS_MAX`` combinations.
    """
    if not options:
        msg = "--grid: give at least one parameter grid, e.g. --grid fast=5,10,20"
        raise ParameterError(msg)
    axes: list[GridAxis] = []
    for option in options:
        key, sep, text = option.partition("=")
        key = key.strip()
        values = tuple(v.strip() for v in text.split(","))
        if not sep or not key:
            msg = f"--grid {option!r}: write a grid as KEY=V1,V2,..., e.g. --grid fast=5,10,20"
            raise ParameterError(msg)
        if any(not v for v in values):
            msg = f"--grid {option!r}: a value is empty; separate values with single commas, e.g. fast=5,10"
            raise ParameterError(msg)
        if any(axis.key == key for axis in axes):
            msg = f"--grid {option!r}: {key} is swept twice; list all its values in one --grid {key}=..."
            raise ParameterError(msg)
        if key in fixed:
            msg = f"--grid {option!r}: {key} is also fixed by --param {key}={fixed[key]}; give one of the two"
            raise ParameterError(msg)
        axes.append(GridAxis(key=key, values=values))
    count = 1
    for axis in axes:
        count *= len(axis.values)
    if count > COMBINATIONS_MAX:
        msg = (
            f"--grid: {count} combinations is more than {COMBINATIONS_MAX}; "
            "sweep fewer values or split the sweep"
        )
        raise ParameterError(msg)
    return axes


def combinations(axes: Sequence[GridAxis]) -> list[dict[str, str]]:
    """Return each combination's grid values (first axis slowest), keys in axis order."""
    keys = [axis.key for axis in axes]
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(a.values for a in axes))]


def describe(values: Mapping[str, str]) -> str:
    """Return a combination as ``fast=5 slow=30`` (its table label)."""
    return " ".join(f"{key}={value}" for key, value in values.items())

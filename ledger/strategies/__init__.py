"""Decision sources: rule-based strategies (and, later, agents) behind one protocol."""

from __future__ import annotations

from collections.abc import Mapping

from ledger.application.decisions import DecisionSource
from ledger.domain.errors import ParameterError


def build_strategy(name: str, params: Mapping[str, str]) -> DecisionSource:
    """Return the decision source ``name`` configured with ``params``.

    Raises:
        ParameterError: unknown strategy or invalid parameter.
    """
    from ledger.strategies.sma import SmaCrossover  # noqa: PLC0415 - registry stays import-light

    builders = {"sma": SmaCrossover.from_params}
    builder = builders.get(name)
    if builder is None:
        msg = f"--strategy: unknown strategy {name!r}; use one of {', '.join(sorted(builders))}"
        raise ParameterError(msg)
    return builder(params)

"""Decision sources: rule-based strategies and the LLM agent behind one protocol."""

from __future__ import annotations

from collections.abc import Mapping

from ledger.application.decisions import DecisionSource
from ledger.domain.errors import ParameterError
from ledger.strategies.chat import ChatConnector

STRATEGIES = ("llm", "rebalance", "sma")


def build_strategy(
    name: str, params: Mapping[str, str], *, chat: ChatConnector | None = None, symbol: str = "BTC/USDT"
) -> DecisionSource:
    """Return the decision source ``name`` configured with ``params``.

    ``chat`` connects sources that ask a chat model (``llm``) to one: the HTTP client in
    backtests and sessions, the recorded answers in an audit replay. Sources that need none
    ignore it. ``symbol`` is the run's instrument (the rebalancer's assets must be its own).

    Raises:
        ParameterError: unknown strategy or invalid parameter, or ``llm`` where no chat model
            can be reached.
    """
    if name == "sma":
        from ledger.strategies.sma import SmaCrossover  # noqa: PLC0415 - registry stays import-light

        return SmaCrossover.from_params(params)
    if name == "rebalance":
        from ledger.strategies.rebalance import ThresholdRebalancer  # noqa: PLC0415

        return ThresholdRebalancer.from_params(params, symbol)
    if name == "llm":
        from ledger.strategies.llm import LlmAgent  # noqa: PLC0415 - pydantic and msgspec load on use

        if chat is None:
            msg = "--strategy llm: this command cannot reach a chat model; run it as a backtest or session"
            raise ParameterError(msg)
        return LlmAgent.from_params(params, chat)
    msg = f"--strategy: unknown strategy {name!r}; use one of {', '.join(STRATEGIES)}"
    raise ParameterError(msg)

"""Promotions between modes: backtest -> paper (recorded) and paper -> live (gated).

A paper session's config may name the backtest run its strategy comes from
(``[promotion] backtest_run``): the paper run records ``TradingModeSwitched`` (backtest ->
paper) with the backtest's record measured against the gates, for information; nothing is
refused on it, but the backtest must have traded the same strategy, parameters and symbol.

A live session's config names the paper run whose record earns it (``[promotion] paper_run``).
At start-up, before the venue is contacted, that record is measured against the gates:

* passed: the live run records ``TradingModeSwitched`` (paper -> live) right after its start,
  with every criterion and its measured value;
* failed: ``TradingModeRefused`` is appended to the paper run's stream with the same detail,
  and the command exits 4 (refused for safety) without starting a live run;
* ``required = false`` waives the gates; the live run records the waiver in its switch.

The paper run must have traded the same strategy, parameters and symbol as the live config:
a record earned by another strategy proves nothing about this one.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger.adapters.store import LedgerStore
from ledger.application.promotion import criteria_json, paper_record
from ledger.domain.errors import ParameterError, PromotionRefusedError
from ledger.domain.events import TradingMode, TradingModeRefused
from ledger.domain.identifiers import run_stream_id
from ledger.domain.promotion import Criterion, PromotionGates, evaluate
from ledger.ports import Clock
from projections.portfolio import PortfolioProjection, RunView


@dataclass(frozen=True, kw_only=True)
class PromotionRequest:
    """The run a session is promoted from, what it must have traded, and the gates.

    ``run`` (an id or unique prefix) is the paper run a live session is promoted from, or the
    backtest run a paper session follows.
    """

    run: str | None
    required: bool
    gates: PromotionGates
    strategy: str
    params: str  # canonical JSON, as RunStarted records it
    symbol: str


def judge(run: RunView, gates: PromotionGates) -> list[Criterion]:
    """Return every gate's verdict on ``run``'s record."""
    return evaluate(paper_record(run), gates)


def promote(
    store: LedgerStore, portfolio: PortfolioProjection, request: PromotionRequest, clock: Clock
) -> str:
    """Return the reason the live run records with its switch, or refuse (recorded, exit 4).

    Raises:
        PromotionRefusedError: no paper run named, a mismatching run, or failed gates.
    """
    if not request.required:
        return "promotion gates waived by the config ([promotion] required = false)"
    if request.run is None:
        msg = (
            "promotion.paper_run: live trading needs the paper run whose record passes the gates; "
            "name it in [promotion] paper_run (see `tradeledger gates RUN`)"
        )
        raise PromotionRefusedError(msg)
    run = portfolio.find_run(request.run)
    mismatch = _mismatch(run, request)
    if mismatch:
        msg = f"promotion.paper_run: run {run.run_id} {mismatch}; promote a paper run of this very strategy"
        raise PromotionRefusedError(msg)
    criteria = judge(run, request.gates)
    failed = [c for c in criteria if not c.passed]
    detail = "; ".join(f"{c.name} {c.measured} (needs {c.required})" for c in failed)
    if failed:
        version = store.read_stream(run_stream_id(run.run_id))[-1].originator_version + 1
        store.append(
            [
                TradingModeRefused(
                    originator_id=run_stream_id(run.run_id),
                    originator_version=version,
                    occurred_at=clock.now(),
                    run_id=run.run_id,
                    mode_from=TradingMode.PAPER,
                    mode_to=TradingMode.LIVE,
                    criteria=criteria_json(criteria),
                    detail=detail,
                )
            ]
        )
        msg = f"promotion to live refused for paper run {run.run_id}: {detail}"
        raise PromotionRefusedError(msg)
    return f"promoted from paper run {run.run_id}: {criteria_json(criteria)}"


def from_backtest(portfolio: PortfolioProjection, request: PromotionRequest) -> str:
    """Return the reason a paper run records with its switch from the backtest it follows.

    Not gated (only paper -> live is): the backtest's record is measured against the gates and
    recorded as it is, for whoever later promotes the paper run; ``request.run`` names
    the backtest run here.

    Raises:
        RunNotFoundError: no run matches the id or prefix.
        ParameterError: the run is not a backtest, or traded another strategy or symbol.
    """
    run = portfolio.find_run(request.run)
    mismatch = _mismatch(run, request, TradingMode.BACKTEST)
    if mismatch:
        msg = f"promotion.backtest_run: run {run.run_id} {mismatch}; name a backtest of this very strategy"
        raise ParameterError(msg)
    return f"follows backtest run {run.run_id}: {criteria_json(judge(run, request.gates))}"


def _mismatch(run: RunView, request: PromotionRequest, mode: TradingMode = TradingMode.PAPER) -> str:
    started = run.started
    if started.mode is not mode:
        return f"is a {started.mode.value} run, not a {mode.value} run"
    if started.strategy != request.strategy or started.params != request.params:
        return f"traded {started.strategy} {started.params}, not {request.strategy} {request.params}"
    if started.instrument != request.symbol:
        return f"traded {started.instrument}, not {request.symbol}"
    return ""

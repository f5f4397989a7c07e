"""Market-data tapes: replaying a paper or live run as a backtest, and the tapes' retention.

``replay RUN --as-backtest`` re-runs the run's strategy, with its parameters, cash and fee, on
exactly the bars the session saw (its tape, checked by sha256), with the backtest's next-open
fill model, into a scratch ledger, and compares what happened live with what the simulation
did: decisions, fills, prices, slippage, and the venue's answer latency.

Retention (C17): ``tapes prune --older-than-days N`` deletes old tape files, never silently:
each removal is recorded in the run's own stream (``MarketTapePruned``), so a later
``--as-backtest`` of that run says when and why its tape is gone.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from pathlib import Path
from typing import Any
from uuid import UUID

import anyio

from ledger.adapters.clock import SimulatedClock, SystemClock
from ledger.adapters.exchange_backtest import BacktestExchange
from ledger.adapters.ids import SeededIds
from ledger.adapters.store import LedgerStore, open_store
from ledger.adapters.tape import read_tape
from ledger.application.backtest import BacktestRun, BacktestSpec
from ledger.application.candles import RollingCandles
from ledger.bootstrap import code_version
from ledger.bootstrap.replay import read_run
from ledger.domain.errors import DataFileError, InvariantViolationError, ParameterError
from ledger.domain.events import (
    DecisionMade,
    LedgerEvent,
    MarketTapePruned,
    MarketTapeRecorded,
    OrderAccepted,
    OrderFilled,
    OrderSubmitted,
    RunEnded,
    RunStarted,
    TradingMode,
)
from ledger.domain.identifiers import run_stream_id
from ledger.domain.instruments import instrument_for
from ledger.domain.numbers import LEDGER_CONTEXT, plain
from ledger.strategies import build_strategy

INTERVALS_MS = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


@dataclass(frozen=True, kw_only=True)
class FillPair:
    """The n-th fill live and in the simulation."""

    n: int
    side_live: str | None
    side_sim: str | None
    qty_live: str | None
    qty_sim: str | None
    price_live: str | None
    price_sim: str | None
    price_diff_bps: str | None  # live against simulated; positive: live paid more / got less


@dataclass(kw_only=True)
class TapeReplayReport:
    """Live (or paper) against the same strategy simulated on the same tape."""

    run_id: UUID
    mode: str
    tape: str
    bars: int
    decisions: dict[str, int]
    fills: dict[str, int]
    equity_final: dict[str, str]
    slippage_bps_avg: dict[str, str | None]
    ack_latency_ms: dict[str, float | None]
    pairs: list[FillPair] = field(default_factory=list)
    first_divergence: str | None = None


def _tape_path(events: list[LedgerEvent], tapes: Path, run_id: UUID) -> tuple[Path, MarketTapeRecorded]:
    recorded = [e for e in events if isinstance(e, MarketTapeRecorded)]
    pruned = [e for e in events if isinstance(e, MarketTapePruned)]
    if pruned:
        p = pruned[-1]
        msg = (
            f"run {run_id}: its tape {p.tape} was removed on {p.occurred_at:%Y-%m-%d %H:%M} UTC "
            f"({p.reason}); a backtest replay of it is no longer possible"
        )
        raise DataFileError(msg)
    if not recorded:
        msg = f"run {run_id} recorded no market-data tape (only paper and live runs that ended record one)"
        raise DataFileError(msg)
    tape = recorded[-1]
    path = tapes / tape.tape
    if not path.is_file():
        msg = f"run {run_id}: its tape {path} is missing; restore it (sha256 {tape.digest[:16]}...)"
        raise DataFileError(msg)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != tape.digest:
        msg = f"run {run_id}: tape {path} has sha256 {digest[:16]}..., the run recorded {tape.digest[:16]}..."
        raise InvariantViolationError(msg)
    return path, tape


def replay_as_backtest(store: LedgerStore, run_id: UUID, tapes: Path) -> TapeReplayReport:
    """Simulate a paper or live run on its own tape and compare; see the module docstring.

    Raises:
        RunNotFoundError: no such run. DataFileError: no tape, or it was pruned or is missing.
        InvariantViolationError: the tape's bytes are not those the run recorded.
        ParameterError: a run the backtest cannot simulate yet (limit orders).
    """
    log = read_run(store, run_id)
    events = [e for _, e in log.events]
    started = log.started
    if started.mode is TradingMode.BACKTEST:
        msg = f"run {run_id} is a backtest: `tradeledger replay RUN` re-runs it from its data file"
        raise ParameterError(msg)
    path, tape = _tape_path(events, tapes, run_id)
    bars = read_tape(path)
    params = json.loads(started.params)
    if "limit_offset_bps" in params:
        msg = "--as-backtest: this run placed limit orders, which the backtest does not simulate yet"
        raise ParameterError(msg)
    simulated = _simulate(started, bars)
    return _compare(started, events, simulated, tape)


def _simulate(started: RunStarted, bars: list[Any]) -> list[LedgerEvent]:
    interval = INTERVALS_MS.get(started.data_source.rsplit(":", 1)[-1], 60_000)
    window = RollingCandles(capacity=max(1, len(bars)), interval_ms=interval, source=started.data_source)
    for bar, _ in bars:
        window.append(bar)
    candles = window.candles()
    first_live = next((i for i, (_, history) in enumerate(bars) if not history), len(bars))
    instrument = instrument_for(started.instrument)
    spec = BacktestSpec(
        instrument=instrument,
        cash_initial=started.cash_initial,
        fee_rate=started.fee_rate,
        seed=started.seed,
        config_hash=started.config_hash,
        code_version=code_version(),
        first_decision_bar=first_live,
    )
    with tempfile.TemporaryDirectory(prefix="tradeledger-tape-") as work:
        store = open_store(str(Path(work) / "sim.db"), create=True)
        try:
            run = BacktestRun(
                spec=spec,
                candles=candles,
                strategy=build_strategy(
                    started.strategy, json.loads(started.params), symbol=started.instrument
                ),
                store=store,
                venue=BacktestExchange(candles, instrument, started.fee_rate),
                ids=SeededIds(started.seed),
                clock=SimulatedClock(candles.open_at(0)),
                run_id=started.run_id,
            )
            anyio.run(run.execute, None)
            return [e for _, e in store.read_log(0, 10_000_000)]
        finally:
            store.close()


def _fills(events: list[LedgerEvent]) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled)]


def _slippage(fills: list[OrderFilled]) -> str | None:
    found = []
    with localcontext(LEDGER_CONTEXT):
        for f in fills:
            if f.price_expected is not None:
                sign = 1 if f.side.value == "buy" else -1
                found.append(sign * (f.price - f.price_expected) / f.price_expected * 10000)
        return None if not found else plain((sum(found, Decimal(0)) / len(found)).quantize(Decimal("1e-4")))


def _ack_latency_ms(events: list[LedgerEvent]) -> float | None:
    sent = {e.client_order_id: e.occurred_at for e in events if isinstance(e, OrderSubmitted)}
    waits = [
        (e.occurred_at - sent[e.client_order_id]) / timedelta(milliseconds=1)
        for e in events
        if isinstance(e, OrderAccepted) and e.client_order_id in sent
    ]
    return None if not waits else sum(waits) / len(waits)


def _compare(
    started: RunStarted, live: list[LedgerEvent], sim: list[LedgerEvent], tape: MarketTapeRecorded
) -> TapeReplayReport:
    live_fills, sim_fills = _fills(live), _fills(sim)
    report = TapeReplayReport(
        run_id=started.run_id,
        mode=started.mode.value,
        tape=tape.tape,
        bars=tape.bars,
        decisions={
            "live": sum(isinstance(e, DecisionMade) for e in live),
            "simulated": sum(isinstance(e, DecisionMade) for e in sim),
        },
        fills={"live": len(live_fills), "simulated": len(sim_fills)},
        equity_final={"live": _equity(live), "simulated": _equity(sim)},
        slippage_bps_avg={"live": _slippage(live_fills), "simulated": _slippage(sim_fills)},
        ack_latency_ms={"live": _ack_latency_ms(live), "simulated": 0.0},
    )
    for n in range(max(len(live_fills), len(sim_fills))):
        a = live_fills[n] if n < len(live_fills) else None
        b = sim_fills[n] if n < len(sim_fills) else None
        diff = None
        if a is not None and b is not None:
            with localcontext(LEDGER_CONTEXT):
                sign = 1 if a.side.value == "buy" else -1
                diff = plain((sign * (a.price - b.price) / b.price * 10000).quantize(Decimal("1e-4")))
        report.pairs.append(
            FillPair(
                n=n + 1,
                side_live=None if a is None else a.side.value,
                side_sim=None if b is None else b.side.value,
                qty_live=None if a is None else plain(a.qty),
                qty_sim=None if b is None else plain(b.qty),
                price_live=None if a is None else plain(a.price),
                price_sim=None if b is None else plain(b.price),
                price_diff_bps=diff,
            )
        )
        if report.first_divergence is None and (a is None or b is None or a.side is not b.side):
            report.first_divergence = (
                f"fill {n + 1}: live {'none' if a is None else a.side.value}, "
                f"simulated {'none' if b is None else b.side.value}"
            )
    return report


def _equity(events: list[LedgerEvent]) -> str:
    ended = [e for e in events if isinstance(e, RunEnded)]
    return "" if not ended else plain(ended[-1].equity_final)


@dataclass(frozen=True, kw_only=True)
class TapeInfo:
    """One tape file and the run it belongs to."""

    run_id: UUID
    tape: str
    bars: int
    recorded_at: datetime
    present: bool
    pruned: bool


def list_tapes(store: LedgerStore, tapes: Path) -> list[TapeInfo]:
    """Return every tape the ledger recorded, with whether its file is still there."""
    recorded: dict[UUID, MarketTapeRecorded] = {}
    pruned: set[UUID] = set()
    after = 0
    while page := store.read_log(after, 20_000):
        for _, e in page:
            if isinstance(e, MarketTapeRecorded):
                recorded[e.run_id] = e
            elif isinstance(e, MarketTapePruned):
                pruned.add(e.run_id)
        after = page[-1][0]
    return [
        TapeInfo(
            run_id=run,
            tape=e.tape,
            bars=e.bars,
            recorded_at=e.occurred_at,
            present=(tapes / e.tape).is_file(),
            pruned=run in pruned,
        )
        for run, e in recorded.items()
    ]


def prune_tapes(store: LedgerStore, tapes: Path, *, older_than_days: float, dry_run: bool) -> list[TapeInfo]:
    """Remove tape files older than the retention; record each removal in its run's stream."""
    clock = SystemClock()
    cutoff = clock.now() - timedelta(days=older_than_days)
    chosen = [t for t in list_tapes(store, tapes) if t.present and not t.pruned and t.recorded_at < cutoff]
    if dry_run:
        return chosen
    for info in chosen:
        version = len(store.read_stream(run_stream_id(info.run_id))) + 1
        digest = hashlib.sha256((tapes / info.tape).read_bytes()).hexdigest()
        store.append(
            [
                MarketTapePruned(
                    originator_id=run_stream_id(info.run_id),
                    originator_version=version,
                    occurred_at=clock.now(),
                    run_id=info.run_id,
                    tape=info.tape,
                    digest=digest,
                    reason=f"retention: older than {older_than_days:g} days",
                )
            ]
        )
        (tapes / info.tape).unlink()
    return chosen

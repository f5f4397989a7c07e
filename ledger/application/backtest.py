"""The backtest run loop: candles in, decisions, orders and fills out, all as events.

Only bars where something can happen are visited: the strategy's candidate bars (computed
vectorised), the bar after each order (its fill), and the hourly marks of the equity curve.
Events are buffered and appended in atomic chunks that never split one bar's events.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID

import numpy as np
import numpy.typing as npt

from ledger.application.candles import Candles
from ledger.application.decisions import DecisionSource
from ledger.application.order_path import (
    consult,
    decision_made,
    market_context,
    order_placed,
    run_checkpointed,
    unacted,
)
from ledger.application.session_ports import VenueRejectedError
from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.errors import InvariantViolationError
from ledger.domain.events import (
    LedgerEvent,
    PriceMarked,
    RunEnded,
    RunStarted,
    TradingMode,
)
from ledger.domain.identifiers import run_stream_id
from ledger.domain.instruments import Instrument
from ledger.domain.order import FillReport, OrderEnded, OrderState, evolve, fill_events
from ledger.domain.order_answers import accepted, denied, ended, rejected, submitted
from ledger.domain.trading_session import gate
from ledger.ports import EventStore, ExchangeGateway, IdGenerator
from projections.portfolio import PortfolioProjection, RunView

# Why 1,000: see ledger.adapters.store.APPEND_CHUNK; flushing at bar boundaries keeps a bar's
# events (decision, order, ack) in one transaction.
FLUSH_AT = 1000
# Why hourly: a point per hour keeps the equity curve small (2,200 points for 3 months of 1m
# bars) while still resolving intraday drawdowns; coarser data marks every bar.
MARK_INTERVAL_MS = 3_600_000
# Why daily: a checkpoint pins the run's own positions and balances for audit replays (C14);
# one a day bounds how far back a divergence can hide at 1,440 one-minute bars.
CHECKPOINT_INTERVAL_MS = 86_400_000


class BacktestVenue(ExchangeGateway, Protocol):
    """A simulated venue the run loop moves through the candles."""

    def advance_to(self, bar: int) -> None:
        """Make ``bar`` the current bar of the simulated market."""
        ...


class SettableClock(Protocol):
    """The simulated clock the run loop moves."""

    def now(self) -> datetime:
        """Return the simulated time."""
        ...

    def set(self, moment: datetime) -> None:
        """Move the clock forward to ``moment``."""
        ...


@dataclass(frozen=True, kw_only=True)
class BacktestSpec:
    """Everything a backtest needs besides its data, strategy and ports."""

    instrument: Instrument
    cash_initial: Decimal
    fee_rate: Decimal
    seed: int
    config_hash: str
    code_version: str
    fill_model: str = "next-open"
    halted: bool = False  # the ledger's kill switch at start
    first_decision_bar: int = 0  # earlier bars only warm the strategy up (a session's history)


@dataclass(frozen=True, kw_only=True)
class BacktestResult:
    """What a finished backtest wrote."""

    run_id: UUID
    events: int
    view: RunView
    seqs: tuple[int, int] | None = None  # the store's first and last seq of the run's events


class _Writer:
    """Buffers events, keeps the in-memory portfolio current, appends in atomic chunks."""

    def __init__(self, store: EventStore, portfolio: PortfolioProjection) -> None:
        self.store = store
        self.portfolio = portfolio
        self.buffer: list[LedgerEvent] = []
        self.written = 0
        self.seqs: tuple[int, int] | None = None

    def record(self, *events: LedgerEvent) -> None:
        for event in events:
            self.portfolio.apply(event)
        self.buffer.extend(events)

    def flush(self, *, force: bool = False) -> None:
        if self.buffer and (force or len(self.buffer) >= FLUSH_AT):
            seqs = self.store.append(self.buffer)
            self.seqs = (seqs[0] if self.seqs is None else self.seqs[0], seqs[-1])
            self.written += len(self.buffer)
            self.buffer = []


class BacktestRun:
    """One backtest: owns the run's stream versions, order states and the writer."""

    def __init__(  # noqa: PLR0913 - keyword-only wiring from the composition root
        self,
        *,
        spec: BacktestSpec,
        candles: Candles,
        strategy: DecisionSource,
        store: EventStore,
        venue: BacktestVenue,
        ids: IdGenerator,
        clock: SettableClock,
        run_id: UUID,
    ) -> None:
        """Bind the run to its inputs and ports."""
        self.spec = spec
        self.candles = candles
        self.strategy = strategy
        self.venue = venue
        self.ids = ids
        self.clock = clock
        self.run_id = run_id
        self.portfolio = PortfolioProjection()
        self.writer = _Writer(store, self.portfolio)
        self.run_version = 0
        self.orders: dict[str, OrderState] = {}

    async def execute(self, progress: Callable[[int, int], None] | None = None) -> BacktestResult:
        """Run the backtest to its last bar and return what it wrote."""
        candles = self.candles
        last = len(candles) - 1
        candidates = self.strategy.candidate_bars(candles)
        candidates = candidates[candidates < last]  # a signal on the last bar is not filled
        candidates = candidates[candidates >= self.spec.first_decision_bar]
        marks = _mark_bars(candles)
        decide = np.zeros(len(candles), dtype=bool)
        decide[candidates] = True
        mark = np.zeros(len(candles), dtype=bool)
        mark[marks] = True
        checkpoint = np.zeros(len(candles), dtype=bool)
        checkpoint[_mark_bars(candles, CHECKPOINT_INTERVAL_MS)] = True
        bars = np.union1d(np.union1d(candidates, candidates + 1), marks)
        self._start()
        step = max(1, bars.size // 100)
        for count, bar in enumerate(bars.tolist()):
            await self._bar(bar, decide=bool(decide[bar]), mark=bool(mark[bar]))
            if checkpoint[bar]:
                self._checkpoint()
            self.writer.flush()
            if progress is not None and count % step == 0:
                progress(bar, last)
        await self._bar(last, decide=False, mark=False)
        self._end(last)
        if progress is not None:
            progress(last, last)
        return BacktestResult(
            run_id=self.run_id,
            events=self.writer.written,
            view=self.portfolio.runs[self.run_id],
            seqs=self.writer.seqs,
        )

    def _next_run_version(self) -> int:
        self.run_version += 1
        return self.run_version

    def _start(self) -> None:
        candles, spec = self.candles, self.spec
        self.clock.set(candles.open_at(0))
        self.writer.record(
            RunStarted(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._next_run_version(),
                occurred_at=self.clock.now(),
                run_id=self.run_id,
                mode=TradingMode.BACKTEST,
                seed=spec.seed,
                venue=self.venue.venue,
                instrument=spec.instrument.symbol,
                base_asset=spec.instrument.base_asset,
                quote_asset=spec.instrument.quote_asset,
                cash_initial=spec.cash_initial,
                fee_rate=spec.fee_rate,
                strategy=self.strategy.name,
                params=json.dumps(self.strategy.params(), sort_keys=True),
                data_source=candles.source,
                data_digest=candles.digest,
                config_hash=spec.config_hash,
                code_version=spec.code_version,
                fill_model=spec.fill_model,
            )
        )

    async def _bar(self, bar: int, *, decide: bool, mark: bool) -> None:
        candles = self.candles
        self.venue.advance_to(bar)
        self.clock.set(candles.open_at(bar))
        for report in await self.venue.poll_fills():
            self._record_report(report)
        if not (decide or mark):
            return
        self.clock.set(candles.close_at(bar))
        price = candles.price(candles.close[bar])
        if mark:
            self.writer.record(
                PriceMarked(
                    originator_id=run_stream_id(self.run_id),
                    originator_version=self._next_run_version(),
                    occurred_at=self.clock.now(),
                    run_id=self.run_id,
                    instrument=self.spec.instrument.symbol,
                    price=price,
                )
            )
        if decide:
            await self._decide(bar, price)

    async def _decide(self, bar: int, price: Decimal) -> None:
        order, note = await consult(self.strategy, self._context(bar, price), self.spec.instrument)
        if note is not None:
            run = self.portfolio.runs[self.run_id]
            self.writer.record(
                unacted(
                    note,
                    run,
                    version=self._next_run_version(),
                    at=self.clock.now(),
                    source=self.strategy.name,
                )
            )
        if order is not None:
            await self._act(order, price)

    def _context(self, bar: int, price: Decimal) -> MarketContext:
        return market_context(self.portfolio.runs[self.run_id], self.spec.instrument, bar, price)

    async def _act(self, decision: Decision, price: Decimal) -> None:
        now = self.clock.now()
        run = self.portfolio.runs[self.run_id]
        client_order_id = self.ids.client_order_id(self.run_id, run.orders + 1)
        decision_id = f"{client_order_id}-d"
        made = decision_made(
            decision,
            run_id=self.run_id,
            version=self._next_run_version(),
            at=now,
            decision_id=decision_id,
            source=self.strategy.name,
        )
        placed = order_placed(  # the backtest venue sizes a quote-amount buy at its fill price
            decision,
            run_id=self.run_id,
            client_order_id=client_order_id,
            decision_id=decision_id,
            at=now,
            price_expected=price,
            qty=decision.qty,
            qty_quote=decision.qty_quote,
            price_limit=decision.price_limit,
        )
        self.writer.record(made, placed)
        state = evolve(None, placed)
        denial = gate(
            placed,
            self.spec.instrument,
            halted=self.spec.halted,
            quote_free=run.balance(self.spec.instrument.quote_asset).free,
            base_free=run.balance(self.spec.instrument.base_asset).free,
        )
        if denial is not None:
            self.writer.record(denied(state, denial, now))
            return
        sent = submitted(state, self.venue.venue, now)
        state = evolve(state, sent)
        try:
            ack = await self.venue.submit_order(placed)
        except VenueRejectedError as e:  # the venue refused it (a simulated API failure)
            self.writer.record(sent, rejected(state, e.reason, str(e), now))
            return
        answer = accepted(state, ack.venue_order_id, ack.accepted_at or now)
        self.writer.record(sent, answer)
        self.orders[client_order_id] = evolve(state, answer)

    def _record_report(self, report: FillReport | OrderEnded) -> None:
        state = self.orders.get(report.client_order_id)
        if state is None:
            msg = f"the venue reported on unknown order {report.client_order_id}"
            raise InvariantViolationError(msg)
        if isinstance(report, OrderEnded):
            event: LedgerEvent = ended(state, report.reason, report.occurred_at)
            self.writer.record(event)
            self.orders[report.client_order_id] = evolve(state, event)
            return
        for event in fill_events(state, report):
            self.writer.record(event)
            state = evolve(state, event)
        self.orders[report.client_order_id] = state

    def _checkpoint(self) -> None:
        run = self.portfolio.runs[self.run_id]
        self.writer.record(run_checkpointed(run, version=self._next_run_version(), at=self.clock.now()))

    def _end(self, last: int) -> None:
        candles = self.candles
        self.clock.set(candles.close_at(last))
        price = candles.price(candles.close[last])
        run = self.portfolio.runs[self.run_id]
        self._checkpoint()
        self.writer.record(
            RunEnded(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._next_run_version(),
                occurred_at=self.clock.now(),
                run_id=self.run_id,
                reason="data exhausted",
                equity_final=run.equity_now({self.spec.instrument.symbol: price}),
                price_mark=price,
            )
        )
        self.writer.flush(force=True)


def _mark_bars(candles: Candles, interval_ms: int = MARK_INTERVAL_MS) -> npt.NDArray[np.int64]:
    # The bar whose close ends each interval (every bar for data as coarse as the interval);
    # the last bar is marked by RunEnded.
    close_ms = candles.open_time_ms + candles.interval_ms
    period = close_ms // interval_ms
    bars = np.flatnonzero(period[1:] != period[:-1]) + 1
    return bars[bars < len(candles) - 1].astype(np.int64)

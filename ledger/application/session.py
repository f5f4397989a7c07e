"""Paper and live sessions: closed bars in from a venue, decisions, orders and fills out as events.

One loop for both modes; the venue object (paper or live) is chosen at start-up. Unlike a
backtest, every step is appended before the next leaves the process: the decision, the order
and its ``OrderSubmitted`` (with the client order id) commit *before* the order is sent, and the
venue's answer is appended when it arrives. A crash in between leaves an order the ledger saw
submitted but never saw answered; the next start-up looks it up at the venue by client order id
(``recover_orders``), so it is never sent twice.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from uuid import UUID

import anyio
import numpy as np

from ledger.application.candles import Bar, RollingCandles
from ledger.application.decisions import DecisionSource
from ledger.application.market_watch import gap, halt_reason, maintenance_step
from ledger.application.order_path import (
    consult,
    decision_made,
    market_context,
    order_placed,
    run_checkpointed,
    unacted,
)
from ledger.application.session_ports import (
    KillSwitch,
    Limit,
    MarketFeed,
    NoKillSwitch,
    OrderBook,
    Reconciliation,
    SessionSpec,
    SessionVenue,
    SessionWiring,
    TapeWriter,
    VenueOrderAbsentError,
    VenueOrderUnknownError,
    VenueRejectedError,
    canonical,
)
from ledger.domain.decisions import Decision, MarketContext
from ledger.domain.errors import InvariantViolationError
from ledger.domain.events import (
    DecisionAction,
    ExchangeHealthChecked,
    ExchangeOutageDetected,
    KillSwitchActed,
    LedgerEvent,
    MaintenanceApproached,
    MarketTapeRecorded,
    OrderPlaced,
    OrderType,
    PriceMarked,
    RunEnded,
    RunStarted,
    Side,
    SlippageEstimated,
    SymbolHalted,
    SymbolResumed,
    TradingMode,
    TradingModeSwitched,
    VenueReconciled,
)
from ledger.domain.identifiers import run_stream_id
from ledger.domain.market_rules import OrderRefusal, PreparedOrder, prepare_order
from ledger.domain.numbers import LEDGER_CONTEXT, ZERO, D, plain
from ledger.domain.order import (
    TERMINAL,
    FillReport,
    OrderEnded,
    OrderState,
    OrderStatus,
    VenueAck,
    evolve,
    fill_events,
)
from ledger.domain.order_answers import accepted, cancel_requested, denied, ended, rejected, submitted
from ledger.domain.partial_fills import PolicyStep, remaining, verdict
from ledger.domain.slippage import DEPTH_LEVELS_DEFAULT as DEPTH_LEVELS
from ledger.domain.slippage import VOLATILITY_CLOSES, estimate_fill, volatility_adjusted
from ledger.domain.trading_session import Denial, KillSwitchState, gate
from projections.portfolio import PortfolioProjection, RunView

# Why 500: the most bars one ccxt fetch_ohlcv returns from Binance by default, and enough
# history for any window the built-in strategies take.
__all__ = [
    "KillSwitch",
    "MarketFeed",
    "NoKillSwitch",
    "OrderBook",
    "Reconciliation",
    "SessionSpec",
    "SessionVenue",
    "SessionWiring",
    "TapeWriter",
    "TradingSession",
    "VenueOrderAbsentError",
    "VenueOrderUnknownError",
    "VenueRejectedError",
]

WINDOW_BARS = 500
# Why 25 x 0.2 s: a market order fills in milliseconds; five seconds covers a slow venue, and a
# fill arriving later is still recorded by the next start-up's recovery.
LIQUIDATION_POLLS = 25
LIQUIDATION_POLL_S = 0.2
VOLATILITY_MIN_CLOSES = 3  # two log returns: the least a standard deviation needs


class TradingSession:
    """One paper or live run, appended event by event."""

    def __init__(
        self, *, spec: SessionSpec, strategy: DecisionSource, wiring: SessionWiring, run_id: UUID
    ) -> None:
        """Bind the session to its inputs and ports."""
        self.spec = spec
        self.strategy = strategy
        self.ports = wiring
        self.run_id = run_id
        self.portfolio = PortfolioProjection()
        self.orders: dict[str, OrderState] = {}
        self.unknown: set[str] = set()  # submitted, answer lost: looked up again each step
        self.bars: list[Bar] = []
        self.run_version = 0
        self.decided = 0
        self.staged: list[LedgerEvent] = []
        self.halted = spec.halted
        self.health_at: datetime | None = None
        self.health_failures = 0
        self.symbol_halt: tuple[str, Decimal | None, datetime] | None = None  # reason, price, checked
        self.maintenance_done: set[tuple[datetime, str]] = set()
        self.volumes: deque[Decimal] = deque(maxlen=spec.watch.volume_window + 1)
        self.limits: dict[str, Limit] = {}  # working limit orders under the partial-fill policy
        self.finishing: set[str] = set()  # canceled by the policy; the rest goes at market
        self.window = RollingCandles(
            capacity=WINDOW_BARS, interval_ms=spec.interval_ms, source=spec.data_source
        )

    async def settle(self) -> None:
        """Record whatever the venue reports now (used after start-up recovery)."""
        await self._record_reports(await self.ports.venue.poll_fills())
        self._commit()

    @property
    def window_volumes(self) -> list[Decimal]:
        """Return the volumes of the bars in the window (oldest first)."""
        return list(self.volumes)

    def adopt(self, state: OrderState) -> None:
        """Track an earlier run's working order (recovered at start-up) for its fills."""
        self.orders[state.client_order_id] = state

    def _append(self, *events: LedgerEvent) -> None:
        # Stage: the projection sees the events now, the store at the next commit. Commits
        # happen before an order leaves the process and at the end of every step, so what
        # the venue may know about is always on record first, in as few fsyncs as that allows.
        self.staged.extend(events)
        for event in events:
            self.portfolio.apply(event)

    def _commit(self) -> None:
        if self.staged:
            self.ports.store.append(self.staged)
            self.staged = []

    def _run_event_version(self) -> int:
        self.run_version += 1
        return self.run_version

    async def run(
        self,
        *,
        stop: Callable[[], bool],
        poll_s: float,
        reconciled: Reconciliation | None = None,
        signalled: Callable[[], str | None] | None = None,
    ) -> RunView:
        """Trade until ``stop()`` is true, then end the run; return its view.

        ``reconciled`` (live sessions) is recorded right after ``RunStarted``.
        """
        self._start()
        if reconciled is not None:
            self._append(
                VenueReconciled(
                    originator_id=run_stream_id(self.run_id),
                    originator_version=self._run_event_version(),
                    occurred_at=self.ports.clock.now(),
                    run_id=self.run_id,
                    venue=self.ports.venue.venue,
                    balances_venue=canonical({k: plain(v) for k, v in reconciled.venue.items()}),
                    balances_ledger=canonical({k: plain(v) for k, v in reconciled.ledger.items()}),
                    differences=canonical({k: plain(v) for k, v in reconciled.differences().items()}),
                    orders_unknown=canonical(sorted(reconciled.orders_unknown)),
                )
            )
        self._commit()
        seen_at = self.ports.clock.now()
        for bar in (await self.ports.feed.closed_bars(None))[-WINDOW_BARS:]:  # history: no decisions
            self.window.append(bar)
            self.volumes.append(bar.volume)
            self.ports.tape.write(bar, seen_at, history=True)
            self.bars = [bar]
        seen = self.ports.kill_switch.state()
        self.halted = self.halted or seen.engaged
        halt: KillSwitchState | None = None
        while not stop() and halt is None:
            trigger = signalled() if signalled is not None else None
            if trigger is not None:
                self.ports.kill_switch.engage(reason=f"{trigger} received", actor="signal", liquidate=False)
            try:
                await self.step()
            except InvariantViolationError as e:
                # An automatic trigger: the ledger cannot trust its state; stop everything.
                halt = self.ports.kill_switch.engage(
                    reason=f"invariant violation: {e}", actor="invariant", liquidate=False
                )
                await self._halt(halt)
                self._end(f"kill switch engaged: {halt.reason}")
                raise
            halt = self._new_engagement(seen)
            if halt is None and self.spec.max_drawdown is not None:
                halt = self._drawdown_trigger()
            if halt is not None:
                break
            with anyio.move_on_after(poll_s):
                while not stop():
                    await anyio.sleep(min(poll_s, 0.05))
        if halt is not None:
            await self._halt(halt)
            return self._end(f"kill switch engaged: {halt.reason}")
        await self._record_reports(await self.ports.venue.poll_fills())
        return self._end("stopped")

    def _new_engagement(self, seen: KillSwitchState) -> KillSwitchState | None:
        now = self.ports.kill_switch.state()
        if now.engaged and (not seen.engaged or now.version != seen.version):
            return now
        return None

    def _drawdown_trigger(self) -> KillSwitchState | None:
        run = self.portfolio.runs[self.run_id]
        peak = max((p.equity for p in run.equity), default=run.started.cash_initial)
        equity = run.equity_now()
        if peak <= ZERO or self.spec.max_drawdown is None:
            return None
        with localcontext(LEDGER_CONTEXT):
            drawdown = (peak - equity) / peak
        if drawdown <= self.spec.max_drawdown:
            return None
        reason = f"drawdown {plain(drawdown.quantize(D('0.0001')))} beyond the limit {self.spec.max_drawdown}"
        return self.ports.kill_switch.engage(reason=reason, actor="drawdown", liquidate=False)

    async def _halt(self, state: KillSwitchState) -> None:
        """Carry out the kill switch: cancel every working order, flatten if asked, stop."""
        self.halted = True
        for client_order_id in await self._cancel_all(f"kill switch: {state.reason}"):
            self._acted("cancel", client_order_id, "cancel requested at the venue")
        await self._record_reports(await self.ports.venue.poll_fills())
        if state.liquidate:
            rationale = f"kill switch ({state.reason}): flatten at market"
            client_order_id, outcome = await self._flatten("kill_switch", rationale)
            self._acted("liquidate", client_order_id, outcome)
        self._acted("stop", "", f"the strategy stopped: {state.reason} ({state.actor})")
        self._commit()

    async def _flatten(self, source: str, rationale: str) -> tuple[str, str]:
        """Sell the free base balance at market (past any pause); return the order and its fate."""
        run = self.portfolio.runs[self.run_id]
        base = self.spec.instrument.base_asset
        free = run.balance(base).free
        if free <= ZERO or not self.bars:
            return "", f"nothing to flatten: {free} {base} free"
        before = self.decided + 1
        decision = Decision(
            instrument=self.spec.instrument.symbol, action=DecisionAction.SELL, qty=free, rationale=rationale
        )
        await self._act(decision, self.bars[-1].close, source=source, override_halt=True)
        client_order_id = self.ports.ids.client_order_id(self.run_id, before)
        for _ in range(LIQUIDATION_POLLS):  # bounded: record the flattening's fills before going on
            order = self.orders.get(client_order_id)
            if order is None or order.status in TERMINAL:
                break
            await anyio.sleep(LIQUIDATION_POLL_S)
            await self._record_reports(await self.ports.venue.poll_fills())
        order = self.orders.get(client_order_id)
        return (
            client_order_id,
            "denied by the exchange rules" if order is None else f"sell order {order.status.value}",
        )

    def _acted(self, action: str, client_order_id: str, outcome: str) -> None:
        self._append(
            KillSwitchActed(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=self.ports.clock.now(),
                run_id=self.run_id,
                action=action,
                client_order_id=client_order_id,
                outcome=outcome,
            )
        )

    async def step(self) -> None:
        """Take the new closed bars, decide on each, and record what the venue reported."""
        for client_order_id in sorted(self.unknown):
            await self._look_up(client_order_id)
        await self._check_maintenance()  # a window ahead is handled before the new bars are decided
        since = self.bars[-1].open_ms + 1 if self.bars else None
        for bar in await self.ports.feed.closed_bars(since):
            if self.bars and bar.open_ms <= self.bars[-1].open_ms:
                continue
            await self._on_bar(bar)
        await self._record_reports(await self.ports.venue.poll_fills())
        await self._police_limits()
        await self._check_health()
        await self._check_resumption()
        self._commit()

    async def _on_bar(self, bar: Bar) -> None:
        self.bars = [bar]  # the last bar seen (the window holds the history)
        self.window.append(bar)
        self.volumes.append(bar.volume)
        now = self.ports.clock.now()
        self.ports.tape.write(bar, now)
        self.ports.venue.on_bar(bar)
        await self._record_reports(await self.ports.venue.poll_fills())
        self._append(
            PriceMarked(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                instrument=self.spec.instrument.symbol,
                price=bar.close,
            )
        )
        await self._check_halt(bar)
        window = self.window.candles()
        last = len(window) - 1
        if bool(np.any(self.strategy.candidate_bars(window) == last)):
            await self._decide(last, bar.close)

    async def _decide(self, bar: int, price: Decimal) -> None:
        order, note = await consult(self.strategy, self._context(bar, price), self.spec.instrument)
        if note is not None:
            run = self.portfolio.runs[self.run_id]
            self._append(
                unacted(
                    note,
                    run,
                    version=self._run_event_version(),
                    at=self.ports.clock.now(),
                    source=self.strategy.name,
                )
            )
        if order is not None:
            await self._act(order, price)

    def _context(self, bar: int, price: Decimal) -> MarketContext:
        return market_context(self.portfolio.runs[self.run_id], self.spec.instrument, bar, price)

    def _base_qty(self, decision: Decision, price: Decimal) -> Decimal:
        # Live and paper orders carry a base quantity (the exchange rules round it down); a
        # sell never asks for more than the free base balance.
        run = self.portfolio.runs[self.run_id]
        with localcontext(LEDGER_CONTEXT):
            if decision.action is DecisionAction.SELL:
                wanted = decision.qty if decision.qty is not None else ZERO
                return min(wanted, run.balance(self.spec.instrument.base_asset).free)
            if decision.qty is not None:
                return decision.qty
            spend = decision.qty_quote if decision.qty_quote is not None else ZERO
            return spend / price

    async def _act(
        self, decision: Decision, price: Decimal, source: str | None = None, *, override_halt: bool = False
    ) -> None:
        now = self.ports.clock.now()
        self.decided += 1
        client_order_id = self.ports.ids.client_order_id(self.run_id, self.decided)
        decision_id = f"{client_order_id}-d"
        made = decision_made(
            decision,
            run_id=self.run_id,
            version=self._run_event_version(),
            at=now,
            decision_id=decision_id,
            source=source or self.strategy.name,
        )
        side = Side.BUY if decision.action is DecisionAction.BUY else Side.SELL
        order_type = OrderType.MARKET if decision.price_limit is None else OrderType.LIMIT
        wanted = self._base_qty(decision, price)
        prepared = prepare_order(
            self.spec.rules,
            side=side,
            order_type=order_type,
            qty=wanted,
            price=decision.price_limit,
            price_reference=price,
        )
        refusal = prepared if isinstance(prepared, OrderRefusal) else None
        estimated = None
        if isinstance(prepared, PreparedOrder):
            estimated = await self._estimate(client_order_id, side, prepared.qty, now)
            qty = prepared.qty
        else:  # a refused order records what was asked (an event quantity must be positive)
            qty = wanted if wanted > ZERO else self.spec.rules.qty_step
        placed = order_placed(  # live venues take a base quantity, rounded down to the step
            decision,
            run_id=self.run_id,
            client_order_id=client_order_id,
            decision_id=decision_id,
            at=now,
            price_expected=price,
            qty=qty,  # a refused order records what was asked, or the smallest step
            qty_quote=None,
            price_limit=prepared.price if isinstance(prepared, PreparedOrder) else decision.price_limit,
        )
        self._append(made)
        if estimated is not None:
            self._append(estimated)
        run = self.portfolio.runs[self.run_id]
        denial = gate(
            placed,
            self.spec.instrument,
            halted=self.halted and not override_halt,  # only the kill switch's own flattening passes
            quote_free=run.balance(self.spec.instrument.quote_asset).free,
            base_free=run.balance(self.spec.instrument.base_asset).free,
        )
        if refusal is not None:  # the exchange rules come first: the order never reaches the venue
            denial = Denial(reason=refusal.reason.value, detail=refusal.detail)
        elif denial is None and self.symbol_halt is not None and not override_halt:
            denial = Denial(
                reason="symbol_halted", detail=f"{self.spec.instrument.symbol}: {self.symbol_halt[0]}"
            )
        elif denial is None and side is Side.BUY and not override_halt and self._before_maintenance(now):
            denial = Denial(
                reason="maintenance", detail="no new positions before the venue's maintenance window"
            )
        elif (
            denial is None
            and estimated is not None
            and estimated.insufficient_depth
            and order_type is OrderType.MARKET
        ):
            denial = Denial(
                reason="insufficient_depth",
                detail=(
                    f"the top {DEPTH_LEVELS} levels of the book cannot fill "
                    f"{qty} {self.spec.instrument.base_asset}"
                ),
            )
        state = evolve(None, placed)
        if denial is not None:
            self._append(placed, denied(state, denial, now))
            return
        sent = submitted(state, self.ports.venue.venue, now)
        self._append(placed, sent)
        self._commit()  # the decision and the client order id are on record before the order leaves
        if placed.price_limit is not None and placed.qty is not None:
            self.limits[client_order_id] = Limit(
                price_limit=placed.price_limit, qty=placed.qty, since=now, checked=now
            )
        self.orders[client_order_id] = evolve(state, sent)
        await self._send(placed)

    async def _estimate(
        self, client_order_id: str, side: Side, qty: Decimal, now: datetime
    ) -> SlippageEstimated | None:
        # Pre-trade estimate (C5): walk the visible book; scale by the last 60 closes' volatility.
        book = await self.ports.feed.order_book(DEPTH_LEVELS)
        levels = (book.asks if side is Side.BUY else book.bids) if book is not None else []
        if not levels:
            return None  # no book to walk: the order goes out unestimated, as the event log shows
        estimate = estimate_fill(levels, side=side, qty=qty, depth_levels=DEPTH_LEVELS)
        window = self.window.candles()
        closes = [window.price(c) for c in window.close[-VOLATILITY_CLOSES:]]
        adjusted = (
            volatility_adjusted(estimate, closes).slippage_bps_adjusted
            if len(closes) >= VOLATILITY_MIN_CLOSES
            else estimate.slippage_bps
        )
        return SlippageEstimated(
            originator_id=run_stream_id(self.run_id),
            originator_version=self._run_event_version(),
            occurred_at=now,
            run_id=self.run_id,
            client_order_id=client_order_id,
            instrument=self.spec.instrument.symbol,
            side=side,
            price_best=estimate.price_best,
            price_avg=estimate.price_avg,
            slippage_bps=estimate.slippage_bps,
            slippage_bps_adjusted=adjusted,
            impact=estimate.impact.value,
            insufficient_depth=estimate.insufficient_depth,
            levels_used=estimate.levels_used,
        )

    async def _check_health(self) -> None:
        # C11: a timed ping; three failures in a row are an outage, which engages the kill switch
        # (it cancels what it can, stops new orders and is alerted on).
        now = self.ports.clock.now()
        policy = self.spec.watch
        if self.health_at is not None and (now - self.health_at).total_seconds() < policy.health_every_s:
            return
        self.health_at = now
        error = await self.ports.feed.ping()
        latency = Decimal((self.ports.clock.now() - now) // timedelta(microseconds=1)) / 1000
        self.health_failures = 0 if error is None else self.health_failures + 1
        if error is not None:
            detail = error
        elif latency > policy.slow_ms:
            detail = f"slow: {latency} ms, over {policy.slow_ms} ms"
        else:
            detail = "ok"
        self._append(
            ExchangeHealthChecked(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                venue=self.ports.venue.venue,
                ok=error is None,
                latency_ms=None if error is not None else latency,
                failures=self.health_failures,
                detail=detail,
            )
        )
        if self.health_failures == policy.failures_for_outage:
            self._append(
                ExchangeOutageDetected(
                    originator_id=run_stream_id(self.run_id),
                    originator_version=self._run_event_version(),
                    occurred_at=now,
                    run_id=self.run_id,
                    venue=self.ports.venue.venue,
                    failures=self.health_failures,
                    detail=detail,
                )
            )
            self._commit()
            reason = f"exchange outage: {self.health_failures} failed health checks ({detail})"
            self.ports.kill_switch.engage(reason=reason, actor="outage", liquidate=False)

    async def _check_halt(self, bar: Bar) -> None:
        if self.symbol_halt is not None:
            return
        book = await self.ports.feed.order_book(5)
        if book is None:
            return  # no answer is the health check's business, not a halt
        volumes = self.window_volumes
        reason = halt_reason(self.spec.watch, volumes=volumes, bids=book.bids, asks=book.asks)
        if reason is None:
            return
        now = self.ports.clock.now()
        self.symbol_halt = (reason, bar.close, now)
        self._append(
            SymbolHalted(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                instrument=self.spec.instrument.symbol,
                reason=reason,
                price_last=bar.close,
            )
        )
        await self._cancel_all(f"symbol halted: {reason}")

    async def _check_resumption(self) -> None:
        if self.symbol_halt is None:
            return
        reason, price_before, checked = self.symbol_halt
        now = self.ports.clock.now()
        if (now - checked).total_seconds() < self.spec.watch.resume_every_s:
            return
        self.symbol_halt = (reason, price_before, now)
        book = await self.ports.feed.order_book(5)
        if book is None or halt_reason(
            self.spec.watch, volumes=self.window_volumes, bids=book.bids, asks=book.asks
        ):
            return
        with localcontext(LEDGER_CONTEXT):
            price_after = (book.bids[0][0] + book.asks[0][0]) / 2
        moved = gap(price_before, price_after)
        self.symbol_halt = None
        self._append(
            SymbolResumed(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                instrument=self.spec.instrument.symbol,
                price_before=price_before,
                price_after=price_after,
                gap=moved,
                review=moved is not None and moved > self.spec.watch.gap_review,
            )
        )

    def _before_maintenance(self, now: datetime) -> bool:
        """True while a maintenance window is close enough that no new position may open."""
        return maintenance_step(self.spec.watch, now, self.spec.maintenance) is not None

    async def _check_maintenance(self) -> None:
        now = self.ports.clock.now()
        found = maintenance_step(self.spec.watch, now, self.spec.maintenance)
        if found is None:
            return
        window, action = found
        if (window.start, action) in self.maintenance_done:
            return
        self.maintenance_done.add((window.start, action))
        self._append(
            MaintenanceApproached(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                venue=self.ports.venue.venue,
                window_start=window.start,
                window_end=window.end,
                action=action,
            )
        )
        if action == "flatten":
            await self._cancel_all("maintenance ahead")
            await self._flatten(
                "maintenance", f"flat before maintenance at {window.start:%Y-%m-%d %H:%M} UTC"
            )

    async def _cancel_all(self, reason: str) -> list[str]:
        canceled = []
        for client_order_id, order in list(self.orders.items()):
            if order.status not in (
                OrderStatus.ACCEPTED,
                OrderStatus.PARTIALLY_FILLED,
                OrderStatus.SUBMITTED,
            ):
                continue
            event = cancel_requested(order, reason, self.ports.clock.now())
            self._append(event)
            self._commit()
            self.orders[client_order_id] = evolve(order, event)
            self.finishing.discard(client_order_id)
            await self.ports.venue.cancel(client_order_id)
            canceled.append(client_order_id)
        return canceled

    async def _police_limits(self) -> None:
        # The partial-fill policy (C4) on every working limit order, every few seconds.
        now = self.ports.clock.now()
        policy = self.spec.partial_fills
        for client_order_id, limit in list(self.limits.items()):
            state = self.orders[client_order_id]
            if state.status in TERMINAL:
                del self.limits[client_order_id]
                continue
            if (now - limit.checked).total_seconds() < policy.check_every_s or not self.bars:
                continue
            self.limits[client_order_id] = replace(limit, checked=now)
            if state.status is OrderStatus.CANCEL_REQUESTED:
                await self.ports.venue.cancel(client_order_id)  # not ended yet: ask again
                continue
            found = verdict(
                policy,
                qty=limit.qty,
                qty_filled=state.qty_filled,
                price_limit=limit.price_limit,
                price_market=self.bars[-1].close,
                age_s=(now - limit.since).total_seconds(),
            )
            if found.step is PolicyStep.WAIT:
                continue
            event = cancel_requested(state, found.reason, now)
            self._append(event)
            self._commit()  # on record before the venue is asked
            self.orders[client_order_id] = evolve(state, event)
            if found.step is PolicyStep.FINISH_AT_MARKET:
                self.finishing.add(client_order_id)
            await self.ports.venue.cancel(client_order_id)

    async def _finish(self, client_order_id: str) -> None:
        # After the policy's cancel is confirmed: the unfilled rest goes out as a market order.
        if client_order_id not in self.finishing:
            return
        self.finishing.discard(client_order_id)
        limit = self.limits.pop(client_order_id)
        state = self.orders[client_order_id]
        rest = remaining(limit.qty, state.qty_filled)
        if rest <= ZERO or not self.bars:
            return
        decision = Decision(
            instrument=state.instrument,
            action=DecisionAction.BUY if state.side is Side.BUY else DecisionAction.SELL,
            qty=rest,
            rationale=f"order {client_order_id} was canceled {state.qty_filled} of {limit.qty} filled; "
            "the partial-fill policy sends the rest at market",
        )
        await self._act(decision, self.bars[-1].close, source="partial_fill_policy")

    async def _send(self, placed: OrderPlaced) -> None:
        try:
            ack = await self.ports.venue.submit_order(placed)
        except VenueRejectedError as e:
            self._answer_rejected(placed.client_order_id, e.reason, str(e))
            return
        except VenueOrderAbsentError as e:
            self._answer_rejected(placed.client_order_id, "not_at_venue", str(e))
            return
        except VenueOrderUnknownError:
            self.unknown.add(placed.client_order_id)
            return
        self._answer_accepted(ack)

    async def _look_up(self, client_order_id: str) -> None:
        try:
            ack = await self.ports.venue.recover(client_order_id)
        except VenueOrderAbsentError as e:
            self.unknown.discard(client_order_id)
            self._answer_rejected(client_order_id, "not_at_venue", str(e))
            return
        except VenueOrderUnknownError:
            return  # still unknown: asked again next step, and at the next start-up
        self.unknown.discard(client_order_id)
        self._answer_accepted(ack)

    def _answer_accepted(self, ack: VenueAck) -> None:
        state = self.orders[ack.client_order_id]
        event = accepted(state, ack.venue_order_id, self.ports.clock.now())
        self._append(event)
        self.orders[ack.client_order_id] = evolve(state, event)

    def _answer_rejected(self, client_order_id: str, reason: str, detail: str) -> None:
        state = self.orders[client_order_id]
        event = rejected(state, reason, detail, self.ports.clock.now())
        self._append(event)
        self.orders[client_order_id] = evolve(state, event)

    async def _record_reports(self, reports: Sequence[FillReport | OrderEnded]) -> None:
        for report in reports:
            state = self.orders.get(report.client_order_id)
            if state is None:
                continue  # an order this ledger did not place (reported by reconciliation)
            if state.status is OrderStatus.SUBMITTED:
                await self._look_up(report.client_order_id)  # its ack was lost; fills prove it exists
                state = self.orders[report.client_order_id]
            if isinstance(report, OrderEnded):
                event: LedgerEvent = ended(state, report.reason, report.occurred_at)
                self._append(event)
                self.orders[report.client_order_id] = evolve(state, event)
                await self._finish(report.client_order_id)
                continue
            events = fill_events(state, report)
            if events:
                self._append(*events)
                for event in events:
                    state = evolve(state, event)
                self.orders[report.client_order_id] = state

    def _start(self) -> None:
        spec = self.spec
        self._append(
            RunStarted(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=self.ports.clock.now(),
                run_id=self.run_id,
                mode=spec.mode,
                seed=spec.seed,
                venue=self.ports.venue.venue,
                instrument=spec.instrument.symbol,
                base_asset=spec.instrument.base_asset,
                quote_asset=spec.instrument.quote_asset,
                cash_initial=spec.cash_initial,
                fee_rate=spec.fee_rate,
                strategy=self.strategy.name,
                params=json.dumps(self.strategy.params(), sort_keys=True),
                data_source=spec.data_source,
                data_digest="",
                config_hash=spec.config_hash,
                code_version=spec.code_version,
                fill_model="next-open" if spec.mode is TradingMode.PAPER else "venue",
            )
        )
        if spec.promotion is not None:
            self._append(
                TradingModeSwitched(
                    originator_id=run_stream_id(self.run_id),
                    originator_version=self._run_event_version(),
                    occurred_at=self.ports.clock.now(),
                    run_id=self.run_id,
                    mode_from=spec.promotion_from,
                    mode_to=spec.mode,
                    reason=spec.promotion,
                )
            )

    def _end(self, reason: str) -> RunView:
        run = self.portfolio.runs[self.run_id]
        now = self.ports.clock.now()
        tape, digest, count = self.ports.tape.close()
        price = self.bars[-1].close if self.bars else None
        self._append(
            MarketTapeRecorded(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                tape=tape,
                digest=digest,
                bars=count,
            )
        )
        self._append(run_checkpointed(run, version=self._run_event_version(), at=now))
        self._append(
            RunEnded(
                originator_id=run_stream_id(self.run_id),
                originator_version=self._run_event_version(),
                occurred_at=now,
                run_id=self.run_id,
                reason=reason,
                equity_final=run.equity_now(),
                price_mark=price,
            )
        )
        self._commit()
        return run

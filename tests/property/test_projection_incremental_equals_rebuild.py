"""Incremental (tracked, resumable) projection == rebuild from zero, on random valid histories.

Hypothesis builds valid ledgers (several interleaved runs; orders placed, submitted,
accepted, partly and fully filled, canceled, rejected, expired, denied; price marks,
decisions, mode switches, the ledger-wide kill switch, run ends), appends them to a real
SQLite store in random chunks, and keeps a ``ProjectionRunner`` current between chunks with
random pauses, saves and simulated crashes (``catch_up(stop_after_pages=n)`` with no save,
then a new runner that loads the last checkpoint). At the end its snapshot, and the saved
checkpoint, must equal ``rebuild()`` byte for byte.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID, uuid5

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.adapters.store import LedgerStore, open_store
from ledger.domain.events import (
    DecisionAction,
    DecisionMade,
    KillSwitchEngaged,
    KillSwitchReleased,
    LedgerEvent,
    OrderAccepted,
    OrderCanceled,
    OrderCancelRequested,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPlaced,
    OrderRejected,
    OrderSubmitted,
    OrderType,
    PriceMarked,
    RunEnded,
    RunStarted,
    Side,
    TradingMode,
    TradingModeSwitched,
)
from ledger.domain.identifiers import CONTROL_RUN_ID, order_stream_id, run_stream_id
from ledger.domain.numbers import D
from projections import runner as runner_module
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner, rebuild

NS = UUID("00000000-0000-5000-8000-0000000000dd")
T0 = datetime(2025, 5, 20, tzinfo=UTC)
SYMBOLS = {"BTC/USDT": ("BTC", "USDT"), "ETH/USDT": ("ETH", "USDT")}

prices = st.decimals(min_value="1", max_value="150000", places=2)
quantities = st.decimals(min_value="0.00001", max_value="3", places=5)


@dataclass
class _Order:
    cid: str
    side: Side
    qty: Decimal | None
    status: str = "placed"
    version: int = 1
    left: Decimal | None = None


@dataclass
class _Run:
    run_id: UUID
    instrument: str
    version: int = 1
    orders: dict[str, _Order] = field(default_factory=dict)
    ended: bool = False


@dataclass
class _History:
    events: list[LedgerEvent] = field(default_factory=list)
    runs: list[_Run] = field(default_factory=list)
    minute: int = 0
    control_version: int = 0
    engaged: bool = False
    orders: int = 0

    def at(self) -> datetime:
        self.minute += 1
        return T0 + timedelta(minutes=self.minute)

    def run_head(self, run: _Run) -> dict[str, Any]:
        run.version += 1
        return {
            "originator_id": run_stream_id(run.run_id),
            "originator_version": run.version,
            "occurred_at": self.at(),
            "run_id": run.run_id,
        }

    def order_head(self, run: _Run, order: _Order) -> dict[str, Any]:
        order.version += 1
        return {
            "originator_id": order_stream_id(order.cid),
            "originator_version": order.version,
            "occurred_at": self.at(),
            "run_id": run.run_id,
            "client_order_id": order.cid,
        }


def _start(h: _History, draw: st.DrawFn) -> None:
    run_id = uuid5(NS, f"run-{len(h.runs)}")
    instrument = draw(st.sampled_from(sorted(SYMBOLS)))
    base, quote = SYMBOLS[instrument]
    run = _Run(run_id=run_id, instrument=instrument)
    h.runs.append(run)
    h.events.append(
        RunStarted(
            originator_id=run_stream_id(run_id),
            originator_version=1,
            occurred_at=h.at(),
            run_id=run_id,
            mode=TradingMode.BACKTEST,
            seed=0,
            venue="test",
            instrument=instrument,
            base_asset=base,
            quote_asset=quote,
            cash_initial=draw(st.decimals(min_value="100", max_value="100000", places=2)),
            fee_rate=D("0.001"),
            strategy="random",
            params="{}",
            data_source="hypothesis",
            data_digest="0" * 64,
            config_hash="0" * 64,
            code_version="test",
            fill_model="next-open",
        )
    )


def _place(h: _History, run: _Run, draw: st.DrawFn) -> None:
    h.orders += 1
    cid = f"tl-prop-{h.orders:07d}"
    side = draw(st.sampled_from(Side))
    kind = draw(st.sampled_from(["quote", "market", "limit"]))
    qty = None if kind == "quote" and side is Side.BUY else draw(quantities)
    order = _Order(cid=cid, side=side, qty=qty, version=0, left=qty)
    run.orders[cid] = order
    h.events.append(
        OrderPlaced(
            **h.order_head(run, order),
            decision_id=None,
            instrument=run.instrument,
            side=side,
            order_type=OrderType.LIMIT if kind == "limit" else OrderType.MARKET,
            qty=qty,
            qty_quote=draw(prices) if qty is None else None,
            price_limit=draw(prices) if kind == "limit" else None,
            price_expected=draw(st.none() | prices),
        )
    )


def _progress(h: _History, run: _Run, order: _Order, draw: st.DrawFn) -> None:
    head = h.order_head(run, order)
    if order.status == "placed":
        choice = draw(st.sampled_from(["submit", "submit", "submit", "submit", "deny", "cancel"]))
        if choice == "submit":
            h.events.append(OrderSubmitted(**head, venue="test"))
            order.status = "submitted"
        elif choice == "deny":
            h.events.append(OrderDenied(**head, reason="qty_min", detail="hypothesis"))
            order.status = "done"
        else:
            h.events.append(OrderCanceled(**head, reason="hypothesis"))
            order.status = "done"
        return
    if order.status == "submitted":
        if draw(st.sampled_from([True, True, True, False])):
            h.events.append(OrderAccepted(**head, venue_order_id=f"v-{order.cid}"))
            order.status = "working"
        else:
            h.events.append(OrderRejected(**head, reason="insufficient_funds", detail="hypothesis"))
            order.status = "done"
        return
    choice = draw(st.sampled_from(["fill", "fill", "fill", "fill", "fill", "cancel", "expire"]))
    if choice == "fill":
        _fill(h, run, order, head, draw)
    elif choice == "cancel":
        h.events.append(OrderCancelRequested(**head, reason="hypothesis"))
        order.status = "cancel_requested"
    else:
        h.events.append(OrderExpired(**head, reason="hypothesis"))
        order.status = "done"


def _fill(h: _History, run: _Run, order: _Order, head: dict[str, Any], draw: st.DrawFn) -> None:
    price = draw(prices)
    if order.left is None:  # a quote-sized buy fills once
        qty = draw(quantities)
        order.status = "done"
    else:
        whole = draw(st.booleans())
        qty = order.left if whole else min(order.left, draw(quantities))
        order.left -= qty
        if order.left == 0:
            order.status = "done"
    base, quote = SYMBOLS[run.instrument]
    fee_asset = draw(st.sampled_from([quote, quote, base]))
    h.events.append(
        OrderFilled(
            **head,
            venue="test",
            instrument=run.instrument,
            venue_trade_id=f"t-{order.cid}-{order.version}",
            side=order.side,
            qty=qty,
            price=price,
            fee=draw(st.decimals(min_value="0", max_value="5", places=8)),
            fee_asset=fee_asset,
            price_expected=draw(st.none() | prices),
        )
    )


def _cancel_confirm(h: _History, run: _Run, order: _Order) -> None:
    h.events.append(OrderCanceled(**h.order_head(run, order), reason="hypothesis"))
    order.status = "done"


def _run_event(h: _History, run: _Run, draw: st.DrawFn) -> None:
    choice = draw(st.sampled_from(["mark", "mark", "mark", "decision", "decision", "mode", "end"]))
    if choice == "mark":
        h.events.append(PriceMarked(**h.run_head(run), instrument=run.instrument, price=draw(prices)))
    elif choice == "decision":
        h.events.append(
            DecisionMade(
                **h.run_head(run),
                decision_id=f"d-{run.version}",
                source="random",
                instrument=run.instrument,
                action=draw(st.sampled_from(DecisionAction)),
                qty=None,
                qty_quote=None,
                price_limit=None,
                confidence=None,
                rationale="hypothesis",
                input_digest="",
                output="{}",
            )
        )
    elif choice == "mode":
        h.events.append(
            TradingModeSwitched(
                **h.run_head(run),
                mode_from=TradingMode.BACKTEST,
                mode_to=draw(st.sampled_from(TradingMode)),
                reason="hypothesis",
            )
        )
    else:
        h.events.append(
            RunEnded(
                **h.run_head(run),
                reason="hypothesis",
                equity_final=draw(prices),
                price_mark=draw(st.none() | prices),
            )
        )
        run.ended = True


def _kill_switch(h: _History) -> None:
    h.control_version += 1
    head: dict[str, Any] = {
        "originator_id": run_stream_id(CONTROL_RUN_ID),
        "originator_version": h.control_version,
        "occurred_at": h.at(),
        "run_id": CONTROL_RUN_ID,
        "reason": "hypothesis",
        "actor": "test",
    }
    h.events.append(KillSwitchReleased(**head) if h.engaged else KillSwitchEngaged(**head, liquidate=False))
    h.engaged = not h.engaged


# Weighted by repetition: mostly order lifecycles, some run events, few new runs.
ACTIONS = ("start", "place", "place", "place", *("order",) * 8, "run", "run", "kill")


@st.composite
def histories(draw: st.DrawFn, max_steps: int = 80) -> list[LedgerEvent]:
    """Return a valid event history: every stream's versions and every order's life are legal."""
    h = _History()
    _start(h, draw)
    for _ in range(draw(st.integers(min_value=0, max_value=max_steps))):
        live = [r for r in h.runs if not r.ended]
        action = draw(st.sampled_from(ACTIONS))
        if action == "start" or not live:
            if len(h.runs) < 4:  # a few runs interleave; more adds nothing
                _start(h, draw)
            continue
        run = draw(st.sampled_from(live))
        active = [o for o in run.orders.values() if o.status != "done"]
        if action == "place" or (action == "order" and not active):
            _place(h, run, draw)
        elif action == "order":
            order = draw(st.sampled_from(active))
            if order.status == "cancel_requested":
                _cancel_confirm(h, run, order)
            else:
                _progress(h, run, order, draw)
        elif action == "run":
            _run_event(h, run, draw)
        elif action == "kill":
            _kill_switch(h)
    return h.events


@st.composite
def chunked(draw: st.DrawFn) -> list[list[LedgerEvent]]:
    """Return a history cut into random append chunks (each one atomic in the store)."""
    events = draw(histories())
    chunks: list[list[LedgerEvent]] = []
    start = 0
    while start < len(events):
        size = draw(st.integers(min_value=1, max_value=12))
        chunks.append(events[start : start + size])
        start += size
    return chunks


# What the tracked runner does after each appended chunk.
STEPS = ("catch_up", "partial_then_save", "crash", "nothing", "reload")


def _runner(store: LedgerStore) -> ProjectionRunner:
    runner = ProjectionRunner(store, store, PortfolioProjection())
    runner.load()
    return runner


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=chunked(),
    steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=40),
    page_size=st.integers(min_value=1, max_value=7),
    save_every=st.integers(min_value=1, max_value=3),
)
def test_incremental_catch_up_with_crashes_equals_rebuild(
    chunks: list[list[LedgerEvent]], steps: list[str], page_size: int, save_every: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner_module, "PAGE_SIZE", page_size)
        mp.setattr(runner_module, "SAVE_EVERY_PAGES", save_every)
        store = open_store(str(Path(tmp) / "ledger.db"), create=True)
        try:
            runner = _runner(store)
            for number, chunk in enumerate(chunks):
                store.append(chunk)
                step = steps[number % len(steps)]
                if step == "catch_up":
                    runner.catch_up()
                elif step == "partial_then_save":
                    runner.catch_up(stop_after_pages=1)
                    runner.save()
                elif step == "crash":
                    runner.catch_up(stop_after_pages=1)  # work applied but never saved
                    runner = _runner(store)  # the process restarts from the checkpoint
                elif step == "reload":
                    runner = _runner(store)
            runner = _runner(store)
            runner.catch_up()
            tracked = runner.projection.snapshot()
            rebuilt = rebuild(store, PortfolioProjection()).snapshot()
            saved = store.load_checkpoint(PortfolioProjection.name)

            assert tracked == rebuilt
            assert saved is not None
            assert saved[1] == store.max_seq()
            assert saved[2] == rebuilt
        finally:
            store.close()


@settings(max_examples=40, deadline=None)
@given(events=histories())
def test_apply_then_snapshot_restore_at_any_point_equals_straight_fold(events: list[LedgerEvent]) -> None:
    """Snapshot/restore in the middle of a fold is invisible: both paths give the same bytes."""
    straight = PortfolioProjection()
    for event in events:
        straight.apply(event)
    for cut in {0, len(events) // 3, len(events) // 2, len(events)}:
        first = PortfolioProjection()
        for event in events[:cut]:
            first.apply(event)
        second = PortfolioProjection()
        second.restore(first.snapshot())
        for event in events[cut:]:
            second.apply(event)
        assert second.snapshot() == straight.snapshot()

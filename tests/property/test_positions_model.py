"""Model test of the average-cost position against an independent reference (STYLE §10.3).

The reference keeps only sums: the signed open quantity and the quote cash flow. The
projection must match the open quantity exactly (no division involved) and reconcile its
realized PnL with the cash flow within a rounding budget derived from where it divides.

Derivation of the budget. Let I = pnl_realized - price_avg * qty_open - cash, where cash is
the signed quote flow (-qty x price for a buy, +qty x price for a sell, -fee for every fee).
* A reducing fill realizes (price - avg) x closed x dir - fee, moves qty_open by -closed x dir and
  cash by +price x closed x dir - fee: I changes by exactly 0. Closing to flat sets avg = 0 with
  qty_open = 0: no change either.
* An increasing fill sets avg' = round(cost / |q'|) where cost / |q'| is exact before rounding
  and already includes the fee: I changes only by the rounding, (exact - avg') x q', at most
  half a unit of 1e-18 (half-even) times |q'|.
* A fill crossing zero closes (no change, its fee share is quantized but the reopen takes the
  exact remainder, so the shares sum to the fee) and reopens (one rounding, as above).
So |I| <= sum over increasing fills of |qty_after| x 1e-18 / 2. Bounding by quantity *traded*
would be wrong: a re-average rounds against the whole open quantity.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from uuid import UUID, uuid5

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.domain.events import OrderFilled, Side
from ledger.domain.numbers import LEDGER_CONTEXT, PRICE_AVG_EXPONENT, ZERO
from projections.positions import Position, apply_fill

RUN = UUID("00000000-0000-5000-8000-0000000000cc")
T0 = datetime(2025, 5, 20, tzinfo=UTC)

quantities = st.decimals(min_value="0.00001", max_value="50", places=5)
prices = st.decimals(min_value="0.01", max_value="200000", places=2)
# Fees are any non-negative amount with up to 8 decimals: not necessarily rate x notional.
fees = st.decimals(min_value="0", max_value="500", places=8)


class PositionsMatchCashFlow(RuleBasedStateMachine):
    """Apply random fills (longs, shorts, crossings, flats) and compare with plain sums."""

    def __init__(self) -> None:
        super().__init__()
        self.position = Position(instrument="BTC/USDT")
        self.qty_signed_sum = ZERO
        self.cash = ZERO
        self.fees = ZERO
        self.closes = ZERO
        self.rounding_budget = ZERO
        self.trades = 0

    def _fill(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> OrderFilled:
        self.trades += 1
        return OrderFilled(
            originator_id=uuid5(RUN, f"o-{self.trades}"),
            originator_version=4,
            run_id=RUN,
            occurred_at=T0 + timedelta(seconds=self.trades),
            client_order_id=f"o-{self.trades}",
            venue="test",
            instrument="BTC/USDT",
            venue_trade_id=f"t-{self.trades}",
            side=side,
            qty=qty,
            price=price,
            fee=fee,
            fee_asset="USDT",
            price_expected=None,
        )

    def _apply(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        before = self.position.qty_open
        self.position, close = apply_fill(self.position, self._fill(side, qty, price, fee), fee_in_quote=True)
        sign = 1 if side is Side.BUY else -1
        with localcontext(LEDGER_CONTEXT):
            self.qty_signed_sum += sign * qty
            self.cash -= sign * qty * price + fee
            self.fees += fee
            if close is not None:
                self.closes += close.pnl
            increases = before == ZERO or (before > ZERO) == (sign > 0)
            crosses = not increases and abs(qty) > abs(before)
            if increases or crosses:
                self.rounding_budget += abs(self.qty_signed_sum) * PRICE_AVG_EXPONENT / 2

    @rule(side=st.sampled_from(Side), qty=quantities, price=prices, fee=fees)
    def fill(self, side: Side, qty: Decimal, price: Decimal, fee: Decimal) -> None:
        self._apply(side, qty, price, fee)

    @rule(price=prices, fee=fees)
    def close_exactly(self, price: Decimal, fee: Decimal) -> None:
        if self.position.qty_open == ZERO:
            return
        side = Side.SELL if self.position.qty_open > ZERO else Side.BUY
        self._apply(side, abs(self.position.qty_open), price, fee)

    @rule(extra=quantities, price=prices, fee=fees)
    def cross_zero(self, extra: Decimal, price: Decimal, fee: Decimal) -> None:
        if self.position.qty_open == ZERO:
            return
        side = Side.SELL if self.position.qty_open > ZERO else Side.BUY
        with localcontext(LEDGER_CONTEXT):
            qty = abs(self.position.qty_open) + extra
        self._apply(side, qty, price, fee)

    @invariant()
    def open_quantity_is_exact(self) -> None:
        assert self.position.qty_open == self.qty_signed_sum

    @invariant()
    def fees_are_exact(self) -> None:
        assert self.position.fee_total == self.fees

    @invariant()
    def realized_pnl_is_the_sum_of_closes(self) -> None:
        assert self.position.pnl_realized == self.closes

    @invariant()
    def flat_means_no_average(self) -> None:
        if self.position.qty_open == ZERO:
            assert self.position.price_avg == ZERO

    @invariant()
    def realized_pnl_reconciles_with_cash_within_rounding_budget(self) -> None:
        p = self.position
        with localcontext(LEDGER_CONTEXT):
            gap = p.pnl_realized - p.price_avg * p.qty_open - self.cash
        assert abs(gap) <= self.rounding_budget, (gap, self.rounding_budget)

    @invariant()
    def when_flat_realized_pnl_is_exactly_the_cash_flow(self) -> None:
        # No open quantity: every rounding has been realized against cash... within budget.
        if self.position.qty_open == ZERO:
            with localcontext(LEDGER_CONTEXT):
                assert abs(self.position.pnl_realized - self.cash) <= self.rounding_budget


PositionsMatchCashFlow.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
test_positions_match_cash_flow = PositionsMatchCashFlow.TestCase

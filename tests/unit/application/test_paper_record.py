"""A paper run's record is measured exactly from its projection."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import factories
from factories import T0
from ledger.application.promotion import paper_record
from ledger.domain.events import Side, TradingMode
from projections.portfolio import PortfolioProjection


def test_trades_wins_drawdown_and_days_come_from_the_runs_events() -> None:
    projection = PortfolioProjection()
    run_id = factories.RUN_ID
    projection.apply(factories.a_run_started(run_id=run_id, mode=TradingMode.PAPER))
    fills = [(1, Side.BUY, "100"), (2, Side.SELL, "110"), (3, Side.BUY, "110"), (4, Side.SELL, "88")]
    for order, side, price in fills:
        when = T0 + timedelta(hours=12 * order)
        for event in (
            factories.an_order_placed(run_id=run_id, order=order, side=side, qty="10", occurred_at=when),
            factories.an_order_submitted(run_id=run_id, order=order, occurred_at=when),
            factories.an_order_accepted(run_id=run_id, order=order, occurred_at=when),
            factories.a_fill(
                run_id=run_id, order=order, side=side, qty="10", price=price, fee="0", occurred_at=when
            ),
            factories.a_price_marked(run_id=run_id, version=order + 1, price=price, occurred_at=when),
        ):
            projection.apply(event)

    record = paper_record(projection.runs[run_id])

    assert (record.trades, record.wins) == (2, 1)
    assert record.days == 2  # the last fill is 48 hours after the start
    # Equity 10000 -> 10100 after the win, then 10100 - 220 = 9880 after the loss:
    # (10100 - 9880) / 10100, exactly.
    assert record.drawdown_max == Decimal(220) / Decimal(10100)

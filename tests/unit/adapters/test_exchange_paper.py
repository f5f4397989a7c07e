"""The paper venue fills a limit as the backtest venue does: at a marketable open, else on a trade-through."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pytest

from ledger.adapters.exchange_paper import PaperGateway
from ledger.application.candles import Bar
from ledger.domain.events import OrderPlaced, OrderType, Side
from ledger.domain.identifiers import order_stream_id
from ledger.domain.instruments import BUILTIN_INSTRUMENTS
from ledger.domain.order import FillReport

RUN = UUID("00000000-0000-4000-8000-00000000beef")
# Three real consecutive one-minute BTC/USDT bars (Binance spot, 2025-05-20 00:00 UTC).
BARS = [
    Bar(open_ms=1747699200000, open=Decimal("105573.73"), high=Decimal("105597.1"),
        low=Decimal("105554.31"), close=Decimal("105554.32"), volume=Decimal("10.82647")),
    Bar(open_ms=1747699260000, open=Decimal("105554.32"), high=Decimal("105579.99"),
        low=Decimal("105520.01"), close=Decimal("105541.41"), volume=Decimal("12.35286")),
    Bar(open_ms=1747699320000, open=Decimal("105541.41"), high=Decimal("105541.42"),
        low=Decimal("105500"), close=Decimal("105508.85"), volume=Decimal("14.01918")),
]  # fmt: skip


def _order(side: Side, limit: str) -> OrderPlaced:
    client_order_id = f"tl-paper-{side.value}-{limit}"
    return OrderPlaced(
        originator_id=order_stream_id(client_order_id),
        originator_version=1,
        occurred_at=datetime(2025, 5, 20, 0, 1, tzinfo=UTC),
        run_id=RUN,
        client_order_id=client_order_id,
        decision_id=f"{client_order_id}-d",
        instrument="BTC/USDT",
        side=side,
        order_type=OrderType.LIMIT,
        qty=Decimal("0.01"),
        qty_quote=None,
        price_limit=Decimal(limit),
        price_expected=BARS[0].close,
    )


async def _fills(side: Side, limit: str) -> list[tuple[int, Decimal]]:
    """Place the order at bar 0's close; return (bar index, price) of its fills over bars 1-2."""
    venue = PaperGateway(BUILTIN_INSTRUMENTS["BTC/USDT"], Decimal("0.001"))
    venue.on_bar(BARS[0])
    await venue.submit_order(_order(side, limit))
    found = []
    for index in (1, 2):
        venue.on_bar(BARS[index])
        for _ in range(2):  # a session may poll twice on one bar: the second finds nothing new
            found += [(index, r.price) for r in await venue.poll_fills() if isinstance(r, FillReport)]
    return found


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("side", "limit", "expected"),
    [
        (Side.BUY, "105600", [(1, Decimal("105554.32"))]),  # marketable: the open, not the limit
        (Side.BUY, "105530", [(1, Decimal("105530"))]),  # bar 1's low 105520.01 is through it
        (Side.BUY, "105520.01", [(2, Decimal("105520.01"))]),  # bar 1 only touches it; bar 2 goes through
        (Side.BUY, "105500", []),  # bar 2 only touches it
        (Side.SELL, "105500", [(1, Decimal("105554.32"))]),
        (Side.SELL, "105570", [(1, Decimal("105570"))]),
        (Side.SELL, "105579.99", []),  # bar 1's high touches it, bar 2 stays below
    ],
)
async def test_a_limit_fills_at_the_open_when_marketable_else_only_when_traded_through(
    side: Side, limit: str, expected: list[tuple[int, Decimal]]
) -> None:
    assert await _fills(side, limit) == expected

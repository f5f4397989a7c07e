"""The ledger-wide kill switch, engaged by another process earlier, denies every backtest order."""

from __future__ import annotations

from pathlib import Path

from factories import a_kill_switch_engaged, a_kill_switch_released
from ledger.adapters.store import open_store
from ledger.bootstrap import BacktestRequest, run_backtest_request
from ledger.domain.events import OrderDenied, OrderPlaced
from ledger.domain.identifiers import order_stream_id


def test_an_engaged_kill_switch_denies_every_order_and_nothing_reaches_the_venue(tmp_path: Path) -> None:
    ledger = tmp_path / "halted.db"
    writer = open_store(str(ledger), create=True)
    writer.append([a_kill_switch_engaged(reason="drill")])
    writer.close()

    result, store = run_backtest_request(BacktestRequest(ledger_url=str(ledger)))

    run = result.view
    assert run.orders > 0
    assert run.denied == run.orders
    assert run.fills == 0
    assert run.ended is not None
    assert run.ended.equity_final == run.started.cash_initial
    first = store.read_stream(order_stream_id(f"tl-{result.run_id.hex[:12]}-0000001"))
    assert [type(e) for e in first] == [OrderPlaced, OrderDenied]
    assert isinstance(first[1], OrderDenied)
    assert first[1].reason == "kill_switch"


def test_a_released_kill_switch_lets_orders_through_again(tmp_path: Path) -> None:
    ledger = tmp_path / "released.db"
    writer = open_store(str(ledger), create=True)
    writer.append([a_kill_switch_engaged(), a_kill_switch_released()])
    writer.close()

    result, _ = run_backtest_request(BacktestRequest(ledger_url=str(ledger)))

    assert result.view.denied == 0
    assert result.view.fills == result.view.orders > 0

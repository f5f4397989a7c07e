"""After a backtest, the saved portfolio checkpoint equals a fold of the whole log from zero.

The writer completes the checkpoint with the engine's own projection of the run when only the
run's events follow it, and folds the log otherwise; both must give the rebuild's bytes.
"""

from __future__ import annotations

from pathlib import Path

from factories import a_kill_switch_engaged, a_kill_switch_released
from ledger.adapters.store import LedgerStore, open_store
from ledger.bootstrap import BacktestRequest, run_backtest_request, save_portfolio_after
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner, rebuild
from sample_data import write_sample

BARS = 2880


def _saved(store: LedgerStore) -> bytes:
    runner = ProjectionRunner(store, store, PortfolioProjection())
    runner.load()
    assert runner.last_seq == store.max_seq()  # nothing left to fold: the checkpoint is current
    return runner.projection.snapshot()


def test_the_checkpoint_after_each_backtest_is_the_rebuild_whichever_way_it_was_made(tmp_path: Path) -> None:
    data = write_sample(tmp_path / "two_days.csv", BARS)
    ledger = str(tmp_path / "l.db")
    snapshots = []
    for seed in (0, 1, 2):
        if seed == 2:  # another writer's events since the last checkpoint: the log is folded
            other = open_store(ledger, create=False)
            other.append([a_kill_switch_engaged(version=1), a_kill_switch_released(version=2)])
            other.close()
        result, store = run_backtest_request(BacktestRequest(ledger_url=ledger, data_path=data, seed=seed))
        try:
            portfolio, last_seq = save_portfolio_after(store, result)
            assert last_seq == store.max_seq()
            assert result.run_id in portfolio.runs
            snapshots.append((_saved(store), rebuild(store, PortfolioProjection()).snapshot()))
        finally:
            store.close()

    for saved, rebuilt in snapshots:
        assert saved == rebuilt

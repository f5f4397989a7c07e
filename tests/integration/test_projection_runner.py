"""The tracked portfolio projection on a real backtest ledger: exactly once, resumable, safe.

* tracked (``bootstrap.portfolio``: load, catch up, save) == ``rebuild()`` from zero, byte for byte;
* a crash between saves loses only unsaved work: a new runner resumes from the checkpoint;
* two runners on one checkpoint: the stale one gets ``ConcurrencyConflictError`` on save.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.adapters.store import LedgerStore, open_store
from ledger.bootstrap import BacktestRequest, portfolio, run_backtest_request
from ledger.domain.errors import ConcurrencyConflictError
from projections import runner as runner_module
from projections.portfolio import PortfolioProjection
from projections.runner import ProjectionRunner, rebuild

NAME = PortfolioProjection.name


@pytest.fixture(scope="module")
def backtest_ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One in-process backtest of the bundled sample; no read side has run (no checkpoint)."""
    path = tmp_path_factory.mktemp("runner") / "bt.db"
    _, store = run_backtest_request(BacktestRequest(ledger_url=str(path)))
    store.close()
    return path


@pytest.fixture
def ledger(backtest_ledger: Path, tmp_path: Path) -> Iterator[LedgerStore]:
    """A private copy of the backtest ledger, opened."""
    copy = tmp_path / "ledger.db"
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{backtest_ledger}{suffix}")
        if source.exists():
            shutil.copyfile(source, f"{copy}{suffix}")
    store = open_store(str(copy), create=False)
    yield store
    store.close()


def _rebuilt(store: LedgerStore) -> bytes:
    return rebuild(store, PortfolioProjection()).snapshot()


def _runner(store: LedgerStore) -> ProjectionRunner:
    runner = ProjectionRunner(store, store, PortfolioProjection())
    runner.load()
    return runner


def test_tracked_portfolio_equals_rebuild_byte_for_byte(ledger: LedgerStore) -> None:
    assert ledger.load_checkpoint(NAME) is None

    tracked = portfolio(ledger)

    rebuilt = _rebuilt(ledger)
    assert tracked.snapshot() == rebuilt
    saved = ledger.load_checkpoint(NAME)
    assert saved is not None
    assert saved[0] == PortfolioProjection.version
    assert saved[1] == ledger.max_seq()
    assert saved[2] == rebuilt
    # Loading the saved state again applies nothing and changes nothing.
    again = _runner(ledger)
    assert again.catch_up() == 0
    assert again.projection.snapshot() == rebuilt


def test_checkpoint_saved_by_the_cli_equals_rebuild(bundled_backtest) -> None:
    store = open_store(bundled_backtest.ledger, create=False)
    try:
        saved = store.load_checkpoint(NAME)
        assert saved is not None
        assert saved[1] == store.max_seq()
        assert saved[2] == _rebuilt(store)
    finally:
        store.close()


def test_resumes_after_a_crash_between_saves(ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "PAGE_SIZE", 1000)
    monkeypatch.setattr(runner_module, "SAVE_EVERY_PAGES", 1000)
    assert ledger.max_seq() > 5000

    first = _runner(ledger)
    assert first.catch_up(stop_after_pages=3) == 3000
    first.save()
    first.catch_up(stop_after_pages=2)  # applied up to 5000, then the process dies unsaved
    assert first.last_seq == 5000
    del first

    second = _runner(ledger)
    assert second.last_seq == 3000
    applied = second.catch_up()

    assert applied == ledger.max_seq() - 3000
    assert second.projection.snapshot() == _rebuilt(ledger)
    saved = ledger.load_checkpoint(NAME)
    assert saved is not None
    assert saved[1] == ledger.max_seq()


def test_periodic_saves_during_a_long_catch_up(ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner_module, "PAGE_SIZE", 500)
    monkeypatch.setattr(runner_module, "SAVE_EVERY_PAGES", 4)
    seen: list[int] = []

    runner = _runner(ledger)
    runner.catch_up(progress=lambda done, _total: seen.append(done), stop_after_pages=9)
    saved = ledger.load_checkpoint(NAME)

    # Saved after pages 4 and 8 (seq 4000), not at the early stop after page 9.
    assert saved is not None
    assert saved[1] == 4000
    assert seen == [500 * n for n in range(1, 10)]
    resumed = _runner(ledger)
    resumed.catch_up()
    assert resumed.projection.snapshot() == _rebuilt(ledger)


def test_stale_runner_gets_a_concurrency_conflict_on_save(
    ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "PAGE_SIZE", 1000)
    slow = _runner(ledger)
    slow.catch_up(stop_after_pages=2)
    slow.save()  # checkpoint at 2000

    fast = _runner(ledger)  # a second process loads the same checkpoint
    assert fast.last_seq == 2000
    fast.catch_up()  # and moves it to the end

    slow.catch_up(stop_after_pages=1)
    with pytest.raises(ConcurrencyConflictError):
        slow.save()

    saved = ledger.load_checkpoint(NAME)
    assert saved is not None
    assert saved[1] == ledger.max_seq()
    assert saved[2] == _rebuilt(ledger)
    # The loser reloads and finds everything already applied.
    reloaded = _runner(ledger)
    assert reloaded.catch_up() == 0
    assert reloaded.projection.snapshot() == _rebuilt(ledger)


def test_two_runners_racing_for_the_first_checkpoint_conflict_cleanly(
    ledger: LedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runner_module, "PAGE_SIZE", 1000)
    first = _runner(ledger)
    second = _runner(ledger)  # both loaded "no checkpoint yet"
    first.catch_up(stop_after_pages=1)
    first.save()
    second.catch_up(stop_after_pages=2)

    with pytest.raises(ConcurrencyConflictError):
        second.save()


def test_outdated_projection_version_rebuilds_from_zero_and_overwrites(ledger: LedgerStore) -> None:
    ledger.save_checkpoint(NAME, PortfolioProjection.version - 1, 7, b"{}", expected_seq=None)

    runner = _runner(ledger)
    assert runner.last_seq == 0
    runner.catch_up()

    saved = ledger.load_checkpoint(NAME)
    assert saved is not None
    assert saved[0] == PortfolioProjection.version
    assert saved[2] == _rebuilt(ledger)


@pytest.mark.postgres
def test_tracked_equals_rebuild_and_conflicts_on_postgres(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = BacktestRequest(ledger_url=postgres_url, data_path=None)
    _, store = run_backtest_request(request)
    try:
        monkeypatch.setattr(runner_module, "PAGE_SIZE", 2000)
        slow = _runner(store)
        slow.catch_up(stop_after_pages=1)
        slow.save()
        tracked = portfolio(store)

        assert tracked.snapshot() == _rebuilt(store)
        slow.catch_up(stop_after_pages=1)
        with pytest.raises(ConcurrencyConflictError):
            slow.save()
    finally:
        store.close()

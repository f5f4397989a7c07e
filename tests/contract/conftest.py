"""The event-store contract runs against every backend: SQLite (a temp file) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledger.adapters.store import LedgerStore, open_store

BACKENDS = [
    pytest.param("sqlite_ledger", id="sqlite"),
    pytest.param("postgres_url", id="postgres", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def ledger_url(request: pytest.FixtureRequest) -> str:
    """Return a fresh ledger location for each backend (the PostgreSQL one may skip)."""
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def store(ledger_url: str) -> Iterator[LedgerStore]:
    """Yield a freshly created store on ``ledger_url``; close it afterwards."""
    opened = open_store(ledger_url, create=True)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def second_store(ledger_url: str, store: LedgerStore) -> Iterator[LedgerStore]:
    """Yield another store (another writer) on the same ledger as ``store``."""
    opened = open_store(ledger_url, create=True)
    try:
        yield opened
    finally:
        opened.close()

"""Shared test setup: the ledger's decimal context, Hypothesis profiles and common fixtures.

Fixtures other tests rely on (keep these names):

- ``anyio_backend``: ``"asyncio"`` for ``@pytest.mark.anyio`` tests.
- ``sqlite_ledger``: a fresh SQLite ledger path (str) in the test's temp directory.
- ``postgres_url``: a ``postgresql://`` ledger URL on the local server with a schema of its
  own, dropped afterwards; skips with the reason when no server answers on 127.0.0.1:5432.
- ``cli``: runs the installed ``tradeledger`` command in a subprocess, bounded by a timeout,
  and returns ``CliResult(returncode, stdout, stderr)`` (a named tuple).
- ``bundled_backtest``: one backtest of the bundled sample per test session (per xdist
  worker): ``BundledBacktest(ledger, summary)`` with the parsed ``backtest --json`` object.
  Treat that ledger as read-only; copy it to write to it.
"""

from __future__ import annotations

import decimal
import json
import os
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from hypothesis import settings

from cli_runner import CLI_TIMEOUT_S, Cli, CliResult, cli_command, run_cli
from ledger.domain.numbers import LEDGER_CONTEXT

# --- decimal context ----------------------------------------------------------------------------
# STYLE §6.1: ledger code uses `localcontext(LEDGER_CONTEXT)`; the process-wide context is only a
# backstop, so a test that forgets it still traps FloatOperation and computes at 50 digits.
# A copy, so a test that changes the current context's flags or traps cannot change the
# module constant every `localcontext(LEDGER_CONTEXT)` starts from.
decimal.setcontext(LEDGER_CONTEXT.copy())


@pytest.fixture(autouse=True)
def _ledger_decimal_context() -> None:
    # Re-installed per test: the context is per thread and a test may replace it.
    decimal.setcontext(LEDGER_CONTEXT.copy())


# --- Hypothesis ---------------------------------------------------------------------------------
# `ci` is derandomized so a red build reproduces locally; `deep` runs on demand (nightly):
#   HYPOTHESIS_PROFILE=deep tox -e py311 -- tests/property
settings.register_profile("ci", derandomize=True, deadline=None, max_examples=100, print_blob=True)
settings.register_profile("deep", deadline=None, max_examples=5_000, stateful_step_count=200, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


# --- async --------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def anyio_backend() -> str:
    """Run ``@pytest.mark.anyio`` tests on asyncio only (httpx does the same)."""
    return "asyncio"


# --- stores -------------------------------------------------------------------------------------
@pytest.fixture
def sqlite_ledger(tmp_path: Path) -> str:
    """Return the path of a SQLite ledger that does not exist yet, in this test's temp dir."""
    return str(tmp_path / "ledger.db")


PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_DATABASE = "test"
PG_CONNECT_TIMEOUT_S = 5
# Why a lock timeout on cleanup: a connection a test left idle in a transaction would make
# DROP SCHEMA wait forever; fail the teardown with a message instead.
PG_DROP_LOCK_TIMEOUT = "20s"


def _pg_users() -> list[str]:
    users = [os.environ.get("PGUSER") or "postgres", "root"]
    return list(dict.fromkeys(users))


def _pg_connect():  # -> tuple[str, psycopg.Connection]; psycopg is imported lazily
    import psycopg  # noqa: PLC0415 - only the PostgreSQL tests pay for the import

    errors = []
    for user in _pg_users():
        try:
            connection = psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                dbname=PG_DATABASE,
                user=user,
                connect_timeout=PG_CONNECT_TIMEOUT_S,
                autocommit=True,
            )
        except psycopg.OperationalError as e:
            errors.append(f"user {user!r}: {' '.join(str(e).split())}")
        else:
            return user, connection
    pytest.skip(f"PostgreSQL not reachable at {PG_HOST}:{PG_PORT}: {'; '.join(errors)}")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """Yield a ledger URL on the local PostgreSQL with a fresh schema; drop it afterwards."""
    user, connection = _pg_connect()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    with connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{PG_DATABASE}?schema={schema}"
    finally:
        _, cleanup = _pg_connect()
        with cleanup:
            cleanup.execute(f"SET lock_timeout = '{PG_DROP_LOCK_TIMEOUT}'")
            cleanup.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# --- the command line ---------------------------------------------------------------------------


@pytest.fixture
def tradeledger_argv() -> list[str]:
    """Return the argv prefix of the installed ``tradeledger`` (for tests that need Popen)."""
    return cli_command()


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Return a runner for the ``tradeledger`` command; ``cwd`` defaults to the test's temp dir."""

    def run(
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,  # noqa: A002 - the subprocess.run name
        timeout: float = CLI_TIMEOUT_S,
    ) -> CliResult:
        return run_cli(args, cwd=tmp_path if cwd is None else cwd, env=env, input=input, timeout=timeout)

    return run


class BundledBacktest(NamedTuple):
    """One backtest of the bundled sample: its ledger path and the ``backtest --json`` object."""

    ledger: str
    summary: dict[str, Any]


@pytest.fixture(scope="session")
def bundled_backtest(tmp_path_factory: pytest.TempPathFactory) -> BundledBacktest:
    """Run ``tradeledger --ledger <tmp>/bt.db backtest --json`` once per session (per worker)."""
    work = tmp_path_factory.mktemp("bundled_backtest")
    ledger = str(work / "bt.db")
    code, out, err = run_cli(["--ledger", ledger, "backtest", "--json"], cwd=work)
    if code != 0:
        pytest.fail(f"bundled backtest exited {code}\nstderr: {err[-4000:]}\nstdout: {out[-2000:]}")
    return BundledBacktest(ledger, json.loads(out))

"""Running the installed ``tradeledger`` from tests (imported by conftest and by test modules).

A module of its own: test modules import ``run_cli`` by name, and ``conftest`` is not a
unique module name when several directories have one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import pytest

CLI_TIMEOUT_S = 300.0


class CliResult(NamedTuple):
    """What one ``tradeledger`` run returned; unpacks as ``code, out, err``."""

    returncode: int
    stdout: str
    stderr: str


class Cli(Protocol):
    """The ``cli`` fixture: ``cli("--ledger", path, "backtest", "--json", cwd=..., timeout=...)``."""

    def __call__(
        self,
        *args: str | os.PathLike[str],
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        input: str | None = None,  # noqa: A002 - the subprocess.run name
        timeout: float = CLI_TIMEOUT_S,
    ) -> CliResult: ...


def cli_command() -> list[str]:
    """Return the argv prefix that runs the installed ``tradeledger`` of this interpreter."""
    beside = Path(sys.executable).with_name("tradeledger")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("tradeledger")
    if found is not None:
        return [found]
    return [sys.executable, "-m", "ledger.entrypoints.cli"]


def run_cli(
    args: Sequence[str | os.PathLike[str]],
    *,
    cwd: str | os.PathLike[str],
    env: Mapping[str, str] | None = None,
    input: str | None = None,  # noqa: A002 - the subprocess.run name
    timeout: float = CLI_TIMEOUT_S,
) -> CliResult:
    """Run ``tradeledger *args`` in ``cwd``; fail the test if it outlives ``timeout`` seconds.

    The child gets this process's environment without any ``TRADELEDGER_*`` variable (so a
    developer's own ledger or keys are never touched), plus ``env``.
    """
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("TRADELEDGER_")}
    child_env.update(env or {})
    argv = [*cli_command(), *(os.fspath(a) for a in args)]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=child_env,
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(
            f"`{' '.join(argv)}` did not finish within {timeout:g} s\n"
            f"stdout: {_text(e.stdout)[-2000:]}\nstderr: {_text(e.stderr)[-2000:]}"
        )
    return CliResult(done.returncode, done.stdout, done.stderr)


def _text(output: bytes | str | None) -> str:
    if output is None:
        return ""
    return output.decode(errors="replace") if isinstance(output, bytes) else output

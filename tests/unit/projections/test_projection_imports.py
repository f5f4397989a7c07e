"""The read side imports on its own.

``from projections.positions import Position`` in a fresh interpreter must work (an analyst's
notebook, a separate projection process).
"""

from __future__ import annotations

import subprocess
import sys

import pytest

READ_SIDE = ["projections.positions", "projections.portfolio", "projections.runner"]


@pytest.mark.parametrize("module", READ_SIDE)
def test_read_side_module_imports_first_in_a_fresh_interpreter(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False, timeout=60
    )

    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]


@pytest.mark.parametrize("module", ["projections.performance", "projections.analytics", "projections"])
def test_other_read_side_modules_import_first(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], capture_output=True, text=True, check=False, timeout=60
    )

    assert done.returncode == 0, done.stderr.strip().splitlines()[-1:]

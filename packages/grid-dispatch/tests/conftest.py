"""Shared fixtures: the interpreter and mpiexec of this environment, subprocess helper."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE / "scripts"


@pytest.fixture(scope="session")
def mpiexec() -> Path:
    """mpiexec installed next to this interpreter by the PyPI ``mpich`` wheel."""
    path = Path(sys.executable).parent / "mpiexec"
    if not path.exists():
        pytest.fail(f"mpiexec not found next to {sys.executable}; install the 'mpich' wheel")
    return path


def _run_script(args: list[str], *, env: dict[str, str] | None = None, timeout: float = 120):
    full_env = {**os.environ, **(env or {})}
    full_env.setdefault("JAX_PLATFORMS", "cpu")
    proc = subprocess.run(
        [sys.executable, *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        pytest.fail(f"{args} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def run_script():
    """Run a helper script with this interpreter; fail the test with its output on error."""
    return _run_script


@pytest.fixture(scope="session")
def scripts() -> Path:
    """Folder of the helper scripts run in subprocesses."""
    return SCRIPTS

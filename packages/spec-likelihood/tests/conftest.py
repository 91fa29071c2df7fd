"""Test configuration: float64 everywhere, and the location of the shared reference data.

The shared data (fgbuster oracle, PySM templates and benchmarks, SpDust2 table, instrument
tables) lives beside the repository in ``../shared/data`` or at ``$COMPSEP_SHARED_DATA``; tests
that need it skip with the reason when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

# The spectral likelihood is ~1e9 in value and the SED oracles are compared to 1e-10:
# float32 cannot represent either.
jax.config.update("jax_enable_x64", True)


def shared_data_dir() -> Path:
    """``$COMPSEP_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The shared data folder; skips the test when it is absent."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.skip(
            reason=f"shared reference data not found at {path} "
            "(set COMPSEP_SHARED_DATA to the folder holding oracles/, pysm_*, spdust/)"
        )
    return path


@pytest.fixture(scope="session")
def data_file(shared_data: Path):
    """Factory: ``data_file("oracles/x.npz")`` -> path, skipping when that file is absent."""

    def get(relative: str) -> Path:
        path = shared_data / relative
        if not path.exists():
            pytest.skip(reason=f"shared reference file not found: {path}")
        return path

    return get

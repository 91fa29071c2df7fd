"""Shared fixtures: float64 (the chi^2 fits need it) and the shared-data location."""

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def shared_data() -> Path:
    """``../shared/data`` beside the repository root, or ``$COMPSEP_SHARED_DATA``."""
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def pysm_dirs() -> tuple[Path, Path]:
    root = shared_data()
    local, bench = root / "pysm_local_data_ns64", root / "pysm_benchmarks_ns64"
    if not (local / "pysm_2" / "dust_q_new.fits").is_file() or not bench.is_dir():
        pytest.skip(reason=f"PySM data not found under {root} (set COMPSEP_SHARED_DATA)")
    return local, bench


@pytest.fixture(scope="session")
def instrument():
    from spec_likelihood import farsian2020

    return farsian2020()


@pytest.fixture(scope="session")
def templates8():
    from fg_classifier import synthetic_templates

    return synthetic_templates(8, seed=3, n_cmb=2)

"""Shared fixtures: float64 JAX (the spectral likelihood needs it) and the shared data folder."""

from __future__ import annotations

import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)


def shared_data() -> Path:
    """../shared/data beside the repository root, or $COMPSEP_SHARED_DATA."""
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = shared_data()
    if not path.is_dir():
        pytest.skip(reason=f"shared data folder {path} absent (set COMPSEP_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def planck_masks(data_dir: Path) -> Path:
    path = data_dir / "masks" / "GAL_PlanckMasks_64.npz"
    if not path.is_file():
        pytest.skip(reason=f"Planck mask file {path} absent")
    return path


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    # CAMB spectra are cached once per test session, never in the user's home.
    monkeypatch.setenv("BB_RESIDUALS_CACHE", str(tmp_path_factory.getbasetemp() / "camb-cache"))

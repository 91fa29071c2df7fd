"""Shared fixtures: x64 for the exact-SDE tests, small sizes for a 2-core CI machine."""

import os
from pathlib import Path

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)


def shared_data_dir() -> Path:
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture
def dust_maps_dir() -> Path:
    d = shared_data_dir() / "dust_maps"
    if not (d / "pywph_I_1.npy").exists():
        pytest.skip(reason=f"shared dust maps not found under {d} (set COMPSEP_SHARED_DATA)")
    return d


def toy_cmb_eigenvalues(n: int) -> np.ndarray:
    """A damped, CMB-like spectrum with condition number ~1e3 on an n x n patch."""
    k = np.fft.fftfreq(n) * n
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    lam = np.exp(-((kk / (0.3 * n)) ** 2)) * (1 + 0.3 * np.cos(kk))
    return lam / lam.mean()


def toy_dust_variance(n: int, slope: float = 2.5) -> np.ndarray:
    k = np.fft.fftfreq(n) * n
    kk = np.maximum(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2), 1.0)
    p = kk**-slope
    return p / p.mean()


@pytest.fixture
def toy_spectra():
    """(toy CMB eigenvalues, toy dust per-mode variance) on an 8 x 8 patch."""
    return toy_cmb_eigenvalues(8), toy_dust_variance(8)

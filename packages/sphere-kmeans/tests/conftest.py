"""Shared fixtures: the GAL020 region at nside 16 (from the Planck masks when present)."""

from __future__ import annotations

import os
from pathlib import Path

import healpy as hp
import numpy as np
import pytest


def shared_data() -> Path:
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def gal_mask(name: str, nside: int) -> np.ndarray:
    """A Planck GAL mask resampled to ``nside``, or a |b| cut of the same sky fraction."""
    path = shared_data() / "masks" / "GAL_PlanckMasks_64.npz"
    fsky = {"GAL020": 0.2048, "GAL040": 0.4028, "GAL060": 0.6008}[name]
    if path.exists():
        m = np.load(path)[name].astype(np.float64)
        return hp.ud_grade(m, nside) > 0.5
    z = np.abs(hp.pix2vec(nside, np.arange(12 * nside**2))[2])
    return z >= np.quantile(z, 1 - fsky)


@pytest.fixture(scope="session", name="gal_mask")
def gal_mask_fixture():
    return gal_mask


@pytest.fixture(scope="session")
def gal020_16() -> np.ndarray:
    return gal_mask("GAL020", 16)

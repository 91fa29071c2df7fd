"""Test configuration: float64 for the r likelihood, shared data, seeded Gaussian skies.

healpy's OpenMP threads are pinned to one (before healpy is imported) so that the many tiny
nside-16/32 transforms do not oversubscribe a 2-core CI machine.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import healpy as hp
import jax
import numpy as np
import pytest

# The r likelihood sums ~1e3 terms of size ~10 and its 68% interval needs differences of 1.
jax.config.update("jax_enable_x64", True)


def shared_data_dir() -> Path:
    """``$COMPSEP_SHARED_DATA`` if set, else ``<repo>/../shared/data``."""
    env = os.environ.get("COMPSEP_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


@pytest.fixture(scope="session")
def data_file():
    """Factory: ``data_file("cls/x.npz")`` -> path, skipping when that file is absent."""

    def get(relative: str) -> Path:
        path = shared_data_dir() / relative
        if not path.exists():
            pytest.skip(reason=f"shared reference file not found: {path} (set COMPSEP_SHARED_DATA)")
        return path

    return get


@pytest.fixture(scope="session")
def templates(tmp_path_factory):
    """Planck 2018 lensed + r=1 tensor spectra to ell = 200: the shipped CAMB file when
    present, else a CAMB run (cached in a temporary folder)."""
    from bb_residuals import camb_templates, read_templates

    path = shared_data_dir() / "cls" / "camb_planck2018_lmax400.npz"
    if path.exists():
        return read_templates(path, lmax=200)
    return camb_templates(200, cache_dir=tmp_path_factory.mktemp("camb"))


def gaussian_qu(cl_ee, cl_bb, nside, rng, n, lmax=None):
    """``n`` Gaussian Q/U skies ``[n, 2, npix]`` with spectra (EE, BB), no pixel window."""
    lmax = 3 * nside - 1 if lmax is None else lmax
    ell_of = hp.Alm.getlm(lmax)[0]
    out = np.empty((n, 2, hp.nside2npix(nside)))
    zero = np.zeros(ell_of.size, dtype=complex)
    for i in range(n):
        alms = []
        for cl in (cl_ee, cl_bb):
            amp = np.sqrt(np.asarray(cl)[ell_of])
            re, im = rng.standard_normal((2, ell_of.size))
            m0 = hp.Alm.getlm(lmax)[1] == 0
            alm = amp * np.where(m0, re, (re + 1j * im) / np.sqrt(2.0))
            alms.append(alm.astype(complex))
        out[i] = hp.alm2map([zero, *alms], nside, lmax=lmax, pol=True)[1:]
    return out


@pytest.fixture(scope="session")
def gal040_mask(data_file):
    """GAL040 at nside 32 when the shared masks exist, else a |b| > 36.9 deg cut (f_sky 0.4)."""
    from bb_residuals import latitude_mask

    path = shared_data_dir() / "masks" / "GAL_PlanckMasks_64.npz"
    if path.exists():
        with np.load(path) as masks:
            full = masks["GAL040"].astype(np.float64)
        return (hp.ud_grade(full, 32) > 0.5).astype(np.float64)
    return latitude_mask(32, 36.87)


@pytest.fixture(scope="session")
def make_qu():
    """The seeded Gaussian Q/U sky generator ``gaussian_qu``."""
    return gaussian_qu

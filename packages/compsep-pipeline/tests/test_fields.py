"""Gaussian random fields and the latitude profile against healpy and analytic values."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from compsep_pipeline._fields import (
    galactic_latitude,
    gaussian_alm,
    latitude_profile,
    polarization_field,
    power_law_cl,
    scalar_field,
)


def test_power_law_cl_values():
    cl = power_law_cl(100, -2.0, ell_pivot=10.0)
    assert cl[0] == cl[1] == 0
    np.testing.assert_allclose(cl[10], 1.0)
    np.testing.assert_allclose(cl[20], 0.25)
    with pytest.raises(ValueError, match="lmax"):
        power_law_cl(1, -2.0)


def test_alm_power_matches_input_within_cosmic_variance():
    lmax = 95
    cl = power_law_cl(lmax, -2.42)
    rng = np.random.default_rng(3)
    ratios = np.mean([hp.alm2cl(gaussian_alm(cl, rng))[2:] / cl[2:] for _ in range(20)], axis=0)
    ell = np.arange(2, lmax + 1)
    # each ratio is a chi^2_{2l+1}/(2l+1) mean over 20 draws: sigma = sqrt(2/((2l+1) 20))
    sigma = np.sqrt(2.0 / ((2 * ell + 1) * 20))
    assert np.all(np.abs(ratios - 1) < 5 * sigma)
    assert abs(np.mean((ratios - 1) / sigma)) < 0.5


def test_scalar_field_map_spectrum():
    nside = 32
    cl = power_law_cl(2 * nside, -2.0)
    m = scalar_field(nside, cl, np.random.default_rng(0))
    measured = hp.anafast(m, lmax=2 * nside)
    ell = np.arange(10, 2 * nside)
    ratio = measured[ell] / cl[ell]
    assert abs(np.mean(ratio) - 1) < 0.1


def test_seeded_fields_are_reproducible():
    cl = power_law_cl(47, -3.0)
    a = polarization_field(16, 2 * cl, cl, np.random.default_rng(5))
    b = polarization_field(16, 2 * cl, cl, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)


def test_polarization_field_e_and_b_spectra():
    nside = 32
    lmax = 2 * nside
    cl = power_law_cl(lmax, -2.0)
    rng = np.random.default_rng(1)
    spectra = []
    for _ in range(8):
        qu = polarization_field(nside, 2 * cl, cl, rng)
        spectra.append(hp.anafast([np.zeros_like(qu[0]), qu[0], qu[1]], lmax=lmax))
    _, ee, bb, _, eb, _ = np.mean(spectra, axis=0)
    ell = np.arange(8, lmax - 8)
    assert abs(np.mean(ee[ell] / cl[ell]) - 2) < 0.1
    assert abs(np.mean(bb[ell] / cl[ell]) - 1) < 0.05
    # E and B are independent: the EB cross-spectrum is noise of std sqrt(EE BB / ((2l+1) n))
    z = eb[ell] / np.sqrt(ee[ell] * bb[ell] / ((2 * ell + 1) * len(spectra)))
    assert np.max(np.abs(z)) < 5 and abs(np.mean(z)) < 1


def test_latitude_profile_analytic():
    nside = 16
    b = galactic_latitude(nside)
    assert b.max() < np.pi / 2 and b.min() > -np.pi / 2
    prof = latitude_profile(nside, 0.2, 0.05)
    np.testing.assert_allclose(prof, 0.05 + np.exp(-np.abs(np.sin(b)) / 0.2))
    assert prof.max() <= 1.05 and prof.min() >= 0.05
    with pytest.raises(ValueError, match="scale_height"):
        latitude_profile(nside, 0.0, 0.1)
    with pytest.raises(ValueError, match="floor"):
        latitude_profile(nside, 0.1, -1.0)

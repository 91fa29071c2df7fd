"""Systematic / statistical / total residual split (paper IV.b) on synthetic residuals."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from bb_residuals import (
    Bins,
    MasterEstimator,
    NaiveEstimator,
    apodize_mask,
    latitude_mask,
    residual_spectra,
    residual_spectra_from_cls,
)


def test_split_with_known_leakage_and_noise(make_qu):
    """s_hat^(n) = s_true + leak + noise^(n): syst = C(leak), stat -> white-noise power."""
    nside, n_real, sigma = 16, 60, 0.5
    rng = np.random.default_rng(0)
    ell = np.arange(3 * nside)
    leak_cl = np.where(ell >= 2, 1e-2 * (ell + 1.0) ** -2, 0.0)  # foreground-like leakage
    cmb = make_qu(leak_cl * 5, leak_cl, nside, rng, 1)[0]
    leak = make_qu(leak_cl, 0.5 * leak_cl, nside, rng, 1)[0]
    noise = sigma * rng.standard_normal((n_real, 2, cmb.shape[-1]))
    s_hat = cmb + leak + noise
    est = NaiveEstimator(np.ones(cmb.shape[-1]), iter=1)
    res = residual_spectra(s_hat, cmb, leak, est)
    np.testing.assert_allclose(res.syst, est(leak), rtol=1e-12)
    np.testing.assert_allclose(res.total, res.syst + res.stat, rtol=1e-12, atol=1e-18)
    np.testing.assert_allclose(res.total_per_realisation.mean(0), res.total)
    np.testing.assert_allclose(res.stat_per_realisation.mean(0), res.stat, atol=1e-15)
    # stat = <C(leak + n)> - C(leak) = N_ell + 2 <C(leak x n)> -> N_ell on average.
    n_ell = sigma**2 * hp.nside2pixarea(nside)
    band = slice(2, 2 * nside + 1)
    for spec in (0, 1):
        ratio = res.stat[spec, band] / n_ell
        # per-ell scatter of a mean over 60 realisations, plus the cross term's scatter
        assert abs(ratio.mean() - 1) < 0.03
    assert abs(res.stat[2, band].mean()) < 0.03 * n_ell  # EB of white noise vanishes
    assert res.spectrum("syst", "BB") is not None
    again = residual_spectra_from_cls(res.syst, res.total_per_realisation, res.ell)
    np.testing.assert_array_equal(again.stat, res.stat)


def test_split_with_master_on_cut_sky(make_qu):
    """Same identity through MASTER on a cut sky; the noise floor is recovered unbiased."""
    nside, n_real, sigma = 16, 40, 0.5
    rng = np.random.default_rng(1)
    weight = apodize_mask(latitude_mask(nside, 30.0), 10.0, "C2")
    est = MasterEstimator(weight, Bins.linear(2, 47, 6), iter=1)
    truth = np.zeros((2, hp.nside2npix(nside)))
    leak = make_qu(np.full(48, 1e-3), np.full(48, 1e-3), nside, rng, 1)[0]
    s_hat = truth + leak + sigma * rng.standard_normal((n_real, 2, truth.shape[-1]))
    res = residual_spectra(s_hat, truth, leak, est)
    np.testing.assert_allclose(res.total, res.syst + res.stat, rtol=1e-12, atol=1e-18)
    n_ell = sigma**2 * hp.nside2pixarea(nside)
    low = est.ell <= 2 * nside
    assert abs(res.stat[1, low].mean() / n_ell - 1) < 0.05


def test_residual_errors():
    est = NaiveEstimator(np.ones(hp.nside2npix(4)))
    maps = np.zeros((3, 2, hp.nside2npix(4)))
    with pytest.raises(ValueError, match="s_true"):
        residual_spectra(maps, np.zeros((2, 10)), np.zeros((2, 10)), est)
    with pytest.raises(ValueError, match="s_syst"):
        residual_spectra(maps, maps[0], np.zeros((2, 10)), est)
    with pytest.raises(ValueError, match="cl_syst"):
        residual_spectra_from_cls(np.zeros((2, 5)), np.zeros((4, 3, 5)), np.arange(5))
    with pytest.raises(ValueError, match="cl_total_per_realisation"):
        residual_spectra_from_cls(np.zeros((3, 5)), np.zeros((4, 3, 6)), np.arange(5))

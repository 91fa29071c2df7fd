"""Conventions, binning, input validation and the naive (anafast / f_sky) estimator."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from bb_residuals import (
    Bins,
    NaiveEstimator,
    cl_to_dl,
    dl_factor,
    dl_to_cl,
    latitude_mask,
    pixel_window,
)


def test_dl_convention_round_trip():
    ell = np.arange(10)
    cl = np.linspace(1.0, 2.0, 10)
    np.testing.assert_allclose(dl_factor(ell), ell * (ell + 1) / (2 * np.pi))
    np.testing.assert_allclose(dl_to_cl(ell, cl_to_dl(ell, cl))[1:], cl[1:])
    assert dl_to_cl(ell, cl_to_dl(ell, cl))[0] == 0.0


def test_bins_linear_and_matrices():
    bins = Bins.linear(2, 47, 10)
    assert bins.edges[0] == 2 and bins.lmax == 47
    assert np.all(np.diff(bins.edges) >= 5)
    p = bins.binning_matrix(60)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    for shape in ("dl", "cl"):
        q = Bins(bins.edges, shape).unbinning_matrix(60)
        np.testing.assert_allclose(p @ q, np.eye(bins.n_bins), atol=1e-12)
    ell = np.arange(48)
    np.testing.assert_allclose(bins.n_modes.sum(), np.sum(2 * ell[2:] + 1))
    np.testing.assert_allclose(bins.bin_cl(ell.astype(float))[0], np.mean(np.arange(2, 12)))
    unbinned = Bins.unbinned(2, 10)
    np.testing.assert_allclose(unbinned.ell_eff, np.arange(2, 11))


@pytest.mark.parametrize(
    ("edges", "match"),
    [
        ([5], "at least two"),
        ([2, 2, 5], "strictly increasing"),
        ([0, 5], "ell >= 2"),
        ([2.5, 6], "integers"),
    ],
)
def test_bins_errors(edges, match):
    with pytest.raises(ValueError, match=match):
        Bins(np.array(edges))


def test_naive_full_sky_is_anafast():
    rng = np.random.default_rng(0)
    nside = 16
    qu = rng.standard_normal((2, hp.nside2npix(nside)))
    est = NaiveEstimator(np.ones(qu.shape[-1]))
    ref = hp.anafast([np.zeros(qu.shape[-1]), *qu], pol=True, iter=3)
    out = est(qu)
    np.testing.assert_allclose(out[:, 2:], ref[[1, 2, 4], 2:], rtol=1e-12)
    assert np.all(out[:, :2] == 0)
    assert est.f_sky == 1.0


def test_naive_divides_by_fsky_binary_mask():
    nside = 16
    mask = latitude_mask(nside, 30.0)
    rng = np.random.default_rng(1)
    qu = rng.standard_normal((2, mask.size))
    out = NaiveEstimator(mask)(qu)
    ref = hp.anafast([np.zeros(mask.size), *(qu * mask)], pol=True, iter=3)[2]
    np.testing.assert_allclose(out[1, 2:], ref[2:] / mask.mean(), rtol=1e-12)


def test_naive_beam_and_pixwin_deconvolution():
    nside = 16
    rng = np.random.default_rng(2)
    qu = rng.standard_normal((2, hp.nside2npix(nside)))
    mask = np.ones(qu.shape[-1])
    fwhm = np.radians(3.0)
    plain = NaiveEstimator(mask)(qu)
    beamed = NaiveEstimator(mask, beam_fwhm=fwhm, pixwin=True)(qu)
    transfer = (hp.gauss_beam(fwhm, lmax=47, pol=True)[:, 1] * pixel_window(nside)) ** 2
    np.testing.assert_allclose(beamed[:, 2:] * transfer[2:], plain[:, 2:], rtol=1e-12)
    tab = NaiveEstimator(mask, beam=hp.gauss_beam(fwhm, lmax=47, pol=True)[:, 1])(qu)
    np.testing.assert_allclose(tab * 1, NaiveEstimator(mask, beam_fwhm=fwhm)(qu), rtol=1e-12)


def test_pixel_window_deconvolves_true_pixel_averaging(make_qu):
    """Skies made at nside 128 and pixel-averaged to nside 16 (ud_grade averages the 64
    sub-pixels) have spectra w_ell^2 C_ell: the estimator with pixwin=True recovers C_ell.
    Red spectra keep the aliasing of ell > 3 nside power negligible."""
    nside, nside_hi = 16, 128
    ell = np.arange(2, 33)
    ee = (np.arange(192) + 1.0) ** -3.0
    bb = 0.5 * ee
    qu_hi = make_qu(ee[:192], bb[:192], nside_hi, np.random.default_rng(3), 12, lmax=191)
    qu = np.array([hp.ud_grade(m, nside) for m in qu_hi.reshape(-1, qu_hi.shape[-1])])
    qu = qu.reshape(12, 2, -1)
    mask = np.ones(qu.shape[-1])
    corrected = NaiveEstimator(mask, pixwin=True)(qu).mean(axis=0)
    raw = NaiveEstimator(mask)(qu).mean(axis=0)
    tol = 4 * np.sqrt(2 / (12 * (2 * ell + 1))) + 0.02
    assert np.all(np.abs(corrected[0, ell] / ee[ell] - 1) < tol)
    assert np.all(np.abs(corrected[1, ell] / bb[ell] - 1) < tol)
    assert np.all(raw[0, 28:33] / ee[28:33] < 0.8)  # the window is visible without correction


def test_pixel_window_dipole_term_by_monte_carlo():
    """P_1(n . n') = n . n', so w_1^2 is the pixel-averaged |mean unit vector|^2: estimate it
    from uniform random points on the sphere, binned by pixel (unbiased pair estimator)."""
    nside = 8
    rng = np.random.default_rng(4)
    n_points = 2_000_000
    vec = rng.standard_normal((n_points, 3))
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    pix = hp.vec2pix(nside, *vec.T)
    npix = hp.nside2npix(nside)
    counts = np.bincount(pix, minlength=npix)
    sums = np.stack([np.bincount(pix, weights=v, minlength=npix) for v in vec.T], axis=1)
    pair_mean = (np.sum(sums**2, axis=1) - counts) / (counts * (counts - 1.0))
    w = pixel_window(nside)
    assert w[0] == pytest.approx(1.0, abs=1e-12)
    assert w[1] ** 2 == pytest.approx(pair_mean.mean(), abs=2e-5)
    assert np.all(np.diff(w) < 0)


def test_input_errors():
    nside = 8
    npix = hp.nside2npix(nside)
    mask = np.ones(npix)
    with pytest.raises(ValueError, match="NaN"):
        NaiveEstimator(np.where(np.arange(npix) == 3, np.nan, mask))
    with pytest.raises(ValueError, match="empty"):
        NaiveEstimator(np.zeros(npix))
    with pytest.raises(ValueError, match="3 nside - 1"):
        NaiveEstimator(mask, lmax=3 * nside)
    with pytest.raises(ValueError, match="valid HEALPix"):
        NaiveEstimator(np.ones(100))
    est = NaiveEstimator(mask)
    with pytest.raises(ValueError, match="nside"):
        est(np.zeros((2, hp.nside2npix(16))))
    with pytest.raises(ValueError, match=r"\[\.\.\., 2, npix\]"):
        est(np.zeros((3, npix)))
    qu = np.zeros((2, npix))
    qu[0, 5] = np.nan
    with pytest.raises(ValueError, match="inside the mask"):
        est(qu)
    cut = mask.copy()
    cut[5] = 0.0
    assert np.all(np.isfinite(NaiveEstimator(cut)(qu)))
    with pytest.raises(ValueError, match="beam"):
        NaiveEstimator(mask, beam_fwhm=0.01, beam=np.ones(30))

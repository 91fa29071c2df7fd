"""The r likelihood (paper IV.d): unbiasedness, Fisher errors, limits, jit/vmap, errors."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from bb_residuals import (
    STATUS_MIN_AT_GRID_EDGE,
    STATUS_NONPOSITIVE_OBSERVED,
    STATUS_OK,
    NaiveEstimator,
    fisher_sigma_r,
    fit_r,
    r_likelihood_curve,
    r_neg2_log_likelihood,
)

LMAX = 64
N_DRAWS = 1000


def _draw_spectra(model, f_sky, n, seed):
    """C_obs = C_model chi^2_nu / nu with nu = f_sky (2 l + 1) modes per multipole."""
    ell = np.arange(model.size)
    nu = f_sky * (2 * ell + 1.0)
    return model * np.random.default_rng(seed).chisquare(nu, size=(n, ell.size)) / nu


@pytest.mark.parametrize("r_true", [0.0, 0.01])
def test_unbiased_and_fisher_sigma_from_spectra(templates, r_true):
    tensor, lens = templates.tensor_bb[: LMAX + 1], templates.lensed_bb[: LMAX + 1]
    noise = np.full(LMAX + 1, 2e-6)
    obs = _draw_spectra(r_true * tensor + lens + noise, 1.0, N_DRAWS, seed=int(1e4 * r_true))
    fit = fit_r(obs, tensor, lens, noise, ell_range=(2, LMAX))
    sigma_f = fisher_sigma_r(r_true, tensor, lens, noise, ell_range=(2, LMAX))
    assert np.all(fit.status == STATUS_OK)
    scatter = fit.r_hat.std()
    assert abs(fit.r_hat.mean() - r_true) < 2 * scatter / np.sqrt(N_DRAWS)
    assert scatter == pytest.approx(sigma_f, rel=0.10)
    assert np.median(fit.sigma_r) == pytest.approx(sigma_f, rel=0.10)
    # Coverage of the 68% interval.
    covered = np.mean((fit.r_lo <= r_true) & (r_true <= fit.r_hi))
    assert covered == pytest.approx(0.68, abs=0.05)
    assert np.all(fit.r_ul95 > fit.r_ul68) and np.all(fit.r_ul68 > 0)
    np.testing.assert_allclose(fit.r_plus_sigma, fit.r_hat + fit.sigma_r)


def test_unbiased_from_full_sky_maps(templates, make_qu):
    """Map level: Gaussian CMB + white noise at nside 16, anafast, fit; 200 realisations."""
    nside, n_sims, r_true = 16, 200, 0.01
    lmax = 2 * nside
    ee, tensor, lens = (
        a[: 3 * nside] for a in (templates.lensed_ee, templates.tensor_bb, templates.lensed_bb)
    )
    rng = np.random.default_rng(7)
    qu = make_qu(ee, r_true * tensor + lens, nside, rng, n_sims)
    sigma_pix = 0.02  # uK per pixel
    qu += sigma_pix * rng.standard_normal(qu.shape)
    noise = np.full(3 * nside, sigma_pix**2 * hp.nside2pixarea(nside))
    cls = NaiveEstimator(np.ones(qu.shape[-1]), iter=1)(qu)[:, 1]
    fit = fit_r(cls, tensor, lens, noise, ell_range=(2, lmax), nside=nside)
    sigma_f = fisher_sigma_r(r_true, tensor, lens, noise, ell_range=(2, lmax))
    assert abs(fit.r_hat.mean() - r_true) < 2 * fit.r_hat.std() / np.sqrt(n_sims)
    assert np.median(fit.sigma_r) == pytest.approx(sigma_f, rel=0.10)
    assert fit.r_hat.std() == pytest.approx(sigma_f, rel=0.15)  # 200 draws: ~5% precision


def test_matches_brute_force_numpy(templates):
    """r-hat, sigma, the 68% interval and the upper limits against a dense numpy evaluation."""
    tensor, lens = templates.tensor_bb[: LMAX + 1], templates.lensed_bb[: LMAX + 1]
    noise = np.full(LMAX + 1, 5e-6)
    obs = _draw_spectra(0.002 * tensor + lens + noise, 0.6, 3, seed=5)
    fit = fit_r(obs, tensor, lens, noise, f_sky=0.6, ell_range=(5, 50))
    ell = np.arange(5, 51)
    dof = 0.6 * (2 * ell + 1)
    floor = -np.min((lens[ell] + noise[ell]) / tensor[ell])  # model > 0 above it
    for i in range(3):
        r = np.linspace(0.999 * floor, 0.03, 200_001)
        model = r[:, None] * tensor[ell] + lens[ell] + noise[ell]
        nll = np.sum(dof * (obs[i, ell] / model + np.log(model)), axis=1)
        j = np.argmin(nll)
        step = r[1] - r[0]
        assert fit.r_hat[i] == pytest.approx(r[j], abs=step)
        curv = (nll[j + 100] - 2 * nll[j] + nll[j - 100]) / (100 * step) ** 2
        assert fit.sigma_r[i] == pytest.approx(np.sqrt(2 / curv), rel=1e-3)
        inside = r[nll <= nll[j] + 1]
        assert fit.r_lo[i] == pytest.approx(inside.min(), abs=2 * step)
        assert fit.r_hi[i] == pytest.approx(inside.max(), abs=2 * step)
        pos = r >= 0
        post = np.exp(-0.5 * (nll[pos] - nll[j]))
        cdf = np.cumsum(post) / post.sum()
        assert fit.r_ul68[i] == pytest.approx(np.interp(0.68, cdf, r[pos]), rel=2e-3)
        assert fit.r_ul95[i] == pytest.approx(np.interp(0.95, cdf, r[pos]), rel=2e-3)
        direct = r_neg2_log_likelihood(
            r[j : j + 1], obs[i], tensor, lens, noise, f_sky=0.6, ell_range=(5, 50)
        )
        assert direct[0] == pytest.approx(nll[j], rel=1e-12)


def test_batch_equals_loop_and_grid(templates):
    tensor, lens = templates.tensor_bb[: LMAX + 1], templates.lensed_bb[: LMAX + 1]
    noise = np.full(LMAX + 1, 5e-6)
    obs = _draw_spectra(0.003 * tensor + lens + noise, 1.0, 6, seed=9).reshape(2, 3, -1)
    batch = fit_r(obs, tensor, lens, noise, ell_range=(2, 40))
    assert batch.r_hat.shape == (2, 3)
    for i in range(2):
        for j in range(3):
            one = fit_r(obs[i, j], tensor, lens, noise, ell_range=(2, 40))
            assert one.r_hat.shape == ()
            assert one.r_hat == pytest.approx(batch.r_hat[i, j], rel=1e-10, abs=1e-14)
    grid = np.linspace(-0.002, 0.03, 3001)
    gridded = fit_r(obs, tensor, lens, noise, ell_range=(2, 40), r_grid=grid)
    np.testing.assert_allclose(gridded.r_hat, batch.r_hat, atol=1e-9)
    np.testing.assert_allclose(gridded.r_ul95, batch.r_ul95, rtol=1e-3)
    curve = r_likelihood_curve(grid, obs[0, 0], tensor, lens, noise, ell_range=(2, 40))
    assert curve.max() == 1.0 and grid[np.argmax(curve)] == pytest.approx(
        batch.r_hat[0, 0], abs=grid[1] - grid[0]
    )


def test_status_flags(templates):
    tensor, lens = templates.tensor_bb[: LMAX + 1], templates.lensed_bb[: LMAX + 1]
    obs = 0.05 * tensor + lens
    fit = fit_r(obs, tensor, lens, ell_range=(2, 40), r_grid=np.linspace(0, 0.01, 11))
    assert fit.status & STATUS_MIN_AT_GRID_EDGE
    fit = fit_r(obs, tensor, lens, ell_range=(2, 40))
    assert fit.status == STATUS_OK and fit.r_hat == pytest.approx(0.05, rel=1e-6)
    negative = obs.copy()
    negative[20] = -lens[20]
    fit = fit_r(negative, tensor, lens, ell_range=(2, 40))
    assert fit.status & STATUS_NONPOSITIVE_OBSERVED


def test_errors(templates):
    tensor, lens = templates.tensor_bb[:65], templates.lensed_bb[:65]
    obs = lens.copy()
    with pytest.raises(ValueError, match="3 nside - 1"):
        fit_r(obs, tensor, lens, ell_range=(2, 60), nside=16)
    with pytest.raises(ValueError, match="negative"):
        fit_r(obs, -tensor, lens)
    with pytest.raises(ValueError, match="negative"):
        fit_r(obs, tensor, -lens)
    with pytest.raises(ValueError, match="C_lens \\+ C_stat"):
        fit_r(obs, tensor, lens, -2 * lens, ell_range=(2, 40))
    with pytest.raises(ValueError, match="ell_range"):
        fit_r(obs, tensor, lens, ell_range=(1, 40))
    with pytest.raises(ValueError, match="ell_range"):
        fit_r(obs, tensor, lens, ell_range=(2, 100))
    with pytest.raises(ValueError, match="f_sky"):
        fit_r(obs, tensor, lens, f_sky=0.0, ell_range=(2, 40))
    with pytest.raises(ValueError, match="r_grid"):
        fit_r(obs, tensor, lens, ell_range=(2, 40), r_grid=np.array([0.1, 0.0, 0.2]))
    bad = obs.copy()
    bad[10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_r(bad, tensor, lens, ell_range=(2, 40))

"""CAMB spectra, the shipped grid, the emulator and flat-sky covariances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import (
    PRIOR_HIGH,
    PRIOR_LOW,
    CMBGrid,
    CMBSpectra,
    camb_cl,
    covariance_eigenvalues,
    fourier_ell,
    gaussian_field,
    make_cmb_grid,
    sample_phi,
)
from dust_diffusion._cosmology import DEFAULT_GRID_PATH


@pytest.fixture(scope="module")
def grid():
    return CMBGrid.load()


def test_shipped_grid_covers_prior_and_is_small(grid):
    assert DEFAULT_GRID_PATH.stat().st_size < 2_000_000
    assert grid.h0[0] == PRIOR_LOW[0] and grid.h0[-1] == PRIOR_HIGH[0]
    assert grid.omega_b[0] == PRIOR_LOW[1] and grid.omega_b[-1] == PRIOR_HIGH[1]
    assert grid.ell[-1] >= 3000
    assert np.all(np.isfinite(grid.log_cl))


def test_grid_node_matches_camb(grid):
    i, j = 3, 5
    cl = camb_cl(float(grid.h0[i]), float(grid.omega_b[j]), int(grid.ell[-1]))
    np.testing.assert_allclose(np.exp(grid.log_cl[i, j]), cl[grid.ell], rtol=1e-5)


def test_make_cmb_grid_atomic_round_trip(tmp_path):
    g = make_cmb_grid(2, 2, lmax=400, path=tmp_path / "g.npz")
    assert g.log_cl.shape == (2, 2, len(g.ell))
    assert not list(tmp_path.glob("*.tmp"))
    back = CMBGrid.load(tmp_path / "g.npz")
    np.testing.assert_allclose(back.log_cl, g.log_cl, rtol=1e-6)
    np.testing.assert_allclose(back.interpolate(back.phis()[3]), back.log_cl[1, 1], rtol=1e-6)
    with pytest.raises(ValueError, match="n_h0"):
        make_cmb_grid(1, 2)


def test_emulator_reproduces_grid_and_interpolation(grid):
    spectra = CMBSpectra(grid, size=16, pixel_arcmin=8.0, emulator_steps=3000)
    assert spectra.emulator_rms < 0.01
    phi = np.asarray(sample_phi(jax.random.key(0), (20,)))
    emu = np.asarray(spectra.log_cl(phi))
    ref = grid.interpolate(phi)
    # between grid nodes bilinear interpolation is itself only ~1% accurate
    assert np.sqrt(np.mean((emu - ref) ** 2)) < 0.01
    # against CAMB off the grid: 2% at worst (high ell), 0.5% rms in C_ell
    off = (61.3, 0.0187)
    truth = np.log(camb_cl(*off, int(grid.ell[-1]))[grid.ell])
    err = np.asarray(spectra.log_cl(np.asarray([off])))[0] - truth
    assert np.max(np.abs(err)) < 0.02
    assert np.sqrt(np.mean(err**2)) < 0.005
    lam = spectra.eigenvalues(jnp.asarray(phi[:3]))
    assert lam.shape == (3, 16, 16)
    np.testing.assert_allclose(np.asarray(lam).mean(axis=(1, 2)), 1, rtol=1e-5)
    # the same emulator on a 32 x 32 patch: the eigenvalues of the direct construction
    big = spectra.with_patch(32)
    assert big.size == 32 and spectra.size == 16
    direct = covariance_eigenvalues(grid.ell, np.exp(emu[0]), 32, 8.0)
    np.testing.assert_allclose(
        np.asarray(big.eigenvalues(jnp.asarray(phi[:1])))[0], np.asarray(direct), rtol=1e-4
    )
    with pytest.raises(ValueError, match="lmax"):
        spectra.with_patch(32, pixel_arcmin=1.0)


def test_sample_phi_within_prior():
    phi = np.asarray(sample_phi(jax.random.key(1), (1000,)))
    assert np.all(phi >= PRIOR_LOW) and np.all(phi <= PRIOR_HIGH)
    assert abs(phi[:, 0].mean() - 70) < 1.5


def test_flat_sky_covariance_pixel_variance(grid):
    n, pix = 64, 8.0
    ell = grid.ell.astype(float)
    cl = np.exp(grid.log_cl[6, 6])
    lam = covariance_eigenvalues(ell, cl, n, pix, normalise=False)
    # pixel variance from the modes in [ell_fundamental, ell_Nyquist]
    # = int d^2 ell / (2 pi)^2 C_ell over that annulus ~ sum (2 ell + 1) / (4 pi) C_ell
    ells = np.arange(2, 3001)
    full = np.interp(ells, ell, cl)
    lk = fourier_ell(n, pix)
    lo, hi = lk[0, 1], np.pi / (pix * np.pi / 180 / 60)
    sel = (ells >= lo) & (ells <= hi)
    approx = np.sum((2 * ells[sel] + 1) / (4 * np.pi) * full[sel])
    inside = float(np.asarray(lam)[(lk >= lo) & (lk <= hi)].sum()) / n**2
    assert inside == pytest.approx(approx, rel=0.1)
    draws = gaussian_field(jax.random.key(0), covariance_eigenvalues(ell, cl, n, pix), (50,))
    assert float(jnp.var(draws)) == pytest.approx(1.0, rel=0.1)
    with pytest.raises(ValueError, match="corner multipole"):
        covariance_eigenvalues(ell[:100], cl[:100], n, pix)

"""Power spectra, Minkowski functionals, periodic nearest neighbours vs independent references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import (
    gaussian_field,
    gaussian_minkowski_functionals,
    minkowski_functionals,
    nearest_training_neighbour,
    periodic_distances,
    power_spectrum,
    spectral_moments,
)
from skimage import measure


def smooth_spectrum(n, kc):
    k = np.fft.fftfreq(n) * n
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    return np.exp(-k2 / (2 * kc**2))


def test_power_spectrum_of_gaussian_draws_matches_eigenvalue_bins():
    n = 32
    lam = smooth_spectrum(n, 6.0) + 0.01
    maps = gaussian_field(jax.random.key(0), jnp.asarray(lam), (200,))
    k, ps = power_spectrum(maps)
    kk = np.sqrt(np.add.outer(np.fft.fftfreq(n) ** 2, np.fft.fftfreq(n) ** 2)) * n
    ref = np.array([lam[np.rint(kk) == j].mean() for j in range(1, n // 2 + 1)])
    np.testing.assert_allclose(k, np.arange(1, n // 2 + 1))
    np.testing.assert_allclose(np.asarray(ps).mean(0), ref, rtol=0.1)
    ell, _ = power_spectrum(maps[:1], pixel_arcmin=8.0)
    np.testing.assert_allclose(ell[0], 2 * np.pi / (n * 8 * np.pi / 180 / 60))


def blobs(n=64, seed=0):
    """A binary image of smooth random blobs that does not touch the border."""
    f = np.asarray(gaussian_field(jax.random.key(seed), jnp.asarray(smooth_spectrum(n, 5.0))))
    img = f > 0.3
    img[:3] = img[-3:] = False
    img[:, :3] = img[:, -3:] = False
    return img


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_euler_characteristic_matches_skimage(seed):
    img = blobs(seed=seed)
    n = img.shape[0]
    _, _, e = minkowski_functionals(img.astype(float), np.array([0.5]), connectivity=8)
    assert round(float(e[0]) * n * n) == measure.euler_number(img, connectivity=2)
    _, _, e4 = minkowski_functionals(img.astype(float), np.array([0.5]), connectivity=4)
    assert round(float(e4[0]) * n * n) == measure.euler_number(img, connectivity=1)
    # periodicity: wrapping the pattern across the edges leaves the torus value unchanged,
    # whereas skimage (planar) would see the pieces cut by the border
    rolled = np.roll(img, (n // 2, n // 3), axis=(0, 1))
    _, _, e2 = minkowski_functionals(rolled.astype(float), np.array([0.5]), connectivity=8)
    assert float(e2[0]) == float(e[0])


def test_euler_characteristic_of_a_ring_and_disk_and_torus_band():
    n = 64
    yy, xx = np.mgrid[:n, :n]
    r = np.hypot(yy - 32, xx - 32)
    ring = (r < 15) & (r > 8)
    disk = r < 6
    _, _, e = minkowski_functionals(np.stack([ring, disk, ring | disk]).astype(float), [0.5])
    np.testing.assert_allclose(np.asarray(e)[:, 0] * n * n, [0, 1, 1])
    # a band wrapping around the torus is a circle: Euler characteristic 0
    band = np.zeros((n, n))
    band[20:30] = 1
    _, _, e = minkowski_functionals(band, [0.5])
    assert float(e[0]) == 0.0


def test_perimeter_of_disk_matches_skimage_and_geometry():
    n = 96
    yy, xx = np.mgrid[:n, :n]
    disk = np.hypot(yy - 50.3, xx - 47.6) < 20
    _, p, _ = minkowski_functionals(disk.astype(float), [0.5])
    mine = float(p[0]) * n * n
    assert mine == pytest.approx(2 * np.pi * 20, rel=0.04)
    assert mine == pytest.approx(measure.perimeter_crofton(disk, directions=4), rel=0.05)
    # wrapped across the border: same perimeter on the torus
    _, p2, _ = minkowski_functionals(np.roll(disk, (48, 48), (0, 1)).astype(float), [0.5])
    assert float(p2[0]) == pytest.approx(float(p[0]))


def test_minkowski_functionals_of_gaussian_field_match_analytic_curves():
    n, kc = 128, 5.0
    lam = smooth_spectrum(n, kc)
    s0, s1 = spectral_moments(lam)
    maps = np.asarray(gaussian_field(jax.random.key(3), jnp.asarray(lam), (12,))) / np.sqrt(s0)
    nu = np.linspace(-2.5, 2.5, 11)
    a, p, e = (np.asarray(v).mean(0) for v in minkowski_functionals(maps, nu))
    ra, rp, re = gaussian_minkowski_functionals(nu, 1.0, s1 / s0)
    np.testing.assert_allclose(a, ra, atol=0.02)
    np.testing.assert_allclose(p, rp, atol=0.06 * rp.max())
    np.testing.assert_allclose(e, re, atol=0.12 * np.abs(re).max())


def test_periodic_distances_match_brute_force():
    rng = np.random.default_rng(0)
    samples = rng.normal(size=(3, 8, 8))
    refs = rng.normal(size=(4, 8, 8))
    refs[2] = np.roll(samples[1], (3, 5), (0, 1)) + 0.01 * rng.normal(size=(8, 8))
    d, shifts = periodic_distances(jnp.asarray(samples), jnp.asarray(refs))
    brute = np.empty((3, 4))
    for i in range(3):
        for j in range(4):
            brute[i, j] = min(
                np.mean((samples[i] - np.roll(refs[j], (a, b), (0, 1))) ** 2)
                for a in range(8)
                for b in range(8)
            )
    np.testing.assert_allclose(np.asarray(d), brute, rtol=1e-6, atol=1e-9)
    s = np.asarray(shifts[1, 2])
    np.testing.assert_allclose(np.roll(refs[2], tuple(s), (0, 1)), samples[1], atol=0.05)
    idx, dist = nearest_training_neighbour(samples, refs, chunk=3)
    np.testing.assert_array_equal(idx, brute.argmin(1))
    np.testing.assert_allclose(dist, brute.min(1), rtol=1e-6, atol=1e-9)

"""Noise levels and realisations: healpy pixel sizes, the fgbuster oracle, statistics, errors."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from spec_likelihood import (
    inhomogeneous_noise_variance,
    litebird_ptep,
    noise_realisations,
    pixel_size_arcmin,
    white_noise_sigma,
)


@pytest.mark.parametrize("nside", [1, 16, 64, 512])
def test_pixel_size_matches_healpy(nside):
    healpy = pytest.importorskip("healpy")
    assert pixel_size_arcmin(nside) == pytest.approx(
        healpy.nside2resol(nside, arcmin=True), rel=1e-14
    )


def test_white_noise_sigma_formula():
    inst = litebird_ptep()
    omega_arcmin2 = 4 * math.pi / (12 * 16**2) * (180 * 60 / math.pi) ** 2
    np.testing.assert_allclose(
        np.asarray(white_noise_sigma(inst, 16)), inst.depth_p / math.sqrt(omega_arcmin2), rtol=1e-14
    )
    np.testing.assert_array_equal(
        np.asarray(white_noise_sigma(inst.depth_p, 16)), np.asarray(white_noise_sigma(inst, 16))
    )


def test_oracle_noise_has_white_noise_sigma(data_file):
    """The fgbuster oracle's noise was drawn with sigma = depth_p / pixel size."""
    oracle = np.load(data_file("oracles/fgbuster_ns16_seed1234.npz"))
    np.testing.assert_array_equal(oracle["depth_p"], litebird_ptep().depth_p)
    sigma = np.asarray(white_noise_sigma(oracle["depth_p"], int(oracle["nside"])))
    empirical = oracle["noise"].std(axis=(1, 2))
    n = oracle["noise"][0].size
    # Standard error of a sample std is sigma / sqrt(2 n): allow 5 of them.
    np.testing.assert_allclose(empirical, sigma, rtol=5 / math.sqrt(2 * n))


def test_realisations_shape_seed_and_statistics():
    inst = litebird_ptep()
    noise = noise_realisations(inst, 8, 500, 1234, 40)
    assert noise.shape == (40, 15, 2, 500) and noise.dtype == np.float64
    np.testing.assert_array_equal(
        np.asarray(noise), np.asarray(noise_realisations(inst, 8, 500, 1234, 40))
    )
    assert not np.allclose(
        np.asarray(noise), np.asarray(noise_realisations(inst, 8, 500, 1235, 40))
    )
    key = jax.random.key(1234)
    np.testing.assert_array_equal(
        np.asarray(noise), np.asarray(noise_realisations(inst, 8, 500, key, 40))
    )
    sigma = np.asarray(white_noise_sigma(inst, 8))
    n = 40 * 2 * 500
    np.testing.assert_allclose(
        np.asarray(noise).std(axis=(0, 2, 3)), sigma, rtol=5 / math.sqrt(2 * n)
    )
    assert abs(float(np.asarray(noise).mean() / sigma.mean())) < 5 / math.sqrt(n * 15)


def test_mask_selects_region_and_full_sky_sigma_map():
    nside = 4
    mask = np.zeros(12 * nside**2, dtype=bool)
    mask[10:30] = True
    depth = np.array([10.0, 20.0])
    noise = noise_realisations(depth, nside, mask, 0, 2, n_stokes=3)
    assert noise.shape == (2, 2, 3, 20)
    sigma_full = np.tile(np.arange(1.0, 12 * nside**2 + 1), (2, 1))
    zero_out = sigma_full.copy()
    zero_out[:, mask] = 0.0
    assert np.all(
        np.asarray(noise_realisations(depth, nside, mask, 0, 2, sigma_map=zero_out)) == 0.0
    )
    scaled = noise_realisations(depth, nside, mask, 0, 2, sigma_map=sigma_full)
    white = noise_realisations(np.ones(2), nside, 20, 0, 2) / float(
        white_noise_sigma(np.ones(1), nside)[0]
    )
    np.testing.assert_allclose(
        np.asarray(scaled), np.asarray(white) * sigma_full[:, mask][None, :, None, :], rtol=1e-14
    )


def test_inhomogeneous_variance_properties():
    inst = litebird_ptep()
    rng = np.random.default_rng(3)
    hits = rng.uniform(0.2, 5.0, size=300)
    var = np.asarray(inhomogeneous_noise_variance(inst, 16, hits))
    sigma = np.asarray(white_noise_sigma(inst, 16))
    assert var.shape == (15, 300)
    # sigma_p^2 = sigma^2 <h> / h_p: uniform hits give the homogeneous variance, and the
    # mean inverse variance is that of homogeneous noise of the same depth.
    np.testing.assert_allclose(
        np.asarray(inhomogeneous_noise_variance(inst, 16, np.full(300, 7.0))),
        np.broadcast_to(sigma[:, None] ** 2, (15, 300)),
        rtol=1e-14,
    )
    np.testing.assert_allclose((1 / var).mean(axis=1), sigma**-2.0, rtol=1e-12)
    np.testing.assert_allclose(var[:, 0] / var[:, 1], hits[1] / hits[0], rtol=1e-13)
    # The realisations follow the map: empirical variance per pixel over many draws.
    noise = np.asarray(noise_realisations(inst, 16, 300, 5, 400, sigma_map=np.sqrt(var)))
    ratio = noise.var(axis=(0, 2)) / var
    assert abs(ratio.mean() - 1) < 0.01 and ratio.std() < 0.1


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: pixel_size_arcmin(12), "power of 2"),
        (lambda: pixel_size_arcmin(16.0), "integer power of 2"),
        (lambda: white_noise_sigma(np.array([-1.0]), 8), "positive depths"),
        (lambda: noise_realisations(litebird_ptep(), 8, 0, 0, 1), "positive pixel count"),
        (
            lambda: noise_realisations(litebird_ptep(), 8, np.ones(10, bool), 0, 1),
            "boolean mask of shape",
        ),
        (
            lambda: noise_realisations(litebird_ptep(), 8, np.zeros(768, bool), 0, 1),
            "selects no pixel",
        ),
        (lambda: noise_realisations(litebird_ptep(), 8, 10, 0, 0), "n_real"),
        (lambda: noise_realisations(litebird_ptep(), 8, 10, 0, 1, n_stokes=4), "n_stokes"),
        (
            lambda: noise_realisations(litebird_ptep(), 8, 10, 0, 1, sigma_map=np.ones((15, 11))),
            "sigma_map must have shape",
        ),
        (
            lambda: noise_realisations(litebird_ptep(), 8, 10, 0, 1, sigma_map=-np.ones((15, 10))),
            "non-negative",
        ),
        (lambda: noise_realisations(litebird_ptep(), 8, 10, "seed", 1), "seed_or_key"),
        (
            lambda: inhomogeneous_noise_variance(litebird_ptep(), 8, np.zeros(5)),
            "hits must be positive",
        ),
        (
            lambda: inhomogeneous_noise_variance(litebird_ptep(), 8, np.ones((3, 5))),
            "hits must have shape",
        ),
    ],
)
def test_bad_inputs_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_realisations_jit_and_vmap_over_keys():
    inst = litebird_ptep()
    key = jax.random.key(3)
    jitted = jax.jit(lambda k: noise_realisations(inst, 8, 10, k, 2))
    np.testing.assert_array_equal(
        np.asarray(jitted(key)), np.asarray(noise_realisations(inst, 8, 10, key, 2))
    )
    keys = jax.random.split(key, 4)
    batched = jax.vmap(lambda k: noise_realisations(inst, 8, 10, k, 1))(keys)
    assert batched.shape == (4, 1, 15, 2, 10)
    np.testing.assert_array_equal(
        np.asarray(batched[2]), np.asarray(noise_realisations(inst, 8, 10, keys[2], 1))
    )

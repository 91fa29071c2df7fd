"""GLS component maps, chi^2, CMB-variance metric and parameter errors vs numpy references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from spec_likelihood import (
    CMB,
    Dust,
    SpectralLikelihood,
    Synchrotron,
    cmb_variance,
    component_maps,
    mixing_matrix,
    parameter_covariance,
    parameter_errors,
)

COMPS = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
FREQS = np.array([30.0, 40.0, 60.0, 90.0, 140.0, 220.0, 280.0, 350.0])
N_PIX = 40


def _setup(seed=0):
    rng = np.random.default_rng(seed)
    labels = {
        "beta_d": np.arange(N_PIX) % 3,
        "T_d": np.zeros(N_PIX, int),
        "beta_s": np.arange(N_PIX) // 20,
    }
    params = {
        "beta_d": np.array([1.4, 1.5, 1.6]),
        "T_d": np.array([19.0]),
        "beta_s": np.array([-3.0, -2.8]),
    }
    a = np.asarray(mixing_matrix(COMPS, FREQS, {k: v[labels[k]] for k, v in params.items()}))
    amp = rng.normal(size=(3, 2, N_PIX)) * np.array([1.0, 20.0, 10.0])[:, None, None]
    sigma = rng.uniform(0.2, 1.0, FREQS.size)
    noise = rng.normal(size=(FREQS.size, 2, N_PIX)) * sigma[:, None, None]
    return np.einsum("pfc,csp->fsp", a, amp) + noise, labels, params, sigma, a


def test_gls_maps_covariance_and_chi2_match_numpy():
    data, labels, params, sigma, a = _setup()
    ninv_map = (1.0 / sigma**2)[:, None, None] * np.random.default_rng(1).uniform(
        0.5, 2.0, size=data.shape
    )
    out = component_maps(params, data, COMPS, FREQS, ninv_map, labels)
    assert out.amplitudes.shape == (3, 2, N_PIX)
    assert out.noise_covariance.shape == (2, N_PIX, 3, 3)
    for p in range(N_PIX):
        for s in range(2):
            w = ninv_map[:, s, p]
            cov = np.linalg.inv(a[p].T @ (w[:, None] * a[p]))
            amp = cov @ a[p].T @ (w * data[:, s, p])
            np.testing.assert_allclose(
                out.noise_covariance[s, p], cov, rtol=1e-9, atol=1e-12 * np.abs(cov).max()
            )
            np.testing.assert_allclose(
                out.amplitudes[:, s, p], amp, rtol=1e-9, atol=1e-10 * np.abs(amp).max()
            )
    resid = data - np.einsum("pfc,csp->fsp", a, np.asarray(out.amplitudes))
    np.testing.assert_allclose(out.chi2, np.sum(ninv_map * resid**2, axis=(0, 1)), rtol=1e-8)


def test_noiseless_maps_are_exact_and_batches_broadcast():
    _, labels, params, sigma, a = _setup(2)
    amp = np.random.default_rng(3).normal(size=(4, 3, 2, N_PIX))
    data = np.einsum("pfc,rcsp->rfsp", a, amp)
    out = component_maps(params, data, COMPS, FREQS, 1.0 / sigma**2, labels)
    np.testing.assert_allclose(out.amplitudes, amp, rtol=1e-9, atol=1e-10)
    assert float(jnp.max(out.chi2)) < 1e-12


def test_cmb_variance_is_eq9():
    maps = np.random.default_rng(4).normal(size=(25, 2, 30))
    assert float(cmb_variance(maps)) == pytest.approx(np.mean(np.var(maps, axis=0)), rel=1e-13)
    keep = np.arange(30) < 10
    assert float(cmb_variance(maps, mask=keep)) == pytest.approx(
        np.mean(np.var(maps[..., :10], axis=0)), rel=1e-13
    )
    with pytest.raises(ValueError, match="cmb_maps"):
        cmb_variance(maps[:1])
    with pytest.raises(ValueError, match="mask"):
        cmb_variance(maps, mask=np.ones(29, bool))


def test_parameter_errors_are_inverse_hessian():
    data, labels, params, sigma, a = _setup(5)
    ninv = 1.0 / sigma**2
    lik = SpectralLikelihood.create(COMPS, FREQS, ninv, N_PIX, labels)
    x = lik.layout.flatten(params)
    hess = jax.jit(jax.hessian(lambda xx: lik.nll_flat(xx, jnp.asarray(data))))(x)
    cov = parameter_covariance(params, data, COMPS, FREQS, ninv, labels)
    np.testing.assert_allclose(
        cov, np.linalg.inv(np.asarray(hess)), rtol=1e-7, atol=1e-9 * np.abs(cov).max()
    )
    err = parameter_errors(params, data, COMPS, FREQS, ninv, labels)
    np.testing.assert_allclose(err["beta_s"], np.sqrt(np.diag(np.asarray(cov)))[4:6], rtol=1e-12)
    # fgbuster's Fisher matrix drops the residual terms of the Hessian: equal on noiseless data
    amp = (
        np.random.default_rng(6).normal(size=(3, 2, N_PIX))
        * np.array([1.0, 20.0, 10.0])[:, None, None]
    )
    clean = np.einsum("pfc,csp->fsp", a, amp)
    fisher = parameter_covariance(params, clean, COMPS, FREQS, ninv, labels, kind="fisher")
    hess_clean = parameter_covariance(params, clean, COMPS, FREQS, ninv, labels)
    np.testing.assert_allclose(fisher, hess_clean, rtol=1e-7, atol=1e-9 * np.abs(fisher).max())
    with pytest.raises(ValueError, match="kind"):
        parameter_covariance(params, data, COMPS, FREQS, ninv, labels, kind="laplace")

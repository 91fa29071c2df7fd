"""The SDE core against closed forms: forward marginals, exact-score posterior = Wiener filter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import (
    LinearSchedule,
    forward_euler_maruyama,
    forward_marginal_variance,
    gaussian_field,
    gaussian_prior_noise_fn,
    posterior_start,
    sample_posterior,
    sample_prior,
    wiener_posterior,
)


def mode_variance(maps):
    return np.mean(np.abs(np.fft.fft2(np.asarray(maps), norm="ortho")) ** 2, axis=0)


def test_alpha_and_t_star_closed_forms():
    s = LinearSchedule(0.1, 20.0)
    assert float(s.alpha(0.0)) == 1.0
    assert float(s.alpha(1.0)) == pytest.approx(np.exp(-10.05))
    for sigma in (0.1, 0.6, 2.0):
        t = s.t_star(sigma)
        assert float(s.alpha(t)) == pytest.approx(1 / (1 + sigma**2), rel=1e-12)
    with pytest.raises(ValueError, match="sigma"):
        s.t_star(0.0)
    with pytest.raises(ValueError, match="beta_max"):
        LinearSchedule(0.1, 0.2).t_star(100.0)


@pytest.mark.parametrize("t_end", [0.1, 0.5])
def test_forward_sde_marginal_variance_matches_closed_form(t_end, toy_spectra):
    s = LinearSchedule()
    lam, p = (jnp.asarray(a) for a in toy_spectra)
    k0, k1 = jax.random.split(jax.random.key(0))
    x0 = gaussian_field(k0, p, (2000,), jnp.float64)
    z = jax.jit(lambda k: forward_euler_maruyama(k, x0, jnp.sqrt(lam), s, t_end, 300))(k1)
    emp = mode_variance(z)
    ref = np.asarray(forward_marginal_variance(s, t_end, p, lam))
    ratio = emp / ref
    # 2000 draws: per-mode relative MC error ~2.2% (|fft|^2 of a complex mode), mean over 64 modes
    assert abs(ratio.mean() - 1) < 0.015
    assert np.all(np.abs(ratio - 1) < 0.12)


def test_posterior_sampler_reproduces_wiener_filter(toy_spectra):
    s = LinearSchedule()
    sigma = 0.6
    lam, p = (jnp.asarray(a) for a in toy_spectra)
    kx, ke, ks = jax.random.split(jax.random.key(1), 3)
    x = gaussian_field(kx, p, (), jnp.float64)
    y = x + sigma * gaussian_field(ke, lam, (), jnp.float64)
    fn = gaussian_prior_noise_fn(p, lam, s)
    n_samples = 2000
    dust, cmb = jax.jit(
        lambda k: sample_posterior(k, fn, y, sigma, lam, s, n_samples, n_steps=400)
    )(ks)
    mean_ref, var_ref = wiener_posterior(y, p, lam, sigma)
    np.testing.assert_allclose(np.asarray(dust + cmb), np.broadcast_to(y, dust.shape), atol=1e-12)
    var_emp = mode_variance(dust - mean_ref[None])
    ratio = var_emp / np.asarray(var_ref)
    assert abs(ratio.mean() - 1) < 0.02
    assert np.all(np.abs(ratio - 1) < 0.15)
    # posterior mean per Fourier mode within 5 Monte-Carlo standard errors
    dmean = np.fft.fft2(np.asarray(dust.mean(0) - mean_ref), norm="ortho")
    z = np.abs(dmean) / np.sqrt(np.asarray(var_ref) / n_samples)
    assert np.all(z < 5.0)
    assert np.mean(z**2) < 1.5


@pytest.mark.parametrize("method", ["sde", "ode"])
def test_unconditional_generation_gaussian_prior(method, toy_spectra):
    s = LinearSchedule()
    lam, p = (jnp.asarray(a) for a in toy_spectra)
    fn = gaussian_prior_noise_fn(p, lam, s)
    x = jax.jit(lambda k: sample_prior(k, fn, 2000, lam, s, n_steps=400, method=method))(
        jax.random.key(2)
    )
    ratio = mode_variance(x) / np.asarray(p)
    assert abs(ratio.mean() - 1) < 0.03
    assert np.all(np.abs(ratio - 1) < 0.2)


def test_posterior_start_rescales_y():
    s = LinearSchedule()
    y = jnp.ones((4, 4))
    t, z = posterior_start(y, 0.6, s)
    assert t == pytest.approx(s.t_star(0.6))
    np.testing.assert_allclose(np.asarray(z), 1 / np.sqrt(1.36))


def test_sample_posterior_shape_errors():
    s = LinearSchedule()
    lam = jnp.ones((8, 8))
    with pytest.raises(ValueError, match="y must be"):
        sample_posterior(jax.random.key(0), None, jnp.ones((4, 4)), 0.5, lam, s, 2)

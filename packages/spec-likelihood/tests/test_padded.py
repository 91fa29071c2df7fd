"""Layouts as data (padding to k_max / t_max) and the closed-form curvature models."""

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
    _likelihood,
    component_maps_likelihood,
    fit_likelihood,
    mixing_matrix,
    quadratic_term_vgh,
)
from spec_likelihood._likelihood import _einsum

COMPS = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
FREQS = np.array([30.0, 40.0, 60.0, 90.0, 140.0, 220.0, 280.0, 350.0])
N_PIX = 96
SIGMA = np.full(FREQS.size, 0.3)
K_MAX = {"beta_d": 8, "T_d": 4, "beta_s": 2}


def _layout(k_bd, k_td, k_bs):
    pix = np.arange(N_PIX)
    return {"beta_d": pix % k_bd, "T_d": (pix // 7) % k_td, "beta_s": (pix // 48) % k_bs}


def _data(labels, seed=0, n=2):
    rng = np.random.default_rng(seed)
    truth = {
        "beta_d": rng.uniform(1.4, 1.7, labels["beta_d"].max() + 1),
        "T_d": rng.uniform(17.0, 24.0, labels["T_d"].max() + 1),
        "beta_s": rng.uniform(-3.2, -2.9, labels["beta_s"].max() + 1),
    }
    a = np.asarray(mixing_matrix(COMPS, FREQS, {k: truth[k][labels[k]] for k in truth}))
    amp = rng.normal(size=(3, 2, N_PIX)) * np.array([1.0, 30.0, 15.0])[:, None, None]
    signal = np.einsum("pfc,csp->fsp", a, amp)
    noise = rng.normal(size=(n, *signal.shape)) * SIGMA[:, None, None]
    return jnp.asarray(signal + noise)


@pytest.fixture(scope="module")
def template():
    return SpectralLikelihood.create(
        COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, _layout(8, 4, 2), k_max=K_MAX, t_max=128
    )


def test_padded_fits_equal_unpadded_fits_with_one_compilation(template):
    @jax.jit
    def fit_padded(arrays, data):
        lik = template.with_layout_arrays(arrays)
        res = jax.vmap(lambda d: fit_likelihood(lik, d))(data)
        cmb = jax.vmap(lambda d, p: component_maps_likelihood(lik, p, d).amplitudes[0])(
            data, res.params
        )
        return res, cmb

    data = _data(_layout(8, 4, 2))
    for counts in [(8, 4, 2), (5, 3, 1), (3, 2, 2)]:
        labels = _layout(*counts)
        padded, cmb_p = fit_padded(template.layout_arrays(labels), data)
        lik = SpectralLikelihood.create(COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, labels)
        plain = jax.vmap(lambda d, lik=lik: fit_likelihood(lik, d))(data)
        cmb = jax.vmap(lambda d, p, lik=lik: component_maps_likelihood(lik, p, d).amplitudes[0])(
            data, plain.params
        )
        assert np.all(np.asarray(padded.converged)) and np.all(np.asarray(plain.converged))
        np.testing.assert_allclose(padded.nll, plain.nll, rtol=1e-13)
        for name, k in zip(("beta_d", "T_d", "beta_s"), counts, strict=True):
            np.testing.assert_allclose(padded.params[name][:, :k], plain.params[name], atol=1e-7)
        np.testing.assert_allclose(cmb_p, cmb, atol=1e-8)
    assert fit_padded._cache_size() == 1


def test_unused_padded_patches_stay_at_their_start(template):
    labels = _layout(5, 3, 1)
    res = fit_likelihood(
        template.with_layout_arrays(template.layout_arrays(labels)), _data(labels)[0]
    )
    lay = template.layout
    init = lay.unflatten(jnp.asarray(template.init))
    for name, k in zip(("beta_d", "T_d", "beta_s"), (5, 3, 1), strict=True):
        np.testing.assert_array_equal(res.params[name][k:], init[name][k:])
        assert not np.any(np.asarray(res.hit_bounds[name][k:]))


def test_layout_arrays_refuse_layouts_beyond_the_padding(template):
    with pytest.raises(ValueError, match=r"k_max\['beta_d'\] = 8 but the labels have 9"):
        template.layout_arrays(_layout(9, 2, 1))
    big = SpectralLikelihood.create(
        COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, _layout(2, 2, 1), k_max=K_MAX
    )
    with pytest.raises(ValueError, match=r"t_max = .* raise t_max"):
        big.layout_arrays(_layout(8, 4, 2))
    with pytest.raises(ValueError, match="layout arrays: pixel_tuple has shape"):
        arrays = template.layout_arrays(_layout(2, 2, 1))
        template.with_layout_arrays(arrays._replace(pixel_tuple=arrays.pixel_tuple[:-1]))


@pytest.mark.parametrize("columns", [None, (1, 1, 2)])
@pytest.mark.parametrize("n_groups", [1, 2])
def test_closed_form_derivatives_match_autodiff(n_groups, columns):
    rng = np.random.default_rng(3)
    nu = FREQS
    mix = lambda th: mixing_matrix(COMPS, nu, {"beta_d": th[0], "T_d": th[1], "beta_s": th[2]})
    groups = jnp.asarray(rng.uniform(5.0, 15.0, size=(n_groups, nu.size)))
    d = rng.normal(size=(n_groups, nu.size, 40)) * 10.0
    nd = groups[:, :, None] * d
    stats = jnp.einsum("gfp,ghp->gfh", nd, nd)

    def f(th):
        a = mix(th)
        m = jnp.einsum("fc,gf,fk->gck", a, groups, a)
        b = jnp.einsum("fc,gfh,hk->gck", a, stats, a)
        return -0.5 * jnp.sum(jnp.linalg.inv(m) * b)

    theta = jnp.array([1.5, 19.0, -3.1])
    value, grad, hess = quadratic_term_vgh(mix, theta, groups, stats, "hybrid", columns)
    np.testing.assert_allclose(value, f(theta), rtol=1e-12)
    np.testing.assert_allclose(grad, jax.grad(f)(theta), rtol=1e-9, atol=1e-9 * abs(value))
    np.testing.assert_allclose(hess[1], jax.hessian(f)(theta), rtol=1e-8, atol=1e-8)
    # Gauss-Newton: symmetric positive semi-definite everywhere
    assert np.all(np.linalg.eigvalsh(np.asarray(hess[0])) > -1e-8 * abs(hess[0]).max())


@pytest.mark.parametrize("hessian", ["gauss-newton", "exact"])
def test_column_form_equals_the_general_form(hessian):
    # (beta_d, T_d) enter the dust column, beta_s the synchrotron one: the bilinear-form
    # derivatives equal the general closed form for each curvature model alone too
    rng = np.random.default_rng(21)
    mix = lambda th: mixing_matrix(COMPS, FREQS, {"beta_d": th[0], "T_d": th[1], "beta_s": th[2]})
    groups = jnp.asarray(rng.uniform(5.0, 15.0, size=(2, FREQS.size)))
    nd = groups[:, :, None] * rng.normal(size=(2, FREQS.size, 25)) * 20.0
    stats = jnp.einsum("gfp,ghp->gfh", nd, nd)
    theta = jnp.array([1.45, 23.0, -2.8])
    general = quadratic_term_vgh(mix, theta, groups, stats, hessian)
    column = quadratic_term_vgh(mix, theta, groups, stats, hessian, (1, 1, 2))
    for a, b in zip(column, general, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12 * float(jnp.max(jnp.abs(b))))


def test_param_columns_name_the_component_of_each_free_parameter():
    lik = SpectralLikelihood.create(COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, _layout(2, 2, 1))
    assert lik.param_columns == (1, 1, 2)
    fixed = SpectralLikelihood.create(
        COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, {"beta_s": np.zeros(N_PIX, int)}, fixed={"T_d": 20.0}
    )
    assert fixed.layout.free_names == ("beta_d", "beta_s") and fixed.param_columns == (1, 2)
    # a parameter shared by two components moves two columns: the general form is used
    shared = SpectralLikelihood.create(
        [CMB(), Dust(nu0=150.0), Dust(nu0=353.0)], FREQS, 1.0 / SIGMA**2, N_PIX
    )
    assert shared.param_columns is None


SPECS = ("fc,gfk->gck", "gfh,hc->gfc", "gck,jgkl->jgcl", "ifc,jgfc->ij")
SPECS += ("gfc,ijfc->ij", "jfc,gfk->jgck")


@pytest.mark.parametrize("spec", SPECS)
def test_broadcast_contraction_is_einsum(spec):
    # The multiply-and-reduce contraction used on per-term matrices equals jnp.einsum.
    sizes = {"f": 7, "h": 7, "c": 3, "k": 3, "l": 3, "g": 2, "i": 3, "j": 3}
    rng = np.random.default_rng(11)
    ins = spec.split("->")[0].split(",")
    x, y = (rng.normal(size=[sizes[c] for c in s]) for s in ins)
    np.testing.assert_allclose(_einsum(spec, x, y), np.einsum(spec, x, y), rtol=1e-13, atol=1e-13)


def test_term_derivatives_agree_between_contraction_kinds(monkeypatch):
    rng = np.random.default_rng(12)
    mix = lambda th: mixing_matrix(COMPS, FREQS, {"beta_d": th[0], "T_d": th[1], "beta_s": th[2]})
    groups = jnp.asarray(rng.uniform(5.0, 15.0, size=(2, FREQS.size)))
    nd = groups[:, :, None] * rng.normal(size=(2, FREQS.size, 30))
    stats = jnp.einsum("gfp,ghp->gfh", nd, nd)
    theta = jnp.array([1.6, 18.0, -2.9])
    out = {}
    for kind in ("broadcast", "dot"):
        monkeypatch.setattr(_likelihood, "_CONTRACTION", kind)
        out[kind] = quadratic_term_vgh(mix, theta, groups, stats, "hybrid")
    for a, b in zip(out["broadcast"], out["dot"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-11 * float(jnp.max(jnp.abs(b))))


def test_gauss_newton_is_the_exact_hessian_on_noiseless_data_at_the_truth():
    theta = jnp.array([1.58, 21.0, -3.05])
    mix = lambda th: mixing_matrix(COMPS, FREQS, {"beta_d": th[0], "T_d": th[1], "beta_s": th[2]})
    s = np.random.default_rng(4).normal(size=(3, 50)) * np.array([[1.0], [30.0], [15.0]])
    d = np.asarray(mix(theta)) @ s
    groups = jnp.asarray(1.0 / SIGMA[None] ** 2)
    nd = groups[0][:, None] * d
    stats = jnp.asarray((nd @ nd.T)[None])
    _, grad, hess = quadratic_term_vgh(mix, theta, groups, stats, "hybrid")
    np.testing.assert_allclose(hess[0], hess[1], rtol=1e-7, atol=1e-9 * abs(hess[1]).max())
    assert np.max(np.abs(grad)) < 1e-6 * np.max(np.abs(hess))


@pytest.mark.parametrize("hessian", ["hybrid", "gauss-newton", "exact"])
def test_every_curvature_model_reaches_the_same_optimum(hessian):
    labels = _layout(4, 2, 1)
    data = _data(labels, seed=5)[0]
    lik = SpectralLikelihood.create(COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, labels)
    res = fit_likelihood(lik, data, hessian=hessian, gtol=1e-8)
    ref = fit_likelihood(lik, data, hessian="exact", gtol=1e-10, max_iter=500)
    assert bool(res.converged)
    np.testing.assert_allclose(res.nll, ref.nll, rtol=1e-14)
    for name in res.params:  # T_d is the flattest direction: ~1e-6 relative at rtol's stop
        np.testing.assert_allclose(res.params[name], ref.params[name], rtol=1e-5)
    with pytest.raises(ValueError, match="hessian must be"):
        fit_likelihood(lik, data, hessian="bfgs")


@pytest.mark.parametrize("padded", [False, True])
def test_sparse_schur_equals_the_dense_one(monkeypatch, template, padded):
    # Large eliminated blocks build the Schur complement term by term; same fits.
    from spec_likelihood import _optimize

    labels = _layout(8, 4, 2)
    data = _data(labels, seed=7, n=3)
    lik = SpectralLikelihood.create(COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, labels)
    if padded:  # padded terms and unused patches must stay out of the runs
        lik = template.with_layout_arrays(template.layout_arrays(_layout(6, 3, 2)))
        data = _data(_layout(6, 3, 2), seed=8, n=3)

    def fits():
        return jax.jit(jax.vmap(lambda d: fit_likelihood(lik, d, hessian="exact")))(data)

    dense = fits()
    monkeypatch.setattr(_optimize, "_DENSE_SCHUR_MAX", -1)
    sparse = fits()
    assert bool(jnp.all(dense.converged)) and bool(jnp.all(sparse.converged))
    np.testing.assert_array_equal(dense.n_iter, sparse.n_iter)
    np.testing.assert_allclose(sparse.nll, dense.nll, rtol=1e-13)
    for name in dense.params:
        np.testing.assert_allclose(sparse.params[name], dense.params[name], rtol=1e-9)


def test_sparse_schur_product_matches_dense_algebra():
    from spec_likelihood import _optimize

    rng = np.random.default_rng(3)
    k_e, k_a, k_b, n_t = 7, 3, 2, 15
    term_index = np.stack(
        [rng.integers(0, k_e, n_t), k_e + rng.integers(0, k_a, n_t),
         k_e + k_a + rng.integers(0, k_b, n_t)], axis=1
    )  # fmt: skip
    st = _optimize._structure(term_index, (k_e, k_a, k_b))
    key = jnp.asarray(st.term_e, jnp.int32)
    order = jnp.argsort(key, stable=True)
    runs = jnp.zeros(k_e, jnp.int32).at[key].add(1)
    st = st._replace(sparse=True, order=order, e_key=key[order], max_run=jnp.max(runs))
    c = jnp.asarray(rng.normal(size=(n_t, 2)))
    w = jnp.asarray(rng.uniform(0.5, 2.0, k_e))
    dense = np.zeros((k_e, k_a + k_b))
    np.add.at(dense, (np.asarray(st.term_e)[:, None], np.asarray(st.term_r)), np.asarray(c))
    expected = dense.T @ np.diag(np.asarray(w)) @ dense
    np.testing.assert_allclose(_optimize._sparse_schur_product(c, w, st), expected, rtol=1e-13)
    v = rng.normal(size=k_a + k_b)
    np.testing.assert_allclose(_optimize._cross_matvec(c, jnp.asarray(v), st), dense @ v)
    u = rng.normal(size=k_e)
    np.testing.assert_allclose(_optimize._cross_rmatvec(c, jnp.asarray(u), st), dense.T @ u)

"""Spectral likelihood: per-pixel and aggregated forms against an independent numpy reference."""

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
    mixing_matrix,
    negative_log_likelihood,
    patch_layout,
)
from spec_likelihood._likelihood import _spd_inverse, _unique_rows

COMPS = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
FREQS = np.array([30.0, 40.0, 60.0, 90.0, 140.0, 220.0, 280.0, 350.0])
N_PIX = 60


def _problem(seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = {
        "beta_d": rng.integers(0, 4, N_PIX),
        "T_d": rng.integers(0, 3, N_PIX),
        "beta_s": rng.integers(0, 2, N_PIX),
    }
    for v in labels.values():  # make every label used
        v[: v.max() + 1] = np.arange(v.max() + 1)
    params = {
        "beta_d": rng.uniform(1.3, 1.8, 4),
        "T_d": rng.uniform(15.0, 25.0, 3),
        "beta_s": rng.uniform(-3.3, -2.7, 2),
    }
    a = np.asarray(
        mixing_matrix(COMPS, FREQS, {k: params[k][labels[k]] for k in params})
    )  # [P, F, C]
    s = rng.normal(size=(3, 2, N_PIX)) * np.array([1.0, 20.0, 8.0])[:, None, None]
    sigma = rng.uniform(0.5, 2.0, FREQS.size)
    data = (
        np.einsum("pfc,csp->fsp", a, s)
        + rng.normal(size=(FREQS.size, 2, N_PIX)) * sigma[:, None, None]
    )
    return data, labels, params, 1.0 / sigma**2


def _numpy_nll(params, data, labels, ninv_fsp, fixed=None):
    """Independent reference: per pixel and Stokes, numpy solves (float64)."""
    values = {k: np.asarray(params[k])[labels[k]] for k in params}
    values |= fixed or {}
    a = np.asarray(mixing_matrix(COMPS, FREQS, values))
    total = 0.0
    for p in range(data.shape[-1]):
        for s in range(data.shape[1]):
            w = ninv_fsp[:, s, p]
            y = a[p].T @ (w * data[:, s, p])
            m = a[p].T @ (w[:, None] * a[p])
            total += -0.5 * y @ np.linalg.solve(m, y)
    return total


def test_both_forms_match_numpy_reference():
    data, labels, params, ninv = _problem()
    ref = _numpy_nll(params, data, labels, np.broadcast_to(ninv[:, None, None], data.shape))
    agg = negative_log_likelihood(params, data, COMPS, FREQS, ninv, labels, method="aggregated")
    pix = negative_log_likelihood(params, data, COMPS, FREQS, ninv, labels, method="pixel")
    assert float(agg) == pytest.approx(ref, rel=1e-12)
    assert float(pix) == pytest.approx(ref, rel=1e-12)
    assert float(agg) == pytest.approx(float(pix), rel=1e-12)


def test_per_stokes_noise_groups_and_fixed_map():
    data, labels, params, ninv = _problem(1)
    ninv_fs = np.stack([ninv, 1.7 * ninv], axis=1)  # Q and U with different noise
    t_map = np.where(np.arange(N_PIX) % 2 == 0, 18.0, 22.0)  # fixed per-pixel T_d
    free = {"beta_d": params["beta_d"], "beta_s": params["beta_s"]}
    lab = {"beta_d": labels["beta_d"], "beta_s": labels["beta_s"]}
    ref = _numpy_nll(
        free, data, lab, np.broadcast_to(ninv_fs[:, :, None], data.shape), {"T_d": t_map}
    )
    for method in ("aggregated", "pixel"):
        val = negative_log_likelihood(
            free, data, COMPS, FREQS, ninv_fs, lab, fixed={"T_d": t_map}, method=method
        )
        assert float(val) == pytest.approx(ref, rel=1e-12)


def test_inhomogeneous_noise_matches_numpy():
    data, labels, params, ninv = _problem(2)
    rng = np.random.default_rng(5)
    ninv_map = ninv[:, None, None] * rng.uniform(0.3, 3.0, size=data.shape)
    ref = _numpy_nll(params, data, labels, ninv_map)
    val = negative_log_likelihood(params, data, COMPS, FREQS, ninv_map, labels)
    assert float(val) == pytest.approx(ref, rel=1e-12)
    with pytest.raises(ValueError, match="aggregated"):
        negative_log_likelihood(params, data, COMPS, FREQS, ninv_map, labels, method="aggregated")


def test_mask_excludes_pixels():
    data, labels, params, ninv = _problem(3)
    keep = np.ones(N_PIX, bool)
    keep[[7, 11, 40]] = False
    bad = data.copy()
    bad[:, :, ~keep] = -1.6375e30  # healpy UNSEEN
    idx = np.flatnonzero(keep)
    ref = _numpy_nll(
        params,
        data[..., idx],
        {k: v[idx] for k, v in labels.items()},
        np.broadcast_to(ninv[:, None, None], data[..., idx].shape),
    )
    val = negative_log_likelihood(params, bad, COMPS, FREQS, ninv, labels, mask=keep)
    assert float(val) == pytest.approx(ref, rel=1e-12)


def test_batched_params_and_data_jit_matches_eager():
    data, labels, params, ninv = _problem(4)
    lik = SpectralLikelihood.create(COMPS, FREQS, ninv, N_PIX, labels)
    batch = np.stack([data, 0.5 * data, -data])
    eager = lik.negative_log_likelihood(params, batch)
    jitted = jax.jit(lik.negative_log_likelihood)(params, jnp.asarray(batch))
    loop = [float(lik.negative_log_likelihood(params, d)) for d in batch]
    np.testing.assert_allclose(eager, loop, rtol=1e-13)
    np.testing.assert_allclose(jitted, loop, rtol=1e-13)
    assert float(eager[1]) == pytest.approx(0.25 * float(eager[0]), rel=1e-12)


def test_gradient_matches_finite_differences():
    data, labels, params, ninv = _problem(5)
    lik = SpectralLikelihood.create(COMPS, FREQS, ninv, N_PIX, labels)
    x = lik.layout.flatten(params)
    d = jnp.asarray(data)
    for method in ("aggregated", "pixel"):
        f = jax.jit(lambda xx, m=method: lik.nll_flat(xx, d, m))
        g = np.asarray(jax.jit(jax.grad(f))(x))
        h = 1e-5 * np.maximum(np.abs(np.asarray(x)), 1.0)
        fd = np.array(
            [
                (float(f(x.at[i].add(h[i]))) - float(f(x.at[i].add(-h[i])))) / (2 * h[i])
                for i in range(x.shape[0])
            ]
        )
        np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6 * np.max(np.abs(g)))


@pytest.mark.parametrize("c", [1, 2, 3, 4, 5])
def test_small_spd_inverse(c):
    # well-conditioned core with a wide diagonal scaling, as A^T N^-1 A of CMB/dust/synchrotron
    rng = np.random.default_rng(c)
    r = rng.normal(size=(6, c, c))
    scale = np.logspace(0, 5, c)
    m = scale[:, None] * (r @ np.swapaxes(r, 1, 2) + c * np.eye(c)) * scale[None, :]
    ref = np.linalg.inv(m)
    got = np.asarray(_spd_inverse(jnp.asarray(m)))
    rel = np.abs(got - ref) / np.sqrt(
        np.abs(np.diagonal(ref, axis1=1, axis2=2))[:, :, None]
        * np.abs(np.diagonal(ref, axis1=1, axis2=2))[:, None, :]
    )
    assert rel.max() < 1e-12


def test_layout_groups_label_tuples():
    labels = {"a": np.array([0, 0, 1, 1, 2]), "b": np.array([0, 0, 0, 1, 1])}
    lay = patch_layout(["a", "b"], 5, labels)
    assert lay.n_patches == (3, 2)
    assert lay.n_tuples == 4  # (0,0) (1,0) (1,1) (2,1)
    np.testing.assert_array_equal(
        lay.tuple_labels[lay.pixel_tuple], np.stack([labels["a"], labels["b"]], 1)
    )
    x = lay.flatten({"a": [1.0, 2.0, 3.0], "b": [10.0, 20.0]})
    np.testing.assert_array_equal(x, [1, 2, 3, 10, 20])
    np.testing.assert_array_equal(lay.unflatten(x)["b"], [10, 20])


def test_bad_input_names_the_argument():
    data, labels, params, ninv = _problem(6)
    call = lambda **kw: negative_log_likelihood(
        kw.pop("params", params),
        kw.pop("data", data),
        COMPS,
        kw.pop("freqs", FREQS),
        kw.pop("ninv", ninv),
        kw.pop("labels", labels),
        **kw,
    )
    with pytest.raises(ValueError, match="data must have shape"):
        call(data=data[:-1])
    with pytest.raises(ValueError, match="noise_inv_var"):
        call(ninv=ninv[:-1])
    with pytest.raises(ValueError, match="frequencies"):
        call(freqs=-FREQS)
    gap = dict(labels, beta_d=np.where(labels["beta_d"] == 1, 7, labels["beta_d"]))
    with pytest.raises(ValueError, match=r"labels\['beta_d'\] must be contiguous"):
        call(labels=gap)
    with pytest.raises(ValueError, match=r"labels\['beta_d'\] must be a 1-D array"):
        call(labels=dict(labels, beta_d=labels["beta_d"][:-1]))
    with pytest.raises(ValueError, match="labels: unknown parameter names"):
        call(labels=dict(labels, beta_x=labels["beta_d"]))
    with pytest.raises(ValueError, match="fixed: unknown parameter names"):
        call(fixed={"nu_peak": 30.0})
    nan = data.copy()
    nan[0, 0, 3] = np.nan
    with pytest.raises(ValueError, match="data holds non-finite values"):
        call(data=nan)
    with pytest.raises(ValueError, match=r"params\['T_d'\] has 2 values"):
        call(params=dict(params, T_d=params["T_d"][:2]))
    with pytest.raises(ValueError, match="mask must be a bool"):
        call(mask=np.ones(N_PIX))


def test_unique_rows_is_the_row_wise_unique():
    rng = np.random.default_rng(4)
    for key in (
        rng.integers(0, 5, (300, 3)),
        rng.integers(0, 3000, (2000, 4)),
        np.zeros((7, 1), np.int64),
        rng.integers(0, 2**40, (50, 2)),  # radix product beyond int64: row-wise fallback
    ):
        tuples, inverse = _unique_rows(key)
        ref_t, ref_i = np.unique(key, axis=0, return_inverse=True)
        np.testing.assert_array_equal(tuples, ref_t)
        np.testing.assert_array_equal(inverse, ref_i.reshape(-1))
        np.testing.assert_array_equal(tuples[inverse], key)

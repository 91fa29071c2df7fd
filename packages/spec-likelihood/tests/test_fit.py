"""Bounded Newton fit: truth recovery, optimality, batching, statuses, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from spec_likelihood import (
    CMB,
    Dust,
    FitStatus,
    SpectralLikelihood,
    Synchrotron,
    fit,
    fit_likelihood,
    fit_likelihood_batch,
    minimize_partially_separable,
    mixing_matrix,
)

COMPS = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
FREQS = np.array([30.0, 40.0, 60.0, 90.0, 140.0, 220.0, 280.0, 350.0])
N_PIX = 80
SIGMA = np.full(FREQS.size, 0.3)


def _sky(seed=0):
    rng = np.random.default_rng(seed)
    labels = {
        "beta_d": np.arange(N_PIX) % 4,
        "T_d": np.arange(N_PIX) // 40,
        "beta_s": np.zeros(N_PIX, int),
    }
    truth = {
        "beta_d": np.array([1.45, 1.55, 1.6, 1.7]),
        "T_d": np.array([18.0, 23.0]),
        "beta_s": np.array([-3.1]),
    }
    a = np.asarray(mixing_matrix(COMPS, FREQS, {k: truth[k][labels[k]] for k in truth}))
    amp = rng.normal(size=(3, 2, N_PIX)) * np.array([1.0, 30.0, 15.0])[:, None, None]
    return np.einsum("pfc,csp->fsp", a, amp), labels, truth


@pytest.fixture(scope="module")
def problem():
    signal, labels, truth = _sky()
    lik = SpectralLikelihood.create(COMPS, FREQS, 1.0 / SIGMA**2, N_PIX, labels)
    # one compilation serves every batched test: tolerances and limits are traced arguments
    batched = jax.jit(
        jax.vmap(
            lambda d, x0, gtol, rtol, max_iter: fit_likelihood(
                lik, d, x0, gtol=gtol, rtol=rtol, max_iter=max_iter
            ),
            in_axes=(0, 0, None, None, None),
        )
    )
    return lik, signal, truth, batched


def _noisy(signal, seed, n=3):
    noise = np.random.default_rng(seed).normal(size=(n, *signal.shape)) * SIGMA[:, None, None]
    return jnp.asarray(signal + noise)


# near a local minimum of the noiseless problem below (where an earlier, more damped version of
# the solver stopped): dust-like synchrotron (beta_s ~ -1.7) with cold dust
LOCAL_MINIMUM = np.array([1.92, 2.17, 1.42, 2.36, 10.13, 11.47, -1.66])


def test_truth_recovered_from_random_starts(problem):
    # noiseless data: the truth is the global optimum, but the likelihood is multimodal;
    # every start converges, to the truth or to a genuinely higher local minimum
    lik, signal, truth, batched = problem
    rng = np.random.default_rng(1)
    starts = lik.lower + rng.uniform(size=(3, lik.layout.n_params)) * (lik.upper - lik.lower)
    starts[2] = LOCAL_MINIMUM
    data = jnp.broadcast_to(jnp.asarray(signal), (3, *signal.shape))
    res = batched(data, starts, 1e-6, 1e-15, 200)
    assert np.all(np.asarray(res.converged)), np.asarray(res.status)
    f_truth = float(lik.nll_flat(lik.layout.flatten(truth), jnp.asarray(signal)))
    x = np.asarray(lik.layout.flatten(res.params))
    at_truth = np.all(np.isclose(x, np.asarray(lik.layout.flatten(truth)), rtol=1e-4), axis=1)
    assert np.all(at_truth | (np.asarray(res.nll) > f_truth + 1e3))  # no false convergence
    assert at_truth.sum() >= 2
    assert np.all(np.asarray(res.n_evals) < 60)


def test_vmap_over_realisations_matches_loop(problem):
    lik, signal, _, batched = problem
    data = _noisy(signal, 2)
    x0 = np.broadcast_to(lik.init, (3, lik.init.size))
    res = batched(data, x0, 1e-6, 1e-15, 200)
    single = jax.jit(lambda d: fit_likelihood(lik, d))
    for i in range(3):
        one = single(data[i])
        for name in lik.layout.free_names:
            # batched and single programs round differently: same optimum, not same bits
            np.testing.assert_allclose(res.params[name][i], one.params[name], rtol=1e-7)
    assert np.all(np.asarray(res.converged))


def test_optimum_has_zero_gradient_and_matches_scipy(problem):
    lik, signal, _, batched = problem
    data = _noisy(signal, 3)
    res = batched(data, np.broadcast_to(lik.init, (3, lik.init.size)), 1e-6, 1e-15, 200)
    assert np.all(np.asarray(res.converged))
    d0 = data[0]
    f = jax.jit(lambda x: lik.nll_flat(x, d0))
    g = jax.jit(jax.grad(lambda x: lik.nll_flat(x, d0)))
    x = lik.layout.flatten(res.params)[0]
    hess = jax.jit(jax.hessian(lambda x: lik.nll_flat(x, d0)))(x)
    sigma = np.sqrt(np.diag(np.linalg.inv(np.asarray(hess))))
    assert np.max(np.abs(np.asarray(g(x))) * sigma) < 1e-4  # gradient x error << 1
    ref = scipy.optimize.minimize(
        lambda z: float(f(jnp.asarray(z))),
        lik.init,
        jac=lambda z: np.asarray(g(jnp.asarray(z))),
        method="L-BFGS-B",
        bounds=list(zip(lik.lower, lik.upper, strict=False)),
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 2000},
    )
    assert float(res.nll[0]) <= ref.fun + 1e-10 * abs(ref.fun)
    np.testing.assert_allclose(x, ref.x, atol=1e-2 * sigma.min())


def test_statuses_max_iter_and_non_finite(problem):
    lik, signal, _, batched = problem
    data = jnp.broadcast_to(jnp.asarray(signal), (3, *signal.shape)).at[2, 0, 0, 0].set(jnp.nan)
    x0 = np.broadcast_to(lik.init, (3, lik.init.size))
    res = batched(data, x0, 1e-6, 1e-15, 1)
    assert int(res.status[0]) == FitStatus.MAX_ITER and not bool(res.converged[0])
    assert int(res.status[2]) == FitStatus.NON_FINITE and not bool(res.converged[2])
    assert int(res.n_evals[2]) == 1


def test_bounds_hold_and_are_reported():
    signal, labels, _ = _sky()
    res = fit(
        signal,
        COMPS,
        FREQS,
        1.0 / SIGMA**2,
        labels,
        init={"beta_s": -2.5},
        bounds={"beta_s": (-2.9, -2.0), "T_d": (19.0, 30.0)},
    )
    assert bool(res.converged)
    np.testing.assert_allclose(res.params["beta_s"], [-2.9])
    assert bool(res.hit_bounds["beta_s"][0])
    assert np.all(np.asarray(res.params["T_d"]) >= 19.0)
    assert not np.any(np.asarray(res.hit_bounds["beta_d"]))


def test_fixed_parameter_and_pixel_form():
    signal, labels, truth = _sky()
    t_map = truth["T_d"][labels["T_d"]]
    lab = {"beta_d": labels["beta_d"], "beta_s": labels["beta_s"]}
    ninv_map = np.broadcast_to((1.0 / SIGMA**2)[:, None, None], signal.shape)
    res = fit(signal, COMPS, FREQS, ninv_map, lab, fixed={"T_d": t_map})  # per-pixel form
    assert bool(res.converged)
    assert set(res.params) == {"beta_d", "beta_s"}
    np.testing.assert_allclose(res.params["beta_d"], truth["beta_d"], rtol=1e-4)
    np.testing.assert_allclose(res.params["beta_s"], truth["beta_s"], rtol=1e-4)


def test_multi_start_escapes_local_minimum(problem):
    # from the start that stops in a local minimum above, the multi-start fit (which adds
    # the default physical start and random ones) reaches the truth: robust from any start
    lik, signal, truth, _ = problem
    res = jax.jit(lambda d, x0: fit_likelihood(lik, d, x0, n_starts=4, key=3))(
        jnp.asarray(signal), LOCAL_MINIMUM
    )
    assert bool(res.converged)
    for name, value in truth.items():
        np.testing.assert_allclose(res.params[name], value, rtol=1e-4)
    assert int(res.n_evals) > int(res.n_iter) + 1  # evaluations of every start are counted


def test_generic_minimiser_against_scipy():
    # partially separable: f = sum_t w_t (x_a - c_t)^4/4 + (x_a x_b - 1)^2 + 0.1 x_b^2
    rng = np.random.default_rng(0)
    idx = np.stack([np.arange(12) % 5, 5 + np.arange(12) % 3], axis=1)
    c = rng.normal(size=12)

    def term(theta, ct):
        a, b = theta[0], theta[1]
        return 0.25 * (a - ct) ** 4 + (a * b - 1.0) ** 2 + 0.1 * b**2

    lo, hi = np.full(8, -2.0), np.full(8, 2.0)
    res = minimize_partially_separable(
        term, jnp.asarray(c), idx, (5, 3), jnp.zeros(8) + 0.5, lo, hi, gtol=1e-8, rtol=0.0
    )
    total = lambda x: sum(float(term(x[idx[t]], c[t])) for t in range(12))
    ref = scipy.optimize.minimize(
        total,
        np.full(8, 0.5),
        method="L-BFGS-B",
        bounds=list(zip(lo, hi, strict=False)),
        options={"ftol": 1e-15, "gtol": 1e-12},
    )
    assert int(res.status) == FitStatus.CONVERGED_GTOL
    assert float(res.fun) <= ref.fun + 1e-10
    np.testing.assert_allclose(res.x, ref.x, atol=1e-5)


def test_fit_bad_input_names_the_argument():
    signal, labels, _ = _sky()
    ninv = 1.0 / SIGMA**2
    with pytest.raises(ValueError, match=r"bounds\['beta_d'\]"):
        fit(signal, COMPS, FREQS, ninv, labels, bounds={"beta_d": (2.0, 1.0)})
    with pytest.raises(ValueError, match="bounds: unknown parameter names"):
        fit(signal, COMPS, FREQS, ninv, labels, bounds={"beta": (0.0, 1.0)})
    with pytest.raises(ValueError, match=r"init\['T_d'\] lies outside"):
        fit(signal, COMPS, FREQS, ninv, labels, init={"T_d": 80.0})
    with pytest.raises(ValueError, match="n_starts"):
        fit(signal, COMPS, FREQS, ninv, labels, n_starts=0)
    with pytest.raises(ValueError, match="nothing to fit"):
        fit(signal, COMPS, FREQS, ninv, fixed={"beta_d": 1.5, "T_d": 20.0, "beta_s": -3.0})
    with pytest.raises(ValueError, match="noise_inv_var has 3 pixels"):
        fit(signal, COMPS, FREQS, np.ones((FREQS.size, 2, 3)), labels)


def test_flat_directions_do_not_hop_between_bounds():
    # Pseudo-Huber terms are nearly flat away from their minima: from the upper bound the
    # Newton step of each is ~10x the box and, projected, lands on the other bound. The
    # damping of over-long diagonal steps walks them in instead (0.2.1 took 21 iterations).
    c = np.linspace(1.0, 4.5, 40)
    term = lambda th, a: jnp.sqrt(0.01 + (th[0] - a) ** 2)
    res = minimize_partially_separable(
        term,
        jnp.asarray(c),
        np.arange(40)[:, None],
        (40,),
        jnp.full(40, 5.0),
        jnp.full(40, 0.5),
        jnp.full(40, 5.0),
    )
    assert int(res.status) == int(FitStatus.CONVERGED_GTOL)
    np.testing.assert_allclose(res.x, c, atol=1e-6)
    assert int(res.n_iter) <= 16


def test_batch_compaction_gives_the_plain_batch_fits(problem):
    # compacted rounds (3 fits at a time after 2 iterations of the whole batch) resume each
    # fit where it paused: the same iterations, hence the same optima, as one vmapped call
    lik, signal, _, _ = problem
    data = _noisy(signal, 5, n=10)
    plain = jax.jit(jax.vmap(lambda d: fit_likelihood(lik, d)))(data)
    packed = jax.jit(lambda d: fit_likelihood_batch(lik, d, compact_after=2, compact_size=3))(data)
    assert np.all(np.asarray(plain.converged))
    assert int(np.max(plain.n_iter)) > 2  # every fit went through the compacted rounds
    np.testing.assert_array_equal(packed.n_iter, plain.n_iter)
    np.testing.assert_array_equal(packed.status, plain.status)
    np.testing.assert_array_equal(packed.n_evals, plain.n_evals)
    np.testing.assert_allclose(packed.nll, plain.nll, rtol=1e-14)
    for k in plain.params:
        np.testing.assert_allclose(packed.params[k], plain.params[k], rtol=1e-10, atol=1e-12)
    # with a late cap the side-by-side phase stops on its own once <= 3 fits still run
    late = jax.jit(lambda d: fit_likelihood_batch(lik, d, compact_after=150, compact_size=3))(data)
    np.testing.assert_array_equal(late.n_iter, plain.n_iter)
    np.testing.assert_allclose(late.nll, plain.nll, rtol=1e-14)
    # the plain path is taken when nothing would be compacted
    same = fit_likelihood_batch(lik, data, compact_after=None)
    np.testing.assert_array_equal(same.n_iter, plain.n_iter)
    with pytest.raises(ValueError, match="compact_size"):
        fit_likelihood_batch(lik, data, compact_after=2, compact_size=0)
    with pytest.raises(ValueError, match="compact_after"):
        fit_likelihood_batch(lik, data, compact_after=0)
    with pytest.raises(ValueError, match=r"data must be \[batch"):
        fit_likelihood_batch(lik, data[0], compact_after=2)


def test_batch_pauses_once_few_fits_still_run(problem):
    # vmapped over a named axis, the loop stops as soon as at most min_running fits still
    # run: the others have finished with their own iteration counts, the paused ones all
    # stand at the same iteration, short of their own count
    from spec_likelihood import _fit, _optimize

    lik, signal, _, _ = problem
    data = _noisy(signal, 5, n=10)
    lower, upper = jnp.asarray(lik.lower), jnp.asarray(lik.upper)
    # starts spread over the box: the fits take different numbers of iterations
    u = np.random.default_rng(3).uniform(0.1, 0.9, size=(10, lower.size))
    starts = jnp.asarray(lower + u * (upper - lower))

    def run(d, x0, axis, min_running):
        fn, aux, index, vgh, valid = _fit._terms(lik, d, "auto", "hybrid")
        return _optimize._minimize(
            fn, aux, index, lik.layout.n_patches, x0, lower, upper,
            term_vgh=vgh, term_valid=valid, batch_axis=axis, min_running=min_running,
        )  # fmt: skip

    plain = np.asarray(jax.jit(jax.vmap(lambda d, x: run(d, x, None, 0)[0].n_iter))(data, starts))
    assert len(set(plain.tolist())) >= 3, plain
    state = jax.jit(jax.vmap(lambda d, x: run(d, x, "b", 3)[0], axis_name="b"))(data, starts)
    n_iter, status = np.asarray(state.n_iter), np.asarray(state.status)
    paused = status == _optimize._RUNNING
    assert 1 <= paused.sum() <= 3
    assert len(set(n_iter[paused].tolist())) == 1
    assert np.all(n_iter[paused] < plain[paused])
    np.testing.assert_array_equal(n_iter[~paused], plain[~paused])
    # the pause comes no earlier than needed: one iteration before, more than 3 still ran
    assert np.sum(plain > n_iter[paused][0] - 1) > 3

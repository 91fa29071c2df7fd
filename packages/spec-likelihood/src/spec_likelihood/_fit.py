"""Bounded maximum-likelihood fit of patch-wise spectral parameters.

Minimises the spectral negative log-likelihood (eq. 5 of kabalan2025_clustered_compsep.md) over
per-patch parameters inside their physical box with the projected Newton method of
:mod:`spec_likelihood._optimize` (exact Hessian, block elimination, Levenberg-Marquardt
damping). With homogeneous noise each iteration costs O(number of distinct label tuples).
The fit is pure JAX: jit it, vmap it over noise realisations. The one-patch likelihood is
multimodal once the sky's parameters vary (ANCHORS.md), hence box bounds always apply and
``n_starts > 1`` adds the default physical start and random starts inside the box, all
fitted in one vectorised call, keeping the lowest converged optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int

from ._likelihood import HessianKind, Method, SpectralLikelihood, apply_mask
from ._optimize import _RUNNING, FitStatus, _minimize, hit_bounds
from ._sed import Component

__all__ = ["FitResult", "fit", "fit_likelihood", "fit_likelihood_batch"]


class FitResult(NamedTuple):
    """Result of :func:`fit` (every field gains the data's leading batch dims).

    Attributes:
        params: free parameter name -> ``[K]`` best-fit per-patch values.
        nll: -log L at the optimum (fgbuster convention).
        converged: True when a stopping rule (gtol or rtol) was met.
        status: :class:`FitStatus` code (0/1 converged; 2 max_iter; 3 non-finite; 4 stalled).
        n_iter: Newton iterations of the selected start.
        n_evals: likelihood evaluations (value + gradient + Hessian) summed over all starts.
        hit_bounds: name -> ``[K]`` bool, True where the parameter sits on its box bound.
        scaled_gradient: max curvature-scaled projected gradient at the optimum.
    """

    params: dict[str, Float[Array, " k"]]
    nll: Float[Array, ""]
    converged: Bool[Array, ""]
    status: Int[Array, ""]
    n_iter: Int[Array, ""]
    n_evals: Int[Array, ""]
    hit_bounds: dict[str, Bool[Array, " k"]]
    scaled_gradient: Float[Array, ""]


def _terms(lik: SpectralLikelihood, data: Array, method: Method, hessian: HessianKind):
    """(term_fn, aux, term_index, term_vgh, term_valid) of the likelihood form for one data set."""
    lay = lik.layout
    if lik._method(method) == "aggregated":
        aux = (jnp.asarray(lay.tuple_fixed), lik.sufficient_statistics(data))
        fn = lambda th, a: lik.aggregated_term(th, a[0], a[1])
        vgh = lambda th, a: lik.aggregated_term_vgh(th, a[0], a[1], hessian)
        return fn, aux, lay.tuple_index, vgh, jnp.asarray(lay.tuple_valid)
    d_p = jnp.moveaxis(data, -1, 0)
    aux = (jnp.asarray(lay.pixel_fixed), d_p, lik.pixel_noise(data.shape[-2]))
    fn = lambda th, a: lik.pixel_term(th, a[0], a[1], a[2])
    vgh = lambda th, a: lik.pixel_term_vgh(th, a[0], a[1], a[2], hessian)
    return fn, aux, lay.pixel_index, vgh, jnp.ones(lay.n_pix, bool)


def _solver(lik: SpectralLikelihood, data: Array, method: Method, hessian: HessianKind, **tol):
    """``(start, **options) -> _minimize(...)`` over the likelihood terms of ``data``.

    ``tol``: ``gtol``, ``rtol``, ``max_iter``; ``options``: the pause/resume arguments of
    :func:`_minimize` (``state``, ``stop_at``, ``batch_axis``, ``min_running``).
    """
    fn, aux, index, vgh, valid = _terms(lik, data, method, hessian)
    lower, upper = jnp.asarray(lik.lower), jnp.asarray(lik.upper)
    n_patches = lik.layout.n_patches

    def solve(start, **options):
        return _minimize(
            fn,
            aux,
            index,
            n_patches,
            start,
            lower,
            upper,
            term_vgh=vgh,
            term_valid=valid,
            **tol,
            **options,
        )

    return solve


def fit_likelihood(
    lik: SpectralLikelihood,
    data: Float[Array, "freq stokes pix"],
    x0: Float[Array, " n_params"] | None = None,
    *,
    n_starts: int = 1,
    key: Array | int = 0,
    gtol: float = 1e-6,
    rtol: float = 1e-15,
    max_iter: int = 200,
    method: Method = "auto",
    hessian: HessianKind = "hybrid",
) -> FitResult:
    """Fit one data set (no batch dims): pure JAX, jit- and vmap-able over data and x0.

    Args:
        lik: the likelihood (from :meth:`SpectralLikelihood.create`).
        data: ``[n_freq, n_stokes, n_pix]`` maps [uK_CMB].
        x0: flat starting vector (default ``lik.init``).
        n_starts: number of starts; start 0 is ``x0``, start 1 the likelihood's default
            (physical) starting point ``lik.init``, the others uniform in the box.
        key: PRNG key or integer seed of the random starts.
        gtol, rtol, max_iter: stopping rules (see :func:`minimize_partially_separable`).
        method: likelihood form, ``"auto"`` (aggregated when the noise is homogeneous).
        hessian: curvature of the Newton steps: ``"hybrid"`` (default: Gauss-Newton steps,
            i.e. fgbuster's Fisher matrix, positive semi-definite everywhere, until within
            ~1 sigma of the optimum, then exact Newton steps: ~5 iterations from the default
            start on a well-specified layout, quadratic convergence on misspecified ones),
            ``"gauss-newton"`` (linear convergence where the model misfits the data) or
            ``"exact"`` (indefinite far from the optimum, hence more damped iterations). All
            stop at a stationary point of the exact likelihood: the gradient is exact.

    Returns:
        :class:`FitResult`.
    """
    if lik.layout.n_params == 0:
        raise ValueError("fit: every parameter is fixed; there is nothing to fit")
    if n_starts < 1:
        raise ValueError(f"n_starts must be >= 1, got {n_starts}")
    lower, upper = jnp.asarray(lik.lower), jnp.asarray(lik.upper)
    x0 = jnp.asarray(lik.init if x0 is None else x0, dtype=float)
    if hessian not in ("hybrid", "gauss-newton", "exact"):
        raise ValueError(f"hessian must be 'hybrid', 'gauss-newton' or 'exact', got {hessian!r}")
    solver = _solver(lik, data, method, hessian, gtol=gtol, rtol=rtol, max_iter=max_iter)
    solve = lambda start: solver(start)[1]
    if n_starts == 1:
        res = solve(x0)
        n_evals = res.n_evals
    else:
        key = key if isinstance(key, jax.Array) else jax.random.key(int(key))
        u = jax.random.uniform(key, (n_starts - 2, x0.shape[0]), dtype=x0.dtype)
        default = jnp.asarray(lik.init, dtype=x0.dtype)
        starts = jnp.concatenate([x0[None], default[None], lower + u * (upper - lower)], axis=0)
        all_res = jax.vmap(solve)(starts)
        ok = (all_res.status <= int(FitStatus.CONVERGED_RTOL)) & jnp.isfinite(all_res.fun)
        finite = jnp.where(jnp.isfinite(all_res.fun), all_res.fun, jnp.inf)
        # the lowest converged optimum; the lowest finite value when no start converged
        best = jnp.where(
            jnp.any(ok), jnp.argmin(jnp.where(ok, finite, jnp.inf)), jnp.argmin(finite)
        )
        res = jax.tree.map(lambda v: v[best], all_res)
        n_evals = jnp.sum(all_res.n_evals)
    return _result(lik, res, n_evals)


def _result(lik: SpectralLikelihood, res, n_evals) -> FitResult:
    at_bound = hit_bounds(res.x, jnp.asarray(lik.lower), jnp.asarray(lik.upper))
    return FitResult(
        params=lik.layout.unflatten(res.x),
        nll=res.fun,
        converged=res.status <= int(FitStatus.CONVERGED_RTOL),
        status=res.status,
        n_iter=res.n_iter,
        n_evals=n_evals,
        hit_bounds=lik.layout.unflatten(at_bound),
        scaled_gradient=res.scaled_pgrad,
    )


def fit_likelihood_batch(
    lik: SpectralLikelihood,
    data: Float[Array, "batch freq stokes pix"],
    x0: Float[Array, " n_params"] | None = None,
    *,
    gtol: float = 1e-6,
    rtol: float = 1e-15,
    max_iter: int = 200,
    method: Method = "auto",
    hessian: HessianKind = "hybrid",
    compact_after: int | None = None,
    compact_size: int | None = None,
) -> FitResult:
    """Fit a batch of data sets (e.g. noise realisations) with the slow fits compacted.

    A vmapped batch of Newton fits runs until its slowest member stops: with 100 noise
    realisations of a near-per-pixel layout the mean fit takes ~6-14 iterations and the
    slowest ~30-45, so most of the batch's work is waiting. Here the fits run side by
    side until at most ``compact_size`` of them are still running (or for
    ``compact_after`` iterations, whichever comes first); the fits still running then
    continue, ``compact_size`` at a time, in a batch of that size (gathered, resumed from
    their state, scattered back) until all stop. Each fit makes exactly the iterations it
    would make alone (same results as ``jax.vmap(fit_likelihood)``, to rounding of the
    batched sums); the batch pays for its slowest member only on ``compact_size`` fits.
    Pure JAX (one ``lax.while_loop`` over the compacted rounds): jit it, vmap it (e.g.
    over layouts).

    Args:
        lik: the likelihood.
        data: ``[batch, n_freq, n_stokes, n_pix]`` maps [uK_CMB].
        x0: flat starting vector shared by the batch (default ``lik.init``).
        gtol, rtol, max_iter, method, hessian: as in :func:`fit_likelihood` (one start).
        compact_after: most iterations of the whole batch before compaction (it stops
            earlier once at most ``compact_size`` fits are still running); None (or
            ``>= max_iter``) fits the whole batch together (plain vmap).
        compact_size: fits per compacted batch (default ``ceil(batch / 8)``).

    Returns:
        :class:`FitResult` with a leading batch axis.
    """
    if data.ndim != 4:
        raise ValueError(f"data must be [batch, n_freq, n_stokes, n_pix], got shape {data.shape}")
    n_batch = int(data.shape[0])
    size = -(-n_batch // 8) if compact_size is None else int(compact_size)
    if compact_size is not None and size < 1:
        raise ValueError(f"compact_size must be >= 1, got {compact_size}")
    if compact_after is not None and compact_after < 1:
        raise ValueError(f"compact_after must be >= 1 (or None to disable), got {compact_after}")
    kw = {"gtol": gtol, "rtol": rtol, "max_iter": max_iter, "method": method, "hessian": hessian}
    if compact_after is None or compact_after >= max_iter or size >= n_batch:
        return jax.vmap(lambda d: fit_likelihood(lik, d, x0, **kw))(data)
    if lik.layout.n_params == 0:
        raise ValueError("fit: every parameter is fixed; there is nothing to fit")
    if hessian not in ("hybrid", "gauss-newton", "exact"):
        raise ValueError(f"hessian must be 'hybrid', 'gauss-newton' or 'exact', got {hessian!r}")
    start = jnp.asarray(lik.init if x0 is None else x0, dtype=float)

    def run(d, state, stop_at, batch_axis=None):
        solver = _solver(lik, d, method, hessian, gtol=gtol, rtol=rtol, max_iter=max_iter)
        return solver(start, state=state, stop_at=stop_at, batch_axis=batch_axis, min_running=size)

    axis = "fit_likelihood_batch"
    state, res = jax.vmap(lambda d: run(d, None, compact_after, axis), axis_name=axis)(data)

    def running(st):
        return (st.status == _RUNNING) & (st.n_iter < max_iter)

    def body(carry):
        st, rs = carry
        idx = jnp.argsort(~running(st), stable=True)[:size]  # running fits first
        sub_st, sub_rs = jax.vmap(lambda d, s: run(d, s, None))(
            data[idx], jax.tree.map(lambda v: v[idx], st)
        )
        # fits that had stopped are resumed as no-ops (their loop condition is false)
        put = lambda full, sub: full.at[idx].set(sub)
        return jax.tree.map(put, st, sub_st), jax.tree.map(put, rs, sub_rs)

    state, res = jax.lax.while_loop(lambda c: jnp.any(running(c[0])), body, (state, res))
    return jax.vmap(lambda r: _result(lik, r, r.n_evals))(res)


def fit(
    data: ArrayLike,
    components: Sequence[Component],
    frequencies: ArrayLike,
    noise_inv_var: ArrayLike,
    labels: Mapping[str, ArrayLike] | None = None,
    *,
    fixed: Mapping[str, ArrayLike] | None = None,
    init: Mapping[str, ArrayLike] | None = None,
    bounds: Mapping[str, tuple[float, float]] | None = None,
    mask: ArrayLike | None = None,
    n_starts: int = 1,
    key: Array | int = 0,
    gtol: float = 1e-6,
    rtol: float = 1e-15,
    max_iter: int = 200,
    method: Method = "auto",
    hessian: HessianKind = "hybrid",
) -> FitResult:
    """Maximum-likelihood spectral parameters per patch, bounded, for one or many data sets.

    Leading batch dims of ``data`` (e.g. noise realisations) are fitted in one vmapped,
    jitted call. For repeated fits of one configuration build the likelihood once with
    :meth:`SpectralLikelihood.create` and jit :func:`fit_likelihood`.

    Args:
        data: ``[..., n_freq, n_stokes, n_pix]`` frequency maps [uK_CMB] over the region.
        components: the sky components, e.g. ``[CMB(), Dust(150.0), Synchrotron(20.0)]``.
        frequencies: ``[n_freq]`` band centres [GHz].
        noise_inv_var: 1/sigma^2 [uK_CMB^-2], ``[n_freq]``, ``[n_freq, n_stokes]`` or
            ``[n_freq, n_stokes, n_pix]``.
        labels: free parameter name -> ``[n_pix]`` patch labels 0..K-1; absent: one patch.
        fixed: name -> scalar or ``[n_pix]`` map of parameters held fixed.
        init: name -> scalar or ``[K]`` starting values (default: ``PARAMETERS``).
        bounds: name -> ``(lower, upper)`` (default: the physical box of ``PARAMETERS``).
        mask: optional ``[n_pix]`` bool, False for pixels to leave out. Labels are
            relabelled 0..K'-1 over the kept pixels (patches left empty are dropped).
        n_starts: starts per fit (start 0 = init; with n_starts >= 2 also the default
            ``PARAMETERS`` start, then uniform random starts in the box).
        key: PRNG key or seed for the random starts.
        gtol: tolerance on the curvature-scaled projected gradient.
        rtol: tolerance on the predicted relative decrease of -log L.
        max_iter: iteration limit.
        method: ``"auto"``, ``"aggregated"`` or ``"pixel"``.
        hessian: ``"hybrid"`` (default), ``"gauss-newton"`` or ``"exact"`` curvature of the
            Newton steps (see :func:`fit_likelihood`).

    Returns:
        :class:`FitResult` with the batch dims of ``data``.

    Raises:
        ValueError: bad shapes, unknown parameter names, bounds with lower >= upper,
            non-contiguous labels, non-finite data in the region.

    Example:
        >>> import jax; jax.config.update("jax_enable_x64", True)
        >>> import numpy as np
        >>> from spec_likelihood import CMB, Dust, Synchrotron, fit, mixing_matrix
        >>> comps = [CMB(), Dust(150.0), Synchrotron(20.0)]
        >>> nu = np.array([30.0, 40.0, 60.0, 100.0, 150.0, 220.0, 350.0])
        >>> a = np.asarray(mixing_matrix(comps, nu, {"beta_d": 1.6, "T_d": 21.0, "beta_s": -3.1}))
        >>> s = np.random.default_rng(0).normal(size=(3, 2, 50)) * [[[1.0]], [[10.0]], [[5.0]]]
        >>> res = fit(np.einsum("fc,csp->fsp", a, s), comps, nu, np.ones(7))
        >>> round(float(res.params["beta_s"][0]), 6), bool(res.converged)
        (-3.1, True)
    """
    data, noise_inv_var, labels, fixed = apply_mask(mask, data, noise_inv_var, labels, fixed)
    lik = SpectralLikelihood.create(
        components,
        frequencies,
        noise_inv_var,
        np.shape(data)[-1],
        labels,
        fixed=fixed,
        init=init,
        bounds=bounds,
    )
    d = lik.check_data(data)
    fn = lambda dd: fit_likelihood(
        lik,
        dd,
        n_starts=n_starts,
        key=key,
        gtol=gtol,
        rtol=rtol,
        max_iter=max_iter,
        method=method,
        hessian=hessian,
    )
    for _ in d.shape[:-3]:
        fn = jax.vmap(fn)
    return jax.jit(fn)(d)

"""Bounded Newton minimiser for partially separable objectives with block-diagonal coupling.

The spectral likelihood with patch-wise parameters is a sum of terms (one per label tuple or
per pixel), each depending on one patch of each free parameter: ``f(x) = sum_t f_t(x[idx_t])``.
Two patches of the same parameter never share a pixel, so in the exact Hessian

    H = [[D_e, C], [C^T, H_r]]

the block ``D_e`` of any one parameter is *diagonal*. Eliminating the parameter with the most
patches (``D_e``) leaves a dense Schur complement ``H_r - C^T D_e^-1 C`` of size
``n - K_e`` (e.g. 70 for K = (1000, 50, 20)), factorised by Cholesky. Each iteration costs one
evaluation of (value, gradient, per-term Hessians), all in one vectorised pass.

Curvature models: the per-term Hessian may come as two models, a globalisation model (the
Gauss-Newton / Fisher matrix of the spectral likelihood, positive semi-definite everywhere)
and the exact Hessian: Gauss-Newton steps are taken until its Newton decrement falls below
``switch`` per free variable (within a few sigma of the optimum), then exact Newton steps
(quadratic convergence even where the model misfits the data and Gauss-Newton is only
linear). Globalisation: Levenberg-Marquardt damping ``H + lambda diag(|H_ii|)`` with
Nielsen's update (a rejected step raises lambda, no line search). The undamped, the current
and several raised dampings are factorised side by side in one batched call (the least
damped positive-definite one is taken), so there is no inner loop.

Bounds: projected Newton (Bertsekas 1982): variables at a
bound whose gradient points outwards are held fixed for the step, the step is projected onto
the box. Everything runs in one ``lax.while_loop`` with no host synchronisation, so the solver
jits and vmaps (batched fits stop when the last batch member stops).

Stopping rules (both reachable in float64):

* ``gtol``: the projected gradient in units of each parameter's curvature,
  ``max_i sqrt(H_ii) |x_i - clip(x_i - g_i / H_ii)|`` (dimensionless: a parameter offset in
  units of its conditional 1-sigma error) is below ``gtol``;
* ``rtol``: the decrease of -log L predicted by the undamped projected Newton step (the
  Newton decrement; infinite where the free Hessian is not positive definite) is below
  ``rtol * |f|``: no further step could change f measurably.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, ArrayLike, Bool, Float, Int

__all__ = ["FitStatus", "NewtonResult", "minimize_partially_separable"]


class FitStatus(enum.IntEnum):
    """Outcome of a fit (the ``status`` field of results)."""

    CONVERGED_GTOL = 0
    """Scaled projected gradient below ``gtol``."""
    CONVERGED_RTOL = 1
    """Predicted relative decrease of -log L below ``rtol``."""
    MAX_ITER = 2
    """Iteration limit reached before a stopping rule was met."""
    NON_FINITE = 3
    """The objective or its gradient is NaN/inf at the starting point (or became so)."""
    STALLED = 4
    """No step decreases the objective even with maximal damping."""


_RUNNING = -1
_LAMBDA_MAX = 1e16
_LAMBDA_MIN = 1e-15
_LAMBDA_REJECT_FLOOR = 1e-4  # a rejected near-Newton step jumps at least to this damping
_LAMBDA_DECREMENT = 1e-6
_MAX_STEP_FRACTION = 0.25  # diagonal Newton steps beyond this fraction of the box are damped
_DENSE_SCHUR_MAX = 1 << 17  # K_e * r above which the Schur complement is built term by term
_LAMBDA_LADDER = np.array(
    [4.0, 64.0, 4096.0, 1e6, 1e9, 1e13]
)  # raised dampings tried at once  # below this relative damping the damped step is the Newton step


class NewtonResult(NamedTuple):
    """Result of :func:`minimize_partially_separable` (batch dims when vmapped)."""

    x: Float[Array, " n"]
    fun: Float[Array, ""]
    grad: Float[Array, " n"]
    hess_diag: Float[Array, " n"]
    status: Int[Array, ""]
    n_iter: Int[Array, ""]
    n_evals: Int[Array, ""]
    scaled_pgrad: Float[Array, ""]


class _Structure(NamedTuple):
    term_index: Array  # [T, m] global indices (numpy when static, a JAX array when data)
    n: int
    elim: int  # block eliminated by its diagonal
    e_off: int
    e_size: int
    others: tuple[int, ...]
    term_e: Array  # [T] local index in the eliminated block
    term_r: Array  # [T, m-1] index in the reduced (Schur) system
    r_global: np.ndarray  # [R] global index of each reduced variable (static)
    sparse: bool = False  # coupling kept per term (large eliminated blocks), not as [K_e, R]
    order: Array | None = None  # [T] terms sorted by eliminated-block index (sparse only)
    e_key: Array | None = None  # [T] sorted keys: block index, padded terms each their own
    max_run: Array | None = None  # most terms sharing one eliminated variable (sparse only)


def _structure(term_index: ArrayLike, block_sizes: tuple[int, ...]) -> _Structure:
    """Block structure of the Hessian; ``term_index`` may be a traced array (layout as data)."""
    m = len(block_sizes)
    if np.ndim(term_index) != 2 or np.shape(term_index)[1] != m:
        raise ValueError(f"term_index must be [n_terms, {m}], got {np.shape(term_index)}")
    offsets = np.concatenate([[0], np.cumsum(block_sizes)[:-1]]).astype(np.int64)
    if isinstance(term_index, np.ndarray):
        local = term_index.astype(np.int64) - offsets
        if np.any(local < 0) or np.any(local >= np.asarray(block_sizes)):
            raise ValueError("term_index: column j must index into block j")
        xp = np
    else:
        term_index = jnp.asarray(term_index, dtype=jnp.int32)
        local = term_index - jnp.asarray(offsets, dtype=jnp.int32)
        xp = jnp
    elim = int(np.argmax(block_sizes))
    others = tuple(j for j in range(m) if j != elim)
    r_off = np.concatenate([[0], np.cumsum([block_sizes[j] for j in others])]).astype(np.int64)
    term_r = (
        xp.stack([local[:, j] + int(r_off[i]) for i, j in enumerate(others)], axis=1)
        if others
        else xp.zeros((term_index.shape[0], 0), xp.int32)
    )
    r_global = (
        np.concatenate([offsets[j] + np.arange(block_sizes[j]) for j in others])
        if others
        else np.zeros(0, np.int64)
    )
    sparse = int(block_sizes[elim]) * int(r_global.shape[0]) > _DENSE_SCHUR_MAX
    return _Structure(
        sparse=sparse,
        term_index=term_index.astype(xp.int32),
        n=int(sum(block_sizes)),
        elim=elim,
        e_off=int(offsets[elim]),
        e_size=int(block_sizes[elim]),
        others=others,
        term_e=local[:, elim].astype(xp.int32),
        term_r=term_r.astype(xp.int32),
        r_global=r_global.astype(np.int32),
    )


class _Hessian(NamedTuple):
    diag: Float[Array, " n"]  # all diagonal entries
    cross: Float[Array, "ke r"]  # coupling of the eliminated block to the rest ([T, m-1]
    # per-term values when the structure is sparse)
    reduced: Float[Array, "r r"]  # dense Hessian of the remaining blocks


def _evaluate(term_fn, aux, x, st: _Structure, term_vgh=None, term_valid=None):
    """Value, gradient and structured Hessian(s) of ``sum_t term_fn(x[idx_t], aux_t)``.

    ``term_vgh(theta, aux_t) -> (f_t, g_t, H_t)`` supplies closed-form per-term derivatives
    (default: forward-over-reverse autodiff of ``term_fn``); ``H_t`` is ``[m, m]`` or
    ``[n_models, m, m]`` (several curvature models, e.g. Gauss-Newton and exact).
    ``term_valid`` masks padded terms. The returned :class:`_Hessian` has a leading
    ``n_models`` axis.
    """
    theta = x[st.term_index]
    if term_vgh is None:

        def vg(th, a):
            f, g = jax.value_and_grad(term_fn)(th, a)
            return g, (g, f)

        h_t, (g_t, f_t) = jax.vmap(jax.jacfwd(vg, has_aux=True))(theta, aux)
    else:
        f_t, g_t, h_t = jax.vmap(term_vgh)(theta, aux)
    if h_t.ndim == 3:
        h_t = h_t[:, None]
    if term_valid is not None:
        f_t = jnp.where(term_valid, f_t, 0.0)
        g_t = jnp.where(term_valid[:, None], g_t, 0.0)
        h_t = jnp.where(term_valid[:, None, None, None], h_t, 0.0)
    f = jnp.sum(f_t)
    g = jnp.zeros(st.n, x.dtype).at[st.term_index].add(g_t)
    r = st.r_global.shape[0]
    others = np.asarray(st.others, dtype=np.int64)

    def assemble(hm):  # hm [T, m, m]
        diag = jnp.zeros(st.n, x.dtype).at[st.term_index].add(jnp.diagonal(hm, axis1=1, axis2=2))
        cross = jnp.zeros((st.e_size, r), x.dtype)
        reduced = jnp.zeros((r, r), x.dtype)
        if r and st.sparse:
            cross = hm[:, st.elim, others]
            h_rr = hm[:, others][:, :, others]
            reduced = reduced.at[st.term_r[:, :, None], st.term_r[:, None, :]].add(h_rr)
        elif r:
            cross = cross.at[st.term_e[:, None], st.term_r].add(hm[:, st.elim, others])
            h_rr = hm[:, others][:, :, others]
            reduced = reduced.at[st.term_r[:, :, None], st.term_r[:, None, :]].add(h_rr)
        return _Hessian(diag, cross, reduced)

    return f, g, jax.vmap(assemble, in_axes=1)(h_t)


def _model(h: _Hessian, k: int) -> _Hessian:
    return jax.tree.map(lambda v: v[k], h)


def _hess_quad(h: _Hessian, s: Array, st: _Structure) -> Array:
    """``s^T H s`` from the structured Hessian."""
    e = slice(st.e_off, st.e_off + st.e_size)
    se = s[e]
    out = jnp.sum(h.diag[e] * se * se)
    if st.r_global.shape[0]:
        sr = s[st.r_global]
        out = out + 2.0 * se @ _cross_matvec(h.cross, sr, st) + sr @ (h.reduced @ sr)
    return out


def _cross_matvec(cross: Array, v_r: Array, st: _Structure) -> Array:
    """``C v`` for the eliminated-block coupling ``C`` ``[K_e, R]`` (dense or per term)."""
    if not st.sparse:
        return cross @ v_r
    per_term = jnp.sum(cross * v_r[st.term_r], axis=1)
    return jnp.zeros(st.e_size, v_r.dtype).at[st.term_e].add(per_term)


def _cross_rmatvec(cross: Array, v_e: Array, st: _Structure) -> Array:
    """``C^T v`` for the eliminated-block coupling ``C`` ``[K_e, R]`` (dense or per term)."""
    if not st.sparse:
        return cross.T @ v_e
    r = st.r_global.shape[0]
    return jnp.zeros(r, v_e.dtype).at[st.term_r].add(cross * v_e[st.term_e][:, None])


def _sparse_schur_product(cross: Array, w: Array, st: _Structure) -> Array:
    """``C^T diag(w) C`` from the per-term coupling, in O(terms x most terms per variable).

    ``C[e] = sum of c_t over the terms t of eliminated variable e``, so the product is the
    sum over ordered pairs of terms sharing one eliminated variable of ``w_e c_t1 c_t2^T``.
    With the terms sorted by that variable the pairs are (i, i + k) for k below the longest
    run: one scatter of all terms per k, never a [K_e, R] array.
    """
    r = st.r_global.shape[0]
    n_t = cross.shape[0]
    cs = cross[st.order]
    rs = jnp.asarray(st.term_r)[st.order]
    ws = w[jnp.asarray(st.term_e)[st.order]]
    idx = jnp.arange(n_t)

    def body(k, acc):
        j = idx + k
        jj = jnp.minimum(j, n_t - 1)
        same = (j < n_t) & (st.e_key[jj] == st.e_key)
        contrib = (ws * same)[:, None, None] * cs[:, :, None] * cs[jj][:, None, :]
        acc = acc.at[rs[:, :, None], rs[jj][:, None, :]].add(contrib)
        mirror = jnp.where(k > 0, 1.0, 0.0).astype(contrib.dtype)
        return acc.at[rs[jj][:, :, None], rs[:, None, :]].add(mirror * jnp.swapaxes(contrib, 1, 2))

    return lax.fori_loop(0, st.max_run, body, jnp.zeros((r, r), cross.dtype))


def _active(x, g, lower, upper):
    eps = 1e-10 * (upper - lower)
    return ((x <= lower + eps) & (g > 0)) | ((x >= upper - eps) & (g < 0))


def _scaled_pgrad(x, g, hd, lower, upper):
    curv = jnp.maximum(jnp.abs(hd), _curvature_floor(hd))
    newton = x - jnp.clip(x - g / curv, lower, upper)
    return jnp.max(jnp.abs(newton) * jnp.sqrt(curv), initial=0.0)


def _curvature_floor(hd):
    return 1e-12 * jnp.max(jnp.abs(hd), initial=0.0) + 1e-300


def _step(x, g, h: _Hessian, lam, lower, upper, st: _Structure, usable):
    """Damped projected Newton step by block elimination.

    Returns ``(step, ok, decrease)``: the step projected onto the box, whether the damped free
    Hessian is positive definite, and ``-1/2 g_F^T p_F`` (the decrease predicted for the
    unprojected step; the Newton decrement when ``lam = 0``). Where the damped Hessian is
    not positive definite the step falls back to curvature-scaled steepest descent.
    """
    free = ~_active(x, g, lower, upper) & usable
    curv = jnp.maximum(jnp.abs(h.diag), _curvature_floor(h.diag))
    # Levenberg-Marquardt damping relative to the curvature, raised for any variable whose
    # own (diagonal) Newton step |g_i| / h_ii would pass reach_i, a fraction of its box: a
    # weakly constrained variable (a near-flat direction, e.g. beta_d of a one-pixel patch)
    # otherwise steps far beyond where its quadratic model holds and, projected, jumps from
    # bound to bound while every other variable waits. Well-constrained variables are
    # untouched, and the extra damping vanishes with the gradient at the optimum.
    reach = _MAX_STEP_FRACTION * (upper - lower)
    mu = lam * curv + jnp.maximum(jnp.abs(g) / reach - curv, 0.0)
    gf = jnp.where(free, g, 0.0)
    e = slice(st.e_off, st.e_off + st.e_size)
    free_e = free[e]
    d_e = jnp.where(free_e, h.diag[e] + mu[e], 1.0)
    ok = jnp.all(d_e > 0)
    d_e = jnp.where(d_e > 0, d_e, 1.0)
    g_e = gf[e]
    if st.r_global.shape[0]:
        free_r = free[st.r_global]
        g_r = gf[st.r_global]
        both = free_r[:, None] & free_r[None, :]
        red = h.reduced + jnp.diag(mu[st.r_global])
        red = jnp.where(both, red, jnp.eye(red.shape[0], dtype=red.dtype))
        if st.sparse:
            keep = free_e[st.term_e][:, None] & free_r[st.term_r]
            cross = jnp.where(keep, h.cross, 0.0)
            schur = red - _sparse_schur_product(cross, 1.0 / d_e, st)
        else:
            cross = jnp.where(free_e[:, None] & free_r[None, :], h.cross, 0.0)
            schur = red - cross.T @ (cross / d_e[:, None])
        rhs = -g_r + _cross_rmatvec(cross, g_e / d_e, st)
        low = jnp.linalg.cholesky(schur)
        ok = ok & jnp.all(jnp.isfinite(low))
        low = jnp.where(jnp.isfinite(low), low, jnp.eye(low.shape[0], dtype=low.dtype))
        p_r = jax.scipy.linalg.cho_solve((low, True), rhs)
        p_e = (-g_e - _cross_matvec(cross, p_r, st)) / d_e
        p = jnp.zeros_like(x).at[e].set(p_e).at[st.r_global].set(p_r)
    else:
        p = jnp.zeros_like(x).at[e].set(-g_e / d_e)
    p = jnp.where(free, p, 0.0)
    ok = ok & jnp.all(jnp.isfinite(p))
    p = jnp.where(ok, p, -gf / (curv * (1.0 + lam)))
    step = jnp.clip(x + p, lower, upper) - x
    return step, ok, -0.5 * (gf @ p)


class _State(NamedTuple):
    x: Array
    f: Array
    g: Array
    h: _Hessian
    lam: Array
    nu: Array
    step: Array
    step_ok: Array
    pred: Array
    status: Array
    n_iter: Array
    n_evals: Array


def minimize_partially_separable(
    term_fn: Callable[[Float[Array, " m"], Any], Float[Array, ""]],
    term_aux: Any,
    term_index: Int[np.ndarray, "terms m"],
    block_sizes: tuple[int, ...],
    x0: Float[Array, " n"],
    lower: Float[Array, " n"],
    upper: Float[Array, " n"],
    *,
    term_vgh: Callable[[Float[Array, " m"], Any], tuple[Array, Array, Array]] | None = None,
    term_valid: Bool[Array, " terms"] | None = None,
    switch: float = 50.0,
    gtol: float = 1e-6,
    rtol: float = 1e-15,
    max_iter: int = 200,
    lambda0: float = 1e-3,
) -> NewtonResult:
    """Minimise ``sum_t term_fn(x[term_index[t]], aux[t])`` inside the box ``[lower, upper]``.

    Projected, Levenberg-Marquardt-damped Newton method with the exact Hessian assembled from
    per-term Hessians and solved by block elimination (see the module docstring). Pure JAX:
    jittable and vmappable over ``term_aux``, ``x0``, ``lower`` and ``upper``.

    Args:
        term_fn: ``(theta [m], aux_t) -> scalar``, twice differentiable.
        term_aux: pytree of per-term data with leading axis ``n_terms``.
        term_index: ``[n_terms, m]`` positions of each term's variables; column ``j``
            indexes block ``j`` (two variables of one block never share a term). A numpy
            array is a compile-time constant; a JAX array is data, so one compiled solver
            serves every layout of the same padded shape (vmap over layouts too).
        block_sizes: number of variables in each block (``sum = n``), static.
        x0: starting point (projected onto the box).
        lower, upper: box bounds, ``lower < upper``.
        term_vgh: optional closed-form ``(theta, aux_t) -> (f_t, grad_t [m], hess_t)`` with
            ``hess_t`` ``[m, m]`` or ``[2, m, m]`` (a globalisation model, e.g. Gauss-Newton,
            then the exact Hessian); default: autodiff of ``term_fn``.
        term_valid: optional ``[n_terms]`` bool, False for padding terms (ignored). Variables
            that no valid term references are held at their start value.
        switch: with two curvature models, the exact Newton step is taken once the first
            model's Newton decrement is below ``switch`` per free variable.
        gtol: tolerance on the curvature-scaled projected gradient (dimensionless).
        rtol: tolerance on the predicted relative decrease of the objective.
        max_iter: maximum number of iterations (one objective+gradient+Hessian evaluation each).
        lambda0: initial damping, relative to the Hessian diagonal.

    Returns:
        :class:`NewtonResult`.
    """
    return _minimize(
        term_fn,
        term_aux,
        term_index,
        block_sizes,
        x0,
        lower,
        upper,
        term_vgh=term_vgh,
        term_valid=term_valid,
        switch=switch,
        gtol=gtol,
        rtol=rtol,
        max_iter=max_iter,
        lambda0=lambda0,
    )[1]


def _minimize(
    term_fn: Callable[[Float[Array, " m"], Any], Float[Array, ""]],
    term_aux: Any,
    term_index: Int[np.ndarray, "terms m"],
    block_sizes: tuple[int, ...],
    x0: Float[Array, " n"],
    lower: Float[Array, " n"],
    upper: Float[Array, " n"],
    *,
    term_vgh: Callable[[Float[Array, " m"], Any], tuple[Array, Array, Array]] | None = None,
    term_valid: Bool[Array, " terms"] | None = None,
    switch: float = 50.0,
    gtol: float = 1e-6,
    rtol: float = 1e-15,
    max_iter: int = 200,
    lambda0: float = 1e-3,
    state: _State | None = None,
    stop_at: Array | int | None = None,
    batch_axis: str | None = None,
    min_running: int = 0,
) -> tuple[_State, NewtonResult]:
    """:func:`minimize_partially_separable`, resumable: also returns the loop state.

    ``state`` (a state returned by an earlier call on the same problem) resumes that run;
    ``stop_at`` pauses the run once it has made that many iterations (a paused run has the
    status ``MAX_ITER`` in its result and ``_RUNNING`` in its state). The iterations are
    the same as those of one uninterrupted run. Under ``jax.vmap(..., axis_name=batch_axis)``
    the whole batch also pauses as soon as at most ``min_running`` of its members are still
    running (``lax.psum`` over the batch in the loop condition).
    """
    if not isinstance(term_index, jax.Array):
        term_index = np.asarray(term_index)
    st = _structure(term_index, tuple(int(b) for b in block_sizes))
    x0 = jnp.clip(jnp.asarray(x0, dtype=float), lower, upper)
    lower = jnp.asarray(lower, dtype=x0.dtype)
    upper = jnp.asarray(upper, dtype=x0.dtype)

    if term_valid is None:
        usable = jnp.ones(st.n, bool)
    else:
        term_valid = jnp.asarray(term_valid, bool)
        usable = (
            jnp.zeros(st.n, jnp.int32)
            .at[st.term_index]
            .max(jnp.broadcast_to(term_valid[:, None], st.term_index.shape).astype(jnp.int32))
            > 0
        )

    if st.sparse:
        # Terms sorted by their eliminated variable (padded terms each on their own, so they
        # never lengthen a run): the sparse Schur product pairs neighbours within a run.
        n_t = st.term_index.shape[0]
        key = jnp.asarray(st.term_e, jnp.int32)
        if term_valid is not None:
            key = jnp.where(term_valid, key, st.e_size + jnp.arange(n_t, dtype=jnp.int32))
        order = jnp.argsort(key, stable=True)
        runs = jnp.zeros(st.e_size + n_t, jnp.int32).at[key].add(1)
        st = st._replace(order=order, e_key=key[order], max_run=jnp.max(runs))

    n_usable = jnp.maximum(jnp.sum(usable), 1).astype(x0.dtype)
    h_shape = jax.eval_shape(lambda: _evaluate(term_fn, term_aux, x0, st, term_vgh, term_valid))[2]
    n_models = int(h_shape.diag.shape[0])

    def ladder(x, g, h, lams):
        steps, oks, decs = jax.vmap(lambda lk: _step(x, g, h, lk, lower, upper, st, usable))(lams)
        return steps, oks, decs

    def plan(x, f, g, h, lam):
        # Model 0 (the globalisation model: Gauss-Newton when two are given): the undamped
        # step (its Newton decrement), the step at the current damping and at raised
        # dampings, solved side by side (one batched factorisation, no inner loop); the
        # least-damped positive-definite one is taken, with none curvature-scaled steepest
        # descent. With a second (exact) model: once model 0's decrement is below
        # ``switch * n`` (within ~1 sigma of its optimum), the exact Newton step at the current
        # damping is taken where positive definite (quadratic convergence).
        floor = jnp.maximum(lam, _LAMBDA_REJECT_FLOOR)
        lams = jnp.concatenate([jnp.zeros((1,), lam.dtype), lam[None], floor * _LAMBDA_LADDER])
        h0 = _model(h, 0)
        steps, oks, decs = ladder(x, g, h0, lams)
        model_decrease = lambda hm, s: -(g @ s + 0.5 * _hess_quad(hm, s, st))
        preds = jax.vmap(lambda s: model_decrease(h0, s))(steps)
        # The projection onto the box can turn a damped Newton step into one its own model
        # predicts to increase the objective: such a step is never tried (it would only be
        # rejected, one evaluation lost); the next, more damped, one is.
        good = oks & (preds > 0)
        k = 1 + jnp.argmax(good[1:])  # first descent step of a positive-definite model
        ok = good[k]
        step = steps[k]
        lam_new = jnp.where(ok, lams[k], lams[-1])
        decrement = jnp.where(oks[0], decs[0], jnp.inf)
        pred = preds[k]
        if n_models > 1:
            h1 = _model(h, 1)
            steps1, oks1, decs1 = ladder(x, g, h1, lams[:2])
            pred1 = model_decrease(h1, steps1[1])
            exact = oks1[1] & (pred1 > 0) & (decrement <= switch * n_usable)
            step = jnp.where(exact, steps1[1], step)
            ok = jnp.where(exact, True, ok)
            lam_new = jnp.where(exact, lam, lam_new)
            pred = jnp.where(exact, pred1, pred)
            decrement = jnp.where(exact & oks1[0], decs1[0], decrement)
        return lam_new, step, ok, pred, decrement

    def status_of(x, f, g, h, lam, decrement):
        finite = jnp.isfinite(f) & jnp.all(jnp.isfinite(g))
        spg = _scaled_pgrad(x, g, h.diag[0], lower, upper)
        conv_g = spg <= gtol
        conv_r = decrement <= rtol * jnp.maximum(jnp.abs(f), 1.0)
        status = jnp.where(conv_r, int(FitStatus.CONVERGED_RTOL), _RUNNING)
        status = jnp.where(conv_g, int(FitStatus.CONVERGED_GTOL), status)
        status = jnp.where(lam > _LAMBDA_MAX, int(FitStatus.STALLED), status)
        return jnp.where(finite, status, int(FitStatus.NON_FINITE))

    # The first loop pass evaluates the start (f = +inf accepts it), so the objective and the
    # step solver are traced once: half the compile time of a separate initial evaluation.
    state0 = _State(
        x=x0,
        f=jnp.asarray(jnp.inf, x0.dtype),
        g=jnp.zeros_like(x0),
        h=jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype), h_shape),
        lam=jnp.asarray(lambda0, dtype=x0.dtype),
        nu=jnp.asarray(2.0, x0.dtype),
        step=jnp.zeros_like(x0),
        step_ok=jnp.asarray(True),
        pred=jnp.asarray(0.0, x0.dtype),
        status=jnp.asarray(_RUNNING),
        n_iter=jnp.asarray(-1),
        n_evals=jnp.asarray(0),
    )

    limit = max_iter if stop_at is None else jnp.minimum(stop_at, max_iter)

    def cond(s: _State):
        going = (s.status == _RUNNING) & (s.n_iter < limit)
        if batch_axis is None:
            return going
        return going & (lax.psum(going.astype(jnp.int32), batch_axis) > min_running)

    def body(s: _State):
        first = s.n_evals == 0
        x_t = jnp.clip(s.x + s.step, lower, upper)
        f_t, g_t, h_t = _evaluate(term_fn, term_aux, x_t, st, term_vgh, term_valid)
        decrease = s.f - f_t
        finite_t = jnp.isfinite(f_t) & jnp.all(jnp.isfinite(g_t))
        accept = s.step_ok & finite_t & (decrease > 0)
        rho = decrease / jnp.where(s.pred > 0, s.pred, jnp.inf)
        lam_acc = jnp.maximum(s.lam * jnp.maximum(0.1, 1.0 - (2.0 * rho - 1.0) ** 3), _LAMBDA_MIN)
        lam_acc = jnp.where(first, s.lam, lam_acc)
        lam_rej = jnp.maximum(s.lam, _LAMBDA_REJECT_FLOOR) * s.nu
        lam = jnp.where(accept, lam_acc, lam_rej)
        nu = jnp.where(accept, 2.0, 2.0 * s.nu)
        pick = lambda a, b: jax.tree.map(lambda u, v: jnp.where(accept, u, v), a, b)
        x, f, g, h = pick((x_t, f_t, g_t, h_t), (s.x, s.f, s.g, s.h))
        lam, step, ok, pred, decrement = plan(x, f, g, h, lam)
        status = status_of(x, f, g, h, lam, decrement)
        status = jnp.where(first & ~finite_t, int(FitStatus.NON_FINITE), status)
        return _State(
            x=x,
            f=f,
            g=g,
            h=h,
            lam=lam,
            nu=nu,
            step=step,
            step_ok=ok,
            pred=pred,
            status=status,
            n_iter=s.n_iter + 1,
            n_evals=s.n_evals + 1,
        )

    out = lax.while_loop(cond, body, state0 if state is None else state)
    status = jnp.where(out.status == _RUNNING, int(FitStatus.MAX_ITER), out.status)
    return out, NewtonResult(
        x=out.x,
        fun=out.f,
        grad=out.g,
        hess_diag=out.h.diag[-1],
        status=status,
        n_iter=out.n_iter,
        n_evals=out.n_evals,
        scaled_pgrad=_scaled_pgrad(
            out.x, jnp.where(usable, out.g, 0.0), out.h.diag[0], lower, upper
        ),
    )


def hit_bounds(
    x: Float[Array, " n"], lower: Float[Array, " n"], upper: Float[Array, " n"]
) -> Bool[Array, " n"]:
    """True where ``x`` sits on its box bound (to 1e-10 of the box width)."""
    eps = 1e-10 * (upper - lower)
    return (x <= lower + eps) | (x >= upper - eps)

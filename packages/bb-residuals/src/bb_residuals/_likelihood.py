"""The tensor-to-scalar ratio likelihood of kabalan2025 sec. IV.c-d, in JAX.

    -2 ln L(r) = f_sky sum_ell (2 ell + 1) [C_ell^obs / C_ell^model(r) + ln C_ell^model(r)],
    C_ell^model(r) = r C_ell^tensor + C_ell^lensing + C_ell^stat,

(the ``f_sky (2 ell + 1)`` mode counts become ``n_modes`` for bandpowers). The minimum is
found on a grid and refined by bisection of the analytic derivative; sigma(r) comes from the
analytic curvature, ``sigma^-2 = (1/2) d^2(-2 ln L)/dr^2`` at r-hat; the asymmetric 68%
interval from ``-2 ln L = min + 1``; the 68% and 95% upper limits from the posterior with a
flat prior on r >= 0. The paper's selection metric is ``r + sigma(r)``.

Everything hot is one jitted function vmapped over realisations. It needs float64
(``jax.config.update("jax_enable_x64", True)``): -2 ln L sums ~1e4 terms of size ~10 and the
68% interval needs differences of 1.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

STATUS_OK = 0
STATUS_MIN_AT_GRID_EDGE = 1
STATUS_INTERVAL_NOT_BRACKETED = 2
STATUS_POSTERIOR_TRUNCATED = 4
STATUS_NONPOSITIVE_CURVATURE = 8
STATUS_NONPOSITIVE_OBSERVED = 16


class RFit(NamedTuple):
    """Result of ``fit_r`` (arrays with the realisations' leading shape).

    Attributes:
        r_hat: maximum-likelihood r.
        sigma_r: ``sqrt(2 / (d^2(-2 ln L)/dr^2))`` at r_hat.
        r_lo, r_hi: 68% interval, where ``-2 ln L = min + 1`` below and above r_hat.
        r_ul68, r_ul95: 68% and 95% upper limits with a flat prior on r >= 0.
        r_plus_sigma: ``r_hat + sigma_r``, the paper's selection metric.
        neg2lnl_min: -2 ln L at r_hat.
        status: bit flags, 0 when all is well: 1 minimum at the grid edge, 2 the 68%
            interval is not bracketed by the grid, 4 the posterior extends past the grid
            top (upper limits too low; only with an explicit ``r_grid``), 8 non-positive
            curvature (sigma_r is NaN), 16 some observed C_ell <= 0 (possible for
            mode-decoupled bandpowers; the likelihood then has no proper minimum: restrict
            ``ell_range`` or use wider bins).
    """

    r_hat: Array
    sigma_r: Array
    r_lo: Array
    r_hi: Array
    r_ul68: Array
    r_ul95: Array
    r_plus_sigma: Array
    neg2lnl_min: Array
    status: Array


def _neg2lnl(r, obs, tensor, base, dof):
    model = r * tensor + base
    valid = jnp.all(model > 0)
    safe = jnp.where(model > 0, model, 1.0)
    value = jnp.sum(dof * (obs / safe + jnp.log(safe)))
    return jnp.where(valid, value, jnp.inf)


def _derivatives(r, obs, tensor, base, dof):
    model = r * tensor + base
    valid = jnp.all(model > 0)
    safe = jnp.where(model > 0, model, 1.0)
    d1 = jnp.sum(dof * tensor * (1.0 / safe - obs / safe**2))
    d2 = jnp.sum(dof * tensor**2 * (2.0 * obs / safe**3 - 1.0 / safe**2))
    # Below the positivity floor the minimum lies to the right: report a negative slope.
    return jnp.where(valid, d1, -1.0), d2


def _bisect(f, lo, hi, n_iter=64):
    """Root of f on [lo, hi] assuming f(lo) <= 0 < f(hi) (or the reverse, handled by sign)."""
    sign_lo = jnp.sign(f(lo))

    def body(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        same = jnp.sign(f(mid)) == sign_lo
        return jnp.where(same, mid, a), jnp.where(same, b, mid)

    a, b = jax.lax.fori_loop(0, n_iter, body, (lo, hi))
    return 0.5 * (a + b)


def _fit_one(obs, stat, tensor, lens, dof, grid, r_cap, n_posterior):
    base = lens + stat
    nll = lambda r: _neg2lnl(r, obs, tensor, base, dof)
    values = jax.vmap(nll)(grid)
    n = grid.shape[0]
    i = jnp.argmin(values)
    status = jnp.where((i == 0) | (i == n - 1), STATUS_MIN_AT_GRID_EDGE, STATUS_OK)
    status = status | jnp.where(jnp.any((obs <= 0) & (dof > 0)), STATUS_NONPOSITIVE_OBSERVED, 0)
    lo, hi = grid[jnp.maximum(i - 1, 0)], grid[jnp.minimum(i + 1, n - 1)]
    slope = lambda r: _derivatives(r, obs, tensor, base, dof)[0]
    refined = _bisect(slope, lo, hi)
    r_hat = jnp.where(nll(refined) <= values[i], refined, grid[i])
    l_min = nll(r_hat)
    curvature = _derivatives(r_hat, obs, tensor, base, dof)[1]
    sigma = jnp.where(curvature > 0, jnp.sqrt(2.0 / jnp.abs(curvature)), jnp.nan)
    status = status | jnp.where(curvature > 0, 0, STATUS_NONPOSITIVE_CURVATURE)

    # 68% interval: -2 ln L crosses min + 1, bracketed by the nearest grid points above it.
    above = values > l_min + 1.0
    idx = jnp.arange(n)
    left = jnp.max(jnp.where(above & (grid < r_hat), idx, -1))
    right = jnp.min(jnp.where(above & (grid > r_hat), idx, n))
    status = status | jnp.where((left < 0) | (right >= n), STATUS_INTERVAL_NOT_BRACKETED, 0)
    excess = lambda r: nll(r) - l_min - 1.0
    r_lo = _bisect(excess, grid[jnp.maximum(left, 0)], r_hat)
    r_hi = _bisect(excess, r_hat, grid[jnp.minimum(right, n - 1)])
    r_lo = jnp.where(left < 0, grid[0], r_lo)
    r_hi = jnp.where(right >= n, grid[-1], r_hi)

    # Upper limits: posterior exp(-(-2 ln L - min)/2) with a flat prior on r >= 0, integrated
    # up to where -2 ln L has risen by 30 (the tail is non-Gaussian: doubling search).
    r_pos = jnp.maximum(r_hat, 0.0)
    c_pos = _derivatives(r_pos, obs, tensor, base, dof)[1]
    scale = jnp.where(c_pos > 0, jnp.sqrt(2.0 / jnp.abs(c_pos)), grid[-1] - grid[0])
    candidates = jnp.minimum(r_pos + scale * 2.0 ** jnp.arange(-2.0, 30.0), r_cap)
    far = jax.vmap(nll)(candidates) - l_min > 30.0
    top = jnp.where(jnp.any(far), candidates[jnp.argmax(far)], candidates[-1])
    status = status | jnp.where(jnp.any(far), 0, STATUS_POSTERIOR_TRUNCATED)
    top = jnp.maximum(top, 1e-30)
    u = jnp.linspace(0.0, 1.0, n_posterior) * top
    post = jnp.exp(-0.5 * (jax.vmap(nll)(u) - l_min))
    cdf = jnp.concatenate([jnp.zeros(1), jnp.cumsum(0.5 * (post[1:] + post[:-1]) * jnp.diff(u))])
    total = cdf[-1]
    cdf = cdf / jnp.where(total > 0, total, 1.0)
    ul68 = jnp.interp(0.68, cdf, u)
    ul95 = jnp.interp(0.95, cdf, u)
    return RFit(r_hat, sigma, r_lo, r_hi, ul68, ul95, r_hat + sigma, l_min, status)


def _adaptive_grid(obs, stat, tensor, lens, dof, n_grid):
    """Per-realisation grid: -12 to +20 Fisher sigmas around a Fisher-scoring estimate of r."""
    base = lens + stat
    floor = -jnp.min(jnp.where(tensor > 0, base / jnp.where(tensor > 0, tensor, 1.0), jnp.inf))

    def scoring_step(_, r):
        model = r * tensor + base
        step = jnp.sum(dof * tensor * (obs - model) / model**2) / jnp.sum(
            dof * tensor**2 / model**2
        )
        # Stay inside the region where the model is positive.
        return jnp.maximum(r + step, 0.5 * (r + floor))

    r0 = jax.lax.fori_loop(0, 8, scoring_step, jnp.zeros((), obs.dtype))
    model = jnp.maximum(r0, 0.0) * tensor + base
    sigma = jnp.sqrt(2.0 / jnp.sum(dof * (tensor / model) ** 2))
    lo = jnp.maximum(jnp.minimum(r0, 0.0) - 12.0 * sigma, floor * (1.0 - 1e-9))
    hi = jnp.maximum(r0, 0.0) + 20.0 * sigma
    return jnp.linspace(lo, hi, n_grid)


@partial(jax.jit, static_argnames=("n_grid", "n_posterior"))
def _fit_batch(obs, stat, tensor, lens, dof, grid, n_grid, n_posterior):
    def one(o, s):
        if grid is None:
            g, cap = _adaptive_grid(o, s, tensor, lens, dof, n_grid), jnp.inf
        else:
            g, cap = grid, grid[-1]
        return _fit_one(o, s, tensor, lens, dof, g, cap, n_posterior)

    return jax.vmap(one)(obs, stat)


class _Prepared(NamedTuple):
    obs: np.ndarray
    stat: np.ndarray
    tensor: np.ndarray
    lens: np.ndarray
    dof: np.ndarray
    lead: tuple


def _prepare(cl_obs, cl_tensor, cl_lens, cl_stat, f_sky, ell, ell_range, n_modes, nside):
    if not jax.config.jax_enable_x64:
        raise ValueError(
            "jax_enable_x64: the r likelihood needs float64; call "
            'jax.config.update("jax_enable_x64", True) at start-up'
        )
    cl_obs = np.asarray(cl_obs, dtype=np.float64)
    n = cl_obs.shape[-1]
    ell = np.arange(n) if ell is None else np.asarray(ell, dtype=np.float64)
    if ell.shape != (n,):
        raise ValueError(f"ell: expected {n} multipoles matching cl_obs, got shape {ell.shape}")
    lmin, lmax = ell_range
    lmax = float(ell.max()) if lmax is None else lmax
    if lmin < 2 or lmax < lmin:
        raise ValueError(f"ell_range: need 2 <= lmin <= lmax, got {ell_range}")
    if nside is not None and lmax > 3 * nside - 1:
        raise ValueError(f"ell_range: lmax {lmax} exceeds 3 nside - 1 = {3 * nside - 1}")
    if n_modes is None and lmax > ell.max():
        raise ValueError(f"ell_range: lmax {lmax} exceeds the spectra's last multipole {ell.max()}")
    keep = (ell >= lmin) & (ell <= lmax)
    if not keep.any():
        raise ValueError(f"ell_range: no multipole of the spectra lies in {ell_range}")
    if not 0 < f_sky <= 1:
        raise ValueError(f"f_sky: must lie in (0, 1], got {f_sky}")
    modes = 2.0 * ell + 1.0 if n_modes is None else np.asarray(n_modes, dtype=np.float64)
    if modes.shape != (n,):
        raise ValueError(f"n_modes: expected shape ({n},), got {modes.shape}")
    arrays = {}
    for name, value in (("cl_tensor", cl_tensor), ("cl_lens", cl_lens)):
        value = np.asarray(value, dtype=np.float64)
        if value.shape[-1] < n:
            raise ValueError(f"{name}: has {value.shape[-1]} entries, cl_obs has {n}")
        arrays[name] = value[..., :n][keep]
    stat = np.zeros(n) if cl_stat is None else np.asarray(cl_stat, dtype=np.float64)
    if stat.shape[-1] < n:
        raise ValueError(f"cl_stat: has {stat.shape[-1]} entries, cl_obs has {n}")
    stat = stat[..., :n][..., keep]
    obs = cl_obs[..., keep]
    for name, value in (("cl_obs", obs), ("cl_stat", stat), *arrays.items()):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name}: contains NaN or inf in the ell range")
    if np.any(arrays["cl_tensor"] < 0):
        raise ValueError("cl_tensor: negative model spectrum in the ell range")
    if np.any(arrays["cl_lens"] < 0):
        raise ValueError("cl_lens: negative model spectrum in the ell range")
    if np.any(arrays["cl_lens"] + stat <= 0):
        raise ValueError(
            "cl_stat: C_lens + C_stat must be positive at every ell in the range "
            "(the model spectrum at r = 0 is non-positive); clip or smooth C_stat"
        )
    if not np.any(arrays["cl_tensor"] > 0):
        raise ValueError("cl_tensor: identically zero in the ell range, r is unconstrained")
    lead = obs.shape[:-1]
    stat = np.broadcast_to(stat, obs.shape)
    m = obs.shape[-1]
    return _Prepared(
        obs.reshape(-1, m),
        np.ascontiguousarray(stat).reshape(-1, m),
        arrays["cl_tensor"],
        arrays["cl_lens"],
        f_sky * modes[keep],
        lead,
    )


def fit_r(
    cl_obs: Float[np.ndarray, "... ell"],
    cl_tensor: Float[np.ndarray, " ell"],
    cl_lens: Float[np.ndarray, " ell"],
    cl_stat: Float[np.ndarray, "... ell"] | None = None,
    *,
    f_sky: float = 1.0,
    ell: Float[np.ndarray, " ell"] | None = None,
    ell_range: tuple[float, float | None] = (2, None),
    n_modes: Float[np.ndarray, " ell"] | None = None,
    nside: int | None = None,
    r_grid: Float[np.ndarray, " grid"] | None = None,
    n_grid: int = 201,
    n_posterior: int = 1001,
) -> RFit:
    """Fit r to observed BB spectra with the likelihood of paper sec. IV.d.

    Args:
        cl_obs: observed BB C_ell (uK^2), ``[..., ell]``; leading axes are realisations,
            fitted independently (one vmapped, jitted call).
        cl_tensor: tensor BB template at r = 1 (same ell axis as ``cl_obs``).
        cl_lens: lensing BB template.
        cl_stat: noise floor C_stat (``[ell]`` or ``[..., ell]``); default 0.
        f_sky: sky fraction multiplying the mode counts.
        ell: multipole of each entry of the last axis (default ``0, 1, 2, ...``); give the
            bins' ``ell_eff`` for bandpowers.
        ell_range: inclusive ``(lmin, lmax)`` of the sum; ``lmax=None`` means the last one.
            For bandpowers, the bins whose ``ell`` (centre) lies in the range are used.
        n_modes: full-sky modes per entry (default ``2 ell + 1``; ``Bins.n_modes`` for
            bandpowers).
        nside: if given, refuse an ``lmax`` above ``3 nside - 1``.
        r_grid: explicit evaluation grid shared by all realisations; by default each
            realisation gets ``n_grid`` points over +-12 Fisher sigmas around a moment estimate.
        n_grid: size of the adaptive grid.
        n_posterior: points of the r >= 0 posterior used for the upper limits.

    Returns:
        ``RFit`` of numpy arrays with the leading shape of ``cl_obs``.

    Example:
        >>> jax.config.update("jax_enable_x64", True)  # doctest: +SKIP
        >>> fit = fit_r(cl_bb_obs, t.tensor_bb, t.lensed_bb, n_ell, f_sky=0.4,
        ...             ell_range=(2, 128))  # doctest: +SKIP
    """
    p = _prepare(cl_obs, cl_tensor, cl_lens, cl_stat, f_sky, ell, ell_range, n_modes, nside)
    grid = None
    if r_grid is not None:
        grid = np.asarray(r_grid, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 3 or np.any(np.diff(grid) <= 0):
            raise ValueError("r_grid: need a strictly increasing 1-D grid of >= 3 values")
    if n_grid < 3 or n_posterior < 3:
        raise ValueError("n_grid, n_posterior: need at least 3 points")
    obs, stat, tensor, lens, dof = _pad(p)
    out = _fit_batch(obs, stat, tensor, lens, dof, grid, n_grid, n_posterior)
    n = p.obs.shape[0]
    return RFit(*(np.asarray(v)[:n].reshape(p.lead) for v in out))


def _bucket(n: int, smallest: int) -> int:
    return max(smallest, 1 << (int(n) - 1).bit_length())


def _pad(p: _Prepared):
    """Pad multipoles and realisations to power-of-two sizes so that calls with similar
    shapes share one compiled function. Padded multipoles carry zero modes (and a positive
    dummy model); padded realisations repeat the first one and are dropped afterwards."""
    n_real, n_ell = p.obs.shape
    ell_pad = _bucket(n_ell, 16) - n_ell
    real_pad = _bucket(n_real, 64) - n_real
    ones = lambda a: np.pad(a, [(0, 0)] * (a.ndim - 1) + [(0, ell_pad)], constant_values=1.0)
    obs, stat = ones(p.obs), np.pad(p.stat, [(0, 0), (0, ell_pad)])
    tensor = np.pad(p.tensor, (0, ell_pad))
    lens = ones(p.lens)
    dof = np.pad(p.dof, (0, ell_pad))
    obs = np.concatenate([obs, np.repeat(obs[:1], real_pad, axis=0)])
    stat = np.concatenate([stat, np.repeat(stat[:1], real_pad, axis=0)])
    return obs, stat, tensor, lens, dof


def r_neg2_log_likelihood(
    r: Float[np.ndarray, " grid"],
    cl_obs: Float[np.ndarray, " ell"],
    cl_tensor: Float[np.ndarray, " ell"],
    cl_lens: Float[np.ndarray, " ell"],
    cl_stat: Float[np.ndarray, " ell"] | None = None,
    *,
    f_sky: float = 1.0,
    ell: Float[np.ndarray, " ell"] | None = None,
    ell_range: tuple[float, float | None] = (2, None),
    n_modes: Float[np.ndarray, " ell"] | None = None,
    nside: int | None = None,
) -> Float[np.ndarray, "... grid"]:
    """-2 ln L(r) of paper sec. IV.d on the values ``r`` (inf where the model is <= 0)."""
    p = _prepare(cl_obs, cl_tensor, cl_lens, cl_stat, f_sky, ell, ell_range, n_modes, nside)
    r = jnp.asarray(r, dtype=jnp.float64)
    f = jax.vmap(lambda o, s: jax.vmap(lambda x: _neg2lnl(x, o, p.tensor, p.lens + s, p.dof))(r))
    return np.asarray(jax.jit(f)(p.obs, p.stat)).reshape((*p.lead, r.size))


def r_likelihood_curve(r, cl_obs, cl_tensor, cl_lens, cl_stat=None, **kwargs):
    """Likelihood ``L(r) / max L`` on the values ``r`` (for plots); kwargs as ``fit_r``."""
    nll = r_neg2_log_likelihood(r, cl_obs, cl_tensor, cl_lens, cl_stat, **kwargs)
    return np.exp(-0.5 * (nll - np.min(nll, axis=-1, keepdims=True)))


def fisher_sigma_r(
    r: float,
    cl_tensor: Float[np.ndarray, " ell"],
    cl_lens: Float[np.ndarray, " ell"],
    cl_stat: Float[np.ndarray, " ell"] | None = None,
    *,
    f_sky: float = 1.0,
    ell: Float[np.ndarray, " ell"] | None = None,
    ell_range: tuple[float, float | None] = (2, None),
    n_modes: Float[np.ndarray, " ell"] | None = None,
) -> float:
    """Fisher forecast ``sigma(r) = [1/2 sum f_sky (2l+1) (C^tensor / C^model(r))^2]^-1/2``."""
    cl_tensor = np.asarray(cl_tensor, dtype=np.float64)
    cl_obs = r * cl_tensor + np.asarray(cl_lens, dtype=np.float64)[: cl_tensor.size]
    if cl_stat is not None:
        cl_obs = cl_obs + np.asarray(cl_stat, dtype=np.float64)[: cl_tensor.size]
    p = _prepare(cl_obs, cl_tensor, cl_lens, cl_stat, f_sky, ell, ell_range, n_modes, None)
    model = r * p.tensor + p.lens + p.stat[0]
    return float(np.sqrt(2.0 / np.sum(p.dof * (p.tensor / model) ** 2)))

"""Component reconstruction, goodness of fit, selection metric and parameter errors.

* GLS component maps (eqs. 4 and 8 of kabalan2025_clustered_compsep.md):
  ``s_hat = W(beta) d`` with ``W = (A^T N^-1 A)^-1 A^T N^-1``, per pixel and Stokes
  parameter, and their noise covariance ``(A^T N^-1 A)^-1``.
* Per-pixel chi^2 of the fit, ``sum_stokes (d - A s_hat)^T N^-1 (d - A s_hat)``.
* The CMB-variance selection metric (eq. 9): the variance of the reconstructed CMB across
  noise realisations, averaged over pixels (and Stokes parameters).
* Parameter errors: the inverse of the exact Hessian of -log L (eq. 5) at the optimum.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._fit import _terms
from ._likelihood import SpectralLikelihood, _spd_inverse, apply_mask
from ._optimize import _evaluate, _model, _structure
from ._sed import Component

__all__ = [
    "ComponentMaps",
    "cmb_variance",
    "component_maps",
    "component_maps_likelihood",
    "parameter_covariance",
    "parameter_errors",
]


class ComponentMaps(NamedTuple):
    """GLS reconstruction of the components (batch dims of the inputs lead every field).

    Attributes:
        amplitudes: ``[comp, stokes, pix]`` component maps at their reference frequencies
            [uK_CMB for K_CMB-normalised SEDs].
        noise_covariance: ``[stokes, pix, comp, comp]`` ``(A^T N^-1 A)^-1`` [uK^2].
        chi2: ``[pix]`` chi^2 of the fit summed over Stokes parameters (``n_freq - n_comp``
            degrees of freedom per Stokes parameter when the model is right).
    """

    amplitudes: Float[Array, "comp stokes pix"]
    noise_covariance: Float[Array, "stokes pix comp comp"]
    chi2: Float[Array, " pix"]


def component_maps_likelihood(
    lik: SpectralLikelihood, params: Mapping[str, ArrayLike], data: Float[Array, "freq stokes pix"]
) -> ComponentMaps:
    """GLS maps, noise covariance and chi^2 for one data set (pure JAX; vmap over batches)."""
    lay = lik.layout
    x = lay.flatten(params)
    a_t = lik.mixing(x[lay.tuple_index], jnp.asarray(lay.tuple_fixed))
    a = a_t[jnp.asarray(lay.pixel_tuple)]  # [P, F, C]
    ninv = lik.pixel_noise(data.shape[-2])  # [P, F, S]
    d = jnp.moveaxis(data, -1, 0)  # [P, F, S]
    m = jnp.einsum("pfc,pfs,pfk->psck", a, ninv, a)
    cov = _spd_inverse(m)
    y = jnp.einsum("pfc,pfs->psc", a, ninv * d)
    s = jnp.einsum("psck,psk->psc", cov, y)
    resid = d - jnp.einsum("pfc,psc->pfs", a, s)
    chi2 = jnp.sum(ninv * resid**2, axis=(1, 2))
    return ComponentMaps(
        amplitudes=jnp.transpose(s, (2, 1, 0)),
        noise_covariance=jnp.swapaxes(cov, 0, 1),
        chi2=chi2,
    )


def _setup(data, components, frequencies, noise_inv_var, labels, fixed, mask):
    data, noise_inv_var, labels, fixed = apply_mask(mask, data, noise_inv_var, labels, fixed)
    lik = SpectralLikelihood.create(
        components, frequencies, noise_inv_var, np.shape(data)[-1], labels, fixed=fixed
    )
    return lik, lik.check_data(data)


def _batched(fn, n_batch: int):
    for _ in range(n_batch):
        fn = jax.vmap(fn)
    return fn


def component_maps(
    params: Mapping[str, ArrayLike],
    data: ArrayLike,
    components: Sequence[Component],
    frequencies: ArrayLike,
    noise_inv_var: ArrayLike,
    labels: Mapping[str, ArrayLike] | None = None,
    *,
    fixed: Mapping[str, ArrayLike] | None = None,
    mask: ArrayLike | None = None,
) -> ComponentMaps:
    """GLS component maps ``W(beta) d``, their noise covariance and the per-pixel chi^2.

    Args:
        params: free parameter name -> ``[..., K]`` per-patch values (e.g. ``FitResult.params``).
        data: ``[..., n_freq, n_stokes, n_pix]`` frequency maps [uK_CMB].
        components, frequencies, noise_inv_var, labels, fixed, mask: as in :func:`fit`.

    Returns:
        :class:`ComponentMaps`, with the batch dims of data and params (which must match).

    Example:
        >>> import jax; jax.config.update("jax_enable_x64", True)
        >>> import numpy as np
        >>> from spec_likelihood import CMB, Dust, component_maps, mixing_matrix
        >>> comps, nu = [CMB(), Dust(150.0)], np.array([100.0, 150.0, 220.0])
        >>> p = {"beta_d": 1.5, "T_d": 20.0}
        >>> s = np.ones((2, 2, 4))
        >>> d = np.einsum("fc,csp->fsp", np.asarray(mixing_matrix(comps, nu, p)), s)
        >>> out = component_maps(p, d, comps, nu, np.ones(3))
        >>> bool(np.allclose(out.amplitudes, 1.0)), bool(np.allclose(out.chi2, 0.0, atol=1e-20))
        (True, True)
    """
    lik, d = _setup(data, components, frequencies, noise_inv_var, labels, fixed, mask)
    x = lik.layout.flatten(params)
    lead = jnp.broadcast_shapes(x.shape[:-1], d.shape[:-3])
    x = jnp.broadcast_to(x, (*lead, x.shape[-1]))
    d = jnp.broadcast_to(d, (*lead, *d.shape[-3:]))
    fn = lambda xx, dd: component_maps_likelihood(lik, lik.layout.unflatten(xx), dd)
    return jax.jit(_batched(fn, len(lead)))(x, d)


def cmb_variance(
    cmb_maps: Float[ArrayLike, "real ... pix"], mask: ArrayLike | None = None
) -> Float[Array, ""]:
    """CMB-variance selection metric (eq. 9 of kabalan2025_clustered_compsep.md).

    ``sigma^2_CMB = < Var_noise[s_hat_CMB(n)] >_pixels``: the variance across noise
    realisations (axis 0, population variance) of the reconstructed CMB, averaged over the
    pixels (and any Stokes axis in between).

    Args:
        cmb_maps: ``[n_real, ..., n_pix]`` reconstructed CMB maps (e.g.
            ``ComponentMaps.amplitudes[:, 0]`` for fits of ``n_real`` noise realisations).
        mask: optional ``[n_pix]`` bool selecting the pixels to average over.

    Returns:
        The metric [uK^2].
    """
    m = jnp.asarray(cmb_maps)
    if m.ndim < 2 or m.shape[0] < 2:
        raise ValueError(f"cmb_maps must be [n_real >= 2, ..., n_pix], got shape {m.shape}")
    if mask is not None:
        keep = np.asarray(mask)
        if keep.dtype != bool or keep.shape != (m.shape[-1],):
            raise ValueError(f"mask must be a bool array of shape [{m.shape[-1]}]")
        m = m[..., np.flatnonzero(keep)]
    return jnp.mean(jnp.var(m, axis=0))


def _hessian_dense(lik: SpectralLikelihood, x: Array, data: Array) -> Array:
    fn, aux, index, vgh, valid = _terms(lik, data, "auto", "exact")
    st = _structure(index, lik.layout.n_patches)
    _, _, h = _evaluate(fn, aux, x, st, vgh, valid)
    h = _model(h, 0)  # the exact Hessian (the only model of hessian="exact")
    n = st.n
    e = np.arange(st.e_off, st.e_off + st.e_size)
    full = jnp.zeros((n, n), x.dtype).at[e, e].set(h.diag[e])
    if st.r_global.shape[0]:
        r = st.r_global
        full = full.at[np.ix_(e, r)].set(h.cross).at[np.ix_(r, e)].set(h.cross.T)
        full = full.at[np.ix_(r, r)].set(h.reduced)
    return full


def _fisher_dense(lik: SpectralLikelihood, x: Array, data: Array) -> Array:
    """fgbuster's semi-analytic Fisher matrix ``sum s^T A_i^T P A_j s`` (Gauss-Newton part).

    ``A_i = dA/dbeta_i``, ``P = N^-1 - N^-1 A (A^T N^-1 A)^-1 A^T N^-1`` and ``s`` the GLS
    amplitudes: the Hessian without the terms proportional to the fit residuals.
    """
    lay = lik.layout
    theta = x[lay.tuple_index]
    fixed_t = jnp.asarray(lay.tuple_fixed)
    a_t = lik.mixing(theta, fixed_t)
    da_t = jax.vmap(jax.jacfwd(lik.mixing))(theta, fixed_t)  # [T, F, C, m]
    pt = jnp.asarray(lay.pixel_tuple)
    a, da = a_t[pt], da_t[pt]
    maps = component_maps_likelihood(lik, lay.unflatten(x), data)
    s = jnp.transpose(maps.amplitudes, (2, 1, 0))  # [P, S, C]
    ninv = lik.pixel_noise(data.shape[-2])  # [P, F, S]
    u = jnp.einsum("pfcm,psc->psfm", da, s)
    nu_ = jnp.moveaxis(ninv, 1, 2)[..., None] * u  # N^-1 u, [P, S, F, m]
    proj = jnp.einsum("psck,pfc,psfm->pskm", maps.noise_covariance.swapaxes(0, 1), a, nu_)
    pu = nu_ - jnp.moveaxis(ninv, 1, 2)[..., None] * jnp.einsum("pfk,pskm->psfm", a, proj)
    block = jnp.einsum("psfm,psfn->pmn", u, pu)
    idx = jnp.asarray(lay.pixel_index)
    n = lay.n_params
    return jnp.zeros((n, n), x.dtype).at[idx[:, :, None], idx[:, None, :]].add(block)


def parameter_covariance(
    params: Mapping[str, ArrayLike],
    data: ArrayLike,
    components: Sequence[Component],
    frequencies: ArrayLike,
    noise_inv_var: ArrayLike,
    labels: Mapping[str, ArrayLike] | None = None,
    *,
    fixed: Mapping[str, ArrayLike] | None = None,
    mask: ArrayLike | None = None,
    kind: Literal["hessian", "fisher"] = "hessian",
) -> Float[Array, "n_params n_params"]:
    """Covariance of the per-patch parameters at ``params`` (one data set, no batch dims).

    ``kind="hessian"``: the inverse of the exact Hessian of -log L (eq. 5).
    ``kind="fisher"``: the inverse of fgbuster's semi-analytic Fisher matrix
    ``sum_pix s^T dA_i^T P dA_j s`` with ``P = N^-1 - N^-1 A (A^T N^-1 A)^-1 A^T N^-1``
    (fgbuster's ``Sigma``), which drops the terms proportional to the residuals; the two agree
    when the model fits the data (chi^2 ~ its degrees of freedom).

    The flat order is free parameter by free parameter (the components' parameter order),
    patch by patch, as :attr:`PatchLayout.free_names` and ``n_patches`` say.
    """
    lik, d = _setup(data, components, frequencies, noise_inv_var, labels, fixed, mask)
    if d.ndim != 3:
        raise ValueError(f"data must be one data set [n_freq, n_stokes, n_pix], got {d.shape}")
    if kind not in ("hessian", "fisher"):
        raise ValueError(f"kind must be 'hessian' or 'fisher', got {kind!r}")
    x = lik.layout.flatten(params)
    dense = _hessian_dense if kind == "hessian" else _fisher_dense
    return jax.jit(lambda xx, dd: jnp.linalg.inv(dense(lik, xx, dd)))(x, d)


def parameter_errors(
    params: Mapping[str, ArrayLike],
    data: ArrayLike,
    components: Sequence[Component],
    frequencies: ArrayLike,
    noise_inv_var: ArrayLike,
    labels: Mapping[str, ArrayLike] | None = None,
    *,
    fixed: Mapping[str, ArrayLike] | None = None,
    mask: ArrayLike | None = None,
    kind: Literal["hessian", "fisher"] = "hessian",
) -> dict[str, Float[Array, " k"]]:
    """1-sigma errors per patch, ``sqrt(diag H^-1)`` of the Hessian of -log L at ``params``.

    Args: as :func:`parameter_covariance`.

    Returns:
        free parameter name -> ``[K]`` errors (same units as the parameter).
    """
    lik, _ = _setup(data, components, frequencies, noise_inv_var, labels, fixed, mask)
    cov = parameter_covariance(
        params,
        data,
        components,
        frequencies,
        noise_inv_var,
        labels,
        fixed=fixed,
        mask=mask,
        kind=kind,
    )
    return lik.layout.unflatten(jnp.sqrt(jnp.diagonal(cov)))

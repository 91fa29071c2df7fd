"""The chi^2 model-comparison baseline of section 5 of farsian2020.

Every pixel is fitted twice with the parametric data model ``d_p = A_p s_p + n_p`` (eq. 5.1):
CMB + dust (beta_d, T_d fixed at the simulation's values) + synchrotron as a pure power law
(free beta_s) or curved (free beta_s and C_s, pivot 23 GHz). The spectral parameters are fitted
per pixel with ``spec_likelihood.fit`` (bounded projected Newton on the spectral likelihood,
eq. 5.3), the amplitudes by generalised least squares at the optimum (eq. 5.2), and

    chi^2(p) = sum_nu sum_{Q,U} (d_nu - (A s)_nu)^2 / sigma_nu^2                 (eq. 5.4)

with white noise only. The reduced chi^2 (divided by the degrees of freedom
``2 n_freq - 2 n_comp - n_nonlinear``) picks the model; ties (both fits exact, e.g. noiseless
power-law data, which the curved model nests) go to the simpler power law.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float, Int
from spec_likelihood import CMB, Dust, Synchrotron, fit, mixing_matrix

from ._simulate import SimulationConfig

__all__ = ["Chi2Comparison", "chi2_model_comparison", "pixel_chi2"]


class Chi2Comparison(NamedTuple):
    """Per-pixel outcome of the chi^2 model comparison.

    Attributes:
        chi2_power_law: chi^2 of the power-law fit, ``[pix]``.
        chi2_curved: chi^2 of the curved fit, ``[pix]``.
        dof_power_law: degrees of freedom of the power-law fit.
        dof_curved: degrees of freedom of the curved fit.
        choice: 0 where the power law is preferred, 1 where the curved model is, ``[pix]``.
        beta_s_power_law: fitted beta_s of the power-law model, ``[pix]``.
        beta_s_curved: fitted beta_s of the curved model, ``[pix]``.
        c_s_curved: fitted curvature, ``[pix]``.
        converged: both fits converged (per map; the fit is joint over independent pixels).
    """

    chi2_power_law: Float[Array, " pix"]
    chi2_curved: Float[Array, " pix"]
    dof_power_law: int
    dof_curved: int
    choice: Int[Array, " pix"]
    beta_s_power_law: Float[Array, " pix"]
    beta_s_curved: Float[Array, " pix"]
    c_s_curved: Float[Array, " pix"]
    converged: Bool[Array, ""]


def pixel_chi2(
    data: Float[ArrayLike, "freq stokes pix"],
    mixing: Float[ArrayLike, "pix freq comp"],
    sigma: Float[ArrayLike, " freq"],
) -> Float[Array, " pix"]:
    """chi^2 per pixel after the GLS amplitude solution (eqs 5.2 and 5.4).

    Args:
        data: frequency maps [uK_CMB], ``[freq, stokes, pix]``.
        mixing: per-pixel mixing matrix ``[pix, freq, comp]``.
        sigma: white-noise standard deviation per band [uK_CMB].

    Returns:
        ``sum_{nu, stokes} (d - A s_hat)^2 / sigma^2`` per pixel.
    """
    d = jnp.moveaxis(jnp.asarray(data), -1, 0)  # [pix, freq, stokes]
    a = jnp.asarray(mixing)
    w = 1.0 / jnp.asarray(sigma) ** 2
    atna = jnp.einsum("pfc,f,pfk->pck", a, w, a)
    atnd = jnp.einsum("pfc,f,pfs->pcs", a, w, d)
    chol = jnp.linalg.cholesky(atna)
    s_hat = jax.scipy.linalg.cho_solve((chol, True), atnd)
    resid = d - jnp.einsum("pfc,pcs->pfs", a, s_hat)
    return jnp.einsum("pfs,f->p", resid**2, w)


def chi2_model_comparison(
    data: Float[ArrayLike, "freq 2 pix"],
    frequencies: Float[ArrayLike, " freq"],
    sigma: Float[ArrayLike, " freq"],
    *,
    config: SimulationConfig | None = None,
    dust_nu0: float = 353.0,
    sync_nu0: float = 23.0,
    max_iter: int = 200,
    tie_tolerance: float = 1e-6,
) -> Chi2Comparison:
    """Per-pixel power-law vs curved synchrotron fits and the reduced-chi^2 choice.

    Use float64 (``jax.config.update("jax_enable_x64", True)``): the spectral likelihood
    needs it.

    Args:
        data: frequency maps [uK_CMB], ``[freq, 2 (Q, U), pix]``.
        frequencies: band centres [GHz].
        sigma: white-noise standard deviation per band [uK_CMB] (the chi^2 weights).
        config: simulation settings (fixed beta_d, T_d; curvature pivot); default
            ``SimulationConfig()``.
        dust_nu0: dust reference frequency [GHz].
        sync_nu0: synchrotron reference frequency [GHz].
        max_iter: iteration limit of each fit.
        tie_tolerance: reduced-chi^2 margin within which the power law is kept (above the
            fits' precision: a noiseless power-law pixel can stop at chi^2 ~ 1e-8, and
            far below the ~1 of noisy pixels).

    Returns:
        :class:`Chi2Comparison`.

    Raises:
        ValueError: shapes that do not match the frequencies.
    """
    config = SimulationConfig() if config is None else config
    d = jnp.asarray(data, dtype=float)
    nu = jnp.asarray(frequencies, dtype=float)
    sig = jnp.asarray(sigma, dtype=float)
    if d.ndim != 3 or d.shape[0] != nu.shape[0] or d.shape[1] != 2:
        raise ValueError(
            f"data must have shape [freq={nu.shape[0]}, 2, pix], got {d.shape}; frequencies and "
            "data must describe the same bands"
        )
    if sig.shape != nu.shape:
        raise ValueError(f"sigma must have shape {nu.shape}, got {sig.shape}")
    n_pix = d.shape[-1]
    pixels = np.arange(n_pix)
    dust = Dust(nu0=dust_nu0, beta_d=config.beta_d, T_d=config.T_d)
    models = {
        "power_law": [CMB(), dust, Synchrotron(nu0=sync_nu0)],
        "curved": [CMB(), dust, Synchrotron(nu0=sync_nu0, curved=True, nu_pivot=config.nu_pivot)],
    }
    chi2, params, converged = {}, {}, []
    for name, comps in models.items():
        labels = {p: pixels for c in comps for p in c.params}
        res = fit(d, comps, nu, 1.0 / sig**2, labels, max_iter=max_iter)
        mix = mixing_matrix(comps, nu, res.params)
        chi2[name] = pixel_chi2(d, mix, sig)
        params[name] = res.params
        converged.append(res.converged)
    n_data = 2 * nu.shape[0]
    dof_pl = n_data - 2 * 3 - 1
    dof_cu = n_data - 2 * 3 - 2
    red_pl = chi2["power_law"] / dof_pl
    red_cu = chi2["curved"] / dof_cu
    choice = jnp.where(red_cu < red_pl - tie_tolerance, 1, 0).astype(jnp.int32)
    return Chi2Comparison(
        chi2_power_law=chi2["power_law"],
        chi2_curved=chi2["curved"],
        dof_power_law=dof_pl,
        dof_curved=dof_cu,
        choice=choice,
        beta_s_power_law=params["power_law"]["beta_s"],
        beta_s_curved=params["curved"]["beta_s"],
        c_s_curved=params["curved"]["C_s"],
        converged=jnp.logical_and(*converged),
    )

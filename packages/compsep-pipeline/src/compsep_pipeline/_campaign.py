"""The campaign: per region, a grid over (K_bd, K_Td, K_bs), selection, layout comparison.

For one region and one patch configuration (section II.C-E of
kabalan2025_clustered_compsep.md):

1. spherical K-means patches per spectral parameter (sphere-kmeans);
2. bounded fits of the spectral likelihood (eq. 5) for all noise realisations in one
   vmapped call (spec-likelihood ``fit``);
3. GLS reconstruction ``s_hat = W(beta_hat) d`` (eq. 7-8) of every realisation and of the
   foreground-only sky through the same W (systematic residual, section IV.b);
4. metrics: CMB variance over noise realisations (eq. 9), mean spectral NLL, residual
   mean squared errors, convergence.

The grid goes through grid-dispatch (Parquet, atomic, resumable); the best configuration
minimises the selected metric. The selected K-means layout is then compared with the PTEP
multi-resolution layout (Table IV) and a single patch.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import grid_dispatch as gd
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import spec_likelihood as sl

from ._config import CampaignConfig
from ._patches import PARAMETER_NAMES, KMeansPatcher
from ._sky import SkyMaps
from ._x64 import ensure_x64

GRID_AXES = ("K_bd", "K_Td", "K_bs")
"""Grid axes: patch counts of beta_d, T_d and beta_s."""


def components() -> list[sl.Component]:
    """CMB + modified-blackbody dust (150 GHz) + power-law synchrotron (20 GHz), K_CMB."""
    return [sl.CMB(), sl.Dust(nu0=150.0), sl.Synchrotron(nu0=20.0)]


@dataclass(frozen=True, eq=False)
class RegionProblem:
    """Everything the fits of one region need (arrays over the region's pixels).

    Attributes:
        name: region spec (``GAL020``, ``GAL040-GAL020_U``...).
        nside: HEALPix resolution.
        mask: boolean full-sky mask ``[npix]``.
        indices: RING indices of the region's pixels ``[n]``.
        frequencies: band centres [GHz].
        noise_inv_var: 1/sigma^2 per band [uK_CMB^-2].
        data: CMB + foregrounds + noise ``[n_real, freq, 2, n]`` [uK_CMB].
        foregrounds: foreground-only sky ``[freq, 2, n]`` (systematic residuals).
        cmb_true: input CMB ``[2, n]``.
        patcher: K-means labels of the region, cached per K.
    """

    name: str
    nside: int
    mask: np.ndarray
    indices: np.ndarray
    frequencies: np.ndarray
    noise_inv_var: np.ndarray
    data: np.ndarray
    foregrounds: np.ndarray
    cmb_true: np.ndarray
    patcher: KMeansPatcher

    @property
    def n_real(self) -> int:
        """Number of noise realisations."""
        return int(self.data.shape[0])


def region_seed(base: int, name: str) -> int:
    """Noise seed of a region: the same for every configuration (common random numbers)."""
    return (int(base) * 1_000_003 + zlib.crc32(name.encode())) % (2**31 - 1)


def region_problem(
    cfg: CampaignConfig, sky: SkyMaps, instrument: sl.Instrument, name: str, mask: np.ndarray
) -> RegionProblem:
    """Signal + seeded noise realisations of one region (spec-likelihood noise model)."""
    ensure_x64()
    nside = cfg.sky.nside
    mask = np.asarray(mask, dtype=bool)
    indices = np.flatnonzero(mask)
    noise = np.asarray(
        sl.noise_realisations(
            instrument,
            nside,
            mask,
            region_seed(cfg.noise.seed, name),
            cfg.noise.n_realisations,
        )
    )
    sigma = np.asarray(sl.white_noise_sigma(instrument, nside), dtype=np.float64)
    signal = sky.signal[:, :, indices]
    return RegionProblem(
        name=name,
        nside=nside,
        mask=mask,
        indices=indices,
        frequencies=np.asarray(instrument.frequencies, dtype=np.float64),
        noise_inv_var=1.0 / sigma**2,
        data=signal[None] + noise,
        foregrounds=sky.foregrounds[:, :, indices],
        cmb_true=sky.cmb[:, indices],
        patcher=KMeansPatcher(
            nside, mask, seed=cfg.grid.kmeans_seed, n_init=cfg.grid.kmeans_n_init
        ),
    )


@dataclass(frozen=True, eq=False)
class LayoutFit:
    """Fits of one patch layout over all noise realisations of a region.

    Attributes:
        layout: parameter name -> patch labels over the region's pixels ``[n]``.
        params: parameter name -> best-fit per-patch values ``[n_real, K]``.
        nll: -log L at the optimum ``[n_real]``.
        converged: ``[n_real]`` bool.
        n_iter: ``[n_real]`` optimiser iterations.
        cmb: reconstructed CMB ``W(beta_hat) d`` ``[n_real, 2, n]`` [uK_CMB].
        cmb_systematic: ``W(beta_hat) d_fg``, CMB row ``[n_real, 2, n]`` [uK_CMB].
        compile_s: compilation time of the jitted fit + reconstruction [s].
        run_s: execution time of the fits of all realisations [s].
    """

    layout: Mapping[str, np.ndarray]
    params: Mapping[str, np.ndarray]
    nll: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    cmb: np.ndarray
    cmb_systematic: np.ndarray
    compile_s: float = float("nan")
    run_s: float = float("nan")

    def pixel_params(self) -> dict[str, np.ndarray]:
        """Per-pixel best-fit parameters ``[n_real, n]``."""
        return {k: self.params[k][:, self.layout[k]] for k in PARAMETER_NAMES}


def fit_layout(
    problem: RegionProblem, layout: Mapping[str, np.ndarray], cfg: CampaignConfig
) -> LayoutFit:
    """Fit every noise realisation of a region with one patch layout, then reconstruct.

    One jitted, vmapped call per layout: bounded fits of all realisations, the GLS CMB of
    each (eq. 7) and the same W applied to the foreground-only sky (systematic residual).
    """
    ensure_x64()
    labels = {k: np.asarray(v) for k, v in layout.items()}
    lik = sl.SpectralLikelihood.create(
        components(), problem.frequencies, problem.noise_inv_var, problem.indices.size, labels
    )
    fit_cfg = cfg.fit

    def one(data, foregrounds):
        res = sl.fit_likelihood(
            lik,
            data,
            n_starts=fit_cfg.n_starts,
            gtol=fit_cfg.gtol,
            rtol=fit_cfg.rtol,
            max_iter=fit_cfg.max_iter,
        )
        cmb = sl.component_maps_likelihood(lik, res.params, data).amplitudes[0]
        syst = sl.component_maps_likelihood(lik, res.params, foregrounds).amplitudes[0]
        return res, cmb, syst

    args = (jnp.asarray(problem.data), jnp.asarray(problem.foregrounds))
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(one, in_axes=(0, None))).lower(*args).compile()
    t1 = time.perf_counter()
    res, cmb, syst = jax.block_until_ready(compiled(*args))
    t2 = time.perf_counter()
    return LayoutFit(
        layout=labels,
        params={k: np.asarray(v) for k, v in res.params.items()},
        nll=np.asarray(res.nll),
        converged=np.asarray(res.converged),
        n_iter=np.asarray(res.n_iter),
        cmb=np.asarray(cmb),
        cmb_systematic=np.asarray(syst),
        compile_s=t1 - t0,
        run_s=t2 - t1,
    )


def spatial_cmb_variance(cmb: np.ndarray) -> float:
    """Eq. 9 as the paper's code evaluates it: ``< Var_pix[Q_n] + Var_pix[U_n] >_n``.

    The variance over the region's pixels of each reconstructed CMB map (Q and U summed),
    averaged over noise realisations (FURAX ``spectral_cmb_variance``). It holds the CMB
    itself, the foreground leakage and the noise; only the last two change with the
    layout, so its minimum balances systematic against statistical residuals.

    Args:
        cmb: reconstructed CMB ``[n_real, 2, n_pix]`` [uK_CMB].
    """
    return float(np.mean(np.sum(np.var(cmb, axis=-1), axis=-1)))


def layout_metrics(problem: RegionProblem, lf: LayoutFit) -> dict[str, float]:
    """Selection metrics of one layout [uK^2 for the map metrics].

    * ``cmb_variance``: eq. 9 (:func:`spatial_cmb_variance`), the paper's selection metric;
    * ``cmb_noise_variance``: variance across noise realisations averaged over pixels
      (spec-likelihood ``cmb_variance``), the statistical part alone;
    * ``nll``: mean spectral -log L at the optimum;
    * ``cmb_mse`` / ``syst_mse``: mean squared CMB error of the reconstruction and of the
      foreground-only sky through the same W;
    * ``converged_fraction``, ``n_iter``, ``n_params``;
    * ``compile_s``, ``run_s``: compilation and execution time of the fits [s].
    """
    return {
        "cmb_variance": spatial_cmb_variance(lf.cmb),
        "cmb_noise_variance": float(sl.cmb_variance(lf.cmb)),
        "nll": float(np.mean(lf.nll)),
        "cmb_mse": float(np.mean((lf.cmb - problem.cmb_true[None]) ** 2)),
        "syst_mse": float(np.mean(lf.cmb_systematic**2)),
        "converged_fraction": float(np.mean(lf.converged)),
        "n_iter": float(np.mean(lf.n_iter)),
        "n_params": float(sum(int(v.max()) + 1 for v in lf.layout.values())),
        "compile_s": float(lf.compile_s),
        "run_s": float(lf.run_s),
    }


def grid_space(cfg: CampaignConfig) -> gd.SearchSpace:
    """The (K_bd, K_Td, K_bs) search space of ``[grid]``."""
    return gd.SearchSpace({axis: list(getattr(cfg.grid, axis)) for axis in GRID_AXES})


def run_region_grid(
    problem: RegionProblem,
    cfg: CampaignConfig,
    out_dir: str | Path,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """Evaluate the grid of one region through grid-dispatch (resumes from ``out_dir``).

    With ``[grid] with_r`` every configuration also gets the r statistics of its residual
    spectra on the region (``r_hat``, ``sigma_r``, ``r_plus_sigma``: means over noise
    realisations), the 2026 paper's selection metric.
    """
    templates = None
    if cfg.grid.with_r:
        from ._cmb import cmb_templates

        templates = cmb_templates(3 * cfg.sky.nside - 1, cfg.sky.cls_file or None)

    def objective(config: Mapping[str, int]) -> dict[str, float]:
        counts = tuple(int(config[a]) for a in GRID_AXES)
        t0 = time.perf_counter()
        layout = problem.patcher.layout(counts)
        patch_s = time.perf_counter() - t0
        lf = fit_layout(problem, layout, cfg)
        out = {**layout_metrics(problem, lf), "patch_s": patch_s}
        if templates is not None:
            from ._compare import method_spectra, r_table, stitch

            spectra = method_spectra(
                stitch([problem], [lf]),
                templates,
                r_in=cfg.sky.r,
                a_lens=cfg.sky.A_lens,
                ell_range=cfg.ell_range,
            )
            row = r_table({"kmeans": spectra}).iloc[0]
            out["r_hat"] = float(row["r_hat_mean"])
            out["sigma_r"] = float(row["sigma_r_mean"])
            out["r_plus_sigma"] = float(row["r_plus_sigma_mean"])
        return out

    space = grid_space(cfg)
    gd.run_grid(
        objective,
        space,
        out_dir,
        batch_size=1,
        mode="loop",
        backend="single",
        progress=progress,
        quiet=not progress,
        flush_every_s=0.0,
    )
    return gd.load_results(out_dir, space)


def select_best(df: pd.DataFrame, metric: str) -> tuple[int, int, int]:
    """Patch counts (K_bd, K_Td, K_bs) minimising ``metric`` over successful rows."""
    best = gd.top_k(df, 1, metric)
    if best.empty:
        raise ValueError(f"no successful grid configuration to select by {metric!r}")
    row = best.iloc[0]
    return tuple(int(row[a]) for a in GRID_AXES)  # type: ignore[return-value]

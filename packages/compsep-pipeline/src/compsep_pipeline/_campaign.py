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

import dataclasses
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
from jaxtyping import Array

from ._config import CampaignConfig
from ._patches import PARAMETER_NAMES, KMeansPatcher, single_patch_layout
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


def region_seed(base: int, name: str, *, held_out: bool = False) -> int:
    """Noise seed of a region: the same for every configuration (common random numbers).

    ``held_out`` gives the seed of the evaluation set of ``[noise] held_out`` (independent
    of the selection set).
    """
    key = name + ("#held-out" if held_out else "")
    return (int(base) * 1_000_003 + zlib.crc32(key.encode())) % (2**31 - 1)


def region_problem(
    cfg: CampaignConfig,
    sky: SkyMaps,
    instrument: sl.Instrument,
    name: str,
    mask: np.ndarray,
    *,
    held_out: bool = False,
) -> RegionProblem:
    """Signal + seeded noise realisations of one region (spec-likelihood noise model).

    ``held_out`` draws the evaluation realisations of ``[noise] held_out`` instead of the
    selection ones.
    """
    ensure_x64()
    nside = cfg.sky.nside
    mask = np.asarray(mask, dtype=bool)
    indices = np.flatnonzero(mask)
    noise = np.asarray(
        sl.noise_realisations(
            instrument,
            nside,
            mask,
            region_seed(cfg.noise.seed, name, held_out=held_out),
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
        cmb: reconstructed CMB ``W(beta_hat) d`` ``[n_real, 2, n]`` [uK_CMB] (None when the
            fit kept only the metrics).
        cmb_systematic: ``W(beta_hat) d_fg``, CMB row ``[n_real, 2, n]`` [uK_CMB] (or None).
        metrics: the map metrics of :func:`layout_metrics`, computed on the device.
        compile_s: compilation time of the jitted fit + reconstruction [s].
        run_s: execution time of the fits of all realisations [s].
    """

    layout: Mapping[str, np.ndarray]
    params: Mapping[str, np.ndarray]
    nll: np.ndarray
    converged: np.ndarray
    n_iter: np.ndarray
    cmb: np.ndarray | None
    cmb_systematic: np.ndarray | None
    compile_s: float = float("nan")
    run_s: float = float("nan")
    metrics: Mapping[str, float] | None = None

    def pixel_params(self) -> dict[str, np.ndarray]:
        """Per-pixel best-fit parameters ``[n_real, n]``."""
        return {k: self.params[k][:, self.layout[k]] for k in PARAMETER_NAMES}


_COMPACT_MIN_BATCH = 32  # fewer realisations: one plain vmapped batch (little to gain)


def _fit_and_reconstruct(lik: sl.SpectralLikelihood, fit_cfg, data, foregrounds, x0=None):
    """Fits of every realisation ``data [n, F, 2, P]``, their GLS CMB and systematic maps.

    ``x0``: flat start of every fit (default ``lik.init``).
    """
    kw = {"gtol": fit_cfg.gtol, "rtol": fit_cfg.rtol, "max_iter": fit_cfg.max_iter}
    kw["hessian"] = fit_cfg.hessian
    n = data.shape[0]
    if fit_cfg.n_starts == 1 and fit_cfg.compact_after > 0 and n >= _COMPACT_MIN_BATCH:
        res = sl.fit_likelihood_batch(
            lik,
            data,
            x0,
            compact_after=fit_cfg.compact_after,
            compact_size=fit_cfg.compact_size or None,
            **kw,
        )
    else:
        res = jax.vmap(lambda d: sl.fit_likelihood(lik, d, x0, n_starts=fit_cfg.n_starts, **kw))(
            data
        )

    def maps(params, d):
        cmb = sl.component_maps_likelihood(lik, params, d).amplitudes[0]
        syst = sl.component_maps_likelihood(lik, params, foregrounds).amplitudes[0]
        return cmb, syst

    cmb, syst = jax.vmap(maps)(res.params, data)
    return res, cmb, syst


def _device_metrics(res, cmb, syst, cmb_true, valid) -> dict[str, Array]:
    """The map metrics of :func:`layout_metrics` on the device (only scalars leave it).

    ``valid`` ``[P]`` is 1 on the region's pixels and 0 on the padding pixels of
    :class:`RegionFitter` (every mean and variance over pixels is over the region's).
    """
    n = jnp.sum(valid)
    pix_mean = lambda x: jnp.sum(x * valid, axis=-1) / n
    centred = cmb - pix_mean(cmb)[..., None]
    return {
        "cmb_variance": jnp.mean(jnp.sum(pix_mean(centred**2), axis=-1)),
        "cmb_noise_variance": jnp.mean(pix_mean(jnp.var(cmb, axis=0))),
        "nll": jnp.mean(res.nll),
        "cmb_mse": jnp.mean(pix_mean((cmb - cmb_true[None]) ** 2)),
        "syst_mse": jnp.mean(pix_mean(syst**2)),
        "converged_fraction": jnp.mean(res.converged.astype(cmb.dtype)),
        "n_iter": jnp.mean(res.n_iter.astype(cmb.dtype)),
    }


def _n_tuples(layout: Mapping[str, np.ndarray]) -> int:
    # label tuples as mixed-radix integers: one 1-D unique (a row-wise unique costs ~5 ms
    # per configuration at nside 64)
    flat = np.zeros(np.asarray(layout[PARAMETER_NAMES[0]]).shape, np.int64)
    for k in PARAMETER_NAMES:
        col = np.asarray(layout[k], np.int64)
        flat = flat * (int(col.max()) + 1) + col
    return int(np.unique(flat).size)


def _tuple_bucket(n: int, n_pix: int | None = None) -> int:
    """Padded tuple count: the next of 512, 1024, 1536, 2048, 3072, 4096, 6144, ...

    (powers of two, with half steps from 1024 on), at most ``n_pix`` (a layout never has
    more tuples than pixels), so few shapes compile and a near-per-pixel layout carries
    at most ~1/3 padding terms (the likelihood's work is proportional to the terms).
    Layouts of fewer than 512 tuples share one shape: their fits are latency-bound, a
    compilation per power of two would cost more than the padding.
    """
    n = int(n)
    bucket = max(512, 1 << (n - 1).bit_length())
    if bucket > 1024 and n <= 3 * bucket // 4:
        bucket = 3 * bucket // 4
    return bucket if n_pix is None else max(n, min(bucket, int(n_pix)))


def pixel_bucket(n_pix: int) -> int:
    """Padded pixel count of a region: the tuple ladder (1536, 2048, 3072, 4096, 6144, ...)
    above 1024 pixels; smaller regions (test skies) are not padded."""
    return int(n_pix) if n_pix <= 1024 else _tuple_bucket(n_pix)


def enable_compilation_cache(path: str | Path) -> bool:
    """Persist JAX compilations under ``path`` (unless a cache directory is already set).

    Fits of regions of one pixel bucket compile to the same programs: with the cache, a
    campaign compiles them for its first region only (and a resumed run not at all).
    Returns whether this call set the directory.
    """
    from jax.experimental.compilation_cache import compilation_cache

    if jax.config.jax_compilation_cache_dir:
        return False
    Path(path).mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    # JAX decides at its first compilation whether a cache is used: decide again
    compilation_cache.reset_cache()
    return True


class RegionFitter:
    """Layout-independent compiled fits of one region (spec-likelihood layouts as data).

    Every layout is padded to ``k_max`` patches per parameter and to a bucket of label
    tuples (:func:`_tuple_bucket`), so one compilation serves every layout of a bucket and
    a batch of layouts is fitted in one call, vmapped over layouts and noise realisations.
    The region's pixels are padded too, to a bucket of the same ladder, with zero maps
    labelled like the first pixel: they add nothing to the likelihood (its statistics sum
    ``N d d^T N`` over pixels) and are left out of every metric. Regions of the same
    pixel bucket then compile the same programs, which a persistent compilation cache
    (:func:`enable_compilation_cache`) shares between the regions of a campaign.

    Args:
        problem: the region.
        cfg: the campaign configuration (``[fit]`` settings).
        k_max: parameter name -> padded patch count (>= every K fitted).
        batch: layouts per call (shorter batches are padded by repeating a layout).
        n_pad: padded pixel count (default :func:`pixel_bucket` of the region's).
    """

    def __init__(
        self,
        problem: RegionProblem,
        cfg: CampaignConfig,
        k_max: Mapping[str, int],
        batch: int = 1,
        n_pad: int | None = None,
    ) -> None:
        ensure_x64()
        self.problem = problem
        self.cfg = cfg
        self.k_max = {k: int(v) for k, v in k_max.items()}
        self.batch = int(batch)
        self._compiled: dict[tuple[int, bool], tuple[sl.SpectralLikelihood, object]] = {}
        self.n_pix = int(problem.indices.size)
        self.n_pad = pixel_bucket(self.n_pix) if n_pad is None else int(n_pad)
        if self.n_pad < self.n_pix:
            raise ValueError(f"n_pad = {n_pad} is below the region's {self.n_pix} pixels")
        pad = lambda a: np.concatenate(
            [a, np.zeros((*a.shape[:-1], self.n_pad - self.n_pix), a.dtype)], axis=-1
        )
        self._args = (
            jnp.asarray(pad(np.asarray(problem.data))),
            jnp.asarray(pad(np.asarray(problem.foregrounds))),
            jnp.asarray(pad(np.asarray(problem.cmb_true))),
            jnp.asarray(np.arange(self.n_pad) < self.n_pix, dtype=jnp.float64),
        )

    def _padded(self, layout: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        extra = self.n_pad - self.n_pix
        return {k: np.concatenate([v, np.full(extra, v[0], v.dtype)]) for k, v in layout.items()}

    def _function(self, t_max: int, layout: Mapping[str, np.ndarray], keep_maps: bool):
        if (t_max, keep_maps) not in self._compiled:
            template = sl.SpectralLikelihood.create(
                components(),
                self.problem.frequencies,
                self.problem.noise_inv_var,
                self.n_pad,
                self._padded(layout),
                k_max=self.k_max,
                t_max=t_max,
            )
            fit_cfg = self.cfg.fit

            def one_layout(arrays, data, foregrounds, cmb_true, valid, start):
                lik = template.with_layout_arrays(arrays)
                # the start is traced: regions with other starts share the program
                x0 = lik.layout.flatten(dict(zip(PARAMETER_NAMES, start, strict=True)))
                res, cmb, syst = _fit_and_reconstruct(lik, fit_cfg, data, foregrounds, x0)
                metrics = _device_metrics(res, cmb, syst, cmb_true, valid)
                return res, metrics, (cmb, syst) if keep_maps else None

            fn = jax.jit(jax.vmap(one_layout, in_axes=(0, None, None, None, None, None)))
            self._compiled[t_max, keep_maps] = (template, fn)
            return template, fn, True
        template, fn = self._compiled[t_max, keep_maps]
        return template, fn, False

    def fit(
        self,
        layouts: list[Mapping[str, np.ndarray]],
        keep_maps: bool = True,
        start: Mapping[str, float] | None = None,
    ) -> list[LayoutFit]:
        """Fit every noise realisation of each layout (one call per ``batch`` layouts).

        With ``keep_maps=False`` only the parameters and the metrics leave the device (the
        reconstructed maps are reduced there): the grid's fast path. ``start``: parameter
        name -> the value every patch starts from (default: spec-likelihood's
        ``PARAMETERS`` initial values), e.g. :func:`warm_start` of the region.
        """
        out: list[LayoutFit] = []
        for i in range(0, len(layouts), self.batch):
            out.extend(self._fit_batch(layouts[i : i + self.batch], keep_maps, start))
        return out

    def _fit_batch(
        self,
        layouts: list[Mapping[str, np.ndarray]],
        keep_maps: bool = True,
        start: Mapping[str, float] | None = None,
    ) -> list[LayoutFit]:
        start_arr = _start_vector(start)
        labels = [{k: np.asarray(v) for k, v in lay.items()} for lay in layouts]
        for lay in labels:
            for k in PARAMETER_NAMES:
                if int(lay[k].max()) + 1 > self.k_max[k]:
                    raise ValueError(
                        f"layout has {int(lay[k].max()) + 1} {k} patches, more than the "
                        f"fitter's k_max {self.k_max[k]}"
                    )
        # capped at the region's own pixel count: every bucket below it is shared with the
        # regions of its pixel bucket, the top one is its own (no padding terms to fit)
        t_max = _tuple_bucket(max(_n_tuples(lay) for lay in labels), self.n_pix)
        template, fn, new = self._function(t_max, labels[0], keep_maps)
        arrays = [template.layout_arrays(self._padded(lay)) for lay in labels]
        arrays += [arrays[-1]] * (self.batch - len(arrays))
        stacked = jax.tree.map(lambda *v: np.stack(v), *arrays)
        t0 = time.perf_counter()
        compile_s = 0.0
        if new:
            fn.lower(stacked, *self._args, start_arr).compile()
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
        res, metrics, maps = jax.block_until_ready(fn(stacked, *self._args, start_arr))
        res, metrics = jax.tree.map(np.asarray, (res, metrics))
        cmb, syst = (
            (None, None)
            if maps is None
            else (np.asarray(maps[0][..., : self.n_pix]), np.asarray(maps[1][..., : self.n_pix]))
        )
        run_s = (time.perf_counter() - t0) / len(labels)
        fits = []
        for i, lay in enumerate(labels):
            fits.append(
                LayoutFit(
                    layout=lay,
                    params={
                        k: res.params[k][i, :, : int(lay[k].max()) + 1] for k in PARAMETER_NAMES
                    },
                    nll=res.nll[i],
                    converged=res.converged[i],
                    n_iter=res.n_iter[i],
                    cmb=None if cmb is None else cmb[i],
                    cmb_systematic=None if syst is None else syst[i],
                    compile_s=compile_s / len(labels),
                    run_s=run_s,
                    metrics={k: float(v[i]) for k, v in metrics.items()},
                )
            )
        return fits


def _start_vector(start: Mapping[str, float] | None) -> np.ndarray:
    """``[beta_d, T_d, beta_s]`` start values, checked against the parameter boxes."""
    start = dict(start or {})
    unknown = sorted(set(start) - set(PARAMETER_NAMES))
    if unknown:
        raise ValueError(f"start: unknown parameters {unknown}; expected {list(PARAMETER_NAMES)}")
    values = []
    for name in PARAMETER_NAMES:
        spec = sl.PARAMETERS[name]
        v = float(start.get(name, spec.init))
        if not spec.lower <= v <= spec.upper:
            raise ValueError(
                f"start[{name!r}] = {v} lies outside the box [{spec.lower}, {spec.upper}]"
            )
        values.append(v)
    return np.asarray(values, dtype=np.float64)


def warm_start(fitter: RegionFitter, problem: RegionProblem) -> dict[str, float]:
    """Start values of a region's grid fits: its single-patch optimum.

    One fit of every noise realisation with one patch per parameter (from the default
    start); the mean optimum over realisations is where every patch of the grid's layouts
    starts. The grid's optima are the same (to the fits' tolerances) but reached in fewer
    Newton iterations where the region's spectral parameters are far from the default
    start (PySM c1d1s1, GAL020_L, 4 realisations: T_d 24.1 K against the default 20 K;
    mean iterations at (300, 5, 1) 10.0 -> 3.5, at (1800, 20, 20) 11.5 -> 6.8).
    """
    one = fitter.fit([single_patch_layout(problem.indices.size)], keep_maps=False)[0]
    out = {}
    for name in PARAMETER_NAMES:
        spec = sl.PARAMETERS[name]
        out[name] = float(np.clip(np.mean(one.params[name]), spec.lower, spec.upper))
    return out


def fit_layout(
    problem: RegionProblem, layout: Mapping[str, np.ndarray], cfg: CampaignConfig
) -> LayoutFit:
    """Fit every noise realisation of a region with one patch layout, then reconstruct.

    One jitted, vmapped call: bounded fits of all realisations, the GLS CMB of each (eq. 7)
    and the same W applied to the foreground-only sky (systematic residual). For many
    layouts use :class:`RegionFitter` (one compilation for all).
    """
    labels = {k: np.asarray(v) for k, v in layout.items()}
    k_max = {k: int(v.max()) + 1 for k, v in labels.items()}
    return RegionFitter(problem, cfg, k_max, batch=1)._fit_batch([labels])[0]


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
    if lf.metrics is not None:
        maps = dict(lf.metrics)
    else:
        maps = {
            "cmb_variance": spatial_cmb_variance(lf.cmb),
            "cmb_noise_variance": float(sl.cmb_variance(lf.cmb)),
            "nll": float(np.mean(lf.nll)),
            "cmb_mse": float(np.mean((lf.cmb - problem.cmb_true[None]) ** 2)),
            "syst_mse": float(np.mean(lf.cmb_systematic**2)),
            "converged_fraction": float(np.mean(lf.converged)),
            "n_iter": float(np.mean(lf.n_iter)),
        }
    return {
        **maps,
        "n_params": float(sum(int(v.max()) + 1 for v in lf.layout.values())),
        "compile_s": float(lf.compile_s),
        "run_s": float(lf.run_s),
    }


def screening_config(cfg: CampaignConfig) -> CampaignConfig:
    """``cfg`` with the grid's screening tolerances (``[grid] gtol/rtol``) in ``[fit]``."""
    tol = {k: getattr(cfg.grid, k) for k in ("gtol", "rtol") if getattr(cfg.grid, k) > 0}
    return cfg.replace(fit=tol) if tol else cfg


def grid_space(cfg: CampaignConfig) -> gd.SearchSpace:
    """The (K_bd, K_Td, K_bs) search space of ``[grid]``."""
    return gd.SearchSpace({axis: list(getattr(cfg.grid, axis)) for axis in GRID_AXES})


def auto_batch(n_real: int, k_max: Mapping[str, int], gpu: bool) -> int:
    """Layouts per vmapped fit call when ``[grid] batch = 0``: 1 on a CPU; on a GPU 16,
    fewer for large layouts.

    The Newton step eliminates the largest parameter block and keeps its coupling to the
    others, ``[K_e, r]`` per realisation (K_e the largest patch count, r the sum of the
    others); the batch keeps ~4 such temporaries of all realisations under 4 GiB (larger batches
    gain little there, and XLA then struggles to fit the program in memory).
    """
    if not gpu:
        return 1
    counts = sorted(int(v) for v in k_max.values())
    per_layout = 32 * max(n_real, 1) * counts[-1] * max(sum(counts[:-1]), 1)
    return int(np.clip((4 << 30) // per_layout, 1, 16))


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
    realisations), the 2026 paper's selection metric. Configurations are fitted
    ``[grid] batch`` at a time through one compiled, layout-independent :class:`RegionFitter`.
    """
    templates = None
    if cfg.grid.with_r:
        from ._cmb import cmb_templates

        templates = cmb_templates(3 * cfg.sky.nside - 1, cfg.sky.cls_file or None)

    grid = cfg.grid
    k_max = {
        "beta_d": max(grid.K_bd),
        "T_d": max(grid.K_Td),
        "beta_s": max(grid.K_bs),
    }
    # capped at the padded pixel count (not the region's own): regions of one pixel bucket
    # then share every program
    k_max = {k: min(v, pixel_bucket(problem.indices.size)) for k, v in k_max.items()}
    batch = grid.batch or auto_batch(problem.n_real, k_max, jax.default_backend() == "gpu")
    cfg = screening_config(cfg)
    fitter = RegionFitter(problem, cfg, k_max, batch=batch)
    # Section IV.b: the systematic residual of a layout is its fit to the foreground-only
    # sky (no CMB, no noise); one compiled fitter serves every layout.
    fg_fitter = None
    if templates is not None:
        fg_only = dataclasses.replace(problem, data=np.asarray(problem.foregrounds)[None])
        fg_fitter = RegionFitter(fg_only, cfg, k_max, batch=batch)

    # Patch counts above the region's pixel count are capped (one pixel per patch), so
    # configurations differing only beyond the cap share one layout: fitted once.
    done: dict[tuple[int, ...], dict[str, float]] = {}
    n_pix = int(problem.indices.size)

    def objective(configs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        counts = list(zip(*(np.asarray(configs[a]).tolist() for a in GRID_AXES), strict=True))
        effective = [tuple(min(int(k), n_pix) for k in c) for c in counts]
        todo = [c for c in dict.fromkeys(effective) if c not in done]
        if todo:
            t0 = time.perf_counter()
            layouts = [problem.patcher.layout(c) for c in todo]
            patch_s = (time.perf_counter() - t0) / len(todo)
            fg_fits = (
                fg_fitter.fit(layouts, start=start) if fg_fitter is not None else [None] * len(todo)
            )
            fits = fitter.fit(layouts, keep_maps=templates is not None, start=start)
            for c, lf, fg in zip(todo, fits, fg_fits, strict=True):
                out = {**layout_metrics(problem, lf), "patch_s": patch_s}
                if templates is not None:
                    from ._compare import method_spectra, r_table, stitch

                    spectra = method_spectra(
                        stitch([problem], [lf], [fg.cmb[0]]),
                        templates,
                        r_in=cfg.sky.r,
                        a_lens=cfg.sky.A_lens,
                        ell_range=cfg.ell_range,
                        iter=cfg.grid.r_iter,
                    )
                    row = r_table({"kmeans": spectra}).iloc[0]
                    out["r_hat"] = float(row["r_hat_mean"])
                    out["sigma_r"] = float(row["sigma_r_mean"])
                    out["r_plus_sigma"] = float(row["r_plus_sigma_mean"])
                done[c] = out
        rows = [done[c] for c in effective]
        return {key: np.asarray([r[key] for r in rows]) for key in rows[0]}

    space = grid_space(cfg)
    # The K-means of every patch count the remaining configurations need, side by side
    # (one vmapped call per padded size; same labels as one at a time).
    pending = np.flatnonzero(~gd.scan_results(out_dir, space, owned=set()).done)
    warm = {"start": None, "seconds": 0.0}
    if pending.size:
        columns = space.columns(pending)
        problem.patcher.prefetch(sorted({int(k) for a in GRID_AXES for k in columns[a]}))
        if grid.warm_start:
            t0 = time.perf_counter()
            warm["start"] = warm_start(fitter, problem)
            warm["seconds"] = time.perf_counter() - t0
    start = warm["start"]
    gd.run_grid(
        objective,
        space,
        out_dir,
        batch_size=batch,
        mode="batched",
        backend="single",
        progress=progress,
        quiet=not progress,
        flush_every_s=0.0,
    )
    df = gd.load_results(out_dir, space)
    df.attrs["warm_start"] = warm
    return df


def select_best(df: pd.DataFrame, metric: str) -> tuple[int, int, int]:
    """Patch counts (K_bd, K_Td, K_bs) minimising ``metric`` over successful rows."""
    best = gd.top_k(df, 1, metric)
    if best.empty:
        raise ValueError(f"no successful grid configuration to select by {metric!r}")
    row = best.iloc[0]
    return tuple(int(row[a]) for a in GRID_AXES)  # type: ignore[return-value]

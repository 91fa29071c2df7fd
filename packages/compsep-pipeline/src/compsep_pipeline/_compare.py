"""Layout comparison: K-means (grid-selected) vs multi-resolution (Table IV) vs one patch.

For every method the regions' reconstructions are stitched into full-sky maps over the
union of the regions, then (section IV of kabalan2025_clustered_compsep.md, with
bb-residuals):

* residual spectra: ``C^syst = C(W(beta_fg) d_fg)``, ``C^res = <C(s_hat_n - s_true)>_n``,
  ``C^stat = C^res - C^syst`` (anafast on the masked map / f_sky). ``beta_fg`` is the fit
  of the same layout to the foreground-only sky, without CMB and noise (section IV.b:
  "re-running the full component separation pipeline on foreground-only skies";
  :func:`foreground_systematic`). Applying the noisy fits' ``W(beta_hat_n)`` to ``d_fg``
  instead moves the noise-driven parameter scatter from the noise floor ``C^stat`` into
  ``C^syst``, which the r likelihood then reads as a bias (worst for layouts with many
  patches, e.g. the per-pixel beta_d of the multi-resolution layout);
* r likelihood ``-2 ln L = f_sky sum (2l+1) [C^obs/C^model + ln C^model]`` with
  ``C^model = r C^tensor + A_lens C^lens + max(C^stat, 0)`` and
  ``C^obs_n = r_in C^tensor + A_lens C^lens + C(s_hat_n - s_true)``: the input sky's
  spectrum plus the measured residual of realisation n (as the paper's code does; the
  residual maps carry no CMB E modes, so the masked-sky E-to-B leakage of the anafast
  estimator does not enter), fitted per noise realisation: r_hat, sigma(r), 68%/95%
  upper limits, r + sigma(r). r_hat - r_in is the bias left by foreground residuals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import bb_residuals as bb
import numpy as np
import pandas as pd

from ._campaign import LayoutFit, RegionProblem, fit_layout
from ._config import CampaignConfig
from ._patches import PARAMETER_NAMES

METHODS = ("kmeans", "multires", "single")
"""Compared layouts: grid-selected K-means, PTEP multi-resolution, single patch."""

METHOD_LABELS = {
    "kmeans": "K-means (grid-selected)",
    "multires": "multi-resolution (PTEP, Table IV)",
    "single": "single patch",
}


@dataclass(frozen=True, eq=False)
class StitchedMaps:
    """Full-sky maps of one method over the union of the regions.

    Attributes:
        mask: union of the regions ``[npix]`` bool.
        cmb: reconstructed CMB ``[n_real, 2, npix]`` (0 outside the mask).
        systematic: ``W(beta_fg) d_fg`` ``[1, 2, npix]`` (:func:`foreground_systematic`), or
            ``W(beta_hat_n) d_fg`` ``[n_real, 2, npix]`` when :func:`stitch` got no maps.
        cmb_true: input CMB ``[2, npix]`` (0 outside).
        labels: parameter -> labels ``[npix]`` (offset per region so they stay distinct;
            -1 outside).
        params: parameter -> per-pixel fitted values of each realisation ``[n_real, npix]``
            (NaN outside).
    """

    mask: np.ndarray
    cmb: np.ndarray
    systematic: np.ndarray
    cmb_true: np.ndarray
    labels: Mapping[str, np.ndarray]
    params: Mapping[str, np.ndarray]


def foreground_systematic(
    problem: RegionProblem, layout: Mapping[str, np.ndarray], cfg: CampaignConfig
) -> np.ndarray:
    """Systematic residual map of a layout (section IV.b, eq. 12): ``W(beta_fg) d_fg``.

    The layout is fitted to the region's foreground-only sky (no CMB, no noise; same
    noise weights and fit settings as the data) and that fit's GLS operator is applied to
    the same sky. Zero when the layout can represent the foregrounds' SEDs exactly.

    Returns:
        ``[2, n]`` over the region's pixels [uK_CMB].
    """
    fg_only = dataclasses.replace(problem, data=np.asarray(problem.foregrounds)[None])
    return np.asarray(fit_layout(fg_only, layout, cfg).cmb[0])


def stitch(
    problems: Sequence[RegionProblem],
    fits: Sequence[LayoutFit],
    systematic: Sequence[np.ndarray] | None = None,
) -> StitchedMaps:
    """Place each region's reconstruction into full-sky maps.

    Args:
        problems: the regions.
        fits: the layout's fits, one per region.
        systematic: the regions' :func:`foreground_systematic` maps ``[2, n]`` (the paper's
            systematic residual); ``None`` uses each fit's ``W(beta_hat_n) d_fg``, which also
            holds the noise-driven parameter scatter.
    """
    npix = problems[0].mask.size
    n_real = problems[0].n_real
    mask = np.zeros(npix, dtype=bool)
    cmb = np.zeros((n_real, 2, npix))
    syst = np.zeros((1 if systematic is not None else n_real, 2, npix))
    truth = np.zeros((2, npix))
    labels = {k: np.full(npix, -1, dtype=np.int64) for k in PARAMETER_NAMES}
    params = {k: np.full((n_real, npix), np.nan) for k in PARAMETER_NAMES}
    offsets = dict.fromkeys(PARAMETER_NAMES, 0)
    if systematic is not None and len(systematic) != len(problems):
        raise ValueError(
            f"systematic: got {len(systematic)} maps for {len(problems)} regions; give one each"
        )
    for i, (prob, lf) in enumerate(zip(problems, fits, strict=True)):
        idx = prob.indices
        mask[idx] = True
        cmb[:, :, idx] = lf.cmb
        if systematic is None:
            syst[:, :, idx] = lf.cmb_systematic
        else:
            m = np.asarray(systematic[i], dtype=np.float64)
            if m.shape != (2, idx.size):
                raise ValueError(
                    f"systematic[{i}]: expected shape (2, {idx.size}) for region "
                    f"{prob.name!r}, got {m.shape}"
                )
            syst[0][:, idx] = m
        truth[:, idx] = prob.cmb_true
        pix = lf.pixel_params()
        for k in PARAMETER_NAMES:
            labels[k][idx] = lf.layout[k] + offsets[k]
            offsets[k] += int(lf.layout[k].max()) + 1
            params[k][:, idx] = pix[k]
    return StitchedMaps(mask, cmb, syst, truth, labels, params)


@dataclass(frozen=True, eq=False)
class MethodSpectra:
    """Residual spectra and r fits of one method.

    Attributes:
        residuals: bb-residuals ``ResidualSpectra`` (EE, BB, EB; syst averaged over n).
        cl_obs: observed BB per realisation ``[n_real, ell]`` (input spectrum + residual).
        r_fit: ``RFit`` per realisation.
        r_fit_mean: ``RFit`` of the realisation-averaged spectrum.
    """

    residuals: bb.ResidualSpectra
    cl_obs: np.ndarray
    r_fit: bb.RFit
    r_fit_mean: bb.RFit


def method_spectra(
    maps: StitchedMaps,
    templates: bb.BBTemplates,
    *,
    r_in: float,
    a_lens: float,
    ell_range: tuple[int, int],
    iter: int = 3,
) -> MethodSpectra:
    """Residual spectra and r of one method's stitched maps (anafast / f_sky estimator).

    Args:
        maps: the method's stitched reconstruction.
        templates: lensing and r = 1 tensor BB (bb-residuals).
        r_in: tensor-to-scalar ratio of the simulated sky.
        a_lens: lensing amplitude of the simulated sky and of the model.
        ell_range: inclusive multipole range of the r likelihood.
        iter: healpy ``map2alm`` Jacobi iterations of the spectra.
    """
    nside_lmax = 3 * int(np.sqrt(maps.mask.size / 12)) - 1
    est = bb.NaiveEstimator(maps.mask.astype(np.float64), lmax=nside_lmax, iter=iter)
    cl_total = est(maps.cmb - maps.cmb_true[None])
    cl_syst = est(maps.systematic).mean(axis=0)
    residuals = bb.residual_spectra_from_cls(cl_syst, cl_total, np.asarray(est.ell))
    t = templates.truncate(nside_lmax)
    cl_obs = (r_in * t.tensor_bb + a_lens * t.lensed_bb)[None] + cl_total[:, 1]
    # C^stat = C^res - C^syst fluctuates below 0 where noise is small against the
    # foreground leakage (few realisations): as a noise floor it cannot be negative.
    stat = np.clip(residuals.spectrum("stat", "BB"), 0.0, None)
    kwargs = {
        "f_sky": float(est.f_sky),
        "ell_range": ell_range,
        "nside": int(np.sqrt(maps.mask.size / 12)),
    }
    lens = a_lens * t.lensed_bb
    r_fit = bb.fit_r(cl_obs, t.tensor_bb, lens, stat, **kwargs)
    r_fit_mean = bb.fit_r(cl_obs.mean(axis=0), t.tensor_bb, lens, stat, **kwargs)
    return MethodSpectra(residuals, cl_obs, r_fit, r_fit_mean)


def r_table(spectra: Mapping[str, MethodSpectra]) -> pd.DataFrame:
    """One row per method: r statistics over noise realisations and of the mean spectrum."""
    rows = []
    for method, sp in spectra.items():
        f = sp.r_fit
        m = sp.r_fit_mean
        rows.append(
            {
                "method": method,
                "r_hat_mean": float(np.mean(f.r_hat)),
                "r_hat_std": float(np.std(f.r_hat)),
                "sigma_r_mean": float(np.nanmean(f.sigma_r)),
                "r_plus_sigma_mean": float(np.nanmean(f.r_plus_sigma)),
                "r_ul68_mean": float(np.mean(f.r_ul68)),
                "r_ul95_mean": float(np.mean(f.r_ul95)),
                "r_hat_of_mean": float(m.r_hat),
                "sigma_r_of_mean": float(m.sigma_r),
                "r_ul95_of_mean": float(m.r_ul95),
                "fit_status_max": int(np.max(f.status)),
            }
        )
    return pd.DataFrame(rows)


def spectra_table(spectra: Mapping[str, MethodSpectra]) -> pd.DataFrame:
    """Long table: method, ell, BB syst / stat / total residual C_ell and mean C_obs."""
    frames = []
    for method, sp in spectra.items():
        res = sp.residuals
        frames.append(
            pd.DataFrame(
                {
                    "method": method,
                    "ell": np.asarray(res.ell, dtype=np.int64),
                    "cl_bb_syst": res.spectrum("syst", "BB"),
                    "cl_bb_stat": res.spectrum("stat", "BB"),
                    "cl_bb_total": res.spectrum("total", "BB"),
                    "cl_bb_obs_mean": sp.cl_obs.mean(axis=0),
                    "cl_ee_total": res.spectrum("total", "EE"),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)

"""Run folders: a campaign from its configuration to its report, resumable at every stage.

Layout of a run folder::

    config.toml                  the campaign (snapshot; a resume re-reads it)
    sky.npz                      the simulated sky (SkyMaps)
    regions.fits                 one column per region mask
    grid/<region>/               grid-dispatch folder (Parquet batches + manifests)
    grid_results.parquet         all regions' grid tables with their metrics
    selection.json               best (K_bd, K_Td, K_bs) per region
    compare/<region>__<method>.npz   fits of the compared layouts (+ systematic map)
    maps/<method>_patches.fits   patch labels (beta_d, T_d, beta_s), UNSEEN outside
    maps/<method>_params.fits    fitted parameters of realisation 0
    maps/<method>_cmb.fits       mean reconstructed CMB Q, U and mean residual Q, U
    spectra.parquet, r.csv, comparison.csv
    plots/*.png, report.md, report.html

Every stage skips what its files already hold: an interrupted run finishes with
``compsep resume`` without recomputing, and gives the same numbers as an uninterrupted one
(fits are deterministic; noise is seeded per region).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import healpy as hp
import numpy as np
import pandas as pd

from ._campaign import (
    LayoutFit,
    RegionProblem,
    enable_compilation_cache,
    fit_layout,
    layout_metrics,
    region_problem,
    run_region_grid,
    select_best,
)
from ._cmb import cmb_templates
from ._compare import (
    METHODS,
    foreground_systematic,
    method_spectra,
    r_table,
    spectra_table,
    stitch,
)
from ._config import CampaignConfig, load_config
from ._patches import PARAMETER_NAMES, multires_layout, single_patch_layout
from ._setup import build_instrument, build_regions, build_sky
from ._sky import SkyMaps
from ._x64 import ensure_x64


@dataclass(frozen=True)
class CampaignResult:
    """Paths and tables of a finished campaign."""

    rundir: Path
    report: Path
    grid: pd.DataFrame
    selection: Mapping[str, tuple[int, int, int]]
    comparison: pd.DataFrame
    r: pd.DataFrame


def _log(msg: str, progress: bool) -> None:
    if progress:
        print(f"[compsep {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _atomic_text(path: Path, text: str) -> None:
    # per-process temporary names: parts of a campaign may write the same file at once
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _write_config(cfg: CampaignConfig, rundir: Path) -> None:
    path = rundir / "config.toml"
    if path.exists():
        old = load_config(path)
        if old != cfg:
            raise ValueError(
                f"{rundir} holds a different campaign (config.toml differs); "
                "use `compsep resume` to finish it or choose a new --out folder"
            )
        return
    _atomic_text(path, cfg.to_toml())


def _load_or_build_sky(cfg: CampaignConfig, rundir: Path, progress: bool) -> SkyMaps:
    path = rundir / "sky.npz"
    if path.exists():
        return SkyMaps.load(path)
    _log(f"simulating the {cfg.sky.source} sky at nside {cfg.sky.nside}", progress)
    sky = build_sky(cfg)
    sky.save(path)
    return sky


def _region_slug(name: str) -> str:
    return name.replace("-", "_minus_")


def _write_fits(path: Path, maps: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.fits")
    hp.write_map(
        tmp,
        [np.asarray(m, dtype=np.float64) for m in maps.values()],
        column_names=list(maps),
        overwrite=True,
        dtype=np.float64,
    )
    os.replace(tmp, path)


def _compare_layout(
    problem: RegionProblem, method: str, cfg: CampaignConfig, best: tuple[int, int, int]
) -> dict[str, np.ndarray]:
    if method == "kmeans":
        return problem.patcher.layout(best)
    if method == "single":
        return single_patch_layout(problem.indices.size)
    base = problem.name.removesuffix("_U").removesuffix("_L").split("-")[0]
    if base not in cfg.comparison.multires:
        raise ValueError(
            f"region {problem.name!r}: no multi-resolution nsides for mask {base!r}; "
            f"add [comparison.multires] {base} = [nside_bd, nside_Td, nside_bs]"
        )
    return multires_layout(problem.nside, problem.mask, cfg.comparison.multires[base])


def _save_fit(path: Path, lf: LayoutFit, systematic: np.ndarray) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        systematic=systematic,
        nll=lf.nll,
        converged=lf.converged,
        n_iter=lf.n_iter,
        cmb=lf.cmb,
        cmb_systematic=lf.cmb_systematic,
        **{f"labels_{k}": v for k, v in lf.layout.items()},
        **{f"params_{k}": v for k, v in lf.params.items()},
    )
    os.replace(tmp, path)


def _load_fit(path: Path) -> tuple[LayoutFit, np.ndarray | None]:
    """The fit and its foreground-only systematic map (``None`` in older run folders)."""
    with np.load(path) as d:
        systematic = d["systematic"] if "systematic" in d.files else None
        return LayoutFit(
            layout={k: d[f"labels_{k}"] for k in PARAMETER_NAMES},
            params={k: d[f"params_{k}"] for k in PARAMETER_NAMES},
            nll=d["nll"],
            converged=d["converged"],
            n_iter=d["n_iter"],
            cmb=d["cmb"],
            cmb_systematic=d["cmb_systematic"],
        ), systematic


def _region_stages(
    cfg: CampaignConfig,
    rundir: Path,
    sky: SkyMaps,
    regions: Mapping[str, np.ndarray],
    progress: bool,
) -> tuple[list[pd.DataFrame], dict, dict, dict, list[dict], dict[str, RegionProblem], dict]:
    """Grid and comparison stages of some regions (each skips what its files hold)."""
    if cfg.grid.compilation_cache:
        enable_compilation_cache(rundir / "jax_cache")
    instrument = build_instrument(cfg)
    problems = {
        name: region_problem(cfg, sky, instrument, name, mask) for name, mask in regions.items()
    }
    timings: dict[str, float] = {}
    frames = []
    selection: dict[str, tuple[int, int, int]] = {}
    t0 = time.perf_counter()
    for name, problem in problems.items():
        n_cfg = len(cfg.grid.K_bd) * len(cfg.grid.K_Td) * len(cfg.grid.K_bs)
        _log(f"grid of {name}: {n_cfg} configurations x {problem.n_real} realisations", progress)
        df = run_region_grid(problem, cfg, rundir / "grid" / _region_slug(name), progress=progress)
        df.insert(0, "region", name)
        frames.append(df)
        selection[name] = select_best(df, cfg.grid.selection)
        _log(f"{name}: best (K_bd, K_Td, K_bs) = {selection[name]}", progress)
    timings["grid_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if cfg.noise.held_out:
        # Cross-validation: the compared layouts meet noise the selection never saw.
        problems = {
            name: region_problem(cfg, sky, instrument, name, mask, held_out=True)
            for name, mask in regions.items()
        }
    (rundir / "compare").mkdir(exist_ok=True)
    methods = [m for m in METHODS if m in cfg.comparison.methods]
    fits: dict[str, dict[str, LayoutFit]] = {m: {} for m in methods}
    systematic: dict[str, dict[str, np.ndarray]] = {m: {} for m in methods}
    rows = []
    for name, problem in problems.items():
        for method in methods:
            path = rundir / "compare" / f"{_region_slug(name)}__{method}.npz"
            lf, syst = _load_fit(path) if path.exists() else (None, None)
            if lf is None:
                _log(f"{name}: fitting the {method} layout", progress)
                lf = fit_layout(
                    problem, _compare_layout(problem, method, cfg, selection[name]), cfg
                )
            if syst is None:
                # Section IV.b: the same layout fitted to the foreground-only sky.
                syst = foreground_systematic(problem, lf.layout, cfg)
                _save_fit(path, lf, syst)
            fits[method][name] = lf
            systematic[method][name] = syst
            row = {"region": name, "method": method}
            row.update({k: int(lf.layout[k].max()) + 1 for k in PARAMETER_NAMES})
            row.update(layout_metrics(problem, lf))
            rows.append(row)
    timings["compare_s"] = time.perf_counter() - t0
    return frames, selection, fits, systematic, rows, problems, timings


def run_regions(
    cfg: CampaignConfig, rundir: str | Path, names: Sequence[str], *, progress: bool = True
) -> dict[str, tuple[int, int, int]]:
    """Grid and comparison fits of some regions only: one part of a campaign.

    Parts of one campaign run concurrently into the same run folder (e.g. one process per
    GPU or per node, each with a few regions); every region writes only its own files.
    ``compsep resume`` (:func:`run_campaign`) then stitches the regions, fits r and writes
    the report, recomputing nothing. Each part records its wall time in
    ``parts/<regions>.json``.

    Returns:
        The selected (K_bd, K_Td, K_bs) of each region of the part.
    """
    ensure_x64()
    t_start = time.perf_counter()
    unknown = [n for n in names if n not in cfg.regions.names]
    if unknown or not names:
        raise ValueError(
            f"regions: {list(names)} must be a non-empty subset of the campaign's "
            f"[regions] names {list(cfg.regions.names)}"
        )
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    _write_config(cfg, rundir)
    sky = _load_or_build_sky(cfg, rundir, progress)
    regions = build_regions(cfg, sky)
    _, selection, *_, timings = _region_stages(
        cfg, rundir, sky, {n: regions[n] for n in names}, progress
    )
    timings["total_s"] = time.perf_counter() - t_start
    (rundir / "parts").mkdir(exist_ok=True)
    slug = "+".join(_region_slug(n) for n in names)
    _atomic_text(rundir / "parts" / f"{slug}.json", json.dumps(timings, indent=2))
    _log(f"part {list(names)} done in {timings['total_s']:.0f} s", progress)
    return selection


def run_campaign(
    cfg: CampaignConfig, rundir: str | Path, *, progress: bool = True
) -> CampaignResult:
    """Run (or finish) a campaign in ``rundir`` and write its report.

    Args:
        cfg: the campaign.
        rundir: run folder; created if needed. A folder holding another campaign is refused.
        progress: progress bars and log lines on stdout.

    Returns:
        :class:`CampaignResult`.
    """
    from ._report import write_report

    ensure_x64()
    t_start = time.perf_counter()
    rundir = Path(rundir)
    rundir.mkdir(parents=True, exist_ok=True)
    _write_config(cfg, rundir)
    sky = _load_or_build_sky(cfg, rundir, progress)
    regions = build_regions(cfg, sky)
    _write_fits(rundir / "regions.fits", {k: v.astype(float) for k, v in regions.items()})
    frames, selection, fits, systematic, rows, problems, timings = _region_stages(
        cfg, rundir, sky, regions, progress
    )
    methods = list(fits)
    grid = pd.concat(frames, ignore_index=True)
    grid.to_parquet(rundir / "grid_results.parquet")
    _atomic_text(
        rundir / "selection.json",
        json.dumps({k: list(v) for k, v in selection.items()}, indent=2),
    )
    comparison = pd.DataFrame(rows)

    t0 = time.perf_counter()
    templates = cmb_templates(3 * cfg.sky.nside - 1, cfg.sky.cls_file or None)
    plist = list(problems.values())
    stitched = {
        m: stitch(plist, [fits[m][n] for n in problems], [systematic[m][n] for n in problems])
        for m in methods
    }
    spectra = {
        m: method_spectra(
            stitched[m], templates, r_in=cfg.sky.r, a_lens=cfg.sky.A_lens, ell_range=cfg.ell_range
        )
        for m in methods
    }
    rtab = r_table(spectra)
    timings["spectra_s"] = time.perf_counter() - t0
    comparison.to_csv(rundir / "comparison.csv", index=False)
    rtab.to_csv(rundir / "r.csv", index=False)
    spectra_table(spectra).to_parquet(rundir / "spectra.parquet")
    maps_dir = rundir / "maps"
    for m, st in stitched.items():
        outside = ~st.mask
        patches = {k: np.where(outside, hp.UNSEEN, st.labels[k]) for k in PARAMETER_NAMES}
        params = {k: np.where(outside, hp.UNSEEN, st.params[k][0]) for k in PARAMETER_NAMES}
        mean_cmb = st.cmb.mean(axis=0)
        resid = mean_cmb - st.cmb_true
        cmb = {
            "Q_cmb": np.where(outside, hp.UNSEEN, mean_cmb[0]),
            "U_cmb": np.where(outside, hp.UNSEEN, mean_cmb[1]),
            "Q_residual": np.where(outside, hp.UNSEEN, resid[0]),
            "U_residual": np.where(outside, hp.UNSEEN, resid[1]),
        }
        _write_fits(maps_dir / f"{m}_patches.fits", patches)
        _write_fits(maps_dir / f"{m}_params.fits", params)
        _write_fits(maps_dir / f"{m}_cmb.fits", cmb)
    timings["total_s"] = time.perf_counter() - t_start
    # Times add up over the runs that built the folder (a resume adds only what it did).
    path = rundir / "timings.json"
    previous = json.loads(path.read_text()) if path.exists() else {}
    summed = {k: v + float(previous.get(k, 0.0)) for k, v in timings.items()}
    summed["runs"] = int(previous.get("runs", 0)) + 1
    summed["n_grid_fits"] = int(len(grid) * cfg.noise.n_realisations)
    parts = sorted((rundir / "parts").glob("*.json")) if (rundir / "parts").is_dir() else []
    if parts:
        # regions run as separate parts (compsep run --regions), e.g. one per GPU
        summed["parts"] = {p.stem: json.loads(p.read_text()) for p in parts}
    _atomic_text(path, json.dumps(summed, indent=2))
    report = write_report(rundir)
    _log(f"done in {timings['total_s']:.0f} s: {report}", progress)
    return CampaignResult(rundir, report, grid, selection, comparison, rtab)


def resume_campaign(rundir: str | Path, *, progress: bool = True) -> CampaignResult:
    """Finish the campaign of ``rundir`` from its ``config.toml``."""
    rundir = Path(rundir)
    path = rundir / "config.toml"
    if not path.is_file():
        raise ValueError(
            f"{rundir} is not a run folder (no config.toml); start it with compsep run"
        )
    return run_campaign(load_config(path), rundir, progress=progress)

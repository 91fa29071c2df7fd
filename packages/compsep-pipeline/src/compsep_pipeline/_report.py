"""report.md / report.html of a run folder, with its plots, from the folder's files only."""

from __future__ import annotations

import html
import json
from pathlib import Path

import bb_residuals as bb
import healpy as hp
import numpy as np
import pandas as pd

from ._cmb import cmb_templates
from ._compare import METHOD_LABELS
from ._config import load_config
from ._patches import PARAMETER_NAMES
from ._plots import plot_grid_landscape, plot_maps
from ._x64 import ensure_x64

_REQUIRED = ("config.toml", "grid_results.parquet", "selection.json", "comparison.csv", "r.csv")


class _Doc:
    """Blocks rendered both to Markdown and to HTML."""

    def __init__(self) -> None:
        self.blocks: list[tuple[str, object]] = []

    def h(self, level: int, text: str) -> None:
        self.blocks.append((f"h{level}", text))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def table(self, df: pd.DataFrame) -> None:
        self.blocks.append(("table", df))

    def img(self, path: str, alt: str) -> None:
        self.blocks.append(("img", (path, alt)))

    @staticmethod
    def _fmt(v: object) -> str:
        if isinstance(v, float | np.floating):
            return f"{v:.4g}"
        return str(v)

    def markdown(self) -> str:
        out = []
        for kind, body in self.blocks:
            if kind.startswith("h"):
                out.append("#" * int(kind[1]) + f" {body}\n")
            elif kind == "p":
                out.append(f"{body}\n")
            elif kind == "table":
                df = body
                out.append("| " + " | ".join(map(str, df.columns)) + " |")
                out.append("|" + "---|" * len(df.columns))
                for row in df.itertuples(index=False):
                    out.append("| " + " | ".join(self._fmt(v) for v in row) + " |")
                out.append("")
            else:
                path, alt = body
                out.append(f"![{alt}]({path})\n")
        return "\n".join(out) + "\n"

    def html(self, title: str) -> str:
        out = [
            "<!doctype html><html><head><meta charset='utf-8'>",
            f"<title>{html.escape(title)}</title>",
            "<style>body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}"
            "table{border-collapse:collapse;font-size:0.85em}td,th{border:1px solid #ccc;"
            "padding:2px 6px;text-align:right}img{max-width:100%}</style></head><body>",
        ]
        for kind, body in self.blocks:
            if kind.startswith("h"):
                out.append(f"<{kind}>{html.escape(str(body))}</{kind}>")
            elif kind == "p":
                out.append(f"<p>{html.escape(str(body)).replace('`', '')}</p>")
            elif kind == "table":
                df = body
                head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
                rows = "".join(
                    "<tr>" + "".join(f"<td>{html.escape(self._fmt(v))}</td>" for v in row) + "</tr>"
                    for row in df.itertuples(index=False)
                )
                out.append(f"<table><tr>{head}</tr>{rows}</table>")
            else:
                path, alt = body
                out.append(f"<p><img src='{html.escape(path)}' alt='{html.escape(alt)}'></p>")
        out.append("</body></html>")
        return "\n".join(out)


def _read_fits(path: Path) -> dict[str, np.ndarray]:
    from astropy.io import fits

    with fits.open(path) as hdul:
        names = list(hdul[1].columns.names)
    maps = np.atleast_2d(hp.read_map(path, field=None, dtype=np.float64))
    return dict(zip(names, maps, strict=True))


def _residuals_from_table(sub: pd.DataFrame) -> bb.ResidualSpectra:
    zeros = np.zeros(len(sub))
    ell = sub["ell"].to_numpy()

    def three(col: str) -> np.ndarray:
        return np.stack([zeros, sub[col].to_numpy(), zeros])

    total = three("cl_bb_total")
    return bb.ResidualSpectra(ell, three("cl_bb_syst"), total, three("cl_bb_stat"), total[None])


def write_report(rundir: str | Path) -> Path:
    """Write ``plots/*.png``, ``report.md`` and ``report.html`` of a finished run folder."""
    ensure_x64()
    rundir = Path(rundir)
    missing = [f for f in _REQUIRED if not (rundir / f).exists()]
    if missing:
        raise ValueError(
            f"{rundir} is not a finished run folder (missing {missing}); "
            "finish it with `compsep resume`"
        )
    cfg = load_config(rundir / "config.toml")
    grid = pd.read_parquet(rundir / "grid_results.parquet")
    selection = {
        k: tuple(v) for k, v in json.loads((rundir / "selection.json").read_text()).items()
    }
    comparison = pd.read_csv(rundir / "comparison.csv")
    rtab = pd.read_csv(rundir / "r.csv")
    spectra = pd.read_parquet(rundir / "spectra.parquet")
    timings = json.loads((rundir / "timings.json").read_text())
    plots = rundir / "plots"
    plots.mkdir(exist_ok=True)
    sky_info: dict = {}
    if (rundir / "sky.npz").exists():
        with np.load(rundir / "sky.npz") as d:
            sky_info = json.loads(str(d["info"]))
    true_counts = sky_info.get("true_counts")

    doc = _Doc()
    doc.h(1, f"Campaign `{cfg.name}`")
    n_cfg = len(cfg.grid.K_bd) * len(cfg.grid.K_Td) * len(cfg.grid.K_bs)
    n_fits = int(timings.get("n_grid_fits", 0))
    fits_per_s = n_fits / timings["grid_s"] if timings.get("grid_s") else float("nan")
    doc.p(
        f"Sky: `{cfg.sky.source}`"
        + (f" (preset {cfg.sky.preset})" if cfg.sky.source == "pysm" else "")
        + f", nside {cfg.sky.nside}, r = {cfg.sky.r:g}, A_lens = {cfg.sky.A_lens:g}; "
        f"instrument `{cfg.instrument.file or cfg.instrument.preset}`; "
        f"{cfg.noise.n_realisations} noise realisations"
        + (
            " for the grid and as many fresh ones (held out) for the compared layouts"
            if cfg.noise.held_out
            else ""
        )
        + f"; regions {', '.join(cfg.regions.names)}; "
        f"grid of {n_cfg} configurations (K_bd {list(cfg.grid.K_bd)}, K_Td {list(cfg.grid.K_Td)}, "
        f"K_bs {list(cfg.grid.K_bs)}), selection by `{cfg.grid.selection}`."
    )
    doc.p(
        f"Wall time {timings.get('total_s', float('nan')):.1f} s over "
        f"{timings.get('runs', 1)} run(s) "
        f"(grid {timings.get('grid_s', 0):.1f} s, "
        f"{n_fits} grid fits, {fits_per_s:.2f} fits/s including patches, compilation and I/O)."
    )
    if timings.get("parts"):
        parts = timings["parts"]
        doc.p(
            f"Regions ran as {len(parts)} concurrent part(s) (`compsep run --regions`): "
            + ", ".join(
                f"{name} {p.get('total_s', float('nan')):.0f} s" for name, p in parts.items()
            )
            + "; the wall time above is the final stitching run's."
        )

    regions = _read_fits(rundir / "regions.fits")
    zones = np.zeros(next(iter(regions.values())).size)
    for i, m in enumerate(regions.values(), start=1):
        zones[m > 0] = i
    zones[zones == 0] = hp.UNSEEN
    plot_maps({"regions": zones}, plots / "regions.png", suptitle="analysed regions", patches=True)
    doc.h(2, "Regions")
    doc.img("plots/regions.png", "regions")

    doc.h(2, "Grid search")
    axes = ["K_bd", "K_Td", "K_bs"]
    for name in cfg.regions.names:
        sub = grid[grid["region"] == name]
        best = selection[name]
        slug = name.replace("-", "_minus_")
        plot_grid_landscape(
            sub,
            plots / f"grid_{slug}.png",
            metric=cfg.grid.selection,
            selected=best,
            true_counts=true_counts,
            title=f"{name}: {cfg.grid.selection} over the grid",
        )
        doc.h(3, name)
        text = f"Selected (K_bd, K_Td, K_bs) = {best}."
        if true_counts is not None:
            ok = sub[sub["status"] == "ok"].sort_values(cfg.grid.selection, kind="stable")
            ranks = [
                i
                for i, row in enumerate(ok[axes].itertuples(index=False))
                if tuple(row) == tuple(true_counts)
            ]
            hit = tuple(best) == tuple(true_counts)
            text += f" True layout {tuple(true_counts)}: " + (
                "selected." if hit else f"not selected (rank {ranks[0] + 1 if ranks else 'n/a'})."
            )
        n_fail = int((sub["status"] != "ok").sum())
        text += f" {n_fail} failed configuration(s)."
        doc.p(text)
        cols = [
            "K_bd",
            "K_Td",
            "K_bs",
            "cmb_variance",
            "cmb_noise_variance",
            "nll",
            "cmb_mse",
            "converged_fraction",
        ]
        top = sub[sub["status"] == "ok"].sort_values(cfg.grid.selection, kind="stable").head(8)
        doc.table(top[[c for c in cols if c in top]])
        doc.img(f"plots/grid_{slug}.png", f"grid landscape {name}")

    doc.h(2, "Patch layouts and fitted parameters")
    methods = list(dict.fromkeys(comparison["method"]))
    for m in methods:
        patches = _read_fits(rundir / "maps" / f"{m}_patches.fits")
        params = _read_fits(rundir / "maps" / f"{m}_params.fits")
        plot_maps(patches, plots / f"patches_{m}.png", suptitle=METHOD_LABELS[m], patches=True)
        plot_maps(
            params, plots / f"params_{m}.png", suptitle=f"{METHOD_LABELS[m]}: fit, realisation 0"
        )
        doc.h(3, METHOD_LABELS[m])
        doc.img(f"plots/patches_{m}.png", f"patches {m}")
        doc.img(f"plots/params_{m}.png", f"parameters {m}")

    doc.h(2, "Comparison of layouts")
    doc.p("Per region and method: patch counts and the metrics of the fits (uK^2 for maps).")
    keep = [
        "region",
        "method",
        *PARAMETER_NAMES,
        "cmb_variance",
        "cmb_noise_variance",
        "nll",
        "cmb_mse",
        "syst_mse",
        "converged_fraction",
    ]
    doc.table(comparison[[c for c in keep if c in comparison]])

    templates = cmb_templates(3 * cfg.sky.nside - 1, cfg.sky.cls_file or None)
    residuals = {
        METHOD_LABELS[m]: _residuals_from_table(spectra[spectra["method"] == m]) for m in methods
    }
    fig = bb.plot_residual_spectra(residuals, templates, path=plots / "residual_spectra.png")
    del fig
    doc.h(2, "Residual B-mode spectra")
    doc.p(
        "Systematic (foreground-only sky through the same W, solid), statistical (dotted) and "
        "total (dashed) BB residuals, D_ell in uK^2, against lensing and r in [1e-3, 4e-3]."
    )
    doc.img("plots/residual_spectra.png", "residual spectra")

    union = np.zeros(zones.size, dtype=bool)
    for m in regions.values():
        union |= m > 0
    f_sky = float(bb.f_sky(union.astype(float)))
    curves = {}
    for m in methods:
        sub = spectra[spectra["method"] == m]
        row = rtab[rtab["method"] == m].iloc[0]
        sig = row["sigma_r_of_mean"] if np.isfinite(row["sigma_r_of_mean"]) else 1e-3
        r = np.linspace(row["r_hat_of_mean"] - 5 * sig, row["r_hat_of_mean"] + 5 * sig, 400)
        like = bb.r_likelihood_curve(
            r,
            sub["cl_bb_obs_mean"].to_numpy(),
            templates.tensor_bb[: len(sub)],
            cfg.sky.A_lens * templates.lensed_bb[: len(sub)],
            np.clip(sub["cl_bb_stat"].to_numpy(), 0.0, None),
            f_sky=f_sky,
            ell_range=cfg.ell_range,
        )
        curves[METHOD_LABELS[m]] = (r, np.nan_to_num(like))
    bb.plot_r_likelihoods(curves, r_true=cfg.sky.r, path=plots / "r_likelihood.png")
    doc.h(2, "Tensor-to-scalar ratio")
    doc.p(
        f"r likelihood over ell in {list(cfg.ell_range)} (f_sky = {f_sky:.3f}); statistics over "
        "noise realisations (mean of the per-realisation fits) and the fit of the "
        f"realisation-averaged spectrum. Input r = {cfg.sky.r:g}."
    )
    doc.table(rtab)
    doc.img("plots/r_likelihood.png", "r likelihood")

    doc.h(2, "Files")
    doc.p(
        "config.toml, sky.npz, regions.fits, grid/ (Parquet), grid_results.parquet, "
        "selection.json, compare/*.npz, maps/*.fits, spectra.parquet, r.csv, comparison.csv, "
        "timings.json, plots/*.png."
    )
    md = rundir / "report.md"
    md.write_text(doc.markdown())
    (rundir / "report.html").write_text(doc.html(f"compsep campaign {cfg.name}"))
    return md

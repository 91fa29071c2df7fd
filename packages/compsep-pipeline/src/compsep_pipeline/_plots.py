"""Figures of a campaign (matplotlib ``Figure`` objects, no pyplot global state).

Mollweide maps of patch layouts and parameters (the paper's Figs 7-8), grid landscapes
(Fig. 4), residual spectra (Fig. 10, bb-residuals) and r likelihoods (Fig. 12).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import healpy as hp
import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_PARAM_TITLES = {"beta_d": r"$\beta_d$", "T_d": r"$T_d$ [K]", "beta_s": r"$\beta_s$"}


def _mollweide_grid(nside: int, n_lon: int = 400, n_lat: int = 200):
    lon = np.linspace(-np.pi, np.pi, n_lon)
    lat = np.linspace(-np.pi / 2, np.pi / 2, n_lat)
    lon_g, lat_g = np.meshgrid(lon, lat)
    # astronomical convention: Galactic longitude grows to the left
    pix = hp.ang2pix(nside, np.pi / 2 - lat_g, -lon_g % (2 * np.pi))
    return lon, lat, pix


def draw_map(ax, m: np.ndarray, *, title: str, cmap: str = "viridis", shuffle: bool = False):
    """Draw a HEALPix map (UNSEEN / NaN grey) on a Mollweide axis."""
    m = np.asarray(m, dtype=np.float64)
    nside = hp.npix2nside(m.size)
    lon, lat, pix = _mollweide_grid(nside)
    values = m.copy()
    bad = (values == hp.UNSEEN) | ~np.isfinite(values)
    if shuffle and np.any(~bad):
        # patch labels: a fixed random permutation makes neighbouring patches distinguishable
        labels = values[~bad].astype(np.int64)
        perm = np.random.default_rng(0).permutation(int(labels.max()) + 1)
        values[~bad] = perm[labels]
    values[bad] = np.nan
    grid = np.ma.masked_invalid(values[pix])
    cm = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    mesh = ax.pcolormesh(lon, lat, grid, cmap=cm, shading="auto", rasterized=True)
    ax.set_xticklabels([])
    ax.set_yticklabels([])
    ax.grid(True, lw=0.3, alpha=0.5)
    ax.set_title(title, fontsize=9)
    return mesh


def plot_maps(
    maps: Mapping[str, np.ndarray], path: Path, *, suptitle: str, patches: bool = False
) -> Path:
    """One Mollweide panel per map (patch labels shuffled when ``patches``)."""
    n = len(maps)
    fig = Figure(figsize=(4.2 * n, 2.6))
    for i, (name, m) in enumerate(maps.items()):
        ax = fig.add_subplot(1, n, i + 1, projection="mollweide")
        cmap = "tab20" if patches else "viridis"
        mesh = draw_map(ax, m, title=_PARAM_TITLES.get(name, name), cmap=cmap, shuffle=patches)
        if not patches:
            fig.colorbar(mesh, ax=ax, orientation="horizontal", shrink=0.7, pad=0.05)
        else:
            valid = m[(m != hp.UNSEEN) & np.isfinite(m)]
            ax.set_title(
                f"{_PARAM_TITLES.get(name, name)}: {len(np.unique(valid))} patches", fontsize=9
            )
    fig.suptitle(suptitle, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def plot_grid_landscape(
    df: pd.DataFrame,
    path: Path,
    *,
    metric: str,
    selected: Sequence[int],
    true_counts: Sequence[int] | None = None,
    title: str = "",
) -> Path:
    """Metric and NLL against K_bd, one curve per (K_Td, K_bs) (paper Fig. 4)."""
    ok = df[df["status"] == "ok"]
    fig = Figure(figsize=(6.4, 6.0))
    panels = [metric, "nll"] if metric != "nll" else ["nll", "cmb_variance"]
    for i, col in enumerate(panels):
        ax = fig.add_subplot(2, 1, i + 1)
        for (k_td, k_bs), sub in ok.groupby(["K_Td", "K_bs"]):
            sub = sub.sort_values("K_bd")
            ax.plot(sub["K_bd"], sub[col], "o-", ms=3, lw=1, label=f"K_Td={k_td}, K_bs={k_bs}")
        ax.axvline(selected[0], color="k", ls="--", lw=1, label=f"selected {tuple(selected)}")
        if true_counts is not None:
            ax.axvline(true_counts[0], color="r", lw=1.2, label=f"truth {tuple(true_counts)}")
        ax.set_ylabel(col)
        if i == 1:
            ax.set_xlabel(r"$K_{\beta_d}$")
        if i == 0:
            ax.legend(fontsize=6, ncol=2)
            ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path

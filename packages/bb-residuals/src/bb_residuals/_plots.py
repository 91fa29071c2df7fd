"""Figures in the style of kabalan2025 / kabalan2026: residual BB spectra against the
primordial band and lensing (Fig. 10), and r likelihoods of several methods (Fig. 12)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from jaxtyping import Float
from matplotlib.figure import Figure

from ._residuals import ResidualSpectra
from ._spectra import dl_factor
from ._templates import BBTemplates

_STYLES = {"total": "--", "syst": "-", "stat": ":"}
_LABELS = {
    "total": r"$C_\ell^{\rm res}$",
    "syst": r"$C_\ell^{\rm syst}$",
    "stat": r"$C_\ell^{\rm stat}$",
}


def _figure_axes(ax, figsize):
    # A bare Figure (no pyplot) leaves the user's backend and global state alone.
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot()


def _save(fig, path):
    if path is not None:
        path = os.fspath(path)
        if not path.endswith((".png", ".pdf")):
            raise ValueError(f"path: expected a .png or .pdf file name, got {path!r}")
        fig.savefig(path, dpi=150, bbox_inches="tight")


def plot_residual_spectra(
    residuals: Mapping[str, ResidualSpectra],
    templates: BBTemplates,
    *,
    r_band: tuple[float, float] = (1e-3, 4e-3),
    path: str | os.PathLike | None = None,
    ax=None,
):
    """BB residual D_ell (total dashed, systematic solid, statistical dotted) per method,
    with the primordial band ``r in r_band`` (grey) and lensing BB (black), as paper Fig. 10.

    Negative statistical residuals (noise fluctuations) are not drawn on the log axis.

    Returns:
        The matplotlib ``Figure`` (also written to ``path`` when given, PNG or PDF).
    """
    if not residuals:
        raise ValueError("residuals: give at least one method")
    if not 0 < r_band[0] < r_band[1]:
        raise ValueError(f"r_band: need 0 < r_min < r_max, got {r_band}")
    fig, ax = _figure_axes(ax, (6.4, 4.4))
    lmax = 0
    for i, (label, res) in enumerate(residuals.items()):
        color = f"C{i}"
        ell = np.asarray(res.ell, dtype=np.float64)
        lmax = max(lmax, int(np.ceil(ell.max())))
        for kind, style in _STYLES.items():
            dl = dl_factor(ell) * res.spectrum(kind, "BB")
            dl = np.where(dl > 0, dl, np.nan)
            ax.plot(ell, dl, style, color=color, label=f"{label} {_LABELS[kind]}")
    lmax = min(lmax, templates.lmax)
    ell_t = np.arange(2, lmax + 1)
    d = dl_factor(ell_t)
    ax.fill_between(
        ell_t,
        r_band[0] * d * templates.tensor_bb[2 : lmax + 1],
        r_band[1] * d * templates.tensor_bb[2 : lmax + 1],
        color="0.7",
        alpha=0.6,
        label=rf"primordial $r\in[{r_band[0]:g}, {r_band[1]:g}]$",
    )
    ax.plot(ell_t, d * templates.lensed_bb[2 : lmax + 1], "k-", lw=1.5, label="lensing")
    ax.set(
        xscale="log",
        yscale="log",
        xlabel=r"$\ell$",
        ylabel=r"$D_\ell^{BB} = \ell(\ell+1)C_\ell/2\pi\ [\mu K^2]$",
    )
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path)
    return fig


def plot_r_likelihoods(
    curves: Mapping[str, tuple[Float[np.ndarray, " grid"], Float[np.ndarray, " grid"]]],
    *,
    r_true: float | None = None,
    path: str | os.PathLike | None = None,
    ax=None,
):
    """Normalised r likelihoods of several methods on one axis (paper Fig. 12 style).

    Args:
        curves: ``{label: (r, L(r))}``, e.g. from ``r_likelihood_curve``; each curve is
            rescaled to a peak of 1.
        r_true: input r, drawn as a vertical line.
        path: write the figure there (``.png`` or ``.pdf``).
    """
    if not curves:
        raise ValueError("curves: give at least one method")
    fig, ax = _figure_axes(ax, (6.0, 4.0))
    for label, (r, like) in curves.items():
        r, like = np.asarray(r), np.asarray(like, dtype=np.float64)
        if r.shape != like.shape or r.ndim != 1:
            raise ValueError(f"curves[{label!r}]: r and L(r) must be 1-D of equal length")
        peak = np.nanmax(like)
        if not peak > 0:
            raise ValueError(f"curves[{label!r}]: likelihood has no positive value")
        ax.plot(r, like / peak, label=label)
    if r_true is not None:
        ax.axvline(r_true, color="k", ls="--", lw=1, label=f"input r = {r_true:g}")
    ax.set(xlabel="r", ylabel=r"$\mathcal{L}(r)/\mathcal{L}_{\max}$", ylim=(0, 1.05))
    ax.legend(fontsize=8)
    _save(fig, path)
    return fig

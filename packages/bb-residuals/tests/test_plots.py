"""Figures: residual spectra (Fig. 10 style) and r likelihoods (Fig. 12 style)."""

from __future__ import annotations

import numpy as np
import pytest
from bb_residuals import (
    plot_r_likelihoods,
    plot_residual_spectra,
    r_likelihood_curve,
    residual_spectra_from_cls,
)


def _residuals(templates, scale):
    ell = np.arange(2, 40)
    syst = np.zeros((3, ell.size))
    syst[1] = scale * templates.lensed_bb[ell]
    per = np.stack([syst * 1.5 + 1e-7 * k for k in range(4)])
    return residual_spectra_from_cls(syst, per, ell)


@pytest.mark.parametrize("suffix", ["png", "pdf"])
def test_figures_are_written(templates, tmp_path, suffix):
    fig = plot_residual_spectra(
        {"K-means": _residuals(templates, 0.1), "multi-res": _residuals(templates, 0.3)},
        templates,
        path=tmp_path / f"res.{suffix}",
    )
    assert (tmp_path / f"res.{suffix}").stat().st_size > 1000
    assert len(fig.axes[0].lines) == 2 * 3 + 1
    r = np.linspace(-0.005, 0.02, 200)
    obs = templates.lensed_bb[:40] + 0.004 * templates.tensor_bb[:40]
    curves = {
        name: (
            r,
            r_likelihood_curve(
                r, obs * f, templates.tensor_bb[:40], templates.lensed_bb[:40], ell_range=(2, 39)
            ),
        )
        for name, f in (("K-means", 1.0), ("single patch", 1.2))
    }
    fig = plot_r_likelihoods(curves, r_true=0.004, path=tmp_path / f"r.{suffix}")
    assert (tmp_path / f"r.{suffix}").stat().st_size > 1000
    assert len(fig.axes[0].lines) == 3


def test_plot_errors(templates, tmp_path):
    with pytest.raises(ValueError, match="path"):
        plot_residual_spectra({"a": _residuals(templates, 0.1)}, templates, path=tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="residuals"):
        plot_residual_spectra({}, templates)
    with pytest.raises(ValueError, match="r_band"):
        plot_residual_spectra({"a": _residuals(templates, 0.1)}, templates, r_band=(0.01, 0.001))
    with pytest.raises(ValueError, match="curves"):
        plot_r_likelihoods({"a": (np.arange(3.0), np.zeros(3))})

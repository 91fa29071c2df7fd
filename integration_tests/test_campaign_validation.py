"""A campaign on an easy validation sky selects the true K-means layout (paper sec. V.A)."""

from __future__ import annotations

import json

import compsep_pipeline as cp
import numpy as np
import pandas as pd


def test_true_clustering_is_selected(tmp_path):
    truth = (8, 2, 1)
    cfg = cp.default_config().replace(
        name="validation",
        sky={
            "source": "validation",
            "nside": 16,
            "true_counts": list(truth),
            "galaxy": {"beta_d_sigma": 0.2, "T_d_sigma": 4.0, "beta_s_sigma": 0.2},
        },
        noise={"n_realisations": 4},
        regions={"names": ["GAL020"]},
        grid={"K_bd": [4, 8, 16], "K_Td": [2], "K_bs": [1]},
        comparison={"methods": ["kmeans", "single"]},
    )
    result = cp.run_campaign(cfg, tmp_path / "run", progress=False)
    assert result.selection["GAL020"] == truth
    grid = result.grid
    assert (grid["status"] == "ok").all() and len(grid) == 3
    assert (grid["converged_fraction"] == 1.0).all()
    # the selected layout is the one the validation sky was built on
    sel = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert tuple(sel["GAL020"]) == truth
    comp = pd.read_csv(tmp_path / "run" / "comparison.csv")
    kmeans = comp[comp["method"] == "kmeans"].iloc[0]
    single = comp[comp["method"] == "single"].iloc[0]
    # the true layout leaves (almost) no foreground in the CMB, one patch leaves plenty
    assert kmeans["syst_mse"] < 0.01 * single["syst_mse"]
    for name in (
        "report.md",
        "report.html",
        "plots/grid_GAL020.png",
        "plots/patches_kmeans.png",
        "plots/residual_spectra.png",
        "plots/r_likelihood.png",
        "maps/kmeans_patches.fits",
    ):
        assert (tmp_path / "run" / name).is_file(), name
    assert "selected." in (tmp_path / "run" / "report.md").read_text()
    assert np.isfinite(result.r["r_hat_mean"]).all()

"""r recovered from a CMB + noise sky (no foregrounds) is consistent with its input."""

from __future__ import annotations

import compsep_pipeline as cp
import pytest


def test_r_from_cmb_plus_noise_matches_input(tmp_path):
    r_in = 0.1
    cfg = cp.default_config().replace(
        name="cmb-only",
        sky={
            "nside": 16,
            "r": r_in,
            "seed": 7,
            "galaxy": {"dust_amplitude": 0.0, "sync_amplitude": 0.0},
        },
        noise={"n_realisations": 4},
        regions={"names": ["GAL060"]},
        grid={"K_bd": [1], "K_Td": [1], "K_bs": [1], "with_r": True, "selection": "r_plus_sigma"},
        comparison={"methods": ["kmeans"], "ell_min": 2, "ell_max": 32},
    )
    result = cp.run_campaign(cfg, tmp_path / "run", progress=False)
    row = result.r.iloc[0]
    sigma = row["sigma_r_mean"]
    assert 0 < sigma < r_in, "the sky's r must be detected"
    assert abs(row["r_hat_mean"] - r_in) < 3 * sigma
    assert abs(row["r_hat_of_mean"] - r_in) < 3 * row["sigma_r_of_mean"]
    # the grid's per-configuration r (region alone) agrees with the comparison's
    grid = result.grid.iloc[0]
    assert grid["r_hat"] == pytest.approx(row["r_hat_mean"], rel=1e-10)
    assert grid["r_plus_sigma"] == pytest.approx(row["r_plus_sigma_mean"], rel=1e-10)
    # without foregrounds the reconstruction has no systematic residual
    comp = result.comparison.iloc[0]
    assert comp["syst_mse"] < 1e-20

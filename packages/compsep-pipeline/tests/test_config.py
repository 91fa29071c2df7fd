"""TOML configuration: defaults, round trip, and error messages naming the key."""

from __future__ import annotations

import pytest
from compsep_pipeline._config import (
    CampaignConfig,
    config_from_toml,
    default_config,
    load_config,
)


def test_default_round_trip():
    cfg = default_config()
    assert config_from_toml(cfg.to_toml()) == cfg
    assert config_from_toml("") == cfg
    assert cfg.ell_range == (2, 32)


def test_partial_file_keeps_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        'name = "val"\n[sky]\nsource = "validation"\nnside = 8\ntrue_counts = [4, 2, 1]\n'
        "[grid]\nK_bd = [2, 4, 8]\n[comparison.multires]\nGAL020 = [8, 0, 2]\n"
    )
    cfg = load_config(path)
    assert cfg.name == "val" and cfg.sky.nside == 8 and cfg.sky.true_counts == (4, 2, 1)
    assert cfg.grid.K_bd == (2, 4, 8) and cfg.grid.K_Td == CampaignConfig().grid.K_Td
    assert cfg.comparison.multires == {"GAL020": (8, 0, 2)}
    assert cfg.sky.r == 0.0 and isinstance(cfg.sky.r, float)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[grid]\nK_bd = [0, 4]", r"\[grid\] K_bd patch counts must be >= 1"),
        ("[grid]\nK_bd = []", r"\[grid\] K_bd must list"),
        ("[grid]\nfoo = 1", r"unknown key\(s\) \['foo'\] in \[grid\]"),
        ("[sky]\nnside = 12", r"\[sky\] nside must be a power of two"),
        ("[sky]\nnside = 'x'", r"\[sky\] nside must be an integer"),
        ("[sky]\nsource = 'planck'", r"\[sky\] source = 'planck' is not one of"),
        ("[sky]\nsource = 'file'", r"\[sky\] source = 'file' needs \[sky\] file"),
        ("[sky]\nr = -0.1", r"\[sky\] r must be >= 0"),
        ("[sky.galaxy]\ndust_scale_height = 0.0", "galaxy.dust_scale_height must be > 0"),
        ("[noise]\nn_realisations = 1", r"\[noise\] n_realisations must be >= 2"),
        ("[grid]\nselection = 'r_plus_sigma'", "with_r = true"),
        ("[grid]\nr_iter = -1", r"\[grid\] r_iter must be an integer >= 0"),
        ("[comparison]\nell_max = 100", r"ell_max \(100\) exceeds 3 nside - 1 = 47"),
        ("[comparison.multires]\nGAL020 = [3, 0, 2]", "GAL020 must be three nsides"),
        ("[regions]\nnames = []", r"\[regions\] names must list"),
        ("[fit]\nmax_iter = true", r"\[fit\] max_iter must be an integer"),
        ("[sky]\ntrue_counts = [1, 2]", r"\[sky\] true_counts must have 3 entries"),
        ("[sky\n", "invalid TOML"),
    ],
)
def test_errors_name_the_key(text, message):
    with pytest.raises(ValueError, match=message):
        config_from_toml(text)


def test_missing_file_and_replace(tmp_path):
    with pytest.raises(ValueError, match="config show"):
        load_config(tmp_path / "nope.toml")
    cfg = default_config().replace(sky={"nside": 8}, name="small")
    assert cfg.sky.nside == 8 and cfg.name == "small"
    assert cfg.grid == default_config().grid

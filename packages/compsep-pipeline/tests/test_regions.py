"""Masks and regions: Planck masks, resampling, built-in thresholds, zones and hemispheres."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from compsep_pipeline._fields import galactic_latitude
from compsep_pipeline._regions import (
    default_mask_fractions,
    dust_intensity,
    load_masks,
    region_mask,
    resample_mask,
    threshold_masks,
)


def test_planck_masks_resampled_keep_fsky_and_nesting(planck_masks):
    raw = dict(np.load(planck_masks))
    for nside in (16, 64, 128):
        masks = load_masks(planck_masks, nside)
        assert set(masks) == {"GAL020", "GAL040", "GAL060"}
        for name, m in masks.items():
            assert m.dtype == bool and m.size == hp.nside2npix(nside)
            assert abs(m.mean() - raw[name].mean()) < 0.02
        assert not np.any(masks["GAL020"] & ~masks["GAL040"])
        assert not np.any(masks["GAL040"] & ~masks["GAL060"])
    # nside 64 is the file's own resolution: exact copy
    np.testing.assert_array_equal(load_masks(planck_masks, 64)["GAL040"], raw["GAL040"] == 1)


def test_fits_masks_round_trip(tmp_path, planck_masks):
    raw = dict(np.load(planck_masks))
    path = tmp_path / "masks.fits"
    names = ["GAL020", "GAL040"]
    hp.write_map(path, [raw[n].astype(np.float64) for n in names], column_names=names)
    masks = load_masks(path, 32)
    ref = load_masks(planck_masks, 32)
    assert list(masks) == names
    for n in names:
        np.testing.assert_array_equal(masks[n], ref[n])


def test_resample_upgrade_is_exact():
    m = np.zeros(hp.nside2npix(4), dtype=bool)
    m[[0, 5, 100]] = True
    up = resample_mask(m, 16)
    np.testing.assert_array_equal(up, hp.ud_grade(m.astype(float), 16) > 0.5)
    assert up.sum() == 3 * 16


def test_mask_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_masks(tmp_path / "none.npz", 16)
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(ValueError, match=r"npz or \.fits"):
        load_masks(tmp_path / "m.txt", 16)
    with pytest.raises(ValueError, match="nside"):
        resample_mask(np.ones(48, bool), 12)
    with pytest.raises(ValueError, match="1-D HEALPix"):
        resample_mask(np.ones(50, bool), 16)


def test_threshold_masks_fraction_and_nesting():
    nside = 16
    intensity = (
        np.abs(np.sin(galactic_latitude(nside))) * -1.0
        + np.random.default_rng(0).random(hp.nside2npix(nside)) * 0.01
    )
    masks = threshold_masks(intensity, {"GAL020": 0.2, "GAL040": 0.4, "GAL060": 0.6})
    npix = hp.nside2npix(nside)
    for name, f in (("GAL020", 0.2), ("GAL040", 0.4), ("GAL060", 0.6)):
        assert masks[name].sum() == round(f * npix)
        # every kept pixel is fainter than every rejected one
        assert intensity[masks[name]].max() <= intensity[~masks[name]].min()
    assert not np.any(masks["GAL020"] & ~masks["GAL040"])
    with pytest.raises(ValueError, match="sky fraction"):
        threshold_masks(intensity, {"X": 1.5})
    with pytest.raises(ValueError, match="finite"):
        threshold_masks(np.full(npix, np.nan), {"X": 0.5})


def test_default_fractions_and_bad_names():
    assert default_mask_fractions(["GAL040-GAL020_U", "GAL060"]) == {
        "GAL040": 0.4,
        "GAL020": 0.2,
        "GAL060": 0.6,
    }
    with pytest.raises(ValueError, match="mask_file"):
        default_mask_fractions(["NORTH"])


def test_dust_intensity_is_smoothed_polarised_amplitude():
    nside = 16
    q = np.ones(hp.nside2npix(nside)) * 3.0
    u = np.ones(hp.nside2npix(nside)) * 4.0
    # healpy quadrature keeps a constant map to ~1e-3 at nside 16
    np.testing.assert_allclose(dust_intensity(np.stack([q, u])), 5.0, rtol=2e-3)


def test_region_algebra(planck_masks):
    nside = 16
    masks = load_masks(planck_masks, nside)
    zone = region_mask("GAL040-GAL020", masks, nside)
    np.testing.assert_array_equal(zone, masks["GAL040"] & ~masks["GAL020"])
    zones = [region_mask(n, masks, nside) for n in ("GAL020", "GAL040-GAL020", "GAL060-GAL040")]
    total = np.sum(zones, axis=0)
    assert total.max() == 1
    np.testing.assert_array_equal(total == 1, masks["GAL060"])
    up = region_mask("GAL020_U", masks, nside)
    low = region_mask("GAL020_L", masks, nside)
    assert not np.any(up & low)
    np.testing.assert_array_equal(up | low, masks["GAL020"])
    b = galactic_latitude(nside)
    assert np.all(b[up] >= 0) and np.all(b[low] < 0)
    zone_u = region_mask("GAL040-GAL020_U", masks, nside)
    np.testing.assert_array_equal(zone_u, zone & (b >= 0))


def test_region_errors(planck_masks):
    masks = load_masks(planck_masks, 16)
    with pytest.raises(ValueError, match="GAL030"):
        region_mask("GAL030", masks, 16)
    with pytest.raises(ValueError, match="must look like"):
        region_mask("GAL040-", masks, 16)
    with pytest.raises(ValueError, match="empty"):
        region_mask("GAL020-GAL040", masks, 16)

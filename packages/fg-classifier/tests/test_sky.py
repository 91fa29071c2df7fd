import healpy as hp
import numpy as np
import pytest
from fg_classifier import (
    SkyTemplates,
    load_templates,
    pixel_lonlat,
    pysm_templates,
    save_templates,
    synthetic_templates,
)
from spec_likelihood import K_RJ_to_K_CMB


@pytest.mark.parametrize("nside", [1, 2, 4, 16, 32])
def test_pixel_lonlat_matches_healpy(nside):
    lon, lat = pixel_lonlat(nside)
    theta, phi = hp.pix2ang(nside, np.arange(12 * nside**2))
    np.testing.assert_allclose(lat, 90.0 - np.degrees(theta), atol=1e-10)
    np.testing.assert_allclose(lon, np.degrees(phi), atol=1e-10)


def test_synthetic_templates_seeded_and_shaped(templates8):
    again = synthetic_templates(8, seed=3, n_cmb=2)
    np.testing.assert_array_equal(again.sync_qu, templates8.sync_qu)
    assert templates8.dust_qu.shape == (2, 768)
    assert templates8.cmb_qu.shape == (2, 2, 768)
    assert np.all(templates8.ame_i > 0)
    other = synthetic_templates(8, seed=4, n_cmb=2)
    assert not np.allclose(other.sync_qu, templates8.sync_qu)
    # the Galactic plane is brighter than the poles
    _, lat = pixel_lonlat(8)
    plane = np.abs(lat) < 10
    assert np.std(templates8.dust_qu[:, plane]) > 5 * np.std(templates8.dust_qu[:, ~plane])


def test_templates_roundtrip(tmp_path, templates8):
    path = save_templates(tmp_path / "t.npz", templates8)
    back = load_templates(path)
    assert back.nside == 8 and back.source == "synthetic"
    np.testing.assert_allclose(back.dust_qu, templates8.dust_qu, rtol=1e-6)
    np.testing.assert_allclose(back.cmb_qu, templates8.cmb_qu, rtol=1e-6, atol=1e-9)
    with pytest.raises(ValueError, match="no templates file"):
        load_templates(tmp_path / "missing.npz")


def test_templates_shape_errors():
    with pytest.raises(ValueError, match="dust_qu must have shape"):
        SkyTemplates(2, np.zeros((2, 10)), np.zeros((2, 48)), np.zeros(48), np.zeros((1, 2, 48)))
    with pytest.raises(ValueError, match="power of 2"):
        synthetic_templates(12)


def test_pysm_templates_reproduce_pysm_a2(pysm_dirs):
    """AME pol built from a1 intensity at the d1 dust angle equals PySM's a2 output (2%)."""
    local, bench = pysm_dirs
    t = pysm_templates(64, local_data=local, benchmarks=bench, n_cmb=1)
    dust_q = hp.read_map(str(local / "pysm_2" / "dust_q_new.fits")).astype(np.float64)
    np.testing.assert_allclose(t.dust_qu[0] / float(K_RJ_to_K_CMB(353.0)), dust_q, rtol=1e-12)
    a2 = hp.read_map(str(bench / "check8spinn_30p0_64.fits"), field=None).astype(np.float64)
    ame_rj = t.ame_i / float(K_RJ_to_K_CMB(30.0))
    q = 0.02 * ame_rj * np.cos(2 * t.dust_angle)
    u = 0.02 * ame_rj * np.sin(2 * t.dust_angle)
    scale = np.abs(a2[1]).max()
    np.testing.assert_allclose(q, a2[1], atol=1e-6 * scale)
    np.testing.assert_allclose(u, a2[2], atol=1e-6 * scale)


def test_pysm_templates_errors(tmp_path):
    with pytest.raises(ValueError, match="PySM template files missing"):
        pysm_templates(8, local_data=tmp_path)

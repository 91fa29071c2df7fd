"""Sky simulation against independent formulas (numpy SEDs, healpy spectra) and PySM outputs."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
import spec_likelihood as sl
from compsep_pipeline import GalaxyModel, SkyMaps, simulate_pysm, simulate_synthetic
from compsep_pipeline._cmb import cmb_polarization_spectra
from compsep_pipeline._patches import KMeansPatcher
from compsep_pipeline._regions import resample_mask

H_OVER_K = 6.62607015e-34 / 1.380649e-23 * 1e9  # K / GHz
T_CMB = 2.7255


def _rj_to_cmb(nu):
    x = H_OVER_K * nu / T_CMB
    return np.expm1(x) ** 2 / (x**2 * np.exp(x))


def _dust_kcmb(nu, nu0, beta, temp):
    """Modified blackbody in K_CMB, 1 at nu0 (numpy, independent of spec-likelihood)."""
    rj = (nu / nu0) ** (beta + 1) * np.expm1(H_OVER_K * nu0 / temp) / np.expm1(H_OVER_K * nu / temp)
    return rj * _rj_to_cmb(nu) / _rj_to_cmb(nu0)


def _sync_kcmb(nu, nu0, beta):
    return (nu / nu0) ** beta * _rj_to_cmb(nu) / _rj_to_cmb(nu0)


@pytest.fixture(scope="module")
def sky() -> SkyMaps:
    return simulate_synthetic(16, sl.litebird_ptep().frequencies, seed=3, r=0.01)


def test_foregrounds_follow_independent_seds(sky):
    from compsep_pipeline._sky import synthetic_amplitudes

    rng_amp = np.random.default_rng(np.random.SeedSequence(3).spawn(3)[0])
    dust, sync = synthetic_amplitudes(16, GalaxyModel(), rng_amp)
    nu = sky.frequencies[:, None, None]
    p = sky.parameters
    expected = dust[None] * _dust_kcmb(nu, 150.0, p["beta_d"], p["T_d"]) + sync[None] * _sync_kcmb(
        nu, 20.0, p["beta_s"]
    )
    np.testing.assert_allclose(sky.foregrounds, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sky.dust, dust)


def test_parameter_fields_statistics(sky):
    g = GalaxyModel()
    for name in ("beta_d", "T_d", "beta_s"):
        values = sky.parameters[name]
        assert abs(values.mean() - g.mean(name)) < 1e-6 * abs(g.mean(name)) + 1e-9
        assert abs(values.std() - g.sigma(name)) < 0.01 * g.sigma(name)
        spec = sl.PARAMETERS[name]
        assert values.min() > spec.lower and values.max() < spec.upper


def test_foreground_latitude_profile(sky):
    from compsep_pipeline._fields import galactic_latitude

    b = np.abs(np.degrees(galactic_latitude(16)))
    p_dust = np.hypot(*sky.dust)
    assert np.sqrt(np.mean(p_dust[b < 10] ** 2)) > 5 * np.sqrt(np.mean(p_dust[b > 60] ** 2))


def test_cmb_bb_spectrum_matches_input():
    # r = 0.2 makes tensor BB visible above cosmic variance at nside 32.
    nside, lmax = 32, 64
    ee, bb = cmb_polarization_spectra(lmax, r=0.2)
    spectra = []
    for seed in range(6):
        s = simulate_synthetic(nside, [100.0], seed=seed, r=0.2)
        spectra.append(hp.anafast([np.zeros(s.cmb.shape[1]), *s.cmb], lmax=lmax))
    mean = np.mean(spectra, axis=0)
    # maps are synthesised without pixel window; stay below nside where aliasing is small
    ell = np.arange(2, nside)
    sigma = np.sqrt(2 / ((2 * ell + 1) * len(spectra)))
    z_bb = (mean[2, ell] / bb[ell] - 1) / sigma
    z_ee = (mean[1, ell] / ee[ell] - 1) / sigma
    assert np.max(np.abs(z_bb)) < 5 and abs(np.mean(z_bb)) < 1
    assert np.max(np.abs(z_ee)) < 5 and abs(np.mean(z_ee)) < 1


def test_cmb_spectra_from_file_and_errors(data_dir, tmp_path):
    path = data_dir / "cls" / "camb_planck2018_lmax400.npz"
    d = np.load(path)
    ee, bb = cmb_polarization_spectra(100, r=0.01, a_lens=0.5, cls_file=path)
    np.testing.assert_allclose(
        bb, 0.5 * d["lensed_scalar"][:101, 2] + 0.01 * d["tensor_r1"][:101, 2]
    )
    np.testing.assert_allclose(ee, d["lensed_scalar"][:101, 1] + 0.01 * d["tensor_r1"][:101, 1])
    with pytest.raises(ValueError, match="lmax = 500"):
        cmb_polarization_spectra(500, cls_file=path)
    with pytest.raises(ValueError, match="r and A_lens"):
        cmb_polarization_spectra(10, r=-1.0)


def test_seed_determinism_and_save_load(tmp_path, sky):
    again = simulate_synthetic(16, sl.litebird_ptep().frequencies, seed=3, r=0.01)
    np.testing.assert_array_equal(again.signal, sky.signal)
    other = simulate_synthetic(16, sl.litebird_ptep().frequencies, seed=4, r=0.01)
    assert not np.allclose(other.cmb, sky.cmb)
    path = sky.save(tmp_path / "sky.npz")
    loaded = SkyMaps.load(path)
    np.testing.assert_array_equal(loaded.signal, sky.signal)
    assert loaded.info == sky.info and loaded.source == "synthetic"
    for k in sky.parameters:
        np.testing.assert_array_equal(loaded.parameters[k], sky.parameters[k])
    with pytest.raises(ValueError, match="compsep simulate"):
        SkyMaps.load(tmp_path / "missing.npz")


def test_validation_sky_constant_in_kmeans_patches(planck_masks):
    nside = 16
    mask = resample_mask(np.load(planck_masks)["GAL020"], nside)
    counts = (12, 4, 2)
    sky = simulate_synthetic(
        nside, [40.0, 150.0, 300.0], seed=1, validation_mask=mask, validation_counts=counts
    )
    assert sky.source == "validation" and sky.info["true_counts"] == list(counts)
    patcher = KMeansPatcher(nside, mask, seed=0)
    idx = patcher.indices
    for name, k in zip(("beta_d", "T_d", "beta_s"), counts, strict=True):
        labels = patcher.labels(k)
        values = sky.parameters[name][idx]
        assert len(np.unique(labels)) == k
        for lab in range(k):
            assert np.ptp(values[labels == lab]) == 0
        assert len(np.unique(values)) == k
        # outside the region: the mean value
        outside = sky.parameters[name][~mask]
        assert np.all(outside == GalaxyModel().mean(name))


def test_kmeans_patches_do_not_depend_on_call_order(planck_masks):
    mask = resample_mask(np.load(planck_masks)["GAL020"], 16)
    a = KMeansPatcher(16, mask, seed=0)
    b = KMeansPatcher(16, mask, seed=0)
    first = a.labels(12)
    b.labels(30)
    b.labels(3)
    np.testing.assert_array_equal(first, b.labels(12))


def test_prefetch_gives_the_labels_of_one_at_a_time(planck_masks):
    mask = resample_mask(np.load(planck_masks)["GAL020"], 16)
    a = KMeansPatcher(16, mask, seed=3)
    b = KMeansPatcher(16, mask, seed=3)
    counts = [5, 12, 13, 40, 1, 10_000]  # two share a padded size; 1 and > n_pix special
    c = KMeansPatcher(16, mask, seed=3)
    b.prefetch(counts, one_program=False)
    c.prefetch(counts, one_program=True)
    assert set(b._cache) == set(c._cache) == {5, 12, 13, 40, b.n_pix}
    for k in counts:
        np.testing.assert_array_equal(a.labels(k), b.labels(k))
        np.testing.assert_array_equal(a.labels(k), c.labels(k))
    assert sorted(np.unique(b.labels(40)).tolist()) == list(range(40))
    with pytest.raises(ValueError, match="number of patches"):
        a.prefetch([3, 0])


def test_beam_smoothing_is_applied():
    nu = [100.0]
    raw = simulate_synthetic(16, nu, seed=2)
    smooth = simulate_synthetic(16, nu, seed=2, beam_fwhm_arcmin=600.0)
    # EE: the CMB B modes are too faint against the E-to-B aliasing of the raw map
    cl_raw = hp.anafast([np.zeros(raw.cmb.shape[1]), *raw.cmb], lmax=40)[1]
    cl_smooth = hp.anafast([np.zeros(raw.cmb.shape[1]), *smooth.cmb], lmax=40)[1]
    bl = hp.gauss_beam(np.radians(10.0), lmax=40, pol=True)[:, 1]
    np.testing.assert_allclose(cl_smooth[2:20], cl_raw[2:20] * bl[2:20] ** 2, rtol=0.03)
    np.testing.assert_array_equal(smooth.dust, raw.dust)


def test_pysm_sky_matches_pysm_benchmarks(data_dir, monkeypatch):
    bench = data_dir / "pysm_benchmarks_ns64"
    local = data_dir / "pysm_local_data_ns64"
    if not bench.is_dir() or not local.is_dir():
        pytest.skip(reason="PySM benchmark or local data folder absent")
    monkeypatch.setenv("PYSM_LOCAL_DATA", str(local.resolve()))
    freqs = [30.0, 100.0, 353.0]
    sky = simulate_pysm(64, freqs, "d1s1")
    for i, nu in enumerate(freqs):
        ref = 0.0
        for name in ("check1therm", "check2synch"):
            ref = ref + hp.read_map(bench / f"{name}_{nu:g}p0_64.fits", field=(1, 2)).astype(
                np.float64
            )
        # benchmarks are uK_RJ; convert with an independent K_RJ -> K_CMB formula
        expected = ref * _rj_to_cmb(nu)
        np.testing.assert_allclose(sky.foregrounds[i], expected, rtol=1e-5, atol=1e-6)
    assert np.all(sky.cmb == 0)
    assert set(sky.parameters) == {"beta_d", "T_d", "beta_s"}


def test_pysm_requires_data(monkeypatch):
    monkeypatch.delenv("PYSM_LOCAL_DATA", raising=False)
    with pytest.raises(ValueError, match="PYSM_LOCAL_DATA"):
        simulate_pysm(16, [100.0], "d1s1")

"""Campaign building blocks: fits of a layout, metrics, stitching, selection."""

from __future__ import annotations

import compsep_pipeline as cp
import numpy as np
import pandas as pd
import pytest
import spec_likelihood as sl
from compsep_pipeline import _campaign as campaign
from compsep_pipeline._campaign import region_seed


def test_spatial_cmb_variance_is_the_papers_eq9():
    rng = np.random.default_rng(0)
    cmb = rng.normal(size=(5, 2, 40)) * np.array([1.0, 2.0])[:, None]
    expected = np.mean([np.var(c[0]) + np.var(c[1]) for c in cmb])
    assert cp.spatial_cmb_variance(cmb) == pytest.approx(expected, rel=1e-12)


def test_region_seed_is_stable_and_distinct():
    assert region_seed(1, "GAL020") == region_seed(1, "GAL020")
    assert region_seed(1, "GAL020") != region_seed(1, "GAL040-GAL020")
    assert region_seed(1, "GAL020") != region_seed(2, "GAL020")


def test_select_best_skips_failures():
    df = pd.DataFrame(
        {
            "K_bd": [1, 2, 3],
            "K_Td": [1, 1, 1],
            "K_bs": [1, 1, 1],
            "cmb_variance": [2.0, np.nan, 1.0],
            "status": ["ok", "error", "ok"],
        }
    )
    assert cp.select_best(df, "cmb_variance") == (3, 1, 1)
    with pytest.raises(ValueError, match="no successful"):
        cp.select_best(df[df["status"] == "error"], "cmb_variance")


@pytest.fixture(scope="module")
def problem():
    cfg = cp.default_config().replace(
        # constant spectral parameters: one patch is the true model
        sky={
            "nside": 8,
            "seed": 2,
            "galaxy": {"beta_d_sigma": 0.0, "T_d_sigma": 0.0, "beta_s_sigma": 0.0},
        },
        noise={"n_realisations": 3},
        regions={"names": ["GAL060"]},
    )
    sky = cp.build_sky(cfg)
    regions = cp.build_regions(cfg, sky)
    return (
        cfg,
        sky,
        cp.region_problem(cfg, sky, cp.build_instrument(cfg), "GAL060", regions["GAL060"]),
    )


def test_region_problem_noise_is_the_instrument_noise(problem):
    _, sky, prob = problem
    resid = prob.data - sky.signal[None][..., prob.indices]
    sigma = np.asarray(sl.white_noise_sigma(sl.litebird_ptep(), 8))
    measured = resid.std(axis=(0, 2, 3))
    np.testing.assert_allclose(measured, sigma, rtol=0.1)
    assert prob.data.shape == (3, 15, 2, prob.indices.size)


def test_fit_layout_single_patch_against_direct_gls(problem):
    cfg, _, prob = problem
    lf = cp.fit_layout(prob, cp.single_patch_layout(prob.indices.size), cfg)
    assert lf.converged.all()
    # GLS CMB from the fitted parameters, recomputed with numpy
    comps = cp.components()
    for n in range(prob.n_real):
        p = {k: float(v[n, 0]) for k, v in lf.params.items()}
        a = np.asarray(sl.mixing_matrix(comps, prob.frequencies, p))
        ninv = np.diag(prob.noise_inv_var)
        w = np.linalg.solve(a.T @ ninv @ a, a.T @ ninv)
        np.testing.assert_allclose(
            lf.cmb[n], np.einsum("f,fsp->sp", w[0], prob.data[n]), rtol=1e-8, atol=1e-10
        )
        np.testing.assert_allclose(
            lf.cmb_systematic[n],
            np.einsum("f,fsp->sp", w[0], prob.foregrounds),
            rtol=1e-8,
            atol=1e-10,
        )
    # one patch is the true model here: the fit recovers the sky's parameters
    np.testing.assert_allclose(lf.params["beta_d"], 1.54, atol=0.01)
    np.testing.assert_allclose(lf.params["T_d"], 20.0, atol=0.5)
    np.testing.assert_allclose(lf.params["beta_s"], -3.0, atol=0.01)
    assert np.mean(lf.cmb_systematic**2) < 1e-3 * np.mean(prob.cmb_true**2)
    m = cp.layout_metrics(prob, lf)
    assert m["n_params"] == 3 and m["converged_fraction"] == 1.0
    assert m["cmb_variance"] > m["cmb_noise_variance"] > 0


def test_stitch_places_regions(problem):
    _, _, prob = problem
    n = prob.indices.size
    layout = {"beta_d": np.arange(n) % 3, "T_d": np.zeros(n, int), "beta_s": np.zeros(n, int)}
    params = {
        "beta_d": np.ones((3, 3)),
        "T_d": np.full((3, 1), 20.0),
        "beta_s": np.full((3, 1), -3.0),
    }
    lf = cp.LayoutFit(
        layout=layout,
        params=params,
        nll=np.zeros(3),
        converged=np.ones(3, bool),
        n_iter=np.ones(3, int),
        cmb=np.ones((3, 2, n)),
        cmb_systematic=np.zeros((3, 2, n)),
    )
    st = cp.stitch([prob, prob], [lf, lf])
    assert st.mask.sum() == n
    assert np.all(st.cmb[:, :, prob.indices] == 1) and np.all(st.cmb[:, :, ~st.mask] == 0)
    # the second region's labels are offset past the first's
    assert st.labels["beta_d"][prob.indices].min() == 3
    assert np.all(st.labels["T_d"][~st.mask] == -1)
    np.testing.assert_array_equal(st.cmb_true[:, prob.indices], prob.cmb_true)


def test_region_fitter_compiles_once_and_matches_per_layout_fits(problem):
    cfg, _, prob = problem
    layouts = [prob.patcher.layout(c) for c in [(4, 2, 1), (2, 1, 1), (3, 2, 2)]]
    fitter = cp.RegionFitter(prob, cfg, {"beta_d": 4, "T_d": 2, "beta_s": 2}, batch=2)
    fast = fitter.fit(layouts, keep_maps=False)  # metrics reduced on the device
    full = fitter.fit(layouts, keep_maps=True)
    # two batches of one shape bucket: one compilation per keep_maps variant
    assert len(fitter._compiled) == 2
    assert sum(lf.compile_s > 0 for lf in fast) == 2  # the first batch's two layouts
    for layout, lf_fast, lf_full in zip(layouts, fast, full, strict=True):
        ref = cp.fit_layout(prob, layout, cfg)  # its own patch counts, one layout per call
        assert lf_fast.cmb is None and lf_full.cmb is not None
        for k in ref.params:
            np.testing.assert_allclose(lf_full.params[k], ref.params[k], rtol=1e-6)
        np.testing.assert_allclose(lf_full.cmb, ref.cmb, rtol=1e-6, atol=1e-9)
        # the device metrics equal the host formulas on the same maps
        host = cp.layout_metrics(prob, ref)
        for key in ("cmb_variance", "cmb_noise_variance", "nll", "cmb_mse", "syst_mse"):
            assert lf_fast.metrics[key] == pytest.approx(host[key], rel=1e-6), key


def test_systematic_residual_is_the_fit_to_the_foreground_only_sky(problem):
    """Section IV.b: C^syst comes from the layout refitted to d_fg (no CMB, no noise).

    One patch is the true model of this sky, so W(beta_fg) d_fg vanishes: the systematic
    BB must be ~0 and the r fit unbiased. Applying the noisy fits' W(beta_hat_n) to d_fg
    (the former estimator) counts the noise-driven parameter scatter as a systematic.
    """
    cfg, _, prob = problem
    layout = cp.single_patch_layout(prob.indices.size)
    lf = cp.fit_layout(prob, layout, cfg)
    syst = cp.foreground_systematic(prob, layout, cfg)
    assert syst.shape == (2, prob.indices.size)
    # independent reference: the GLS weights at the sky's true parameters, with numpy
    a = np.asarray(
        sl.mixing_matrix(
            cp.components(), prob.frequencies, {"beta_d": 1.54, "T_d": 20.0, "beta_s": -3.0}
        )
    )
    ninv = np.diag(prob.noise_inv_var)
    w = np.linalg.solve(a.T @ ninv @ a, a.T @ ninv)
    np.testing.assert_allclose(
        syst, np.einsum("f,fsp->sp", w[0], prob.foregrounds), rtol=0, atol=1e-6
    )
    noisy_w = np.mean(lf.cmb_systematic**2)
    assert np.mean(syst**2) < 1e-6 * noisy_w

    templates = cp.cmb_templates(3 * prob.nside - 1)
    kwargs = {"r_in": 0.0, "a_lens": 1.0, "ell_range": (2, 3 * prob.nside - 1)}
    paper = cp.method_spectra(cp.stitch([prob], [lf], [syst]), templates, **kwargs)
    former = cp.method_spectra(cp.stitch([prob], [lf]), templates, **kwargs)
    bb = paper.residuals.spectrum("syst", "BB")[2:]
    assert np.all(bb < 1e-6 * paper.residuals.spectrum("total", "BB")[2:])
    assert np.mean(former.residuals.spectrum("syst", "BB")[2:]) > 1e3 * np.mean(bb)
    with pytest.raises(ValueError, match="systematic"):
        cp.stitch([prob], [lf], [syst[:, :-1]])


def test_auto_batch_bounds_the_schur_temporaries():
    assert cp.auto_batch(100, {"beta_d": 3500, "T_d": 80, "beta_s": 80}, gpu=False) == 1
    assert cp.auto_batch(100, {"beta_d": 100, "T_d": 15, "beta_s": 5}, gpu=True) == 16
    big = {"beta_d": 3500, "T_d": 80, "beta_s": 80}
    b = cp.auto_batch(100, big, gpu=True)
    # ~4 temporaries of [K_e, r] float64 per realisation and layout stay under 4 GiB
    assert 1 <= b < 16 and b * 4 * 100 * 3500 * 160 * 8 <= 4 << 30
    assert cp.auto_batch(1000, {"beta_d": 9000, "T_d": 500, "beta_s": 500}, gpu=True) == 1


def test_counts_beyond_the_pixel_count_share_one_fit(problem, tmp_path, monkeypatch):
    # K above the region's pixel count is capped (one pixel per patch): such configurations
    # have one layout, fitted once, and identical rows.
    cfg, _, prob = problem
    n_pix = int(prob.indices.size)
    cfg = cfg.replace(grid={"K_bd": [n_pix - 1, n_pix, n_pix + 7], "K_Td": [1], "K_bs": [1]})
    calls = []
    original = cp.RegionFitter.fit

    def counting(self, layouts, keep_maps=True, start=None):
        calls.extend(int(lay["beta_d"].max()) + 1 for lay in layouts)
        return original(self, layouts, keep_maps, start)

    monkeypatch.setattr(cp.RegionFitter, "fit", counting)
    df = cp.run_region_grid(prob, cfg, tmp_path / "grid", progress=False)
    assert sorted(calls) == [n_pix - 1, n_pix]
    rows = df.set_index("K_bd")
    for col in ("cmb_variance", "nll", "cmb_mse"):
        assert rows.loc[n_pix, col] == rows.loc[n_pix + 7, col]
        assert rows.loc[n_pix - 1, col] != rows.loc[n_pix, col]


def test_grid_r_metrics_use_the_configured_iterations(problem, tmp_path, monkeypatch):
    # [grid] r_iter reaches the per-configuration spectra, and changes them only a little.
    import bb_residuals

    cfg, _, prob = problem
    seen = []
    original = bb_residuals.NaiveEstimator

    class Recording(original):
        def __init__(self, *args, **kwargs):
            seen.append(kwargs.get("iter", 3))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(bb_residuals, "NaiveEstimator", Recording)
    rows = {}
    for r_iter in (0, 3):
        grid = {"K_bd": [1], "K_Td": [1], "K_bs": [1], "with_r": True, "r_iter": r_iter}
        df = cp.run_region_grid(
            prob, cfg.replace(grid=grid), tmp_path / f"grid{r_iter}", progress=False
        )
        rows[r_iter] = df.iloc[0]
    assert seen == [0, 3]
    assert rows[0]["sigma_r"] != rows[3]["sigma_r"]
    assert rows[0]["sigma_r"] == pytest.approx(rows[3]["sigma_r"], rel=0.2)


def test_compacted_fits_equal_the_plain_batch(problem, monkeypatch):
    # [fit] compact_after: the fits still running after 2 iterations continue one at a time
    # (spec-likelihood fit_likelihood_batch); same iterations, same fits, same CMB maps
    cfg, _, prob = problem
    layout = prob.patcher.layout((3, 2, 2))
    k_max = {"beta_d": 3, "T_d": 2, "beta_s": 2}
    monkeypatch.setattr(campaign, "_COMPACT_MIN_BATCH", 2)
    plain_cfg = cfg.replace(fit={"compact_after": 0})
    packed_cfg = cfg.replace(fit={"compact_after": 2, "compact_size": 1})
    plain = cp.RegionFitter(prob, plain_cfg, k_max).fit([layout])[0]
    packed = cp.RegionFitter(prob, packed_cfg, k_max).fit([layout])[0]
    assert int(np.max(plain.n_iter)) > 2
    np.testing.assert_array_equal(packed.n_iter, plain.n_iter)
    np.testing.assert_allclose(packed.nll, plain.nll, rtol=1e-13)
    np.testing.assert_allclose(packed.cmb, plain.cmb, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="compact_after must be >= 0"):
        cfg.replace(fit={"compact_after": -1})


def test_tuple_buckets_are_few_and_never_beyond_the_pixel_count():
    sizes = [campaign._tuple_bucket(n) for n in range(1, 9000)]
    assert sorted(set(sizes)) == [512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288]
    for n, b in zip(range(1, 9000), sizes, strict=True):
        assert b >= n and (b <= 512 or b <= 2 * n)
        assert b <= 1024 or b < 1.5 * n  # large layouts: at most a third of padding
    # a near-per-pixel layout is padded to the pixel count at most
    assert campaign._tuple_bucket(4881, 5556) == 5556
    assert campaign._tuple_bucket(2400, 5556) == 3072
    assert campaign._tuple_bucket(5556, 5556) == 5556
    assert campaign._tuple_bucket(40, 100) == 100  # small regions: the pixel count
    # the tuple count itself, against a row-wise unique
    names = campaign.PARAMETER_NAMES
    rng = np.random.default_rng(0)
    layout = {k: rng.integers(0, 7, 500) for k in names}
    rows = np.stack([layout[k] for k in names], axis=1)
    assert campaign._n_tuples(layout) == np.unique(rows, axis=0).shape[0]


def test_grid_screening_tolerances_reach_the_grid_fits_only(problem, tmp_path, monkeypatch):
    # [grid] gtol/rtol (0: [fit]'s) are the grid's fit tolerances; [fit] is untouched
    cfg, _, prob = problem
    seen = []
    original = campaign._fit_and_reconstruct

    def recording(lik, fit_cfg, data, foregrounds, x0=None):
        seen.append((fit_cfg.gtol, fit_cfg.rtol))
        return original(lik, fit_cfg, data, foregrounds, x0)

    monkeypatch.setattr(campaign, "_fit_and_reconstruct", recording)
    grid = {"K_bd": [2], "K_Td": [1], "K_bs": [1]}
    loose = cfg.replace(grid={**grid, "gtol": 1e-2, "rtol": 1e-12})
    df_loose = cp.run_region_grid(prob, loose, tmp_path / "loose", progress=False)
    df_tight = cp.run_region_grid(prob, cfg.replace(grid=grid), tmp_path / "tight", progress=False)
    assert seen == [(1e-2, 1e-12), (cfg.fit.gtol, cfg.fit.rtol)]
    assert loose.fit.gtol == cfg.fit.gtol  # the compared layouts keep [fit]'s tolerances
    assert campaign.screening_config(cfg) is cfg
    # looser tolerances: fewer iterations, the same metric to far below its grid spread
    assert df_loose["n_iter"].iloc[0] <= df_tight["n_iter"].iloc[0]
    assert df_loose["cmb_variance"].iloc[0] == pytest.approx(
        df_tight["cmb_variance"].iloc[0], rel=1e-4
    )
    with pytest.raises(ValueError, match=r"\[grid\] gtol must be in \[0, 1\)"):
        cfg.replace(grid={"gtol": -1.0})


def test_grid_warm_start_keeps_the_metrics(problem, tmp_path):
    cfg, _, prob = problem
    grid = {"K_bd": [2, 3], "K_Td": [1, 2], "K_bs": [1]}
    cold = cp.run_region_grid(prob, cfg.replace(grid=grid), tmp_path / "cold", progress=False)
    warm_cfg = cfg.replace(grid={**grid, "warm_start": True})
    warm = cp.run_region_grid(prob, warm_cfg, tmp_path / "warm", progress=False)
    assert cold.attrs["warm_start"]["start"] is None
    start = warm.attrs["warm_start"]["start"]
    assert set(start) == {"beta_d", "T_d", "beta_s"} and warm.attrs["warm_start"]["seconds"] > 0
    # the same optima: metrics equal to far below their spread over the grid
    np.testing.assert_allclose(warm["cmb_variance"], cold["cmb_variance"], rtol=1e-6)
    np.testing.assert_allclose(warm["nll"], cold["nll"], rtol=1e-10)
    assert cp.select_best(warm, "cmb_variance") == cp.select_best(cold, "cmb_variance")
    # a finished grid is not started again (no warm-start fit on resume)
    again = cp.run_region_grid(prob, warm_cfg, tmp_path / "warm", progress=False)
    assert again.attrs["warm_start"]["start"] is None
    pd.testing.assert_frame_equal(again, warm)


def test_padding_pixels_changes_no_fit_and_no_metric(problem):
    # zero maps on padding pixels labelled like the first add nothing to the likelihood;
    # the metrics are over the region's pixels only
    cfg, _, prob = problem
    layout = prob.patcher.layout((3, 2, 1))
    k_max = {"beta_d": 3, "T_d": 2, "beta_s": 1}
    plain = cp.RegionFitter(prob, cfg, k_max).fit([layout])[0]
    fitter = cp.RegionFitter(prob, cfg, k_max, n_pad=prob.indices.size + 37)
    padded = fitter.fit([layout])[0]
    lean = fitter.fit([layout], keep_maps=False)[0]
    np.testing.assert_array_equal(padded.n_iter, plain.n_iter)
    np.testing.assert_allclose(padded.nll, plain.nll, rtol=1e-13)
    for k in plain.params:
        np.testing.assert_allclose(padded.params[k], plain.params[k], rtol=1e-9, atol=1e-12)
    assert padded.cmb.shape == plain.cmb.shape
    np.testing.assert_allclose(padded.cmb, plain.cmb, rtol=1e-9, atol=1e-12)
    reference = campaign.layout_metrics(prob, plain)  # host metrics of the unpadded maps
    for key in ("cmb_variance", "cmb_noise_variance", "cmb_mse", "syst_mse", "nll"):
        assert lean.metrics[key] == pytest.approx(reference[key], rel=1e-10), key
    with pytest.raises(ValueError, match="below the region"):
        cp.RegionFitter(prob, cfg, k_max, n_pad=prob.indices.size - 1)


def test_compilation_cache_serves_a_second_fitter(problem, tmp_path):
    # the programs of a region's fitter are kept on disk: another fitter of the same
    # shapes (a region of the same pixel bucket) loads them instead of compiling
    import jax
    from jax.experimental.compilation_cache import compilation_cache

    cfg, _, prob = problem
    layout = prob.patcher.layout((2, 1, 1))
    k_max = {"beta_d": 2, "T_d": 1, "beta_s": 1}
    hits = []
    listener = lambda name, **kw: hits.append(name)
    assert jax.config.jax_compilation_cache_dir is None
    try:
        assert cp.enable_compilation_cache(tmp_path / "cache")
        assert not cp.enable_compilation_cache(tmp_path / "other")  # already set: kept
        first = cp.RegionFitter(prob, cfg, k_max).fit([layout], keep_maps=False)[0]
        assert any((tmp_path / "cache").iterdir())
        jax.monitoring.register_event_listener(listener)
        second = cp.RegionFitter(prob, cfg, k_max).fit([layout], keep_maps=False)[0]
    finally:
        jax.monitoring.unregister_event_listener(listener)
        jax.config.update("jax_compilation_cache_dir", None)
        compilation_cache.reset_cache()
    assert "/jax/compilation_cache/cache_hits" in hits
    assert second.metrics == first.metrics


def test_warm_start_reaches_the_same_optima_in_fewer_iterations():
    # constant parameters away from the default start (T_d 20 K, beta_d 1.54)
    cfg = cp.default_config().replace(
        sky={
            "nside": 8,
            "seed": 4,
            "galaxy": {
                "beta_d_mean": 1.7,
                "T_d_mean": 27.0,
                "beta_d_sigma": 0.0,
                "T_d_sigma": 0.0,
                "beta_s_sigma": 0.0,
            },
        },
        noise={"n_realisations": 3},
        regions={"names": ["GAL060"]},
    )
    sky = cp.build_sky(cfg)
    prob = cp.region_problem(
        cfg, sky, cp.build_instrument(cfg), "GAL060", cp.build_regions(cfg, sky)["GAL060"]
    )
    fitter = cp.RegionFitter(prob, cfg, {"beta_d": 4, "T_d": 4, "beta_s": 2})
    start = cp.warm_start(fitter, prob)
    assert start["T_d"] == pytest.approx(27.0, abs=1.5)
    assert start["beta_d"] == pytest.approx(1.7, abs=0.05)
    layout = prob.patcher.layout((4, 4, 2))
    cold = fitter.fit([layout], keep_maps=True)[0]
    warm = fitter.fit([layout], keep_maps=True, start=start)[0]
    assert np.all(cold.converged) and np.all(warm.converged)
    np.testing.assert_allclose(warm.nll, cold.nll, rtol=1e-10)
    for k in cold.params:
        np.testing.assert_allclose(warm.params[k], cold.params[k], rtol=1e-4)
    # the same maps to the fits' tolerance (1e-4 of their rms)
    np.testing.assert_allclose(warm.cmb, cold.cmb, rtol=0, atol=1e-4 * np.std(cold.cmb))
    assert np.mean(warm.n_iter) < np.mean(cold.n_iter)
    # the default start is spec-likelihood's initial values
    same = fitter.fit([layout], keep_maps=False, start={k: sl.PARAMETERS[k].init for k in start})
    np.testing.assert_array_equal(same[0].n_iter, cold.n_iter)


@pytest.mark.parametrize(
    ("start", "match"),
    [({"beta": 1.5}, "unknown parameters"), ({"T_d": 80.0}, "outside the box")],
)
def test_bad_start_is_rejected(problem, start, match):
    cfg, _, prob = problem
    fitter = cp.RegionFitter(prob, cfg, {"beta_d": 1, "T_d": 1, "beta_s": 1})
    with pytest.raises(ValueError, match=match):
        fitter.fit([cp.single_patch_layout(prob.indices.size)], start=start)

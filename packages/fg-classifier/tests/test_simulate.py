import jax
import jax.numpy as jnp
import numpy as np
import pytest
from fg_classifier import (
    MODELS,
    SimulationConfig,
    region_layout,
    simulate_test_maps,
    simulate_training_set,
    simulate_vectors,
    task_models,
)
from spec_likelihood import white_noise_sigma

FREQS = jnp.array([11.0, 13.0, 23.0, 30.0, 40.0, 60.0, 100.0, 353.0])


def _vectors(models, n=2000, config=None, dust=0.0, sync=10.0, ame=0.0, seed=0):
    rng = np.random.default_rng(seed)
    angle = rng.uniform(-np.pi / 2, np.pi / 2, n)
    return simulate_vectors(
        jax.random.key(seed),
        FREQS,
        dust_qu=jnp.full((n, 2), dust),
        sync_qu=jnp.full((n, 2), sync),
        ame_i=jnp.full(n, ame),
        dust_angle=jnp.asarray(angle),
        cmb_qu=jnp.zeros((n, 2)),
        models=jnp.full(n, models, dtype=jnp.int32),
        config=config or SimulationConfig(),
    ), angle


def test_curvature_offset_matches_input():
    """Same draws, curved vs power law: ratio exp(C ln^2(nu/23)) per band; fitted C = -0.052."""
    (pl, beta), _ = _vectors(0)
    (cu, beta2), _ = _vectors(1)
    np.testing.assert_array_equal(beta, beta2)
    log_ratio = np.log(np.asarray(cu / pl))  # [n, 2, freq]
    x2 = np.log(np.asarray(FREQS) / 23.0) ** 2
    c_fit = np.sum(log_ratio * x2, axis=-1) / np.sum(x2**2)
    np.testing.assert_allclose(c_fit, -0.052, rtol=1e-10)


def test_beta_s_and_modulation_statistics():
    (data, beta), _ = _vectors(0, n=20000)
    assert abs(float(beta.mean()) + 3.0) < 0.01
    assert abs(float(beta.std()) - 0.2) < 0.005
    # at the synchrotron pivot (23 GHz) the value is 10 * (1 + 0.3 g): 30% modulation
    at_pivot = np.asarray(data[:, :, 2]) / 10.0
    assert abs(at_pivot.mean() - 1.0) < 0.01
    assert abs(at_pivot.std() - 0.3) < 0.01
    # Q and U are modulated independently
    assert abs(np.corrcoef(at_pivot[:, 0], at_pivot[:, 1])[0, 1]) < 0.03


def test_ame_fraction_and_angle():
    """AME = data(with AME) - data(without), at 30 GHz: 2% of I along the dust angle."""
    cfg = SimulationConfig(modulation=0.0)
    (with_ame, _), angle = _vectors(2, config=cfg, dust=5.0, ame=100.0)
    (without, _), _ = _vectors(0, config=cfg, dust=5.0, ame=100.0)
    ame = np.asarray(with_ame - without)[:, :, 3]  # 30 GHz = AME reference frequency
    np.testing.assert_allclose(np.hypot(ame[:, 0], ame[:, 1]), 0.02 * 100.0, rtol=1e-12)
    np.testing.assert_allclose(ame[:, 0], 2.0 * np.cos(2 * angle), atol=1e-12)
    np.testing.assert_allclose(ame[:, 1], 2.0 * np.sin(2 * angle), atol=1e-12)
    # with the 30% modulation the mean fraction stays 2%
    (w, _), _ = _vectors(2, n=20000, dust=5.0, ame=100.0)
    (wo, _), _ = _vectors(0, n=20000, dust=5.0, ame=100.0)
    q = np.asarray(w - wo)[:, 0, 3] / np.cos(2 * _vectors(0, n=20000)[1])
    assert abs(np.median(q) / 100.0 - 0.02) < 0.001


def test_noise_level_matches_instrument(templates8, instrument):
    clean = simulate_test_maps(templates8, instrument, "curvature", seed=4)
    noisy = simulate_test_maps(templates8, instrument, "curvature", noise=True, seed=4)
    resid = np.asarray(noisy.maps - clean.maps)[0]  # [freq, 2, pix]
    expected = np.asarray(white_noise_sigma(instrument, 8))
    np.testing.assert_allclose(resid.std(axis=(1, 2)), expected, rtol=0.08)


def test_training_set_layout(templates8, instrument):
    ts = simulate_training_set(templates8, instrument, "four", n_maps=2, oversample=2, seed=1)
    n = 4 * 2 * 2 * templates8.npix
    assert ts.data.shape == (n, 2, 17)
    np.testing.assert_array_equal(np.bincount(np.asarray(ts.labels)), [n // 4] * 4)
    np.testing.assert_array_equal(np.unique(np.asarray(ts.models)), [0, 1, 2, 3])
    again = simulate_training_set(templates8, instrument, "four", n_maps=2, oversample=2, seed=1)
    np.testing.assert_array_equal(np.asarray(again.data), np.asarray(ts.data))
    ame = simulate_training_set(templates8, instrument, "ame", n_maps=1, seed=1)
    assert [MODELS[m] for m in np.unique(np.asarray(ame.models))] == ["power_law", "power_law_ame"]


def test_region_layout_balanced():
    layout = region_layout(16, "four")
    counts = np.bincount(layout)
    assert counts.shape == (4,) and counts.min() > 0.2 * layout.size
    from fg_classifier import pixel_lonlat

    _, lat = pixel_lonlat(16)
    for band in (lat < -20, np.abs(lat) <= 20, lat > 20):
        assert set(np.unique(layout[band])) == {0, 1, 2, 3}


def test_test_maps_follow_layout(templates8, instrument):
    layout = region_layout(8, "curvature")
    tm = simulate_test_maps(templates8, instrument, "curvature", n_real=2)
    assert tm.maps.shape == (2, 17, 2, 768)
    np.testing.assert_array_equal(tm.labels, layout)
    np.testing.assert_array_equal(tm.models, np.asarray(task_models("curvature"))[layout])


def test_bad_configuration(templates8, instrument):
    with pytest.raises(ValueError, match="task="):
        task_models("dust")
    with pytest.raises(ValueError, match="n_maps and oversample"):
        simulate_training_set(templates8, instrument, "ame", n_maps=0)
    with pytest.raises(ValueError, match="layout must hold classes"):
        simulate_test_maps(templates8, instrument, "ame", layout=np.full(768, 3))
    with pytest.raises(ValueError, match="modulation"):
        SimulationConfig(modulation=-0.1)

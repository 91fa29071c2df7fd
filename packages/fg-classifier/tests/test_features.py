import numpy as np
import pytest
from fg_classifier import check_minmax, make_features, minmax_normalise


def test_minmax_each_vector_spans_unit_interval():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2, 17)) * rng.lognormal(0, 3, (50, 1, 1))
    f = np.asarray(minmax_normalise(x))
    assert f.shape == (50, 34)
    np.testing.assert_allclose(f.min(axis=1), 0.0, atol=1e-12)
    np.testing.assert_allclose(f.max(axis=1), 1.0, atol=1e-12)
    # independent reference: numpy on the flattened (Q then U) vector
    flat = x.reshape(50, 34)
    ref = (flat - flat.min(1, keepdims=True)) / np.ptp(flat, axis=1, keepdims=True)
    np.testing.assert_allclose(f, ref, rtol=1e-12)
    check_minmax(f)


def test_check_minmax_rejects_raw_inputs():
    with pytest.raises(ValueError, match="not min-max normalised"):
        check_minmax(np.full((3, 34), 5.0))
    with pytest.raises(ValueError, match="2-D"):
        check_minmax(np.zeros(34))


def test_snr_features_keep_shape_and_amplitude():
    rng = np.random.default_rng(1)
    scale = rng.uniform(0.1, 4.0, 17)
    x = rng.normal(size=(5, 2, 17))
    f1 = np.asarray(make_features(x, "snr", scale))
    f2 = np.asarray(make_features(10.0 * x, "snr", scale))
    assert f1.shape == (5, 35)
    # canonical sign: flipping Q (or U) leaves the features unchanged
    flipped = x * np.array([-1.0, 1.0])[None, :, None]
    np.testing.assert_allclose(np.asarray(make_features(flipped, "snr", scale)), f1, rtol=1e-12)
    x = x * np.where(x[:, :, :1] < 0, -1.0, 1.0)
    np.testing.assert_allclose(f1[:, :34], f2[:, :34], rtol=1e-12)
    np.testing.assert_allclose(f2[:, 34] - f1[:, 34], np.log(10.0), rtol=1e-12)
    white = x.reshape(5, 34) / np.tile(scale, 2)
    np.testing.assert_allclose(f1[:, 34], np.log(np.linalg.norm(white, axis=1)), rtol=1e-12)


def test_wrong_number_of_bands():
    with pytest.raises(ValueError, match="trained on 17 bands"):
        make_features(np.zeros((4, 2, 15)), "minmax", np.ones(17))
    with pytest.raises(ValueError, match="features="):
        make_features(np.zeros((4, 2, 17)), "log", np.ones(17))


def test_snr_log_appends_asinh_of_whitened_values():
    rng = np.random.default_rng(2)
    scale = rng.uniform(0.1, 4.0, 17)
    x = rng.normal(size=(4, 2, 17)) * 100.0
    f = np.asarray(make_features(x, "snr_log", scale))
    assert f.shape == (4, 69)
    np.testing.assert_allclose(f[:, :35], np.asarray(make_features(x, "snr", scale)))
    canonical = x * np.where(x[:, :, :1] < 0, -1.0, 1.0)
    np.testing.assert_allclose(
        f[:, 35:], np.arcsinh(canonical.reshape(4, 34) / np.tile(scale, 2)), rtol=1e-12
    )

import numpy as np
import pytest
from fg_classifier import (
    accuracy,
    chi2_model_comparison,
    pixel_chi2,
    simulate_test_maps,
    synthetic_templates,
)
from spec_likelihood import CMB, Dust, Synchrotron, mixing_matrix, white_noise_sigma


def test_pixel_chi2_matches_numpy_least_squares():
    rng = np.random.default_rng(0)
    nu = np.array([11.0, 30.0, 40.0, 90.0, 150.0, 220.0, 353.0])
    comps = [CMB(), Dust(353.0, beta_d=1.54, T_d=20.0), Synchrotron(23.0)]
    beta = rng.normal(-3.0, 0.2, 6)
    a = np.asarray(mixing_matrix(comps, nu, {"beta_s": beta}))  # [pix, freq, comp]
    sigma = rng.uniform(0.5, 2.0, nu.size)
    d = rng.normal(size=(nu.size, 2, 6)) * 3.0
    got = np.array(pixel_chi2(d, a, sigma))
    for p in range(6):
        w = a[p] / sigma[:, None]
        for s in range(2):
            coef, *_ = np.linalg.lstsq(w, d[:, s, p] / sigma, rcond=None)
            ref = np.sum((d[:, s, p] / sigma - w @ coef) ** 2)
            got[p] -= ref
    np.testing.assert_allclose(got, 0.0, atol=1e-9)


@pytest.fixture(scope="module")
def noiseless_maps(instrument):
    templates = synthetic_templates(2, seed=5, n_cmb=1)
    return simulate_test_maps(templates, instrument, "curvature", seed=2)


def test_chi2_picks_true_model_on_noiseless_pixels(noiseless_maps, instrument):
    sigma = white_noise_sigma(instrument, 2)
    res = chi2_model_comparison(noiseless_maps.maps[0], instrument.frequencies, sigma)
    assert bool(res.converged)
    assert accuracy(res.choice, noiseless_maps.labels) == 1.0
    assert res.dof_power_law == 27 and res.dof_curved == 26
    curved = noiseless_maps.labels == 1
    np.testing.assert_allclose(np.asarray(res.c_s_curved)[curved], -0.052, atol=1e-5)
    np.testing.assert_allclose(
        np.asarray(res.beta_s_power_law)[~curved],
        np.asarray(noiseless_maps.beta_s[0])[~curved],
        atol=1e-5,
    )
    # the wrong model leaves a real misfit where the sky is curved
    assert float(np.min(np.asarray(res.chi2_power_law)[curved])) > 1e3 * float(
        np.max(np.asarray(res.chi2_curved)[curved])
    )


def test_chi2_shape_errors(instrument):
    with pytest.raises(ValueError, match="data must have shape"):
        chi2_model_comparison(np.zeros((15, 2, 4)), instrument.frequencies, np.ones(17))
    with pytest.raises(ValueError, match="sigma must have shape"):
        chi2_model_comparison(np.zeros((17, 2, 4)), instrument.frequencies, np.ones(3))

"""SEDs and mixing matrix against fgbuster's oracle, PySM 3 and independent numpy formulas."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.constants as sc
from scipy.integrate import quad
from spec_likelihood import (
    AME,
    CMB,
    PARAMETERS,
    Dust,
    ParameterSpec,
    Synchrotron,
    mixing_matrix,
    parameter_specs,
)

FREQS = np.array([11.0, 40.0, 100.0, 150.0, 353.0, 402.0])
T_CMB = 2.7255


def _krj_to_kcmb(nu):
    """Independent numpy K_RJ -> K_CMB factor from scipy's CODATA constants."""
    x = sc.h * nu * 1e9 / (sc.k * T_CMB)
    return (np.exp(x) - 1.0) ** 2 / (np.exp(x) * x**2)


def _planck(nu_ghz, temp):
    """Planck law B_nu(T) [W m^-2 Hz^-1 sr^-1]."""
    nu = nu_ghz * 1e9
    return 2 * sc.h * nu**3 / sc.c**2 / np.expm1(sc.h * nu / (sc.k * temp))


# ---------------------------------------------------------------- fgbuster oracle


def test_mixing_matrix_matches_fgbuster_oracle(data_file):
    oracle = np.load(data_file("oracles/fgbuster_ns16_seed1234.npz"))
    assert str(oracle["units"]) == "K_CMB"
    comps = [CMB(), Dust(nu0=float(oracle["dust_nu0"])), Synchrotron(nu0=float(oracle["sync_nu0"]))]
    points = oracle["sed_points"]
    A = mixing_matrix(
        comps,
        oracle["freqs"],
        {"beta_d": points[:, 0], "T_d": points[:, 1], "beta_s": points[:, 2]},
    )
    np.testing.assert_allclose(np.asarray(A), oracle["sed_values"], rtol=1e-10, atol=0)


def test_oracle_points_one_by_one_under_jit(data_file):
    oracle = np.load(data_file("oracles/fgbuster_ns16_seed1234.npz"))
    comps = [CMB(), Dust(150.0), Synchrotron(20.0)]
    freqs = jnp.asarray(oracle["freqs"])
    evaluate = jax.jit(
        lambda p: mixing_matrix(comps, freqs, {"beta_d": p[0], "T_d": p[1], "beta_s": p[2]})
    )
    for point, expected in zip(oracle["sed_points"], oracle["sed_values"], strict=True):
        np.testing.assert_allclose(np.asarray(evaluate(jnp.asarray(point))), expected, rtol=1e-10)


# ---------------------------------------------------------------- analytic formulas


@pytest.mark.parametrize("units", ["K_CMB", "K_RJ"])
def test_dust_is_modified_blackbody_in_intensity(units):
    """nu^beta B_nu(T) in intensity, divided by 2 k nu^2/c^2, normalised at nu0."""
    beta, temp, nu0 = 1.62, 17.3, 353.0
    intensity = FREQS**beta * _planck(FREQS, temp)
    rj = intensity / FREQS**2 / (nu0**beta * _planck(nu0, temp) / nu0**2)
    if units == "K_CMB":
        rj = rj * _krj_to_kcmb(FREQS) / _krj_to_kcmb(nu0)
    sed = Dust(nu0=nu0, units=units).sed(FREQS, beta_d=beta, T_d=temp)
    np.testing.assert_allclose(np.asarray(sed), rj, rtol=1e-13)


@pytest.mark.parametrize("units", ["K_CMB", "K_RJ"])
def test_synchrotron_power_law_and_curvature(units):
    beta, curv, nu0, pivot = -3.1, -0.052, 23.0, 23.0
    conv = _krj_to_kcmb(FREQS) / _krj_to_kcmb(nu0) if units == "K_CMB" else 1.0
    flat = Synchrotron(nu0=nu0, units=units).sed(FREQS, beta_s=beta)
    np.testing.assert_allclose(np.asarray(flat), (FREQS / nu0) ** beta * conv, rtol=1e-13)
    curved = Synchrotron(nu0=nu0, curved=True, nu_pivot=pivot, units=units)
    assert curved.params == ("beta_s", "C_s")
    expected = (FREQS / nu0) ** (beta + curv * np.log(FREQS / pivot)) * conv
    np.testing.assert_allclose(
        np.asarray(curved.sed(FREQS, beta_s=beta, C_s=curv)), expected, rtol=1e-13
    )
    np.testing.assert_allclose(
        np.asarray(curved.sed(FREQS, beta_s=beta, C_s=0.0)), np.asarray(flat), rtol=1e-15
    )


def test_curvature_pivot_defaults_to_nu0_and_fgbuster_running_form():
    # fgbuster PowerLaw: (nu/nu0)^(beta_pl + running * log(nu/nu_pivot)), here nu_pivot = 70.
    comp = Synchrotron(nu0=20.0, curved=True, nu_pivot=70.0, units="K_RJ")
    expected = (FREQS / 20.0) ** (-2.9 + 0.1 * np.log(FREQS / 70.0))
    np.testing.assert_allclose(
        np.asarray(comp.sed(FREQS, beta_s=-2.9, C_s=0.1)), expected, rtol=1e-13
    )
    assert Synchrotron(nu0=20.0, curved=True).nu_pivot == 20.0


def test_cmb_is_flat_in_kcmb_and_blackbody_derivative_in_krj():
    np.testing.assert_array_equal(np.asarray(CMB().sed(FREQS)), np.ones_like(FREQS))
    np.testing.assert_allclose(
        np.asarray(CMB(units="K_RJ").sed(FREQS)), 1 / _krj_to_kcmb(FREQS), rtol=1e-13
    )


@pytest.mark.parametrize(
    ("comp", "params"),
    [
        (Dust(nu0=150.0), {"beta_d": 1.54, "T_d": 20.0}),
        (Dust(nu0=353.0, units="K_RJ"), {"beta_d": 1.54, "T_d": 20.0}),
        (Synchrotron(nu0=20.0), {"beta_s": -3.0}),
        (Synchrotron(nu0=20.0, curved=True, nu_pivot=23.0), {"beta_s": -3.0, "C_s": 0.3}),
        (AME(nu0=22.8), {"nu_peak": 25.0}),
    ],
)
def test_sed_is_one_at_reference_frequency(comp, params):
    sed = comp.sed(np.array([comp.nu0, 2 * comp.nu0]), **params)
    assert float(sed[0]) == pytest.approx(1.0, abs=1e-14)


def test_fixed_parameters_leave_params_and_match_free_ones():
    free = Dust(nu0=150.0)
    fixed = Dust(nu0=150.0, T_d=19.6)
    assert free.params == ("beta_d", "T_d") and fixed.params == ("beta_d",)
    np.testing.assert_array_equal(
        np.asarray(fixed.sed(FREQS, beta_d=1.5)), np.asarray(free.sed(FREQS, beta_d=1.5, T_d=19.6))
    )
    assert Synchrotron(C_s=-0.05).params == ("beta_s",)
    # numpy scalars are stored as floats: equal, hashable, same compiled functions.
    assert Dust(nu0=np.float32(150.0), T_d=np.int64(20)) == Dust(nu0=150.0, T_d=20.0)
    assert AME(nu_peak=30.0).params == ()


# ---------------------------------------------------------------- PySM 3 benchmarks


def _read(data_file, relative, field=0):
    healpy = pytest.importorskip("healpy")
    # PySM FITS maps are big-endian: cast to native float64.
    return np.asarray(
        healpy.read_map(data_file(relative), field=field, dtype=None), dtype=np.float64
    )


@pytest.mark.parametrize("nu", [30.0, 100.0, 353.0])
def test_dust_reproduces_pysm_d1(data_file, nu):
    t = "pysm_local_data_ns64/pysm_2/"
    amp = np.stack([_read(data_file, t + f"dust_{s}_new.fits") for s in "tqu"])
    beta, temp = _read(data_file, t + "dust_beta.fits"), _read(data_file, t + "dust_temp.fits")
    ref = _read(data_file, f"pysm_benchmarks_ns64/check1therm_{int(nu)}p0_64.fits", (0, 1, 2))
    # d1: I scales from 545 GHz, Q and U from 353 GHz (check1thermaldust_config.ini), uK_RJ.
    scale_i = Dust(nu0=545.0, units="K_RJ").sed(np.array([nu]), beta_d=beta, T_d=temp)[:, 0]
    scale_p = Dust(nu0=353.0, units="K_RJ").sed(np.array([nu]), beta_d=beta, T_d=temp)[:, 0]
    model = np.stack([amp[0] * scale_i, amp[1] * scale_p, amp[2] * scale_p])
    np.testing.assert_allclose(model, ref, rtol=1e-6)


@pytest.mark.parametrize("nu", [30.0, 100.0, 353.0])
@pytest.mark.parametrize(("check", "curvature"), [("check2synch", None), ("check10synch", -0.052)])
def test_synchrotron_reproduces_pysm_s1_and_s3(data_file, nu, check, curvature):
    t = "pysm_local_data_ns64/pysm_2/"
    amp = np.stack([_read(data_file, t + f"synch_{s}_new.fits") for s in "tqu"])
    beta = _read(data_file, t + "synch_beta.fits")
    ref = _read(data_file, f"pysm_benchmarks_ns64/{check}_{int(nu)}p0_64.fits", (0, 1, 2))
    # s1/s3: I scales from 0.408 GHz, Q and U from 23 GHz; s3 curvature -0.052 pivot 23 GHz.
    kw = {} if curvature is None else {"C_s": curvature, "nu_pivot": 23.0}
    scale_i = Synchrotron(nu0=0.408, units="K_RJ", **kw).sed(np.array([nu]), beta_s=beta)[:, 0]
    scale_p = Synchrotron(nu0=23.0, units="K_RJ", **kw).sed(np.array([nu]), beta_s=beta)[:, 0]
    model = np.stack([amp[0] * scale_i, amp[1] * scale_p, amp[2] * scale_p])
    np.testing.assert_allclose(model, ref, rtol=1e-6)


# ---------------------------------------------------------------- AME


def test_ame_matches_pysm_spinning_dust_scaling(data_file):
    spdust = pytest.importorskip("pysm3.models.spdust")
    path = data_file("spdust/emissivity.txt")
    emissivity = np.loadtxt(path, unpack=True)
    # The pure-Python body of pysm3's numba kernel: same code, no JIT-compile cost in CI.
    scaling = getattr(
        spdust.compute_spdust_scaling_numba, "py_func", spdust.compute_spdust_scaling_numba
    )
    freqs = np.array([5.0, 11.0, 22.8, 30.0, 41.0, 70.0, 100.0, 353.0])
    nu_peak = np.array([19.0, 30.0, 33.35, 44.0])
    for nu0 in (22.8, 41.0):
        comp = AME(nu0=nu0, emissivity=path, units="K_RJ")
        ours = np.asarray(comp.sed(freqs, nu_peak=nu_peak))
        # pysm3 divides the peak map by freq_ref_peak (30 GHz) at load time.
        expected = np.array(
            [[scaling(f, nu0, peak / 30.0, emissivity) for f in freqs] for peak in nu_peak]
        )
        np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_ame_analytic_default_tracks_spdust2_table(data_file):
    nu, j = np.loadtxt(data_file("spdust/emissivity.txt"), unpack=True)
    comp = AME(nu0=30.0, units="K_RJ")
    band = (nu >= 5) & (nu <= 100)
    # The SED in RJ times (nu/nu0)^2 is the emissivity normalised at nu0 = nu_peak = 30 GHz.
    shape = np.asarray(comp.sed(nu[band], nu_peak=30.0)) * (nu[band] / 30.0) ** 2
    table = j[band] / np.interp(30.0, nu, j)
    assert np.max(np.abs(shape - table)) < 0.05
    core = (nu[band] >= 15) & (nu[band] <= 45)
    assert np.max(np.abs(shape[core] / table[core] - 1)) < 0.07


def test_ame_peak_shift_is_rigid_in_frequency():
    comp = AME(nu0=20.0, units="K_RJ")
    a = np.asarray(comp.sed(np.array([20.0, 40.0, 60.0]), nu_peak=30.0))
    b = np.asarray(comp.sed(np.array([40.0, 80.0, 120.0]), nu_peak=60.0))
    # Doubling every frequency and nu_peak, with nu0 doubled too, leaves the SED unchanged.
    comp2 = AME(nu0=40.0, units="K_RJ")
    np.testing.assert_allclose(
        np.asarray(comp2.sed(np.array([40.0, 80.0, 120.0]), nu_peak=60.0)), a, rtol=1e-13
    )
    assert not np.allclose(a, b)


# ---------------------------------------------------------------- autodiff, jit, vmap


@pytest.mark.parametrize(
    ("comp", "params"),
    [
        (Dust(nu0=150.0), {"beta_d": 1.54, "T_d": 20.0}),
        (Synchrotron(nu0=20.0, curved=True, nu_pivot=23.0), {"beta_s": -3.0, "C_s": -0.05}),
        (AME(nu0=22.8), {"nu_peak": 27.0}),
    ],
)
def test_sed_gradients_match_finite_differences(comp, params):
    freqs = jnp.asarray(FREQS)
    sed = jax.jit(lambda p: comp.sed(freqs, **p))
    jac = jax.jit(jax.jacfwd(sed))(params)
    jac_rev = jax.jit(jax.jacrev(sed))(params)
    for name, value in params.items():
        h = 1e-6 * max(1.0, abs(value))
        up = sed({**params, name: value + h})
        down = sed({**params, name: value - h})
        fd = (np.asarray(up) - np.asarray(down)) / (2 * h)
        np.testing.assert_allclose(np.asarray(jac[name]), fd, rtol=1e-7, atol=1e-12)
        np.testing.assert_allclose(
            np.asarray(jac_rev[name]), np.asarray(jac[name]), rtol=1e-12, atol=1e-15
        )


def test_ame_table_gradient_matches_finite_differences(data_file):
    comp = AME(nu0=22.8, emissivity=data_file("spdust/emissivity.txt"))
    freqs = jnp.asarray(FREQS)
    sed = jax.jit(lambda p: comp.sed(freqs, nu_peak=p))
    grad = jax.jit(jax.jacfwd(sed))(27.0)
    # Linear interpolation is piecewise linear: a small step stays inside the table cells.
    h = 1e-7
    fd = (np.asarray(sed(27.0 + h)) - np.asarray(sed(27.0 - h))) / (2 * h)
    np.testing.assert_allclose(np.asarray(grad), fd, rtol=1e-5, atol=1e-12)


def test_mixing_matrix_broadcasts_jits_and_vmaps():
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    rng = np.random.default_rng(0)
    beta_d = rng.uniform(1.2, 2.0, size=(2, 3))
    temp = rng.uniform(15, 25, size=(3,))
    A = mixing_matrix(comps, FREQS, {"beta_d": beta_d, "T_d": temp, "beta_s": -3.0})
    assert A.shape == (2, 3, FREQS.size, 3)
    assert A.dtype == jnp.float64
    one = jax.jit(lambda b, t: mixing_matrix(comps, FREQS, {"beta_d": b, "T_d": t, "beta_s": -3.0}))
    loop = np.stack(
        [np.stack([np.asarray(one(beta_d[i, k], temp[k])) for k in range(3)]) for i in range(2)]
    )
    np.testing.assert_allclose(np.asarray(A), loop, rtol=1e-13)
    vm = jax.vmap(lambda b: mixing_matrix(comps, FREQS, {"beta_d": b, "T_d": 20.0, "beta_s": -3.0}))
    jitted = jax.jit(
        lambda b: mixing_matrix(comps, FREQS, {"beta_d": b, "T_d": 20.0, "beta_s": -3.0})
    )
    b = jnp.asarray(beta_d[0])
    np.testing.assert_allclose(np.asarray(vm(b)), np.asarray(jitted(b)), rtol=1e-13)


def test_mixing_matrix_compiles_once():
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    traces = []

    @jax.jit
    def build(p):
        traces.append(1)
        return mixing_matrix(comps, FREQS, p)

    p = {"beta_d": jnp.full(5, 1.5), "T_d": jnp.full(5, 20.0), "beta_s": jnp.full(5, -3.0)}
    build(p)
    build({k: v + 0.01 for k, v in p.items()})
    assert len(traces) == 1


def test_components_are_hashable_static_arguments(data_file):
    path = data_file("spdust/emissivity.txt")
    assert hash(Dust(150.0)) == hash(Dust(150.0)) and Dust(150.0) == Dust(150.0)
    assert AME(emissivity=path) == AME(emissivity=path)
    assert AME(emissivity=path) != AME()
    f = jax.jit(lambda c, p: c.sed(FREQS, nu_peak=p), static_argnums=0)
    np.testing.assert_allclose(
        np.asarray(f(AME(emissivity=path), 30.0)),
        np.asarray(AME(emissivity=path).sed(FREQS, nu_peak=30.0)),
    )


# ---------------------------------------------------------------- parameters and errors


def test_parameter_defaults_and_overrides():
    assert tuple(PARAMETERS) == ("beta_d", "T_d", "beta_s", "C_s", "nu_peak")
    assert PARAMETERS["beta_d"] == ParameterSpec("beta_d", 1.54, 0.5, 5.0)
    assert PARAMETERS["T_d"] == ParameterSpec("T_d", 20.0, 5.0, 50.0)
    assert PARAMETERS["beta_s"] == ParameterSpec("beta_s", -3.0, -7.0, -0.5)
    assert PARAMETERS["C_s"] == ParameterSpec("C_s", 0.0, -1.0, 1.0)
    assert PARAMETERS["nu_peak"] == ParameterSpec("nu_peak", 30.0, 10.0, 60.0)
    specs = parameter_specs({"T_d": (19.0, 10.0, 30.0)})
    assert specs["T_d"] == ParameterSpec("T_d", 19.0, 10.0, 30.0)
    assert specs["beta_d"] is PARAMETERS["beta_d"]
    with pytest.raises(TypeError):
        PARAMETERS["T_d"] = specs["T_d"]  # type: ignore[index]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"init": 1.0, "lower": 2.0, "upper": 2.0}, "lower=2.0 must be < upper"),
        ({"init": 3.0, "lower": 0.0, "upper": 2.0}, "init of 'x'=3.0"),
        ({"init": 0.0, "lower": -np.inf, "upper": 2.0}, "must be finite"),
    ],
)
def test_parameter_spec_rejects_bad_bounds(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ParameterSpec("x", **kwargs)


def test_parameter_specs_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown parameter 'beta'"):
        parameter_specs({"beta": (1.0, 0.0, 2.0)})


def test_mixing_matrix_errors_name_the_problem():
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    good = {"beta_d": 1.5, "T_d": 20.0, "beta_s": -3.0}
    with pytest.raises(ValueError, match=r"missing \['beta_s'\]"):
        mixing_matrix(comps, FREQS, {"beta_d": 1.5, "T_d": 20.0})
    with pytest.raises(ValueError, match=r"unknown \['nu_peak'\]"):
        mixing_matrix(comps, FREQS, {**good, "nu_peak": 30.0})
    with pytest.raises(ValueError, match="at least one Component"):
        mixing_matrix([], FREQS, {})
    with pytest.raises(ValueError, match="1-D array"):
        mixing_matrix(comps, FREQS[None, :], good)
    with pytest.raises(ValueError, match="positive frequencies"):
        mixing_matrix(comps, -FREQS, good)
    with pytest.raises(ValueError, match="do not broadcast"):
        mixing_matrix(comps, FREQS, {**good, "beta_d": np.ones(3), "T_d": np.ones(4)})


def test_component_constructors_validate():
    with pytest.raises(ValueError, match="units='uK_CMB'"):
        Dust(units="uK_CMB")
    with pytest.raises(ValueError, match="nu0 must be a positive"):
        Synchrotron(nu0=-20.0)
    with pytest.raises(ValueError, match="nu_pivot must be a positive"):
        Synchrotron(curved=True, nu_pivot=0.0)
    with pytest.raises(ValueError, match="T_d must be a positive"):
        Dust(T_d=0.0)
    with pytest.raises(ValueError, match="beta_d must be a scalar number"):
        Dust(beta_d=np.ones(3))
    with pytest.raises(ValueError, match="is not a file"):
        AME(emissivity="/nonexistent/emissivity.txt")
    with pytest.raises(ValueError, match=r"missing \['T_d'\]"):
        Dust().sed(FREQS, beta_d=1.5)
    with pytest.raises(ValueError, match=r"unexpected \['beta_s'\]"):
        CMB().sed(FREQS, beta_s=-3.0)


def test_ame_rejects_malformed_table(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 3\n4 5 6\n")
    with pytest.raises(ValueError, match="two columns"):
        AME(emissivity=bad)
    unsorted = tmp_path / "unsorted.txt"
    unsorted.write_text("2 1\n1 2\n")
    with pytest.raises(ValueError, match="must increase"):
        AME(emissivity=unsorted)


# ---------------------------------------------------------------- top-hat bands


def test_bandpass_mixing_matrix_matches_quadrature():
    centres, widths = np.array([40.0, 140.0, 402.0]), np.array([12.0, 42.0, 92.0])
    beta, temp, beta_s = 1.6, 18.0, -3.1
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0), Dust(nu0=353.0, units="K_RJ")]
    A = mixing_matrix(
        comps, centres, {"beta_d": beta, "T_d": temp, "beta_s": beta_s}, bandwidths=widths
    )
    dbdt_cmb = lambda nu: _krj_to_kcmb(nu) ** -1 * nu**2  # dB/dT_CMB up to a constant
    dust_rj = lambda nu, nu0: (
        (nu / nu0) ** (beta + 1)
        * np.expm1(sc.h * nu0 * 1e9 / (sc.k * temp))
        / np.expm1(sc.h * nu * 1e9 / (sc.k * temp))
    )
    sync_rj = lambda nu: (nu / 20.0) ** beta_s
    for k, (c, w) in enumerate(zip(centres, widths, strict=True)):
        lo, hi = c - w / 2, c + w / 2
        norm_cmb = quad(dbdt_cmb, lo, hi, epsrel=1e-13)[0]
        # Emission in intensity (RJ SED x nu^2), converted by the band-integrated dB/dT_CMB.
        expected_dust = (
            quad(lambda nu: dust_rj(nu, 150.0) * nu**2, lo, hi, epsrel=1e-13)[0]
            / norm_cmb
            / _krj_to_kcmb(150.0)
        )
        expected_sync = (
            quad(lambda nu: sync_rj(nu) * nu**2, lo, hi, epsrel=1e-13)[0]
            / norm_cmb
            / _krj_to_kcmb(20.0)
        )
        expected_rj = (
            quad(lambda nu: dust_rj(nu, 353.0) * nu**2, lo, hi, epsrel=1e-13)[0]
            / quad(lambda nu: nu**2, lo, hi)[0]
        )
        np.testing.assert_allclose(
            np.asarray(A[k]), [1.0, expected_dust, expected_sync, expected_rj], rtol=1e-11
        )


def test_bandpass_mixing_matrix_narrow_band_limit_and_errors():
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    params = {"beta_d": jnp.array([1.5, 1.6]), "T_d": 20.0, "beta_s": -3.0}
    narrow = mixing_matrix(comps, FREQS, params, bandwidths=np.full(FREQS.shape, 1e-4))
    np.testing.assert_allclose(
        np.asarray(narrow), np.asarray(mixing_matrix(comps, FREQS, params)), rtol=1e-9
    )
    jitted = jax.jit(lambda p, w: mixing_matrix(comps, FREQS, p, bandwidths=w))
    assert jitted(params, jnp.full(FREQS.shape, 2.0)).shape == (2, FREQS.size, 3)
    with pytest.raises(ValueError, match="bandwidths must have the shape"):
        mixing_matrix(comps, FREQS, params, bandwidths=np.ones(2))
    with pytest.raises(ValueError, match="bandwidths must be positive"):
        mixing_matrix(comps, FREQS, params, bandwidths=np.full(FREQS.shape, 25.0))

"""Unit conversions against analytic formulas, scipy quadrature and pysm3/astropy."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.constants as sc
from scipy.integrate import quad
from spec_likelihood import (
    T_CMB,
    K_CMB_to_K_RJ,
    K_CMB_to_MJysr,
    K_RJ_to_K_CMB,
    K_RJ_to_MJysr,
    unit_conversion,
)

FREQS = np.array([1.0, 11.0, 40.0, 100.0, 143.0, 353.0, 545.0, 857.0])


def _dbdt_cmb(nu_ghz):
    """dB_nu/dT at T_CMB in MJy/sr per K, from scipy's CODATA constants."""
    nu = nu_ghz * 1e9
    x = sc.h * nu / (sc.k * T_CMB)
    return 2 * sc.k * nu**2 / sc.c**2 * x**2 * np.exp(x) / np.expm1(x) ** 2 * 1e20


def _dbdt_rj(nu_ghz):
    return 2 * sc.k * (nu_ghz * 1e9) ** 2 / sc.c**2 * 1e20


def test_t_cmb_value():
    assert T_CMB == 2.7255


def test_delta_conversions_match_analytic_formulas():
    np.testing.assert_allclose(np.asarray(K_RJ_to_MJysr(FREQS)), _dbdt_rj(FREQS), rtol=1e-14)
    np.testing.assert_allclose(np.asarray(K_CMB_to_MJysr(FREQS)), _dbdt_cmb(FREQS), rtol=1e-13)
    np.testing.assert_allclose(
        np.asarray(K_CMB_to_K_RJ(FREQS)), _dbdt_cmb(FREQS) / _dbdt_rj(FREQS), rtol=1e-13
    )
    np.testing.assert_allclose(
        np.asarray(K_RJ_to_K_CMB(FREQS) * K_CMB_to_K_RJ(FREQS)), 1.0, rtol=1e-15
    )


def test_rayleigh_jeans_limit():
    # At h nu << k T_CMB the two temperatures agree: factor 1 + x^2/12 + O(x^4).
    x = sc.h * 1e6 / (sc.k * T_CMB)
    assert float(K_RJ_to_K_CMB(1e-3)) == pytest.approx(1.0 + x**2 / 12, rel=1e-12)


@pytest.mark.parametrize(
    ("a", "b", "scale"),
    [
        ("uK_CMB", "K_CMB", 1e-6),
        ("uK_RJ", "K_RJ", 1e-6),
        ("K_CMB", "K_CMB", 1.0),
        ("MJy/sr", "MJy/sr", 1.0),
    ],
)
def test_prefixes_and_identities(a, b, scale):
    np.testing.assert_allclose(np.asarray(unit_conversion(FREQS, a, b)), scale, rtol=1e-15)


def test_unit_conversion_matches_pysm3_astropy():
    u = pytest.importorskip("pysm3.units")
    for a, b in [
        ("uK_CMB", "uK_RJ"),
        ("uK_RJ", "MJy/sr"),
        ("K_CMB", "MJy/sr"),
        ("MJy/sr", "uK_CMB"),
    ]:
        ours = np.asarray(unit_conversion(FREQS, a, b))
        ref = np.array(
            [
                (1.0 * u.Unit(a)).to_value(u.Unit(b), equivalencies=u.cmb_equivalencies(f * u.GHz))
                for f in FREQS
            ]
        )
        np.testing.assert_allclose(ours, ref, rtol=1e-12)


@pytest.mark.parametrize(("a", "b"), [("uK_CMB", "uK_RJ"), ("K_RJ", "MJy/sr"), ("MJy/sr", "K_CMB")])
def test_tophat_conversion_matches_quadrature(a, b):
    centres = np.array([40.0, 140.0, 402.0])
    widths = np.array([12.0, 42.0, 92.0])

    def per_unit(unit, nu):
        scale = 1e-6 if unit.startswith("u") else 1.0
        if unit == "MJy/sr":
            return 1.0
        return scale * (_dbdt_cmb(nu) if unit.endswith("CMB") else _dbdt_rj(nu))

    expected = [
        quad(lambda nu: per_unit(a, nu), c - w / 2, c + w / 2, epsabs=0, epsrel=1e-13)[0]
        / quad(lambda nu: per_unit(b, nu), c - w / 2, c + w / 2, epsabs=0, epsrel=1e-13)[0]
        for c, w in zip(centres, widths, strict=True)
    ]
    ours = unit_conversion(centres, a, b, bandwidths=widths)
    np.testing.assert_allclose(np.asarray(ours), expected, rtol=1e-12)


def test_tophat_conversion_matches_pysm3_bandpass_unit_conversion():
    pysm3 = pytest.importorskip("pysm3")
    u = pytest.importorskip("pysm3.units")
    centre, width = 100.0, 23.0
    grid = np.linspace(centre - width / 2, centre + width / 2, 2001)
    ref = pysm3.bandpass_unit_conversion(
        grid * u.GHz, None, output_unit=u.uK_CMB, input_unit=u.uK_RJ
    ).value
    ours = float(unit_conversion(centre, "uK_RJ", "uK_CMB", bandwidths=width))
    # pysm3 integrates with the trapezoidal rule on the grid: agreement to its O(h^2) error.
    assert ours == pytest.approx(ref, rel=1e-8)


def test_narrow_band_tends_to_delta():
    # A band of width w differs from its centre value at O((w / nu)^2).
    narrow = unit_conversion(150.0, "K_CMB", "K_RJ", bandwidths=1e-3)
    assert float(narrow) == pytest.approx(float(K_CMB_to_K_RJ(150.0)), rel=1e-10)


def test_conversions_jit_and_differentiate():
    f = jax.jit(lambda nu: unit_conversion(nu, "K_RJ", "K_CMB"))
    np.testing.assert_allclose(
        np.asarray(f(jnp.asarray(FREQS))), np.asarray(K_RJ_to_K_CMB(FREQS)), rtol=1e-15
    )
    grad = jax.grad(lambda nu: K_CMB_to_K_RJ(nu))(100.0)
    h = 1e-4
    fd = (float(K_CMB_to_K_RJ(100.0 + h)) - float(K_CMB_to_K_RJ(100.0 - h))) / (2 * h)
    assert float(grad) == pytest.approx(fd, rel=1e-7)
    band = jax.jit(lambda nu, w: unit_conversion(nu, "uK_CMB", "MJy/sr", bandwidths=w))
    assert band(jnp.asarray([100.0]), jnp.asarray([23.0])).shape == (1,)


def test_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="from_unit='K'"):
        unit_conversion(FREQS, "K", "K_RJ")
    with pytest.raises(ValueError, match="to_unit='Jy'"):
        unit_conversion(FREQS, "K_RJ", "Jy")
    with pytest.raises(ValueError, match="freqs must be positive"):
        unit_conversion(-FREQS, "K_RJ", "K_CMB")
    with pytest.raises(ValueError, match="bandwidths must be positive"):
        unit_conversion(np.array([40.0]), "K_RJ", "K_CMB", bandwidths=np.array([90.0]))
    with pytest.raises(ValueError, match="bandwidths must be positive"):
        unit_conversion(np.array([40.0]), "K_RJ", "K_CMB", bandwidths=np.array([-1.0]))

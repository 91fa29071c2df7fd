"""Spin-2 coupling kernels against direct Wigner-3j sums (sympy) and analytic limits."""

from __future__ import annotations

import numpy as np
from bb_residuals import coupling_kernels, wigner_d_22
from sympy.physics.wigner import wigner_3j


def test_kernels_match_wigner_3j_sums():
    rng = np.random.default_rng(0)
    lmax = 7
    mask_cl = rng.uniform(0.05, 1.0, size=11)
    m_pp, m_mm = coupling_kernels(mask_cl, lmax)
    ref_pp, ref_mm = np.zeros_like(m_pp), np.zeros_like(m_mm)
    for l1 in range(2, lmax + 1):
        for l2 in range(2, lmax + 1):
            for l3 in range(mask_cl.size):
                w3j = float(wigner_3j(l1, l2, l3, 2, -2, 0)) ** 2
                term = (2 * l2 + 1) / (16 * np.pi) * (2 * l3 + 1) * mask_cl[l3] * w3j
                parity = (-1) ** (l1 + l2 + l3)
                ref_pp[l1, l2] += term * (1 + parity) ** 2
                ref_mm[l1, l2] += term * (1 - parity) ** 2
    np.testing.assert_allclose(m_pp, ref_pp, atol=1e-13)
    np.testing.assert_allclose(m_mm, ref_mm, atol=1e-13)


def test_full_sky_kernels_are_identity_and_zero():
    mask_cl = np.zeros(64)
    mask_cl[0] = 4 * np.pi  # a unit weight over the full sky
    m_pp, m_mm = coupling_kernels(mask_cl, 40)
    expected = np.eye(41)
    expected[:2, :2] = 0.0
    np.testing.assert_allclose(m_pp, expected, atol=1e-12)
    np.testing.assert_allclose(m_mm, 0.0, atol=1e-12)


def test_wigner_d_closed_forms():
    x = np.linspace(-1, 1, 7)
    d22, d2m2 = wigner_d_22(4, x)
    np.testing.assert_allclose(d22[2], ((1 + x) / 2) ** 2)
    np.testing.assert_allclose(d22[3], ((1 + x) / 2) ** 2 * (3 * x - 2))
    np.testing.assert_allclose(d2m2[3], ((1 - x) / 2) ** 2 * (3 * x + 2))
    # d^4_22 = (1+x)^2/4 * (7x^2 - 7x + 1): Varshalovich Table 4.8
    np.testing.assert_allclose(d22[4], ((1 + x) / 2) ** 2 * (7 * x**2 - 7 * x + 1))
    # Orthogonality int d^l_22 d^l'_22 dx = 2/(2l+1) delta, by Gauss-Legendre.
    nodes, weights = np.polynomial.legendre.leggauss(40)
    d, _ = wigner_d_22(30, nodes)
    gram = (d * weights) @ d.T
    expected = np.diag(2.0 / (2 * np.arange(31) + 1.0))
    expected[:2, :2] = 0.0
    np.testing.assert_allclose(gram, expected, atol=1e-12)

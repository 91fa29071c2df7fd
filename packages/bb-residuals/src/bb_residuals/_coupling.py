"""Spin-2 mode-coupling kernels of a weighted sky (MASTER, Hivon et al. 2002; Kogut et al. 2003).

For a weight map w with power spectrum W_ell, the pseudo-spectra of the weighted Q/U maps obey

    <C~EE_l> = sum_l' [M++_ll' C^EE_l' + M--_ll' C^BB_l'],
    <C~BB_l> = sum_l' [M--_ll' C^EE_l' + M++_ll' C^BB_l'],
    <C~EB_l> = sum_l' (M++ - M--)_ll' C^EB_l',

    M±_l1l2 = (2 l2 + 1) / (16 pi) sum_l3 (2 l3 + 1) W_l3 [1 ± (-1)^(l1+l2+l3)]^2
              * (l1 l2 l3; 2 -2 0)^2,

i.e. the EE->EE / BB->BB kernel keeps the even-parity l1 + l2 + l3 terms and the EE->BB
mixing kernel the odd ones. Instead of a Wigner-3j recursion per (l1, l2) we use the exact
Gauss-Legendre identity ``int d^l1_{m1 n1} d^l2_{m2 n2} d^l3_{m3 n3} dx
= 2 (l1 l2 l3; m1 m2 m3)(l1 l2 l3; n1 n2 n3)``, which turns both sums into matrix products:

    sum_l3 (2 l3 + 1) W_l3 [1 ± (-1)^L] / 2 (3j)^2
        = 1/4 int xi(x) [d^l1_22 d^l2_22 ± d^l1_2,-2 d^l2_2,-2] dx,
    xi(x) = sum_l3 (2 l3 + 1) W_l3 P_l3(x).

All integrands are polynomials of degree <= l1 + l2 + l3, so a Gauss-Legendre rule with
``(2 lmax + lmax_w) / 2 + 1`` nodes is exact. The d-functions come from their stable three-term
recursion in ell.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float


def wigner_d_22(
    lmax: int, x: Float[np.ndarray, " nx"]
) -> tuple[Float[np.ndarray, "ell nx"], Float[np.ndarray, "ell nx"]]:
    """Wigner d^l_{2,2}(theta) and d^l_{2,-2}(theta) at ``x = cos(theta)`` for ``l = 0..lmax``.

    Rows ``l < 2`` are zero. Recursion (Edmonds; Varshalovich 4.8.2) for fixed m, m':
    l sqrt[((l+1)^2 - m^2)((l+1)^2 - m'^2)] d^{l+1} = (2l+1) [l(l+1) x - m m'] d^l
    - (l+1) sqrt[(l^2 - m^2)(l^2 - m'^2)] d^{l-1}.
    """
    x = np.asarray(x, dtype=np.float64)
    out = []
    for mp in (2, -2):
        d = np.zeros((lmax + 1, x.size))
        if lmax >= 2:
            d[2] = ((1.0 + x) / 2.0) ** 2 if mp == 2 else ((1.0 - x) / 2.0) ** 2
        for ell in range(2, lmax):
            a = ell * np.sqrt(((ell + 1) ** 2 - 4.0) * ((ell + 1) ** 2 - 4.0))
            b = (2 * ell + 1) * (ell * (ell + 1) * x - 2.0 * mp)
            c = (ell + 1) * np.sqrt((ell**2 - 4.0) * (ell**2 - 4.0))
            d[ell + 1] = (b * d[ell] - c * d[ell - 1]) / a
        out.append(d)
    return out[0], out[1]


def legendre_sum(coeffs: Float[np.ndarray, " ell"], x: Float[np.ndarray, " nx"]) -> np.ndarray:
    """``sum_l coeffs[l] P_l(x)`` by the Bonnet recursion."""
    p_prev = np.ones_like(x)
    total = coeffs[0] * p_prev
    if coeffs.size == 1:
        return total
    p = x.copy()
    total = total + coeffs[1] * p
    for ell in range(1, coeffs.size - 1):
        p_prev, p = p, ((2 * ell + 1) * x * p - ell * p_prev) / (ell + 1)
        total = total + coeffs[ell + 1] * p
    return total


def coupling_kernels(
    mask_cl: Float[np.ndarray, " ell_w"], lmax: int
) -> tuple[Float[np.ndarray, "ell ell"], Float[np.ndarray, "ell ell"]]:
    """Spin-2 coupling kernels ``(M++, M--)`` of shape ``[lmax+1, lmax+1]`` (rows l1, cols l2).

    Args:
        mask_cl: power spectrum W_ell of the weight map (``hp.anafast(w)``), ell = 0..lmax_w.
        lmax: highest multipole of the spectra being coupled.

    Returns:
        ``M++`` (EE->EE, BB->BB) and ``M--`` (EE->BB, BB->EE); EB->EB is ``M++ - M--``.
        For a full-sky unit weight, ``M++`` is the identity and ``M--`` vanishes.
    """
    mask_cl = np.asarray(mask_cl, dtype=np.float64)
    lw = mask_cl.size - 1
    n_nodes = (2 * lmax + lw) // 2 + 2
    x, wq = np.polynomial.legendre.leggauss(n_nodes)
    xi = legendre_sum((2.0 * np.arange(lw + 1) + 1.0) * mask_cl, x)
    d_pp, d_pm = wigner_d_22(lmax, x)
    weight = wq * xi / 4.0
    s_same = (d_pp * weight) @ d_pp.T
    s_flip = (d_pm * weight) @ d_pm.T
    col = (2.0 * np.arange(lmax + 1) + 1.0)[None, :] / (4.0 * np.pi)
    return col * (s_same + s_flip), col * (s_same - s_flip)

"""Flat-sky Gaussian fields on an N x N periodic patch (the CMB of Sect. 2, App. A.2).

A statistically isotropic field with angular power spectrum C_ell, pixelised on a
periodic N x N grid of pixel side ``delta`` (radians), has a covariance Sigma that
is diagonal in the orthonormal 2-D DFT basis (``numpy.fft.fft2(..., norm="ortho")``).
Its eigenvalue for the integer frequency k = (k_x, k_y) is

    lambda_k = C(ell_k) / delta**2,   ell_k = 2 pi |k| / (N delta),

so that the pixel variance (1/N^2) sum_k lambda_k approximates
integral d^2 ell / (2 pi)^2 C_ell. Sigma^{1/2} and Sigma act on a map by a
pointwise multiplication in Fourier space.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

ARCMIN = np.pi / (180.0 * 60.0)


def fourier_ell(n: int, pixel_arcmin: float) -> np.ndarray:
    """Multipole ell = 2 pi |k| / (N delta) of each 2-D DFT frequency of an n x n patch.

    Args:
        n: patch side in pixels.
        pixel_arcmin: pixel side in arcmin.

    Returns:
        ``(n, n)`` float64 array in ``numpy.fft.fftfreq`` order.
    """
    if n < 2:
        raise ValueError(f"n must be >= 2, got {n}")
    if pixel_arcmin <= 0:
        raise ValueError(f"pixel_arcmin must be > 0, got {pixel_arcmin}")
    delta = pixel_arcmin * ARCMIN
    k = np.fft.fftfreq(n) * n
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    return 2.0 * np.pi * kk / (n * delta)


def covariance_eigenvalues(
    ell: Float[Array, " L"] | np.ndarray,
    cl: Float[Array, " L"] | np.ndarray,
    n: int,
    pixel_arcmin: float,
    normalise: bool = True,
) -> Float[Array, "n n"]:
    """Fourier eigenvalues lambda_k of the covariance of a flat-sky field with spectrum C_ell.

    C_ell is interpolated linearly in log C over ``ell`` (which must be increasing
    and cover the patch's largest |ell|, i.e. sqrt(2) pi / delta). The k = 0 mode,
    which has no C_ell of its own, takes the value of the fundamental mode so that
    Sigma stays positive definite.

    Args:
        ell: increasing multipoles where ``cl`` is given.
        cl: C_ell (> 0), e.g. uK^2.
        n: patch side in pixels.
        pixel_arcmin: pixel side in arcmin.
        normalise: divide by the mean eigenvalue, so that the pixel variance is 1
            (the paper's normalised covariance Sigma, with the amplitude sigma
            kept separately).

    Returns:
        ``(n, n)`` eigenvalues (per-mode variances of the ortho DFT of a draw).
    """
    ell_k = fourier_ell(n, pixel_arcmin)
    try:
        ell_max = float(np.asarray(ell)[-1])
    except jax.errors.TracerArrayConversionError:
        ell_max = None  # traced multipoles: the caller checked the range
    if ell_max is not None and ell_max < ell_k.max():
        raise ValueError(
            f"ell must reach the patch corner multipole {ell_k.max():.0f}; "
            "compute C_ell to a higher lmax or use larger pixels"
        )
    ell = jnp.asarray(ell)
    cl = jnp.asarray(cl)
    ell_k = ell_k.copy()
    ell_k[0, 0] = ell_k[0, 1]
    delta = pixel_arcmin * ARCMIN
    lam = jnp.exp(jnp.interp(jnp.asarray(ell_k), ell, jnp.log(cl))) / delta**2
    if normalise:
        lam = lam / jnp.mean(lam)
    return lam


def apply_fourier_filter(
    maps: Float[Array, "*batch n n"], filt: Float[Array, "n n"]
) -> Float[Array, "*batch n n"]:
    """Multiply maps by a real, k -> -k symmetric filter in Fourier space (e.g. Sigma^{1/2}).

    Real-to-complex FFTs over the last two axes: for such a filter the product is
    Hermitian, so this equals ``real(ifft2(fft2(maps) * filt))`` at half the cost.
    """
    n = maps.shape[-1]
    half = jnp.fft.rfft2(maps) * filt[..., : n // 2 + 1]
    return jnp.fft.irfft2(half, s=maps.shape[-2:]).astype(maps.dtype)


def gaussian_field(
    key: Array,
    eigenvalues: Float[Array, "n n"],
    batch: tuple[int, ...] = (),
    dtype=jnp.float32,
) -> Float[Array, "*batch n n"]:
    """Draws of N(0, Sigma) with Sigma = F^* diag(eigenvalues) F (F the ortho 2-D DFT)."""
    n = eigenvalues.shape[-1]
    white = jax.random.normal(key, (*batch, n, n), dtype=dtype)
    return apply_fourier_filter(white, jnp.sqrt(eigenvalues).astype(dtype))


def power_law_eigenvalues(n: int, slope: float, k_min: float = 1.0) -> np.ndarray:
    """Per-mode variances |k|^-slope (k in DFT integer units, |k| floored at ``k_min``), mean 1."""
    k = np.fft.fftfreq(n) * n
    kk = np.maximum(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2), k_min)
    lam = kk ** (-slope)
    return lam / lam.mean()

"""White instrumental noise on HEALPix maps: pixel sigmas, inhomogeneous variances, realisations.

Homogeneous white noise of polarisation depth ``depth_p`` [uK_CMB arcmin] has, in a pixel of
solid angle ``Omega_pix = 4 pi / (12 nside^2)``, the standard deviation
``sigma = depth_p / sqrt(Omega_pix in arcmin^2)`` (per Stokes Q and U; fgbuster
``get_noise_realization``, kabalan2025 Sec. III). Inhomogeneous noise scales the variance with
the inverse of the relative hit count, ``sigma_p^2 = sigma^2 <h> / h_p``, which keeps the
inverse-variance-weighted sky-average depth equal to ``depth_p``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from ._instrument import Instrument

__all__ = [
    "inhomogeneous_noise_variance",
    "noise_realisations",
    "pixel_size_arcmin",
    "white_noise_sigma",
]


def _check_nside(nside: int) -> int:
    if isinstance(nside, bool) or not isinstance(nside, int | np.integer):
        raise ValueError(f"nside must be an integer power of 2, got {nside!r}")
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"nside must be a positive power of 2, got {nside}")
    return nside


def pixel_size_arcmin(nside: int) -> float:
    """Square root of the HEALPix pixel solid angle, in arcmin (healpy ``nside2resol``).

    Args:
        nside: HEALPix resolution (a power of 2).
    """
    nside = _check_nside(nside)
    return math.degrees(math.sqrt(4.0 * math.pi / (12 * nside**2))) * 60.0


def _depths(instrument: Instrument | ArrayLike) -> np.ndarray:
    if isinstance(instrument, Instrument):
        return instrument.depth_p
    depth = np.asarray(instrument, dtype=np.float64)
    if depth.ndim != 1 or not np.all(depth > 0):
        raise ValueError(
            "instrument must be an Instrument or a 1-D array of positive depths [uK_CMB arcmin]"
        )
    return depth


def white_noise_sigma(instrument: Instrument | ArrayLike, nside: int) -> Float[Array, " freq"]:
    """Per-pixel white-noise standard deviation of Q and U, ``depth_p / pixel size``.

    Args:
        instrument: an :class:`Instrument` or its ``depth_p`` array [uK_CMB arcmin].
        nside: HEALPix resolution.

    Returns:
        sigma per band [uK_CMB], shape ``[freq]``.

    Example:
        >>> from spec_likelihood import litebird_ptep, white_noise_sigma
        >>> sigma = white_noise_sigma(litebird_ptep(), nside=64)
        >>> sigma.shape
        (15,)
    """
    return jnp.asarray(_depths(instrument) / pixel_size_arcmin(nside))


def inhomogeneous_noise_variance(
    instrument: Instrument | ArrayLike,
    nside: int,
    hits: ArrayLike,
) -> Float[Array, "freq pix"]:
    """Per-pixel noise variance from a hit-count (or any relative-weight) map.

    ``var[f, p] = sigma_f^2 * mean(h) / h[p]`` with sigma_f from :func:`white_noise_sigma`;
    the mean is over the pixels given, so a uniform ``hits`` gives the homogeneous variance.

    Args:
        instrument: an :class:`Instrument` or its ``depth_p`` array [uK_CMB arcmin].
        nside: HEALPix resolution.
        hits: positive relative hit counts, ``[pix]`` (same for all bands) or ``[freq, pix]``.

    Returns:
        variance [uK_CMB^2], shape ``[freq, pix]``.

    Raises:
        ValueError: non-positive or non-finite hits, or a band count that does not match.
    """
    sigma = white_noise_sigma(instrument, nside)
    h = np.asarray(hits, dtype=np.float64)
    if h.ndim not in (1, 2) or (h.ndim == 2 and h.shape[0] != sigma.shape[0]):
        raise ValueError(
            f"hits must have shape [pix] or [freq={sigma.shape[0]}, pix], got {h.shape}"
        )
    if h.shape[-1] == 0 or not np.all(np.isfinite(h)) or not np.all(h > 0):
        raise ValueError(
            "hits must be positive and finite in every pixel given (restrict to the region)"
        )
    rel = h.mean(axis=-1, keepdims=True) / h
    return sigma[:, None] ** 2 * jnp.asarray(np.broadcast_to(rel, (sigma.shape[0], h.shape[-1])))


def _key(seed_or_key: int | PRNGKeyArray) -> PRNGKeyArray:
    if isinstance(seed_or_key, int | np.integer) and not isinstance(seed_or_key, bool):
        return jax.random.key(int(seed_or_key))
    if isinstance(seed_or_key, jax.Array):
        return seed_or_key
    raise ValueError(f"seed_or_key must be an int seed or a jax.random key, got {seed_or_key!r}")


def noise_realisations(
    instrument: Instrument | ArrayLike,
    nside: int,
    n_pix_or_mask: int | ArrayLike,
    seed_or_key: int | PRNGKeyArray,
    n_real: int,
    n_stokes: int = 2,
    sigma_map: ArrayLike | None = None,
) -> Float[Array, "real freq stokes pix"]:
    """Seeded Gaussian white-noise realisations on the pixels of a region.

    Args:
        instrument: an :class:`Instrument` or its ``depth_p`` array [uK_CMB arcmin].
        nside: HEALPix resolution.
        n_pix_or_mask: number of region pixels, or a boolean full-sky mask ``[12 nside^2]``
            whose True pixels form the region (RING order).
        seed_or_key: integer seed or ``jax.random`` key; same seed, same noise.
        n_real: number of realisations.
        n_stokes: Stokes parameters per band (2 for Q, U; 3 for I, Q, U).
        sigma_map: optional per-pixel standard deviation [uK_CMB] replacing the homogeneous
            sigma (inhomogeneous noise, e.g. ``sqrt(inhomogeneous_noise_variance(...))``):
            shape ``[freq, pix]`` or ``[freq, stokes, pix]``, over the region's pixels or, with
            a mask, over the full sky (then restricted to the mask).

    Returns:
        noise [uK_CMB], shape ``[n_real, freq, n_stokes, pix]``, in the default float dtype.

    Raises:
        ValueError: bad nside, mask size, counts or ``sigma_map`` shape.

    Example:
        >>> from spec_likelihood import litebird_ptep, noise_realisations
        >>> noise_realisations(litebird_ptep(), 8, 100, 0, 3).shape
        (3, 15, 2, 100)
    """
    nside = _check_nside(nside)
    npix_full = 12 * nside**2
    mask = None
    if isinstance(n_pix_or_mask, int | np.integer) and not isinstance(n_pix_or_mask, bool):
        n_pix = int(n_pix_or_mask)
        if n_pix < 1:
            raise ValueError(f"n_pix_or_mask must be a positive pixel count, got {n_pix}")
    else:
        mask = np.asarray(n_pix_or_mask)
        if mask.dtype != np.bool_ or mask.shape != (npix_full,):
            raise ValueError(
                f"n_pix_or_mask must be an int or a boolean mask of shape ({npix_full},) "
                f"for nside={nside}; got dtype {mask.dtype}, shape {mask.shape}"
            )
        n_pix = int(mask.sum())
        if n_pix == 0:
            raise ValueError("n_pix_or_mask: the mask selects no pixel")
    if not isinstance(n_real, int | np.integer) or n_real < 1:
        raise ValueError(f"n_real must be a positive integer, got {n_real!r}")
    if n_stokes not in (1, 2, 3):
        raise ValueError(f"n_stokes must be 1, 2 or 3, got {n_stokes!r}")
    depths = _depths(instrument)
    n_freq = depths.shape[0]
    if sigma_map is None:
        sigma = (white_noise_sigma(depths, nside))[:, None, None]
    else:
        sig = np.asarray(sigma_map, dtype=np.float64)
        if mask is not None and sig.shape[-1] == npix_full:
            sig = sig[..., mask]
        valid = {(n_freq, n_pix), (n_freq, n_stokes, n_pix)}
        if sig.shape not in valid:
            raise ValueError(
                f"sigma_map must have shape [freq={n_freq}, pix={n_pix}] or "
                f"[freq, stokes={n_stokes}, pix] (full-sky pix allowed with a mask), "
                f"got {sig.shape}"
            )
        if not np.all(np.isfinite(sig)) or not np.all(sig >= 0):
            raise ValueError("sigma_map must be finite and non-negative (it is a std, not 1/var)")
        sigma = jnp.asarray(sig if sig.ndim == 3 else sig[:, None, :])
    key = _key(seed_or_key)
    white = jax.random.normal(key, (int(n_real), n_freq, n_stokes, n_pix), dtype=float)
    return white * sigma

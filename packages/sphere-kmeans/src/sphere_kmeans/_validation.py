"""Argument checks shared by the public functions (ValueError naming the argument)."""

from __future__ import annotations

import numbers

import numpy as np


def check_nside(nside: object, name: str = "nside") -> int:
    """Return ``nside`` as an int, or raise if it is not a positive power of two."""
    if isinstance(nside, bool) or not isinstance(nside, numbers.Integral):
        raise ValueError(f"{name} must be an integer power of 2 (1, 2, 4, ...), got {nside!r}")
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"{name} must be a power of 2 (1, 2, 4, ..., 8192), got {nside}")
    return nside


def check_mask(mask: object, nside: int, name: str = "mask") -> np.ndarray:
    """Return a boolean full-sky mask of ``12 nside^2`` pixels (None means the full sky)."""
    npix = 12 * nside * nside
    if mask is None:
        return np.ones(npix, dtype=bool)
    arr = np.asarray(mask)
    if arr.ndim != 1 or arr.shape[0] != npix:
        raise ValueError(
            f"{name} must be a full-sky HEALPix map of 12*nside**2 = {npix} pixels "
            f"(RING) for nside={nside}, got shape {arr.shape}; resample it with healpy.ud_grade"
        )
    if arr.dtype != bool:
        if not np.all(np.isfinite(arr.astype(float))):
            raise ValueError(f"{name} contains NaN or inf; pass a boolean or 0/1 map")
        arr = arr != 0
    if not arr.any():
        raise ValueError(f"{name} selects no pixel: the region is empty")
    return arr


def check_n_clusters(n_clusters: object, n_points: int, name: str = "n_clusters") -> int:
    """Return ``n_clusters`` as an int in [1, n_points] or raise."""
    if isinstance(n_clusters, bool) or not isinstance(n_clusters, numbers.Integral | np.integer):
        arr = np.asarray(n_clusters)
        if arr.ndim == 0 and np.issubdtype(arr.dtype, np.integer):
            n_clusters = int(arr)
        else:
            raise ValueError(f"{name} must be an integer number of clusters, got {n_clusters!r}")
    k = int(n_clusters)
    if k < 1 or k > n_points:
        raise ValueError(
            f"{name} must satisfy 1 <= {name} <= number of points ({n_points}), got {k}"
        )
    return k

"""Label utilities: contiguous relabelling, full-sky maps, patch sizes, and patch makers
other than K-means (multi-resolution and binned-template patches)."""

from __future__ import annotations

import numbers

import healpy as hp
import numpy as np
from jaxtyping import Bool, Float, Int

from ._validation import check_mask, check_nside


def relabel_contiguous(labels: Int[np.ndarray, " n"]) -> Int[np.ndarray, " n"]:
    """Map arbitrary integer labels to 0..K-1 in order of first appearance, in O(n + max label).

    Args:
        labels: non-negative integer labels ``[n]``.

    Returns:
        int64 labels where every value in 0..K-1 is used.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be a 1-d integer array, got {labels.dtype} {labels.shape}")
    if labels.size == 0:
        return labels.astype(np.int64)
    lo = labels.min()
    shifted = (labels - lo).astype(np.int64)
    # First occurrence of each value through a reversed scatter: O(n + range).
    first = np.full(int(shifted.max()) + 1, labels.size, dtype=np.int64)
    first[shifted[::-1]] = np.arange(labels.size - 1, -1, -1)
    used = np.flatnonzero(first < labels.size)
    rank = np.empty_like(first)
    rank[used[np.argsort(first[used], kind="stable")]] = np.arange(used.size)
    return rank[shifted]


def labels_to_map(
    labels: Int[np.ndarray, " n"], indices: Int[np.ndarray, " n"], nside: int
) -> Float[np.ndarray, " npix"]:
    """Full-sky map of region labels, ``healpy.UNSEEN`` outside the region.

    Args:
        labels: label per region pixel ``[n]``.
        indices: RING indices of the region pixels ``[n]`` (from ``pixel_vectors``).
        nside: HEALPix resolution.
    """
    nside = check_nside(nside)
    labels = np.asarray(labels)
    indices = np.asarray(indices)
    if labels.shape != indices.shape or labels.ndim != 1:
        raise ValueError(
            f"labels {labels.shape} and indices {indices.shape} must be 1-d of the same length"
        )
    out = np.full(12 * nside * nside, hp.UNSEEN, dtype=np.float64)
    out[indices] = labels
    return out


def patch_sizes(
    labels: Int[np.ndarray, " n"], n_clusters: int | None = None
) -> Int[np.ndarray, " k"]:
    """Number of pixels per label (``np.bincount`` with a checked length)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or labels.size == 0:
        raise ValueError("labels must be a non-empty 1-d integer array")
    if labels.min() < 0:
        raise ValueError("labels must be non-negative")
    return np.bincount(labels, minlength=0 if n_clusters is None else n_clusters)


def multires_labels(
    nside: int, mask: Bool[np.ndarray, " npix"] | None, nside_patch: int
) -> Int[np.ndarray, " n"]:
    """Multi-resolution patches: region pixels sharing a parent pixel at ``nside_patch``.

    This is the LiteBIRD PTEP / fgbuster ``multi_res_comp_sep`` layout (Kabalan
    et al. 2025, sec. V.B and Table IV): the patch of a pixel is its
    ``healpy.ud_grade`` parent at the coarser resolution. ``nside_patch = 0``
    means one patch for the whole region.

    Returns:
        contiguous labels ``[n]`` over the region's pixels (RING order), numbered
        in increasing order of the parent pixel index.
    """
    nside = check_nside(nside)
    region = check_mask(mask, nside)
    n = int(region.sum())
    if isinstance(nside_patch, bool) or not isinstance(nside_patch, numbers.Integral):
        raise ValueError(f"nside_patch must be 0 or a power of 2, got {nside_patch!r}")
    if nside_patch == 0:
        return np.zeros(n, dtype=np.int64)
    nside_patch = check_nside(nside_patch, "nside_patch")
    if nside_patch > nside:
        raise ValueError(f"nside_patch ({nside_patch}) must not exceed nside ({nside})")
    ring = np.flatnonzero(region)
    nest = hp.ring2nest(nside, ring)
    parent = nest // (nside // nside_patch) ** 2
    _, labels = np.unique(parent, return_inverse=True)
    return labels.astype(np.int64)


def binned_labels(values: Float[np.ndarray, " n"], n_bins: int) -> Int[np.ndarray, " n"]:
    """Binned-template patches: equal-width bins of a parameter map, as contiguous labels.

    The range [min, max] of ``values`` is cut into ``n_bins`` equal-width bins
    (the maximum falls in the last bin); empty bins are dropped, so the labels
    are contiguous and ordered by increasing value.

    Args:
        values: a parameter (or template) value per region pixel ``[n]``.
        n_bins: number of equal-width bins, >= 1.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(f"values must be a non-empty 1-d array, got shape {values.shape}")
    if not np.all(np.isfinite(values)):
        raise ValueError("values contains NaN or inf; restrict it to the region's pixels first")
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise ValueError(f"n_bins must be an integer >= 1, got {n_bins!r}")
    lo, hi = values.min(), values.max()
    if hi == lo:
        return np.zeros(values.size, dtype=np.int64)
    edges = np.linspace(lo, hi, int(n_bins) + 1)
    bins = np.clip(np.digitize(values, edges[1:-1], right=False), 0, n_bins - 1)
    used = np.zeros(n_bins, dtype=bool)
    used[bins] = True
    return (np.cumsum(used) - 1)[bins].astype(np.int64)

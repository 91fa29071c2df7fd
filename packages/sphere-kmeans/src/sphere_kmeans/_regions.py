"""Sky regions as HEALPix pixel sets: unit vectors, neighbour graphs, hemispheres, zones.

A region is a boolean full-sky mask (RING ordering). Working arrays hold only
the pixels inside it, in increasing RING index order, as everywhere in the
project (see DESIGN.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import healpy as hp
import numpy as np
from jaxtyping import Bool, Float, Int

from ._validation import check_mask, check_nside


def pixel_vectors(
    nside: int, mask: Bool[np.ndarray, " npix"] | None = None
) -> tuple[Int[np.ndarray, " n"], Float[np.ndarray, "n 3"]]:
    """Pixel indices and unit vectors of the pixels of a region.

    Args:
        nside: HEALPix resolution parameter (power of 2).
        mask: boolean (or 0/1) full-sky map of ``12 nside^2`` pixels, RING ordering;
            ``None`` selects the full sky.

    Returns:
        ``(indices, vectors)``: RING indices of the selected pixels in increasing
        order ``[n]`` (int64) and their unit vectors (x, y, z) ``[n, 3]`` (float64).

    Example:
        >>> idx, vec = pixel_vectors(4)
        >>> idx.shape, vec.shape
        ((192,), (192, 3))
    """
    nside = check_nside(nside)
    region = check_mask(mask, nside)
    indices = np.flatnonzero(region).astype(np.int64)
    vectors = np.stack(hp.pix2vec(nside, indices), axis=-1).astype(np.float64)
    return indices, vectors


def pixel_neighbours(nside: int, indices: Int[np.ndarray, " n"]) -> Int[np.ndarray, "n 8"]:
    """The 8 HEALPix neighbours of each region pixel, as positions in ``indices``.

    Neighbours outside the region (or missing, for the few pixels with 7
    neighbours) are replaced by the pixel itself, so the result can be used
    directly as a gather index. This graph lets :func:`kmeans` restrict most
    assignment steps to the clusters of adjacent pixels.

    Args:
        nside: HEALPix resolution of ``indices``.
        indices: increasing RING indices of the region's pixels (from :func:`pixel_vectors`).

    Returns:
        ``[n, 8]`` int32 array of positions into ``indices``.
    """
    nside = check_nside(nside)
    indices = np.asarray(indices)
    npix = 12 * nside * nside
    if indices.ndim != 1 or indices.size == 0:
        raise ValueError(
            f"indices must be a non-empty 1-d array of RING indices, got {indices.shape}"
        )
    if np.any(np.diff(indices) <= 0) or indices[0] < 0 or indices[-1] >= npix:
        raise ValueError(
            f"indices must be strictly increasing RING indices in [0, {npix}); "
            "use the indices returned by pixel_vectors"
        )
    position = np.full(npix, -1, dtype=np.int64)
    position[indices] = np.arange(indices.size)
    nbr = hp.get_all_neighbours(nside, indices).T  # [n, 8], -1 where missing
    local = np.where(nbr >= 0, position[np.maximum(nbr, 0)], -1)
    self_pos = np.arange(indices.size)[:, None]
    return np.where(local >= 0, local, self_pos).astype(np.int32)


def hemisphere_split(
    nside: int, mask: Bool[np.ndarray, " npix"] | None = None
) -> tuple[Bool[np.ndarray, " npix"], Bool[np.ndarray, " npix"]]:
    """Split a region into its upper (b >= 0) and lower (b < 0) Galactic hemispheres.

    These are the paper's ``_U`` / ``_L`` regions (Kabalan et al. 2025, sec. V.B:
    GAL020_U, GAL020_L, ...). Pixels centred exactly on the Galactic equator
    (z = 0, present in RING ordering) go to the upper part.

    Returns:
        ``(upper, lower)`` boolean full-sky masks; disjoint, their union is ``mask``.
    """
    nside = check_nside(nside)
    region = check_mask(mask, nside)
    z = hp.pix2vec(nside, np.arange(region.size))[2]
    upper = region & (z >= 0)
    return upper, region & ~upper


def disjoint_zones(masks: Sequence[Bool[np.ndarray, " npix"]]) -> list[Bool[np.ndarray, " npix"]]:
    """Disjoint zones from nested masks: ``[M0, M1 - M0, M2 - M1, ...]``.

    With the Planck masks GAL020 ⊂ GAL040 ⊂ GAL060 this gives the paper's
    zones GAL020, GAL040-GAL020, GAL060-GAL040.

    Args:
        masks: full-sky boolean masks of one nside, each contained in the next.

    Raises:
        ValueError: if the masks are empty, of different sizes, or not nested.
    """
    if len(masks) == 0:
        raise ValueError("masks must contain at least one mask")
    arrays = [np.asarray(m) != 0 for m in masks]
    npix = arrays[0].size
    zones = []
    previous = np.zeros(npix, dtype=bool)
    for i, m in enumerate(arrays):
        if m.ndim != 1 or m.size != npix:
            raise ValueError(f"masks[{i}] has shape {m.shape}, expected ({npix},) like masks[0]")
        if np.any(previous & ~m):
            raise ValueError(
                f"masks[{i}] does not contain masks[{i - 1}]: pass nested masks ordered from the "
                "smallest to the largest (e.g. GAL020, GAL040, GAL060)"
            )
        zone = m & ~previous
        if not zone.any():
            raise ValueError(f"masks[{i}] adds no pixel to masks[{i - 1}]: the zone would be empty")
        zones.append(zone)
        previous = m
    return zones

"""Galactic masks and sky regions.

Planck GAL masks read from npz/FITS files and resampled to the run's nside, built-in
masks made by thresholding smoothed dust intensity at a sky fraction, and the region
algebra of the paper (section V.B): disjoint zones ``GAL040-GAL020`` and upper/lower
hemisphere splits ``GAL020_U`` / ``GAL020_L``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import healpy as hp
import numpy as np
import sphere_kmeans
from jaxtyping import Bool, Float

_MASK_NAME = re.compile(r"^GAL(\d{3})$")


def _check_nside(nside: int, name: str = "nside") -> None:
    if not isinstance(nside, int | np.integer) or not hp.isnsideok(int(nside)):
        raise ValueError(f"{name} must be a power of two >= 1, got {nside!r}")


def resample_mask(mask: np.ndarray, nside: int) -> Bool[np.ndarray, " pix"]:
    """Resample a full-sky binary mask (RING) to ``nside``.

    Upgrading copies parents exactly; downgrading keeps a pixel when more than half of
    its children are inside, which preserves the nesting of nested masks (GAL020 inside
    GAL040 stays inside after resampling).
    """
    _check_nside(nside)
    mask = np.asarray(mask)
    if mask.ndim != 1 or not hp.isnpixok(mask.size):
        raise ValueError(f"mask must be a 1-D HEALPix map, got shape {mask.shape}")
    frac = hp.ud_grade(mask.astype(np.float64), nside, order_in="RING", order_out="RING")
    return frac > 0.5


def load_masks(path: str | Path, nside: int) -> dict[str, Bool[np.ndarray, " pix"]]:
    """Read named binary masks from an ``.npz`` (one array per name) or FITS file.

    FITS files are read with healpy; column names (e.g. ``GAL020`` in the Planck
    ``HFI_Mask_GalPlane`` file) name the masks, else ``MASK0``, ``MASK1``, ...

    Args:
        path: mask file.
        nside: resolution of the run; every mask is resampled to it.

    Returns:
        name -> boolean full-sky mask [12 nside^2] (RING, Galactic).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"mask file {str(path)!r} does not exist; give an existing npz/FITS path")
    if path.suffix == ".npz":
        with np.load(path) as data:
            raw = {name: np.asarray(data[name]) for name in data.files}
    elif path.suffix.lower() in {".fits", ".fit", ".fz"} or path.name.endswith(".fits.gz"):
        from astropy.io import fits

        with fits.open(path) as hdul:
            ordering = str(hdul[1].header.get("ORDERING", "RING")).upper()
            names = list(hdul[1].columns.names)
        maps = np.atleast_2d(hp.read_map(path, field=None, dtype=np.float64))
        if ordering == "NESTED":
            maps = np.array([hp.reorder(m, n2r=True) for m in maps])
        names = names if len(names) == len(maps) else [f"MASK{i}" for i in range(len(maps))]
        raw = dict(zip(names, maps, strict=True))
    else:
        raise ValueError(f"mask file {str(path)!r} must be .npz or .fits")
    if not raw:
        raise ValueError(f"mask file {str(path)!r} holds no maps")
    return {name: resample_mask(m, nside) for name, m in raw.items()}


def threshold_masks(
    intensity: Float[np.ndarray, " pix"], fractions: Mapping[str, float]
) -> dict[str, Bool[np.ndarray, " pix"]]:
    """Masks keeping the faintest ``f_sky`` of the sky in a foreground-intensity map.

    The Planck GAL masks are thresholds of the dust emission; this builds their
    analogue from any intensity map. Thresholds of one map are nested by construction.

    Args:
        intensity: full-sky map whose low values are clean sky (e.g. smoothed dust P).
        fractions: name -> kept sky fraction in (0, 1].

    Returns:
        name -> boolean mask with ``mask.mean()`` equal to the fraction (to one pixel).
    """
    intensity = np.asarray(intensity, dtype=np.float64)
    if not np.all(np.isfinite(intensity)):
        raise ValueError("intensity must be finite everywhere")
    order = np.argsort(intensity, kind="stable")
    out = {}
    for name, f_sky in fractions.items():
        if not 0.0 < f_sky <= 1.0:
            raise ValueError(f"sky fraction of {name!r} must be in (0, 1], got {f_sky}")
        mask = np.zeros(intensity.size, dtype=bool)
        mask[order[: round(f_sky * intensity.size)]] = True
        out[name] = mask
    return out


def default_mask_fractions(names: Sequence[str]) -> dict[str, float]:
    """Sky fractions of the GALxxx names used by ``names`` (GAL040 -> 0.40)."""
    fractions = {}
    for name in names:
        for part in re.split(r"[-]", name):
            base = part.removesuffix("_U").removesuffix("_L")
            match = _MASK_NAME.match(base)
            if match is None:
                raise ValueError(
                    f"region {name!r}: built-in masks are named GALxxx (xxx = percent of sky); "
                    "give [regions] mask_file for other names"
                )
            fractions[base] = int(match.group(1)) / 100.0
    return fractions


def dust_intensity(
    dust_qu: Float[np.ndarray, "2 pix"], fwhm_deg: float = 15.0
) -> Float[np.ndarray, " pix"]:
    """Smoothed polarised dust intensity sqrt(<Q^2 + U^2>) used to build built-in masks."""
    p2 = np.asarray(dust_qu[0]) ** 2 + np.asarray(dust_qu[1]) ** 2
    return np.sqrt(np.maximum(hp.smoothing(p2, fwhm=np.radians(fwhm_deg)), 0.0))


def hemisphere(nside: int, mask: np.ndarray, which: str) -> Bool[np.ndarray, " pix"]:
    """Upper (``"U"``, b > 0 side) or lower (``"L"``) half of a region (sphere-kmeans split)."""
    upper, lower = sphere_kmeans.hemisphere_split(nside, mask)
    return np.asarray(upper if which == "U" else lower, dtype=bool)


def region_mask(spec: str, masks: Mapping[str, np.ndarray], nside: int) -> Bool[np.ndarray, " pix"]:
    """Boolean mask of a region spec.

    Grammar: ``NAME`` (a mask), ``A-B`` (pixels of A not in B: the paper's disjoint
    zones such as ``GAL040-GAL020``), and a suffix ``_U`` / ``_L`` for the upper/lower
    Galactic hemisphere of either (``GAL020_U``, ``GAL040-GAL020_L``).
    """
    body, half = spec, None
    if spec.endswith(("_U", "_L")):
        body, half = spec[:-2], spec[-1]
    parts = body.split("-")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"region {spec!r} must look like NAME, A-B, NAME_U or A-B_L")
    for part in parts:
        if part not in masks:
            raise ValueError(
                f"region {spec!r} uses mask {part!r}, not among {sorted(masks)}; "
                "fix the region name or the [regions] mask_file"
            )
    out = np.asarray(masks[parts[0]], dtype=bool).copy()
    if len(parts) == 2:
        out &= ~np.asarray(masks[parts[1]], dtype=bool)
    if half is not None:
        out = hemisphere(nside, out, half)
    if not out.any():
        raise ValueError(f"region {spec!r} is empty at nside {nside}")
    return out

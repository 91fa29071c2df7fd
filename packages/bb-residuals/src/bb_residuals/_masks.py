"""Sky weights: apodisation of binary masks, latitude-cut masks and sky fractions.

Apodisation follows the definitions popularised by NaMaster (Alonso et al. 2019, sec. 3.4):
with theta the angular distance of an observed pixel to the nearest unobserved pixel and
``x = sqrt[(1 - cos theta) / (1 - cos theta_apo)]``,

- ``C1``: ``w = x - sin(2 pi x) / (2 pi)`` for ``x < 1``, else 1;
- ``C2``: ``w = [1 - cos(pi x)] / 2`` for ``x < 1``, else 1;
- ``gaussian``: pixels closer than 2.5 theta_apo to the edge are zeroed, the result is
  smoothed with a Gaussian of FWHM theta_apo and multiplied by the binary mask, so the weight
  is 0 wherever the input mask is 0.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from ._spectra import check_mask

APODIZATIONS = ("C1", "C2", "gaussian")


def f_sky(mask: Float[np.ndarray, " pix"]) -> float:
    """Observed sky fraction, the mean of the weight map (``f_sky`` of paper IV.d)."""
    return float(np.mean(check_mask(mask)))


def f_sky_moments(mask: Float[np.ndarray, " pix"]) -> tuple[float, float]:
    """``(w2, f_sky_eff)``: ``w2 = <w^2>`` normalises pseudo-spectra of weighted maps and
    ``f_sky_eff = w2^2 / <w^4>`` is the effective sky fraction counting modes (Hivon 2002);
    both equal the plain ``f_sky`` for a binary mask."""
    w = check_mask(mask)
    w2 = float(np.mean(w**2))
    return w2, w2**2 / float(np.mean(w**4))


def _distance_to_edge(mask: np.ndarray) -> np.ndarray:
    """Angular distance (radians) of every pixel to the nearest unobserved pixel (0 outside)."""
    import healpy as hp
    from scipy.spatial import cKDTree

    nside = hp.npix2nside(mask.size)
    observed = mask > 0
    dist = np.zeros(mask.size)
    if observed.all():
        dist[:] = np.pi
        return dist
    neighbours = hp.get_all_neighbours(nside, np.arange(mask.size))
    valid = neighbours >= 0
    touches_observed = np.zeros(mask.size, dtype=bool)
    for row, ok in zip(neighbours, valid, strict=True):
        touches_observed |= ok & observed[np.where(ok, row, 0)]
    edge = np.flatnonzero(~observed & touches_observed)
    vec = np.array(hp.pix2vec(nside, np.arange(mask.size))).T
    chord, _ = cKDTree(vec[edge]).query(vec[observed])
    dist[observed] = 2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))
    return dist


def apodize_mask(
    mask: Float[np.ndarray, " pix"], aposize_deg: float, kind: str = "C2"
) -> Float[np.ndarray, " pix"]:
    """Apodise a binary mask (nonzero = observed) with a C1, C2 or Gaussian taper.

    Args:
        mask: HEALPix map, RING; pixels > 0 are observed.
        aposize_deg: apodisation scale theta_apo in degrees (> 0).
        kind: ``"C1"``, ``"C2"`` or ``"gaussian"`` (see the module docstring).

    Returns:
        Weights in [0, 1], zero wherever ``mask`` is zero.
    """
    import healpy as hp

    mask = check_mask(mask)
    if kind not in APODIZATIONS:
        raise ValueError(f"kind: expected one of {APODIZATIONS}, got {kind!r}")
    if not aposize_deg > 0:
        raise ValueError("aposize_deg: apodisation scale must be > 0 degrees")
    binary = (mask > 0).astype(np.float64)
    theta_apo = np.radians(aposize_deg)
    dist = _distance_to_edge(binary)
    if kind == "gaussian":
        core = binary * (dist > 2.5 * theta_apo)
        if not core.any():
            raise ValueError("aposize_deg: too large, the Gaussian taper would empty the mask")
        smooth = hp.smoothing(core, fwhm=theta_apo, iter=3)
        return np.clip(smooth, 0.0, 1.0) * binary
    x = np.sqrt((1.0 - np.cos(dist)) / (1.0 - np.cos(theta_apo)))
    if kind == "C1":
        taper = x - np.sin(2.0 * np.pi * x) / (2.0 * np.pi)
    else:
        taper = 0.5 * (1.0 - np.cos(np.pi * x))
    return np.where(x < 1.0, taper, 1.0) * binary


def latitude_mask(
    nside: int, b_cut_deg: float, smooth_deg: float = 0.0
) -> Float[np.ndarray, " pix"]:
    """Binary Galactic-latitude cut ``|b| > b_cut_deg`` (RING), optionally C2-apodised.

    A cut at ``b_cut = 36.9 deg`` keeps f_sky = 0.4, a GAL040-like footprint without the
    Planck mask's irregular edge.
    """
    import healpy as hp

    if not hp.isnsideok(nside):
        raise ValueError(f"nside: {nside} is not a valid HEALPix nside")
    if not 0 <= b_cut_deg < 90:
        raise ValueError("b_cut_deg: must lie in [0, 90)")
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    mask = (np.abs(90.0 - np.degrees(theta)) > b_cut_deg).astype(np.float64)
    if smooth_deg > 0:
        mask = apodize_mask(mask, smooth_deg, "C2")
    return mask

"""Gaussian random fields on the HEALPix sphere for the built-in synthetic Galaxy.

Scalar and spin-2 (Q/U) Gaussian fields with a prescribed angular power spectrum,
drawn from an explicit ``numpy.random.Generator`` (healpy's ``synfast`` draws from
numpy's global state, which would make runs depend on call order), and the
Galactic-latitude profile that modulates foreground amplitudes.
"""

from __future__ import annotations

import healpy as hp
import numpy as np
from jaxtyping import Float


def power_law_cl(lmax: int, alpha: float, ell_pivot: float = 80.0) -> Float[np.ndarray, " ell"]:
    """Power-law angular power spectrum ``C_ell = (ell / ell_pivot)**alpha``, zero at ell < 2.

    Args:
        lmax: largest multipole (inclusive).
        alpha: spectral slope of C_ell (dust EE/BB ~ -2.4, synchrotron ~ -3).
        ell_pivot: multipole where C_ell = 1.

    Returns:
        C_ell for ell = 0..lmax.
    """
    if lmax < 2:
        raise ValueError(f"lmax must be >= 2 for a power-law spectrum, got {lmax}")
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.zeros(lmax + 1)
    cl[2:] = (ell[2:] / ell_pivot) ** alpha
    return cl


def gaussian_alm(cl: Float[np.ndarray, " ell"], rng: np.random.Generator) -> np.ndarray:
    """Draw harmonic coefficients a_lm with <|a_lm|^2> = C_ell (healpy m-major ordering)."""
    lmax = len(cl) - 1
    ell, m = hp.Alm.getlm(lmax)
    sqrt_cl = np.sqrt(np.asarray(cl, dtype=np.float64))[ell]
    re = rng.standard_normal(ell.size)
    im = rng.standard_normal(ell.size)
    # m = 0 coefficients are real with variance C_ell; m > 0 split it over re/im.
    scale = np.where(m == 0, 1.0, np.sqrt(0.5))
    alm = sqrt_cl * scale * (re + 1j * np.where(m == 0, 0.0, im))
    return alm.astype(np.complex128)


def scalar_field(
    nside: int, cl: Float[np.ndarray, " ell"], rng: np.random.Generator
) -> Float[np.ndarray, " pix"]:
    """Gaussian random scalar map (RING) with angular power spectrum ``cl``."""
    return hp.alm2map(gaussian_alm(cl, rng), nside, lmax=len(cl) - 1)


def polarization_field(
    nside: int,
    cl_ee: Float[np.ndarray, " ell"],
    cl_bb: Float[np.ndarray, " ell"],
    rng: np.random.Generator,
) -> Float[np.ndarray, "2 pix"]:
    """Gaussian random Q/U maps (RING) with independent E and B spectra ``cl_ee``, ``cl_bb``."""
    if len(cl_ee) != len(cl_bb):
        raise ValueError("cl_ee and cl_bb must have the same lmax; pad the shorter one with zeros")
    lmax = len(cl_ee) - 1
    alm_e = gaussian_alm(cl_ee, rng)
    alm_b = gaussian_alm(cl_bb, rng)
    iqu = hp.alm2map([np.zeros_like(alm_e), alm_e, alm_b], nside, lmax=lmax, pol=True)
    return np.asarray(iqu[1:], dtype=np.float64)


def galactic_latitude(nside: int) -> Float[np.ndarray, " pix"]:
    """Galactic latitude b in radians of every RING pixel centre."""
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    return np.pi / 2 - theta


def latitude_profile(nside: int, scale_height: float, floor: float) -> Float[np.ndarray, " pix"]:
    """Amplitude modulation ``floor + exp(-|sin b| / scale_height)`` of Galactic emission.

    A thin exponential disc seen from inside: bright on the plane (value 1 + floor), falling
    to ``floor`` at the poles.
    """
    if scale_height <= 0:
        raise ValueError(f"scale_height must be > 0, got {scale_height}")
    if floor < 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    sin_b = np.abs(np.sin(galactic_latitude(nside)))
    return floor + np.exp(-sin_b / scale_height)

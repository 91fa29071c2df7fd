"""Systematic, statistical and total residual spectra (kabalan2025 sec. IV.b).

    C_ell^syst = C_ell(W d_fg-only)                      foreground leakage (no CMB, no noise)
    C_ell^res  = < C_ell(s_hat^(n) - s_true) >_n          total error over noise realisations
    C_ell^stat = C_ell^res - C_ell^syst                  noise floor used in the r likelihood

so ``total = syst + stat`` holds by construction, per realisation
(``stat^(n) = C(s_hat^(n) - s_true) - syst``) and on average.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from jaxtyping import Float

from ._spectra import SPECTRA

Estimator = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ResidualSpectra:
    """Residual spectra ``[3, n]`` for (EE, BB, EB) at multipoles ``ell`` (C_ell, uK^2).

    Attributes:
        ell: multipole (or bin centre) of each entry.
        syst: C^syst, spectrum of the reconstruction of the foreground-only sky.
        total: C^res averaged over realisations.
        stat: C^res - C^syst (averaged).
        total_per_realisation: ``[n_real, 3, n]`` C(s_hat^(n) - s_true).
    """

    ell: Float[np.ndarray, " n"]
    syst: Float[np.ndarray, "3 n"]
    total: Float[np.ndarray, "3 n"]
    stat: Float[np.ndarray, "3 n"]
    total_per_realisation: Float[np.ndarray, "real 3 n"]

    @property
    def stat_per_realisation(self) -> Float[np.ndarray, "real 3 n"]:
        """C(s_hat^(n) - s_true) - C^syst for each realisation."""
        return self.total_per_realisation - self.syst

    def spectrum(self, kind: str, which: str = "BB") -> Float[np.ndarray, " n"]:
        """One spectrum, e.g. ``spectrum("stat", "BB")``."""
        if kind not in ("syst", "total", "stat"):
            raise ValueError(f"kind: expected 'syst', 'total' or 'stat', got {kind!r}")
        if which not in SPECTRA:
            raise ValueError(f"which: expected one of {SPECTRA}, got {which!r}")
        return getattr(self, kind)[SPECTRA.index(which)]


def residual_spectra_from_cls(
    cl_syst: Float[np.ndarray, "3 n"],
    cl_total_per_realisation: Float[np.ndarray, "real 3 n"],
    ell: Float[np.ndarray, " n"],
) -> ResidualSpectra:
    """Residual spectra from precomputed C(W d_fg) and C(s_hat^(n) - s_true) spectra."""
    syst = np.asarray(cl_syst, dtype=np.float64)
    per = np.asarray(cl_total_per_realisation, dtype=np.float64)
    ell = np.asarray(ell)
    if syst.ndim != 2 or syst.shape[0] != 3:
        raise ValueError(f"cl_syst: expected shape [3 (EE, BB, EB), n], got {syst.shape}")
    if per.ndim == 2:
        per = per[None]
    if per.ndim != 3 or per.shape[1:] != syst.shape:
        raise ValueError(
            f"cl_total_per_realisation: expected [n_real, 3, {syst.shape[1]}], got {per.shape}"
        )
    if ell.shape != (syst.shape[1],):
        raise ValueError(f"ell: expected {syst.shape[1]} entries, got shape {ell.shape}")
    total = per.mean(axis=0)
    return ResidualSpectra(ell, syst, total, total - syst, per)


def residual_spectra(
    s_hat: Float[np.ndarray, "real 2 pix"],
    s_true: Float[np.ndarray, "2 pix"],
    s_syst: Float[np.ndarray, "2 pix"],
    estimator: Estimator,
) -> ResidualSpectra:
    """Residual spectra from CMB maps (paper sec. IV.b).

    Args:
        s_hat: reconstructed CMB Q/U maps ``W d^(n)``, one per noise realisation (uK_CMB).
        s_true: input CMB Q/U map.
        s_syst: reconstruction of the foreground-only sky ``W d_fg`` (no CMB, no noise).
        estimator: a spectrum estimator (``NaiveEstimator`` or ``MasterEstimator``) holding
            the mask; its ``ell`` labels the output.
    """
    s_hat = np.asarray(s_hat, dtype=np.float64)
    s_true = np.asarray(s_true, dtype=np.float64)
    if s_hat.ndim == 2:
        s_hat = s_hat[None]
    if s_hat.ndim != 3 or s_hat.shape[1] != 2:
        raise ValueError(f"s_hat: expected [n_real, 2, npix], got {s_hat.shape}")
    if s_true.shape != s_hat.shape[1:]:
        raise ValueError(f"s_true: expected shape {s_hat.shape[1:]}, got {s_true.shape}")
    if np.shape(s_syst) != s_true.shape:
        raise ValueError(f"s_syst: expected shape {s_true.shape}, got {np.shape(s_syst)}")
    syst = estimator(s_syst)
    per = estimator(s_hat - s_true)
    return residual_spectra_from_cls(syst, per, np.asarray(estimator.ell))

"""Power-spectrum estimators for Q/U maps on a masked sky: EE, BB, EB.

- ``NaiveEstimator``: the paper's estimator (kabalan2025 sec. IV, as in furax-cs): anafast of the
  weighted map divided by the sky fraction, ``C_ell = C~_ell / <w^2>`` (``<w^2> = f_sky`` for a
  binary mask). It ignores mode coupling, so on a cut sky E->B leakage and the mask's
  window bias low multipoles.
- ``MasterEstimator``: the MASTER pseudo-C_ell estimator (Hivon et al. 2002) for spin-2 fields:
  bandpowers ``C_b = K^-1 P C~``, with ``K = P M F Q`` the binned coupling matrix of the
  weight map (``_coupling.coupling_kernels``), ``F = b_ell^2 p_ell^2`` the beam and pixel
  window, ``P``/``Q`` the binning/unbinning operators (``Bins``). Unbiased for spectra whose
  shape inside each bin follows ``Q``.

Both are callables ``estimator(qu) -> [..., 3, n]`` with ``ell`` and ``f_sky`` attributes, the
interface the residual and r-likelihood code expects.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float

from ._coupling import coupling_kernels
from ._masks import f_sky_moments
from ._spectra import (
    Bins,
    check_lmax,
    check_mask,
    check_qu,
    pseudo_spectra,
    transfer_function,
)


class NaiveEstimator:
    """anafast of the masked map divided by f_sky (the paper's and furax-cs's estimator).

    Args:
        mask: weight map (binary or apodised) in [0, 1], RING.
        lmax: highest multipole (default and maximum ``3 nside - 1``).
        beam_fwhm: Gaussian beam FWHM in radians to divide out (optional).
        beam: tabulated b_ell to divide out (optional, exclusive with ``beam_fwhm``).
        pixwin: divide out the HEALPix pixel window.
        iter: healpy ``map2alm`` Jacobi iterations.

    Calling it on ``qu [..., 2, npix]`` (map units) returns ``[..., 3, lmax+1]`` C_ell for
    EE, BB, EB at ``ell = 0..lmax`` (ell < 2 set to 0).
    """

    def __init__(
        self,
        mask: Float[np.ndarray, " pix"],
        *,
        lmax: int | None = None,
        beam_fwhm: float | None = None,
        beam: Float[np.ndarray, " ell"] | None = None,
        pixwin: bool = False,
        iter: int = 3,
    ) -> None:
        import healpy as hp

        self.mask = check_mask(mask)
        self.nside = hp.npix2nside(self.mask.size)
        self.lmax = check_lmax(lmax, self.nside)
        self.iter = iter
        self.w2, self.f_sky = f_sky_moments(self.mask)
        transfer = transfer_function(
            self.lmax, self.nside, beam_fwhm=beam_fwhm, beam=beam, pixwin=pixwin
        )
        self._scale = np.zeros(self.lmax + 1)
        self._scale[2:] = 1.0 / (self.w2 * transfer[2:])
        self.ell = np.arange(self.lmax + 1)

    def __call__(self, qu: Float[np.ndarray, "... 2 pix"]) -> Float[np.ndarray, "... 3 ell"]:
        qu = check_qu(qu, self.mask)
        return pseudo_spectra(qu * self.mask, self.lmax, self.iter) * self._scale


class MasterEstimator:
    """Mode-coupling-corrected (MASTER) EE, BB, EB bandpowers on a masked sky.

    Args:
        mask: weight map in [0, 1] (apodise binary masks with ``apodize_mask``), RING.
        bins: multipole bins of the output bandpowers; ``bins.lmax <= lmax``.
        lmax: highest multipole kept in the coupling (default and maximum ``3 nside - 1``).
            Power above ``bins.lmax`` that leaks into the bins is not modelled, so let the
            bins run to ``lmax`` and discard the top ones when that matters.
        beam_fwhm: Gaussian beam FWHM in radians to deconvolve (optional).
        beam: tabulated b_ell to deconvolve (optional, exclusive with ``beam_fwhm``).
        pixwin: deconvolve the HEALPix pixel window.
        iter: healpy ``map2alm`` Jacobi iterations.
        decoupling: ``"unbinned"`` (default) inverts the coupling at full ell resolution over
            ``2 <= ell <= lmax`` and then bins, unbiased whatever the spectra's shape;
            ``"binned"`` inverts the binned matrix ``K = P M F Q`` (Hivon et al. 2002), needed
            when the unbinned matrix is singular (small masks) and unbiased when the spectra
            follow the bins' assumed shape.

    Pixelisation mixes E and B near ``3 nside``: trust bandpowers up to ``ell ~ 2 nside``.

    Calling it on ``qu [..., 2, npix]`` returns bandpowers ``[..., 3, bins.n_bins]`` of C_ell
    (bin means, map units squared) for EE, BB, EB at ``ell = bins.ell_eff``.
    """

    def __init__(
        self,
        mask: Float[np.ndarray, " pix"],
        bins: Bins,
        *,
        lmax: int | None = None,
        beam_fwhm: float | None = None,
        beam: Float[np.ndarray, " ell"] | None = None,
        pixwin: bool = False,
        iter: int = 3,
        decoupling: str = "unbinned",
    ) -> None:
        import healpy as hp

        if not isinstance(bins, Bins):
            raise ValueError("bins: expected a bb_residuals.Bins instance")
        if decoupling not in ("unbinned", "binned"):
            raise ValueError(f"decoupling: expected 'unbinned' or 'binned', got {decoupling!r}")
        self.mask = check_mask(mask)
        self.nside = hp.npix2nside(self.mask.size)
        self.lmax = check_lmax(lmax, self.nside)
        if bins.lmax > self.lmax:
            raise ValueError(
                f"bins: last binned multipole {bins.lmax} exceeds lmax = {self.lmax} "
                f"(at most 3 nside - 1 = {3 * self.nside - 1})"
            )
        self.bins = bins
        self.iter = iter
        self.w2, self.f_sky = f_sky_moments(self.mask)
        self.ell = bins.ell_eff
        mask_cl = hp.anafast(self.mask, lmax=3 * self.nside - 1, iter=iter)
        m_pp, m_mm = coupling_kernels(mask_cl, self.lmax)
        transfer = transfer_function(
            self.lmax, self.nside, beam_fwhm=beam_fwhm, beam=beam, pixwin=pixwin
        )
        self.m_pp = m_pp * transfer[None, :]
        self.m_mm = m_mm * transfer[None, :]
        p = bins.binning_matrix(self.lmax)[:, 2:]
        p2 = np.kron(np.eye(2), p)
        m_pp, m_mm = self.m_pp[2:, 2:], self.m_mm[2:, 2:]
        # Operators from pseudo-spectra (ell = 2..lmax) to bandpowers.
        if decoupling == "unbinned":
            # Invert at full ell resolution, then bin: exact for any spectral shape (E->B
            # leakage of a steep EE spectrum would bias a binned inversion at low ell).
            k_eebb = np.block([[m_pp, m_mm], [m_mm, m_pp]])
            self._r_eebb = p2 @ _checked_inverse(k_eebb, "EE/BB", decoupling)
            self._r_eb = p @ _checked_inverse(m_pp - m_mm, "EB", decoupling)
        else:
            q = bins.unbinning_matrix(self.lmax)[2:]
            k_pp, k_mm = p @ m_pp @ q, p @ m_mm @ q
            k_eebb = np.block([[k_pp, k_mm], [k_mm, k_pp]])
            self._r_eebb = _checked_inverse(k_eebb, "EE/BB", decoupling) @ p2
            self._r_eb = _checked_inverse(k_pp - k_mm, "EB", decoupling) @ p
        self.decoupling = decoupling

    def _decouple(self, pcl: np.ndarray) -> np.ndarray:
        pcl = pcl[..., 2:]
        nb = self.bins.n_bins
        eebb = np.concatenate([pcl[..., 0, :], pcl[..., 1, :]], axis=-1) @ self._r_eebb.T
        eb = pcl[..., 2, :] @ self._r_eb.T
        return np.stack([eebb[..., :nb], eebb[..., nb:], eb], axis=-2)

    def __call__(self, qu: Float[np.ndarray, "... 2 pix"]) -> Float[np.ndarray, "... 3 nbins"]:
        qu = check_qu(qu, self.mask)
        return self._decouple(pseudo_spectra(qu * self.mask, self.lmax, self.iter))

    def pseudo_expectation(self, cl_ee, cl_bb, cl_eb=None) -> Float[np.ndarray, "3 ell"]:
        """Expected pseudo-spectra ``<C~>`` (EE, BB, EB) of a sky with theory C_ell."""
        cl = [
            np.zeros(self.lmax + 1) if c is None else np.asarray(c, float)
            for c in (cl_ee, cl_bb, cl_eb)
        ]
        for name, c in zip(("cl_ee", "cl_bb", "cl_eb"), cl, strict=True):
            if c.shape[-1] <= self.lmax:
                raise ValueError(f"{name}: need C_ell for ell = 0..{self.lmax}")
        ee, bb, eb = (c[: self.lmax + 1] for c in cl)
        return np.stack(
            [
                self.m_pp @ ee + self.m_mm @ bb,
                self.m_mm @ ee + self.m_pp @ bb,
                (self.m_pp - self.m_mm) @ eb,
            ]
        )

    def expected_bandpowers(self, cl_ee, cl_bb, cl_eb=None) -> Float[np.ndarray, "3 nbins"]:
        """Exact expectation of the estimator for theory C_ell (the binned theory to compare
        with; equals ``bins.bin_cl`` when the spectra follow the bins' shape)."""
        return self._decouple(self.pseudo_expectation(cl_ee, cl_bb, cl_eb))


def _checked_inverse(k: np.ndarray, name: str, decoupling: str) -> np.ndarray:
    # Beyond ~1e6 the inversion amplifies the pseudo-spectra's scatter uselessly (a GAL040
    # footprint with a 10 deg C2 taper gives ~10 unbinned; a 10% polar cap ~1e7).
    if np.linalg.cond(k) > 1e6:
        raise ValueError(
            f"mask: the {decoupling} {name} coupling matrix is (nearly) singular for this "
            "mask; "
            "use decoupling='binned' with wider bins, or a larger / smoother mask"
        )
    return np.linalg.inv(k)

"""Spectrum conventions, multipole binning and input checks shared by the estimators.

The D_ell convention is the paper's (section IV.a of kabalan2025_clustered_compsep):
``D_ell = ell (ell + 1) / (2 pi) C_ell``. Spectra are raw C_ell in the map's unit squared
(uK_CMB^2 for maps in uK_CMB) unless a name says ``dl``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from jaxtyping import Float, Int

from ._pixwin import pixel_window

SPECTRA = ("EE", "BB", "EB")
"""Order of the polarisation spectra along the ``spec`` axis of every result."""


def dl_factor(ell: Int[np.ndarray, " n"] | Float[np.ndarray, " n"]) -> Float[np.ndarray, " n"]:
    """``ell (ell + 1) / (2 pi)``, the factor turning C_ell into D_ell (paper IV.a)."""
    ell = np.asarray(ell, dtype=np.float64)
    return ell * (ell + 1.0) / (2.0 * np.pi)


def cl_to_dl(ell, cl):
    """D_ell = ell (ell + 1) / (2 pi) C_ell along the last axis of ``cl``."""
    return np.asarray(cl) * dl_factor(ell)


def dl_to_cl(ell, dl):
    """C_ell = 2 pi / (ell (ell + 1)) D_ell; ell = 0 maps to 0."""
    f = dl_factor(ell)
    safe = np.where(f > 0, f, 1.0)
    return np.where(f > 0, np.asarray(dl) / safe, 0.0)


@dataclass(frozen=True)
class Bins:
    """Contiguous multipole bins ``[edges[b], edges[b+1])`` for bandpowers.

    Attributes:
        edges: increasing integer bin edges; bin ``b`` holds ``edges[b] <= ell < edges[b+1]``.
        shape: ``"dl"`` (default) assumes D_ell flat inside a bin when MASTER unbins the
            coupling matrix (Hivon et al. 2002); ``"cl"`` assumes C_ell flat.

    A bandpower is the plain mean of C_ell over the bin's multipoles (``bin_cl``); with
    narrow bins its expectation equals the binned theory whichever ``shape`` is used.
    """

    edges: Int[np.ndarray, " nbins_plus_1"]
    shape: str = "dl"
    _lmax: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        edges = np.asarray(self.edges)
        if edges.ndim != 1 or edges.size < 2:
            raise ValueError("edges: need a 1-D array of at least two bin edges")
        if not np.all(np.equal(np.mod(edges, 1), 0)):
            raise ValueError("edges: bin edges must be integers (multipoles)")
        edges = edges.astype(np.int64)
        if np.any(np.diff(edges) <= 0):
            raise ValueError("edges: bin edges must be strictly increasing")
        if edges[0] < 2:
            raise ValueError("edges: polarisation bins must start at ell >= 2 (got edges[0] < 2)")
        if self.shape not in ("dl", "cl"):
            raise ValueError(f"shape: expected 'dl' or 'cl', got {self.shape!r}")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "_lmax", int(edges[-1] - 1))

    @classmethod
    def linear(cls, lmin: int, lmax: int, width: int, shape: str = "dl") -> Bins:
        """Bins of ``width`` multipoles from ``lmin``; the last bin ends at ``lmax`` inclusive."""
        if width < 1:
            raise ValueError("width: bin width must be >= 1")
        if lmax < lmin:
            raise ValueError("lmax: must be >= lmin")
        edges = np.arange(lmin, lmax + 1, width)
        if edges[-1] != lmax + 1:
            edges = np.append(edges, lmax + 1)
        # A runt last bin narrower than half a bin is merged into its neighbour.
        if edges.size > 2 and edges[-1] - edges[-2] < max(1, width // 2):
            edges = np.delete(edges, -2)
        return cls(edges, shape)

    @classmethod
    def unbinned(cls, lmin: int, lmax: int) -> Bins:
        """One bin per multipole, ``lmin <= ell <= lmax``."""
        return cls(np.arange(lmin, lmax + 2), "cl")

    @property
    def lmin(self) -> int:
        """Lowest multipole in a bin."""
        return int(self.edges[0])

    @property
    def lmax(self) -> int:
        """Highest multipole in a bin."""
        return self._lmax

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.edges.size - 1)

    @property
    def ell_eff(self) -> Float[np.ndarray, " nbins"]:
        """Mean multipole of each bin."""
        return 0.5 * (self.edges[:-1] + self.edges[1:] - 1).astype(np.float64)

    @property
    def n_modes(self) -> Float[np.ndarray, " nbins"]:
        """Full-sky number of modes ``sum_{ell in b} (2 ell + 1)`` per bin."""
        ell = np.arange(self.lmax + 1)
        return self.binning_matrix(self.lmax) @ (2.0 * ell + 1.0) * np.diff(self.edges)

    def binning_matrix(self, lmax: int) -> Float[np.ndarray, "nbins ell"]:
        """P[b, ell]: the bin mean of a spectrum indexed ``0..lmax``."""
        if lmax < self.lmax:
            raise ValueError(f"lmax: {lmax} is below the last binned multipole {self.lmax}")
        p = np.zeros((self.n_bins, lmax + 1))
        for b in range(self.n_bins):
            lo, hi = self.edges[b], self.edges[b + 1]
            p[b, lo:hi] = 1.0 / (hi - lo)
        return p

    def unbinning_matrix(self, lmax: int) -> Float[np.ndarray, "ell nbins"]:
        """Q[ell, b]: the assumed shape of the spectrum inside a bin, with ``P Q = 1``."""
        p = self.binning_matrix(lmax)
        ell = np.arange(lmax + 1, dtype=np.float64)
        if self.shape == "cl":
            shape = np.ones_like(ell)
        else:
            shape = np.where(ell > 0, 1.0 / np.maximum(ell * (ell + 1.0), 1.0), 0.0)
        q = (p > 0).T * shape[:, None]
        return q / (p @ q).diagonal()[None, :]

    def bin_cl(self, cl: Float[np.ndarray, "... ell"]) -> Float[np.ndarray, "... nbins"]:
        """Bin mean of C_ell (last axis indexed from ell = 0, length > ``lmax``)."""
        cl = np.asarray(cl, dtype=np.float64)
        if cl.shape[-1] <= self.lmax:
            raise ValueError(
                f"cl: spectrum has {cl.shape[-1]} multipoles, bins need ell up to {self.lmax}"
            )
        return cl[..., : self.lmax + 1] @ self.binning_matrix(self.lmax).T


def check_mask(mask, name: str = "mask") -> Float[np.ndarray, " pix"]:
    """Validate a weight map (binary or apodised): finite, in [0, 1], non-empty, HEALPix."""
    import healpy as hp

    mask = np.asarray(mask, dtype=np.float64)
    if mask.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D HEALPix map, got shape {mask.shape}")
    if not hp.isnpixok(mask.size):
        raise ValueError(f"{name}: {mask.size} pixels is not a valid HEALPix map size")
    if not np.all(np.isfinite(mask)):
        raise ValueError(f"{name}: contains NaN or inf; set unobserved pixels to 0 instead")
    if np.any(mask < 0) or np.any(mask > 1 + 1e-12):
        raise ValueError(f"{name}: weights must lie in [0, 1]")
    if not np.any(mask > 0):
        raise ValueError(f"{name}: the mask is empty (no pixel has a positive weight)")
    return mask


def check_qu(qu, mask: np.ndarray, name: str = "qu") -> Float[np.ndarray, "... 2 pix"]:
    """Validate Q/U maps ``[..., 2, npix]`` against a mask; NaN is allowed only outside it."""
    import healpy as hp

    qu = np.asarray(qu, dtype=np.float64)
    if qu.ndim < 2 or qu.shape[-2] != 2:
        raise ValueError(f"{name}: expected Q/U maps of shape [..., 2, npix], got {qu.shape}")
    if qu.shape[-1] != mask.size:
        raise ValueError(
            f"{name}: nside {_nside(qu.shape[-1], name)} does not match the mask's nside "
            f"{hp.npix2nside(mask.size)}; ud_grade one of them"
        )
    bad = ~np.isfinite(qu) & (mask > 0)
    if np.any(bad):
        raise ValueError(
            f"{name}: {int(bad.sum())} NaN/inf values inside the mask; "
            "fill them or set the mask to 0 there"
        )
    return np.where(mask > 0, qu, 0.0)


def _nside(npix: int, name: str) -> int:
    import healpy as hp

    if not hp.isnpixok(npix):
        raise ValueError(f"{name}: {npix} pixels is not a valid HEALPix map size")
    return hp.npix2nside(npix)


def check_lmax(lmax: int | None, nside: int, name: str = "lmax") -> int:
    """Default ``3 nside - 1``; larger values are refused (no information there)."""
    limit = 3 * nside - 1
    if lmax is None:
        return limit
    if int(lmax) != lmax or lmax < 2:
        raise ValueError(f"{name}: must be an integer >= 2, got {lmax}")
    if lmax > limit:
        raise ValueError(f"{name}: {lmax} exceeds 3 nside - 1 = {limit} for nside {nside}")
    return int(lmax)


def transfer_function(
    lmax: int,
    nside: int,
    *,
    beam_fwhm: float | None = None,
    beam: Float[np.ndarray, " ell"] | None = None,
    pixwin: bool = False,
) -> Float[np.ndarray, " ell"]:
    """Polarisation transfer ``b_ell^2 p_ell^2`` to divide out of the spectra.

    Args:
        lmax: highest multipole.
        nside: HEALPix resolution of the maps (for the pixel window).
        beam_fwhm: Gaussian beam FWHM in radians (``hp.gauss_beam``, polarised).
        beam: tabulated beam transfer b_ell (``ell = 0..>=lmax``); exclusive with ``beam_fwhm``.
        pixwin: include the HEALPix pixel window of ``nside`` (``pixel_window``, computed
            from the pixel shapes: healpy's tables need a download).
    """
    import healpy as hp

    if beam_fwhm is not None and beam is not None:
        raise ValueError("beam, beam_fwhm: give at most one of them")
    t = np.ones(lmax + 1)
    if beam_fwhm is not None:
        if beam_fwhm < 0:
            raise ValueError("beam_fwhm: must be >= 0 (radians)")
        t *= hp.gauss_beam(beam_fwhm, lmax=lmax, pol=True)[:, 1] ** 2
    if beam is not None:
        beam = np.asarray(beam, dtype=np.float64)
        if beam.ndim != 1 or beam.size < lmax + 1:
            raise ValueError(f"beam: need a 1-D b_ell for ell = 0..{lmax}")
        if np.any(beam[2 : lmax + 1] <= 0):
            raise ValueError("beam: b_ell must be positive for ell >= 2")
        t *= beam[: lmax + 1] ** 2
    if pixwin:
        t *= pixel_window(nside, lmax) ** 2
    return t


def pseudo_spectra(
    qu_weighted: Float[np.ndarray, "... 2 pix"], lmax: int, iter: int = 3
) -> Float[np.ndarray, "... 3 ell"]:
    """EE, BB, EB pseudo-spectra of already-weighted Q/U maps (healpy ``anafast``)."""
    import healpy as hp

    lead = qu_weighted.shape[:-2]
    flat = qu_weighted.reshape((-1, 2, qu_weighted.shape[-1]))
    out = np.empty((flat.shape[0], 3, lmax + 1))
    zeros = np.zeros(flat.shape[-1])
    for i, (q, u) in enumerate(flat):
        cls = hp.anafast([zeros, q, u], lmax=lmax, iter=iter, pol=True)
        out[i] = cls[[1, 2, 4]]
    return out.reshape((*lead, 3, lmax + 1))

"""Amplitude templates of the polarised sky: PySM data when present, a synthetic Galaxy otherwise.

The classifier's simulations (section 2.4 and 4.1.1 of farsian2020_nn_foreground_recognition.md)
scale amplitude templates in frequency with the component SEDs of ``spec_likelihood``:

* thermal dust Q/U at 353 GHz (PySM d1 templates ``dust_{q,u}_new.fits``),
* synchrotron Q/U at 23 GHz (PySM s1 templates ``synch_{q,u}_new.fits``),
* AME total intensity at 30 GHz (PySM a1 benchmark output ``check3spinn_30p0_64.fits``); its
  polarisation is ``p_AME I (cos 2 gamma_d, sin 2 gamma_d)`` with the dust polarisation angle
  ``gamma_d = atan2(U_d, Q_d) / 2`` (PySM a2, section 2.3: 2% at the dust angle),
* Gaussian CMB Q/U realisations of the CAMB spectrum shipped with the PySM data.

Templates are stored in uK_CMB at their reference frequency (converted from PySM's uK_RJ with
``spec_likelihood.K_RJ_to_K_CMB``). Without PySM data, :func:`synthetic_templates` builds the
built-in synthetic Galaxy: Gaussian random Q/U fields with power-law angular spectra,
modulated by a Galactic-latitude profile, and a log-normal AME intensity correlated with the
dust polarised intensity. Maps are HEALPix RING, Galactic coordinates.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import Float

__all__ = [
    "SkyTemplates",
    "load_templates",
    "pixel_lonlat",
    "pysm_templates",
    "save_templates",
    "synthetic_templates",
]

DUST_NU0 = 353.0
SYNC_NU0 = 23.0
AME_NU0 = 30.0


def _check_nside(nside: int, name: str = "nside") -> int:
    if isinstance(nside, bool) or not isinstance(nside, int | np.integer):
        raise ValueError(f"{name} must be an integer power of 2, got {nside!r}")
    nside = int(nside)
    if nside < 1 or nside & (nside - 1):
        raise ValueError(f"{name} must be a positive power of 2, got {nside}")
    return nside


@dataclass(frozen=True, eq=False)
class SkyTemplates:
    """Amplitude templates of one sky, uK_CMB at each component's reference frequency.

    Attributes:
        nside: HEALPix resolution of the maps (RING ordering).
        dust_qu: dust Q, U at ``dust_nu0`` [uK_CMB], shape ``[2, pix]``.
        sync_qu: synchrotron Q, U at ``sync_nu0`` [uK_CMB], shape ``[2, pix]``.
        ame_i: AME total intensity at ``ame_nu0`` [uK_CMB], shape ``[pix]``.
        cmb_qu: CMB Q, U realisations [uK_CMB], shape ``[real, 2, pix]``.
        dust_nu0: dust reference frequency [GHz].
        sync_nu0: synchrotron reference frequency [GHz].
        ame_nu0: AME reference frequency [GHz].
        source: ``"pysm"`` or ``"synthetic"``.
    """

    nside: int
    dust_qu: Float[np.ndarray, "2 pix"]
    sync_qu: Float[np.ndarray, "2 pix"]
    ame_i: Float[np.ndarray, " pix"]
    cmb_qu: Float[np.ndarray, "real 2 pix"]
    dust_nu0: float = DUST_NU0
    sync_nu0: float = SYNC_NU0
    ame_nu0: float = AME_NU0
    source: str = "synthetic"

    def __post_init__(self) -> None:
        nside = _check_nside(self.nside)
        npix = 12 * nside**2
        shapes = {
            "dust_qu": (2, npix),
            "sync_qu": (2, npix),
            "ame_i": (npix,),
        }
        for name, shape in shapes.items():
            arr = np.asarray(getattr(self, name), dtype=np.float64)
            if arr.shape != shape:
                raise ValueError(
                    f"{name} must have shape {shape} for nside={nside}, got {arr.shape}"
                )
            object.__setattr__(self, name, arr)
        cmb = np.asarray(self.cmb_qu, dtype=np.float64)
        if cmb.ndim != 3 or cmb.shape[1:] != (2, npix) or cmb.shape[0] < 1:
            raise ValueError(f"cmb_qu must have shape [real, 2, {npix}], got {cmb.shape}")
        object.__setattr__(self, "cmb_qu", cmb)

    @property
    def npix(self) -> int:
        """Number of pixels."""
        return 12 * self.nside**2

    @property
    def dust_angle(self) -> Float[np.ndarray, " pix"]:
        """Dust polarisation angle ``atan2(U, Q) / 2`` [rad] (HEALPix/COSMO convention)."""
        return 0.5 * np.arctan2(self.dust_qu[1], self.dust_qu[0])


def pixel_lonlat(nside: int) -> tuple[Float[np.ndarray, " pix"], Float[np.ndarray, " pix"]]:
    """Galactic longitude and latitude [deg] of the RING pixel centres (no healpy needed).

    The closed-form HEALPix RING ``pix2ang`` of Gorski et al. 2005 (section 4), so that the
    test-map regions can be built on machines without healpy.

    Args:
        nside: HEALPix resolution.

    Returns:
        ``(lon, lat)`` in degrees, each of shape ``[12 nside^2]``; lon in [0, 360).
    """
    n = _check_nside(nside)
    npix = 12 * n * n
    ncap = 2 * n * (n - 1)
    p = np.arange(npix, dtype=np.int64)
    z = np.empty(npix)
    phi = np.empty(npix)
    north = p < ncap
    south = p >= npix - ncap
    belt = ~(north | south)
    # north polar cap
    pn = p[north]
    i = np.floor(0.5 * (1.0 + np.sqrt(1.0 + 2.0 * pn))).astype(np.int64)
    j = pn + 1 - 2 * i * (i - 1)
    z[north] = 1.0 - i**2 / (3.0 * n * n)
    phi[north] = (j - 0.5) * np.pi / (2.0 * i)
    # equatorial belt
    pb = p[belt] - ncap
    i = pb // (4 * n) + n
    j = pb % (4 * n) + 1
    fodd = 0.5 * (1 + (i + n) % 2)
    z[belt] = (2 * n - i) * 2.0 / (3.0 * n)
    phi[belt] = (j - fodd) * np.pi / (2.0 * n)
    # south polar cap
    ps = npix - p[south]
    i = np.floor(0.5 * (1.0 + np.sqrt(2.0 * ps - 1.0))).astype(np.int64)
    j = 4 * i + 1 - (ps - 2 * i * (i - 1))
    z[south] = -1.0 + i**2 / (3.0 * n * n)
    phi[south] = (j - 0.5) * np.pi / (2.0 * i)
    return np.degrees(phi) % 360.0, np.degrees(np.arcsin(np.clip(z, -1.0, 1.0)))


def _gaussian_alm(cl: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Complex Gaussian a_lm of spectrum ``cl`` in healpy's m-major ordering (lmax = len-1)."""
    import healpy as hp

    lmax = cl.shape[0] - 1
    ell, m = hp.Alm.getlm(lmax)
    re = rng.standard_normal(ell.shape[0])
    im = rng.standard_normal(ell.shape[0])
    alm = np.where(m == 0, re, (re + 1j * im) / np.sqrt(2.0))
    return alm * np.sqrt(cl[ell])


def _qu_field(ee: np.ndarray, bb: np.ndarray, nside: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian Q, U map [2, pix] of E/B spectra ``ee``, ``bb`` (C_ell, index = ell)."""
    import healpy as hp

    alm_e = _gaussian_alm(ee, rng)
    alm_b = _gaussian_alm(bb, rng)
    iqu = hp.alm2map([np.zeros_like(alm_e), alm_e, alm_b], nside, pol=True)
    return np.asarray(iqu[1:], dtype=np.float64)


def _power_law_cl(lmax: int, index: float) -> np.ndarray:
    """C_ell ∝ (ell / 80)^index for ell >= 2, zero monopole/dipole, unit-variance field."""
    ell = np.arange(lmax + 1, dtype=np.float64)
    cl = np.zeros(lmax + 1)
    cl[2:] = (ell[2:] / 80.0) ** index
    variance = np.sum((2 * ell + 1) * cl) / (4.0 * np.pi)
    return cl / variance


def _cmb_spectra(lmax: int, cls_file: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """E and B C_ell [uK_CMB^2] from a CAMB ``lenspotentialCls`` file, or an analytic stand-in.

    The CAMB file holds ``L, TT, EE, BB, TE, ...`` as ``D_ell = l(l+1) C_ell / 2 pi``. Without
    it, ``D_ell^EE = 0.03 + 0.9 (l/150)^2`` and ``D_ell^BB = 0.006 l/100`` uK^2 follow the
    Planck 2018 lensed spectra within a factor ~2 at ell < 200: the CMB is a sub-dominant
    nuisance at the frequencies where the classes differ.
    """
    ell = np.arange(lmax + 1, dtype=np.float64)
    if cls_file is not None:
        table = np.loadtxt(cls_file)
        d_ee = np.interp(ell, table[:, 0], table[:, 2], left=0.0, right=0.0)
        d_bb = np.interp(ell, table[:, 0], table[:, 3], left=0.0, right=0.0)
    else:
        d_ee = 0.03 + 0.9 * (ell / 150.0) ** 2
        d_bb = 0.006 * ell / 100.0
    factor = np.zeros(lmax + 1)
    factor[2:] = 2.0 * np.pi / (ell[2:] * (ell[2:] + 1.0))
    return d_ee * factor, d_bb * factor


def _latitude_profile(nside: int, boost: float, width: float) -> np.ndarray:
    """``1 + boost exp(-|sin b| / width)``: the Galactic plane is ``1 + boost`` times brighter."""
    _, lat = pixel_lonlat(nside)
    return 1.0 + boost * np.exp(-np.abs(np.sin(np.radians(lat))) / width)


def _rj_to_cmb(freq: float) -> float:
    from spec_likelihood import K_RJ_to_K_CMB

    return float(K_RJ_to_K_CMB(freq))


def synthetic_templates(nside: int = 64, seed: int = 0, n_cmb: int = 4) -> SkyTemplates:
    """The built-in synthetic Galaxy (no external data).

    Dust and synchrotron Q/U are Gaussian random fields with ``C_ell^{EE} = C_ell^{BB} ∝
    ell^-2.42`` (dust) and ``ell^-2.8`` (synchrotron), multiplied by a latitude profile
    (Galactic plane ~30x / ~8x brighter than the poles); high-latitude rms ~1.5 uK_RJ (dust at
    353 GHz) and ~10 uK_RJ (synchrotron at 23 GHz), the orders of magnitude of the PySM d1/s1
    templates. AME intensity at 30 GHz is log-normal, correlated with the dust polarised
    intensity, ~100 uK_RJ on average as PySM a1. CMB: Gaussian realisations of an analytic
    EE/BB spectrum (see ``_cmb_spectra``).

    Args:
        nside: HEALPix resolution (RING).
        seed: integer seed; same seed, same sky.
        n_cmb: number of CMB realisations.

    Returns:
        The templates, ``source="synthetic"``.
    """
    nside = _check_nside(nside)
    if n_cmb < 1:
        raise ValueError(f"n_cmb must be >= 1, got {n_cmb}")
    rng = np.random.default_rng(seed)
    lmax = 3 * nside - 1
    dust_cl = _power_law_cl(lmax, -2.42)
    sync_cl = _power_law_cl(lmax, -2.8)
    dust = 1.5 * _qu_field(dust_cl, dust_cl, nside, rng) * _latitude_profile(nside, 30.0, 0.12)
    sync = 10.0 * _qu_field(sync_cl, sync_cl, nside, rng) * _latitude_profile(nside, 8.0, 0.25)
    log_ame = 0.5 * _qu_field(dust_cl, dust_cl, nside, rng)[0]
    pol_dust = np.hypot(dust[0], dust[1])
    ame = 40.0 * np.exp(log_ame) * (1.0 + pol_dust / np.median(pol_dust))
    ee, bb = _cmb_spectra(lmax, None)
    cmb = np.stack([_qu_field(ee, bb, nside, rng) for _ in range(n_cmb)])
    return SkyTemplates(
        nside=nside,
        dust_qu=dust * _rj_to_cmb(DUST_NU0),
        sync_qu=sync * _rj_to_cmb(SYNC_NU0),
        ame_i=ame * _rj_to_cmb(AME_NU0),
        cmb_qu=cmb,
        source="synthetic",
    )


def _pysm_dirs(local_data: str | Path | None, benchmarks: str | Path | None) -> tuple[Path, Path]:
    local = local_data if local_data is not None else os.environ.get("PYSM_LOCAL_DATA")
    if local is None:
        raise ValueError(
            "local_data: pass the PySM data folder (e.g. ../shared/data/pysm_local_data_ns64) "
            "or set PYSM_LOCAL_DATA"
        )
    local = Path(local)
    bench = Path(benchmarks) if benchmarks is not None else local.parent / "pysm_benchmarks_ns64"
    needed = [
        local / "pysm_2" / f"{c}_{s}_new.fits" for c in ("dust", "synch") for s in ("q", "u")
    ] + [bench / "check3spinn_30p0_64.fits"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        raise ValueError(
            f"PySM template files missing: {missing}; point local_data at a PYSM_LOCAL_DATA "
            "folder with pysm_2/ templates and benchmarks at the PySM benchmark outputs"
        )
    return local, bench


def pysm_templates(
    nside: int = 64,
    seed: int = 0,
    n_cmb: int = 4,
    local_data: str | Path | None = None,
    benchmarks: str | Path | None = None,
) -> SkyTemplates:
    """Templates from PySM data: d1/s1 Q/U templates, a1 AME intensity, CAMB CMB spectrum.

    Args:
        nside: output resolution; the nside-64 files are ``healpy.ud_grade``-d to it.
        seed: seed of the CMB realisations.
        n_cmb: number of CMB realisations.
        local_data: a ``PYSM_LOCAL_DATA`` folder (default: the environment variable) holding
            ``pysm_2/{dust,synch}_{q,u}_new.fits`` [uK_RJ] and ``camb_lenspotentialCls.dat``.
        benchmarks: folder of the PySM benchmark outputs holding ``check3spinn_30p0_64.fits``
            (default: ``pysm_benchmarks_ns64`` beside ``local_data``).

    Returns:
        The templates, ``source="pysm"``.

    Raises:
        ValueError: no data folder given or files missing.
    """
    import healpy as hp

    nside = _check_nside(nside)
    local, bench = _pysm_dirs(local_data, benchmarks)

    def read(path: Path, field: int = 0) -> np.ndarray:
        # PySM FITS maps are big-endian float32
        m = np.asarray(hp.read_map(str(path), field=field), dtype=np.float64)
        src_nside = hp.npix2nside(m.shape[-1])
        return m if src_nside == nside else np.asarray(hp.ud_grade(m, nside), dtype=np.float64)

    dust = np.stack([read(local / "pysm_2" / f"dust_{s}_new.fits") for s in ("q", "u")])
    sync = np.stack([read(local / "pysm_2" / f"synch_{s}_new.fits") for s in ("q", "u")])
    ame = read(bench / "check3spinn_30p0_64.fits", field=0)
    cls_file = local / "pysm_2" / "camb_lenspotentialCls.dat"
    ee, bb = _cmb_spectra(3 * nside - 1, cls_file if cls_file.is_file() else None)
    rng = np.random.default_rng(seed)
    cmb = np.stack([_qu_field(ee, bb, nside, rng) for _ in range(n_cmb)])
    return SkyTemplates(
        nside=nside,
        dust_qu=dust * _rj_to_cmb(DUST_NU0),
        sync_qu=sync * _rj_to_cmb(SYNC_NU0),
        ame_i=ame * _rj_to_cmb(AME_NU0),
        cmb_qu=cmb,
        source="pysm",
    )


def save_templates(path: str | Path, templates: SkyTemplates) -> Path:
    """Write templates to an ``.npz`` file (float32), e.g. for machines without healpy.

    Args:
        path: destination file.
        templates: the templates.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        nside=templates.nside,
        dust_qu=templates.dust_qu.astype(np.float32),
        sync_qu=templates.sync_qu.astype(np.float32),
        ame_i=templates.ame_i.astype(np.float32),
        cmb_qu=templates.cmb_qu.astype(np.float32),
        nu0=np.array([templates.dust_nu0, templates.sync_nu0, templates.ame_nu0]),
        source=np.array(templates.source),
    )
    return path


def load_templates(path: str | Path) -> SkyTemplates:
    """Read templates written by :func:`save_templates`.

    Raises:
        ValueError: the file does not exist.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"path={str(path)!r}: no templates file (write one with save_templates)")
    with np.load(path) as f:
        nu0 = f["nu0"]
        return SkyTemplates(
            nside=int(f["nside"]),
            dust_qu=f["dust_qu"],
            sync_qu=f["sync_qu"],
            ame_i=f["ame_i"],
            cmb_qu=f["cmb_qu"],
            dust_nu0=float(nu0[0]),
            sync_nu0=float(nu0[1]),
            ame_nu0=float(nu0[2]),
            source=str(f["source"]),
        )

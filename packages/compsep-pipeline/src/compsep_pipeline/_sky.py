"""Sky simulation: frequency maps d[f, stokes(Q,U), pix] in uK_CMB (RING, Galactic).

Sources:

* ``synthetic`` (built-in, needs no data): Galactic dust and synchrotron Q/U amplitudes
  are Gaussian random fields with power-law spectra (C_ell ~ ell^-2.42 for dust,
  ell^-3 for synchrotron, EE = 2 BB) modulated by a Galactic-latitude profile
  ``floor + exp(-|sin b| / h)``; beta_d, T_d and beta_s are smooth Gaussian fields
  around 1.54, 20 K and -3 with scatter 0.1, 2 K and 0.1. Frequency maps are
  ``d = A(beta(pix)) s`` (eq. 1 of kabalan2025_clustered_compsep.md) with the mixing
  matrix of spec-likelihood (K_CMB units, dust at 150 GHz, synchrotron at 20 GHz).
* ``validation``: the synthetic sky whose spectral parameters are constant in known
  spherical K-means patches (K_bd, K_Td, K_bs) of a region (section V.A, Table I).
* ``pysm``: ``pysm3.Sky`` presets (c1d1s1, c1d0s0, d1s1, ...) at the instrument
  frequencies with delta or top-hat bands, converted from uK_RJ to uK_CMB with
  spec-likelihood's band-integrated unit conversion.

The CMB is a Gaussian realisation of lensed-scalar + r x tensor spectra (A_lens scales
the lensing BB), from CAMB (bb-residuals templates) or a spectra file.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import healpy as hp
import numpy as np
from jaxtyping import Bool, Float

from ._cmb import cmb_polarization_spectra
from ._fields import latitude_profile, polarization_field, power_law_cl, scalar_field
from ._patches import PARAMETER_NAMES, KMeansPatcher
from ._x64 import ensure_x64

SOURCES = ("synthetic", "validation", "pysm")
"""Sky sources understood by :func:`simulate_sky`."""


@dataclass(frozen=True)
class GalaxyModel:
    """Parameters of the built-in synthetic Galaxy.

    Amplitudes are polarised Q/U standard deviations on the Galactic plane in uK_CMB at
    the reference frequencies (dust 150 GHz, synchrotron 20 GHz); ``floor`` is the
    relative amplitude left at the poles. Slopes are C_ell exponents.
    """

    dust_amplitude: float = 30.0
    dust_scale_height: float = 0.15
    dust_floor: float = 0.03
    dust_slope: float = -2.42
    sync_amplitude: float = 60.0
    sync_scale_height: float = 0.3
    sync_floor: float = 0.15
    sync_slope: float = -3.0
    beta_d_mean: float = 1.54
    beta_d_sigma: float = 0.1
    T_d_mean: float = 20.0
    T_d_sigma: float = 2.0
    beta_s_mean: float = -3.0
    beta_s_sigma: float = 0.1
    parameter_slope: float = -2.5

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not np.isfinite(value):
                raise ValueError(f"galaxy.{f.name} must be finite, got {value}")
            if f.name.endswith(("_amplitude", "_sigma", "_floor")) and value < 0:
                raise ValueError(f"galaxy.{f.name} must be >= 0, got {value}")
            if f.name.endswith("_scale_height") and value <= 0:
                raise ValueError(f"galaxy.{f.name} must be > 0, got {value}")

    def mean(self, name: str) -> float:
        """Mean of spectral parameter ``name``."""
        return float(getattr(self, f"{name}_mean"))

    def sigma(self, name: str) -> float:
        """Scatter of spectral parameter ``name``."""
        return float(getattr(self, f"{name}_sigma"))


@dataclass(frozen=True, eq=False)
class SkyMaps:
    """A simulated sky at the instrument frequencies.

    Attributes:
        nside: HEALPix resolution (RING ordering).
        frequencies: band centres [GHz], ``[freq]``.
        cmb: CMB Q/U [uK_CMB], ``[2, pix]``.
        foregrounds: foreground-only frequency maps [uK_CMB], ``[freq, 2, pix]``.
        dust: dust Q/U at the dust reference frequency [uK_CMB] ``[2, pix]``, before any
            beam (used to build the built-in Galactic masks).
        parameters: true spectral parameter maps ``{beta_d, T_d, beta_s} -> [pix]``.
        source: ``synthetic``, ``validation`` or ``pysm``.
        info: JSON-serialisable description (seed, r, A_lens, preset, true layout...).
        truth_mask: validation sky only: the region ``[pix]`` (bool) whose parameters are
            constant in the true K-means patches ``info["true_counts"]``.
    """

    nside: int
    frequencies: Float[np.ndarray, " freq"]
    cmb: Float[np.ndarray, "2 pix"]
    foregrounds: Float[np.ndarray, "freq 2 pix"]
    dust: Float[np.ndarray, "2 pix"]
    parameters: Mapping[str, np.ndarray]
    source: str
    info: Mapping[str, object] = field(default_factory=dict)
    truth_mask: np.ndarray | None = None

    def __post_init__(self) -> None:
        npix = hp.nside2npix(self.nside)
        nf = len(self.frequencies)
        if self.cmb.shape != (2, npix) or self.dust.shape != (2, npix):
            raise ValueError(f"cmb and dust must have shape (2, {npix})")
        if self.foregrounds.shape != (nf, 2, npix):
            raise ValueError(f"foregrounds must have shape ({nf}, 2, {npix})")

    @property
    def signal(self) -> Float[np.ndarray, "freq 2 pix"]:
        """CMB + foregrounds at every frequency [uK_CMB] (CMB is 1 in K_CMB units)."""
        return self.foregrounds + self.cmb[None]

    def save(self, path: str | Path) -> Path:
        """Write the sky to one ``.npz`` file (atomically); see :meth:`load`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp.npz")
        np.savez(
            tmp,
            nside=self.nside,
            frequencies=self.frequencies,
            cmb=self.cmb,
            foregrounds=self.foregrounds,
            dust=self.dust,
            source=self.source,
            info=json.dumps(dict(self.info)),
            **({} if self.truth_mask is None else {"truth_mask": self.truth_mask}),
            **{f"param_{k}": v for k, v in self.parameters.items()},
        )
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SkyMaps:
        """Read a sky written by :meth:`save` (``compsep simulate``)."""
        path = Path(path)
        if not path.is_file():
            raise ValueError(
                f"sky file {str(path)!r} does not exist; make one with compsep simulate"
            )
        with np.load(path) as d:
            missing = {"nside", "frequencies", "cmb", "foregrounds", "dust"} - set(d.files)
            if missing:
                raise ValueError(
                    f"sky file {str(path)!r} lacks {sorted(missing)}; not a SkyMaps file"
                )
            return cls(
                nside=int(d["nside"]),
                frequencies=np.asarray(d["frequencies"], dtype=np.float64),
                cmb=np.asarray(d["cmb"], dtype=np.float64),
                foregrounds=np.asarray(d["foregrounds"], dtype=np.float64),
                dust=np.asarray(d["dust"], dtype=np.float64),
                parameters={
                    k.removeprefix("param_"): np.asarray(d[k], dtype=np.float64)
                    for k in d.files
                    if k.startswith("param_")
                },
                source=str(d["source"]),
                info=json.loads(str(d["info"])),
                truth_mask=np.asarray(d["truth_mask"], dtype=bool)
                if "truth_mask" in d.files
                else None,
            )


def _unit_field(nside: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian scalar field with C_ell ~ ell^slope."""
    g = scalar_field(nside, power_law_cl(3 * nside - 1, slope), rng)
    return (g - g.mean()) / g.std()


def _unit_qu(nside: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Q/U field with EE = 2 BB ~ ell^slope, scaled to unit rms per Stokes map."""
    cl = power_law_cl(3 * nside - 1, slope)
    qu = polarization_field(nside, 2.0 * cl, cl, rng)
    return qu / np.sqrt(np.mean(qu**2))


def _parameter_bounds(name: str) -> tuple[float, float]:
    import spec_likelihood

    spec = spec_likelihood.PARAMETERS[name]
    return float(spec.lower), float(spec.upper)


def synthetic_parameters(
    nside: int, galaxy: GalaxyModel, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Smooth spectral-parameter maps: mean + sigma x unit Gaussian field (C_ell ~ ell^-2.5).

    Values are clipped inside the physical boxes of ``spec_likelihood.PARAMETERS``.
    """
    out = {}
    for name in PARAMETER_NAMES:
        lo, hi = _parameter_bounds(name)
        values = galaxy.mean(name) + galaxy.sigma(name) * _unit_field(
            nside, galaxy.parameter_slope, rng
        )
        span = hi - lo
        out[name] = np.clip(values, lo + 1e-3 * span, hi - 1e-3 * span)
    return out


def validation_parameters(
    nside: int,
    mask: Bool[np.ndarray, " pix"],
    counts: Sequence[int],
    galaxy: GalaxyModel,
    rng: np.random.Generator,
    kmeans_seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Parameters constant in the K-means patches (K_bd, K_Td, K_bs) of a region.

    Each patch draws mean + sigma x N(0, 1) (clipped to the physical box); pixels outside
    the region hold the mean. The patches are those the campaign's K-means makes for
    the same region, K and seed (see ``KMeansPatcher``).

    Returns:
        ``(parameter maps [pix], true layout {name: labels over region pixels})``.
    """
    patcher = KMeansPatcher(nside, mask, seed=kmeans_seed)
    layout = patcher.layout(counts)
    npix = hp.nside2npix(nside)
    maps = {}
    for name in PARAMETER_NAMES:
        lo, hi = _parameter_bounds(name)
        labels = layout[name]
        values = galaxy.mean(name) + galaxy.sigma(name) * rng.standard_normal(labels.max() + 1)
        span = hi - lo
        values = np.clip(values, lo + 1e-3 * span, hi - 1e-3 * span)
        full = np.full(npix, galaxy.mean(name))
        full[patcher.indices] = values[labels]
        maps[name] = full
    return maps, layout


def synthetic_amplitudes(
    nside: int, galaxy: GalaxyModel, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Dust (150 GHz) and synchrotron (20 GHz) Q/U amplitudes [uK_CMB], ``([2, pix], [2, pix])``."""
    dust = (
        galaxy.dust_amplitude
        * latitude_profile(nside, galaxy.dust_scale_height, galaxy.dust_floor)
        * _unit_qu(nside, galaxy.dust_slope, rng)
    )
    sync = (
        galaxy.sync_amplitude
        * latitude_profile(nside, galaxy.sync_scale_height, galaxy.sync_floor)
        * _unit_qu(nside, galaxy.sync_slope, rng)
    )
    return dust, sync


def cmb_realisation(
    nside: int,
    r: float,
    a_lens: float,
    rng: np.random.Generator,
    cls_file: str | Path | None = None,
) -> Float[np.ndarray, "2 pix"]:
    """Gaussian CMB Q/U [uK_CMB] with EE and BB = A_lens x lensing + r x tensor."""
    ee, bb = cmb_polarization_spectra(3 * nside - 1, r=r, a_lens=a_lens, cls_file=cls_file)
    return polarization_field(nside, ee, bb, rng)


def foreground_frequency_maps(
    frequencies: Float[np.ndarray, " freq"],
    dust: Float[np.ndarray, "2 pix"],
    sync: Float[np.ndarray, "2 pix"],
    parameters: Mapping[str, np.ndarray],
) -> Float[np.ndarray, "freq 2 pix"]:
    """``A_fg(beta(pix)) s_fg``: dust (150 GHz) + synchrotron (20 GHz) at every band [uK_CMB]."""
    import spec_likelihood as sl

    ensure_x64()
    comps = [sl.Dust(nu0=150.0), sl.Synchrotron(nu0=20.0)]
    params = {k: np.asarray(parameters[k], dtype=np.float64) for k in PARAMETER_NAMES}
    a = np.asarray(sl.mixing_matrix(comps, np.asarray(frequencies, np.float64), params))
    amps = np.stack([dust, sync])  # [comp, stokes, pix]
    return np.einsum("pfc,csp->fsp", a, amps)


def smooth_qu(qu: Float[np.ndarray, "... 2 pix"], fwhm_arcmin: float) -> np.ndarray:
    """Smooth Q/U maps with a Gaussian beam (spin-2 harmonic transform)."""
    qu = np.asarray(qu, dtype=np.float64)
    flat = qu.reshape(-1, 2, qu.shape[-1])
    out = np.empty_like(flat)
    fwhm = np.radians(fwhm_arcmin / 60.0)
    for i, m in enumerate(flat):
        iqu = hp.smoothing(np.stack([np.zeros_like(m[0]), m[0], m[1]]), fwhm=fwhm, pol=True)
        out[i] = iqu[1:]
    return out.reshape(qu.shape)


def simulate_synthetic(
    nside: int,
    frequencies: Sequence[float],
    *,
    seed: int = 0,
    r: float = 0.0,
    a_lens: float = 1.0,
    galaxy: GalaxyModel | None = None,
    validation_mask: Bool[np.ndarray, " pix"] | None = None,
    validation_counts: Sequence[int] = (100, 15, 5),
    kmeans_seed: int = 0,
    beam_fwhm_arcmin: float = 0.0,
    cls_file: str | Path | None = None,
) -> SkyMaps:
    """The built-in synthetic sky, or the validation sky when ``validation_mask`` is given.

    Args:
        nside: HEALPix resolution.
        frequencies: band centres [GHz] (delta bands).
        seed: seed of every random field (amplitudes, parameters, CMB).
        r: tensor-to-scalar ratio of the CMB.
        a_lens: lensing BB amplitude.
        galaxy: synthetic Galaxy parameters (defaults: :class:`GalaxyModel`).
        validation_mask: region whose parameters become constant in K-means patches.
        validation_counts: true (K_bd, K_Td, K_bs) of the validation sky.
        kmeans_seed: K-means seed of the true patches (the campaign must use the same).
        beam_fwhm_arcmin: common Gaussian beam applied to all maps (0: none).
        cls_file: optional CMB spectra file (see ``cmb_polarization_spectra``).

    Returns:
        :class:`SkyMaps`.
    """
    if not hp.isnsideok(nside):
        raise ValueError(f"nside must be a power of two, got {nside}")
    galaxy = galaxy or GalaxyModel()
    freqs = np.asarray(frequencies, dtype=np.float64)
    rng_amp, rng_par, rng_cmb = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
    )
    dust, sync = synthetic_amplitudes(nside, galaxy, rng_amp)
    info: dict[str, object] = {"seed": seed, "r": r, "A_lens": a_lens}
    if validation_mask is None:
        params = synthetic_parameters(nside, galaxy, rng_par)
        source = "synthetic"
    else:
        params, _ = validation_parameters(
            nside, validation_mask, validation_counts, galaxy, rng_par, kmeans_seed
        )
        source = "validation"
        info["true_counts"] = [int(k) for k in validation_counts]
        info["kmeans_seed"] = kmeans_seed
    cmb = cmb_realisation(nside, r, a_lens, rng_cmb, cls_file)
    fg = foreground_frequency_maps(freqs, dust, sync, params)
    if beam_fwhm_arcmin > 0:
        cmb, fg = (smooth_qu(m, beam_fwhm_arcmin) for m in (cmb, fg))
        info["beam_fwhm_arcmin"] = beam_fwhm_arcmin
    info["galaxy"] = dataclasses.asdict(galaxy)
    truth = None if validation_mask is None else np.asarray(validation_mask, dtype=bool)
    return SkyMaps(nside, freqs, cmb, fg, dust, params, source, info, truth)


def _split_preset(preset: str) -> list[str]:
    """``"c1d1s1"`` -> ``["c1", "d1", "s1"]``."""
    parts, i = [], 0
    while i < len(preset):
        j = i + 1
        while j < len(preset) and preset[j].isdigit():
            j += 1
        if j == i + 1:
            raise ValueError(f"pysm preset {preset!r} must look like c1d1s1 (letters + numbers)")
        parts.append(preset[i:j])
        i = j
    return parts


def simulate_pysm(
    nside: int,
    frequencies: Sequence[float],
    preset: str = "c1d1s1",
    *,
    bandwidths: Sequence[float] | None = None,
    beam_fwhm_arcmin: float = 0.0,
) -> SkyMaps:
    """PySM 3 sky at the instrument frequencies, in uK_CMB.

    Needs the PySM data: ``PYSM_LOCAL_DATA`` pointing to a folder holding the templates
    (``../shared/data/pysm_local_data_ns64`` makes nside 64 run offline).

    Args:
        nside: HEALPix resolution.
        frequencies: band centres [GHz].
        preset: PySM preset strings concatenated (``c1d1s1``, ``c1d0s0``, ``d1s1``).
        bandwidths: top-hat full widths [GHz] per band; ``None`` for delta bands.
        beam_fwhm_arcmin: common Gaussian beam (0: none).

    Returns:
        :class:`SkyMaps` with the dust/synchrotron parameter templates of the preset.
    """
    import pysm3
    import pysm3.units as u
    import spec_likelihood as sl

    if not os.environ.get("PYSM_LOCAL_DATA"):
        raise ValueError(
            "the pysm source needs PYSM_LOCAL_DATA set to a PySM data folder "
            "(e.g. ../shared/data/pysm_local_data_ns64 for nside 64); or use source = synthetic"
        )
    models = _split_preset(preset)
    fg_models = [m for m in models if not m.startswith("c")]
    cmb_models = [m for m in models if m.startswith("c")]
    freqs = np.asarray(frequencies, dtype=np.float64)
    npix = hp.nside2npix(nside)
    fg = np.zeros((freqs.size, 2, npix))
    cmb = np.zeros((2, npix))
    params = {}
    sky_fg = pysm3.Sky(nside=nside, preset_strings=fg_models) if fg_models else None
    sky_cmb = pysm3.Sky(nside=nside, preset_strings=cmb_models) if cmb_models else None
    if bandwidths is not None:
        widths = np.asarray(bandwidths, dtype=np.float64)
        # Flat transmission in intensity sampled on 21 nodes; pysm3 normalises the weights.
        nodes = freqs[:, None] + widths[:, None] * np.linspace(-0.5, 0.5, 21)[None]
        weights = np.ones_like(nodes)
    to_cmb = np.asarray(
        sl.unit_conversion(freqs, "uK_RJ", "uK_CMB", None if bandwidths is None else bandwidths)
    )

    def emission(sky, i):
        if bandwidths is None:
            m = sky.get_emission(freqs[i] * u.GHz)
        else:
            m = sky.get_emission(nodes[i] * u.GHz, weights[i])
        return np.asarray(m.to_value(u.uK_RJ), dtype=np.float64)[1:] * to_cmb[i]

    for i in range(freqs.size):
        if sky_fg is not None:
            fg[i] = emission(sky_fg, i)
    if sky_cmb is not None:
        # The CMB is achromatic in K_CMB: one band gives it (band-integration included).
        cmb = emission(sky_cmb, 0)
    dust = np.zeros((2, npix))
    if sky_fg is not None:
        dust_models = [m for m in fg_models if m.startswith("d")]
        if dust_models:
            sky_d = pysm3.Sky(nside=nside, preset_strings=dust_models)
            conv = float(sl.unit_conversion(np.array([150.0]), "uK_RJ", "uK_CMB")[0])
            dust = np.asarray(sky_d.get_emission(150.0 * u.GHz).to_value(u.uK_RJ))[1:] * conv
        for comp in sky_fg.components:
            for attr, name in (
                ("mbb_index", "beta_d"),
                ("mbb_temperature", "T_d"),
                ("pl_index", "beta_s"),
            ):
                if hasattr(comp, attr):
                    value = getattr(comp, attr)
                    value = np.asarray(getattr(value, "value", value), dtype=np.float64)
                    params[name] = np.broadcast_to(value, (npix,)).copy()
    if beam_fwhm_arcmin > 0:
        cmb, fg = (smooth_qu(m, beam_fwhm_arcmin) for m in (cmb, fg))
    info = {"preset": preset, "bandwidths": None if bandwidths is None else list(bandwidths)}
    if beam_fwhm_arcmin > 0:
        info["beam_fwhm_arcmin"] = beam_fwhm_arcmin
    return SkyMaps(nside, freqs, cmb, fg, dust, params, "pysm", info)

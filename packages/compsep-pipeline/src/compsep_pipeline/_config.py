"""Campaign configuration: TOML files <-> frozen dataclasses, validated with clear errors.

Every key has a default, so an empty file is the built-in default campaign: a
synthetic sky at nside 16, one region, a small (K_bd, K_Td, K_bs) grid and a few noise
realisations, sized to run on a bare 2-core CPU in minutes. Unknown keys and values of
the wrong type or range raise ``ValueError`` naming the key (``[grid] K_bd``) and the fix.
"""

from __future__ import annotations

import dataclasses
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._patches import PTEP_MULTIRES
from ._sky import SOURCES, GalaxyModel

SELECTION_METRICS = ("cmb_variance", "cmb_noise_variance", "nll", "cmb_mse", "r_plus_sigma")
"""Grid selection metrics (see ``layout_metrics``); r + sigma(r) is the 2026 paper's."""


@dataclass(frozen=True)
class SkyConfig:
    """``[sky]``: what is observed.

    ``source`` is ``synthetic`` (built-in Galaxy), ``validation`` (parameters constant in
    the K-means patches ``true_counts`` of ``validation_region``), ``pysm`` (``preset``,
    needs ``PYSM_LOCAL_DATA``) or ``file`` (a sky ``.npz`` from ``compsep simulate``).
    """

    source: str = "synthetic"
    nside: int = 16
    seed: int = 0
    r: float = 0.0
    A_lens: float = 1.0
    preset: str = "c1d1s1"
    bandpass: str = "delta"
    bandwidth_fraction: float = 0.3
    beam_fwhm_arcmin: float = 0.0
    file: str = ""
    cls_file: str = ""
    validation_region: str = "GAL020"
    true_counts: tuple[int, int, int] = (100, 15, 5)
    galaxy: GalaxyModel = field(default_factory=GalaxyModel)

    def __post_init__(self) -> None:
        _choice("sky", "source", self.source, (*SOURCES, "file"))
        _choice("sky", "bandpass", self.bandpass, ("delta", "tophat"))
        if self.nside < 1 or self.nside & (self.nside - 1):
            raise ValueError(
                f"[sky] nside must be a power of two (8, 16, 32, 64...), got {self.nside}"
            )
        if self.source == "file" and not self.file:
            raise ValueError("[sky] source = 'file' needs [sky] file = 'path/to/sky.npz'")
        for key in ("r", "A_lens", "beam_fwhm_arcmin"):
            if getattr(self, key) < 0:
                raise ValueError(f"[sky] {key} must be >= 0, got {getattr(self, key)}")
        if not 0 < self.bandwidth_fraction < 2:
            raise ValueError(
                f"[sky] bandwidth_fraction must be in (0, 2), got {self.bandwidth_fraction}"
            )
        if len(self.true_counts) != 3 or min(self.true_counts) < 1:
            raise ValueError(
                f"[sky] true_counts must be three patch counts >= 1 (K_bd, K_Td, K_bs), "
                f"got {self.true_counts}"
            )


@dataclass(frozen=True)
class InstrumentConfig:
    """``[instrument]``: a spec-likelihood preset name or a CSV table (``file``)."""

    preset: str = "litebird_ptep"
    file: str = ""

    def __post_init__(self) -> None:
        _choice("instrument", "preset", self.preset, ("litebird_ptep", "litebird_ptep_channels"))


@dataclass(frozen=True)
class NoiseConfig:
    """``[noise]``: white noise realisations at the instrument depths.

    ``held_out = true`` fits the compared layouts (the selected K-means one, multi-resolution
    and single patch) on ``n_realisations`` fresh realisations, independent of those the
    grid selected on: the selection is cross-validated, so the reported r is not the minimum
    over the very noise it was tuned on (the referee's point on the 2026 paper).
    """

    n_realisations: int = 6
    seed: int = 1234
    held_out: bool = False

    def __post_init__(self) -> None:
        if self.n_realisations < 2:
            raise ValueError(
                f"[noise] n_realisations must be >= 2 (the CMB variance of eq. 9 is a variance "
                f"over realisations), got {self.n_realisations}"
            )


@dataclass(frozen=True)
class RegionsConfig:
    """``[regions]``: masks and the regions analysed.

    ``mask_file`` (npz/FITS, e.g. the Planck GAL masks) is resampled to the run's nside;
    empty means built-in masks thresholding the sky's smoothed dust intensity at the sky
    fraction in the name (GAL020 -> 20%). Region names: ``GAL020``, ``GAL040-GAL020``,
    ``GAL020_U``, ``GAL060-GAL040_L``.
    """

    mask_file: str = ""
    names: tuple[str, ...] = ("GAL020",)

    def __post_init__(self) -> None:
        if not self.names:
            raise ValueError("[regions] names must list at least one region, e.g. ['GAL020']")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"[regions] names has duplicates: {list(self.names)}")


@dataclass(frozen=True)
class GridConfig:
    """``[grid]``: the (K_bd, K_Td, K_bs) search space and the selection metric.

    ``batch`` configurations are fitted per vmapped call (0: 16 on a GPU, 1 on a CPU); every
    layout is padded to the grid's largest patch counts, so the fit compiles once per
    tuple-count bucket, not once per configuration. ``r_iter`` is the number of healpy
    ``map2alm`` Jacobi iterations of the per-configuration spectra behind ``with_r`` (the
    compared layouts' spectra always use 3): 0 makes them ~5x cheaper on a CPU.
    ``gtol`` and ``rtol``: screening tolerances of the grid's fits (0: those of ``[fit]``).
    Looser ones stop the slowest fits of near-per-pixel layouts early, where -log L still
    creeps down along one weakly constrained direction; the compared layouts (the selected
    one, multi-resolution, single patch) are always refitted with ``[fit]``'s.
    ``compilation_cache``: keep JAX compilations in ``<run folder>/jax_cache``, so the
    regions of one pixel bucket (and a resumed run) reuse the first region's programs
    (unless a cache directory is already configured, e.g. ``JAX_COMPILATION_CACHE_DIR``).
    ``warm_start``: the grid's fits start at the region's single-patch optimum (one fit
    first, the mean over realisations) instead of the default initial values: the same
    optima (to the fits' tolerances), in fewer Newton iterations where the region's
    parameters are far from the defaults (H200, Table III sample, fits: GAL020_L -16%,
    GAL020_U +3%), so it is off by default. The compared layouts always start from the
    defaults.
    """

    K_bd: tuple[int, ...] = (1, 4, 8, 16)
    K_Td: tuple[int, ...] = (1, 4)
    K_bs: tuple[int, ...] = (1, 4)
    kmeans_seed: int = 0
    kmeans_n_init: int = 1
    selection: str = "cmb_variance"
    with_r: bool = False
    r_iter: int = 3
    batch: int = 0
    gtol: float = 0.0
    rtol: float = 0.0
    compilation_cache: bool = True
    warm_start: bool = False

    def __post_init__(self) -> None:
        for key in ("K_bd", "K_Td", "K_bs"):
            values = getattr(self, key)
            if not values:
                raise ValueError(f"[grid] {key} must list at least one patch count")
            if min(values) < 1:
                raise ValueError(f"[grid] {key} patch counts must be >= 1, got {list(values)}")
            if len(set(values)) != len(values):
                raise ValueError(f"[grid] {key} has duplicate patch counts: {list(values)}")
        _choice("grid", "selection", self.selection, SELECTION_METRICS)
        if self.selection == "r_plus_sigma" and not self.with_r:
            raise ValueError("[grid] selection = 'r_plus_sigma' needs [grid] with_r = true")
        if self.kmeans_n_init < 1:
            raise ValueError(f"[grid] kmeans_n_init must be >= 1, got {self.kmeans_n_init}")
        if isinstance(self.r_iter, bool) or not isinstance(self.r_iter, int) or self.r_iter < 0:
            raise ValueError(
                f"[grid] r_iter must be an integer >= 0 (map2alm iterations), got {self.r_iter!r}"
            )
        if self.batch < 0:
            raise ValueError(
                f"[grid] batch must be >= 0 configurations per fit call (0: automatic), "
                f"got {self.batch}"
            )
        for key in ("gtol", "rtol"):
            value = getattr(self, key)
            if not value >= 0 or value >= 1:
                raise ValueError(
                    f"[grid] {key} must be in [0, 1) (0: the [fit] {key}), got {value!r}"
                )


@dataclass(frozen=True)
class FitConfig:
    """``[fit]``: spectral-likelihood optimiser settings (spec-likelihood ``fit_likelihood``).

    ``gtol`` bounds the curvature-scaled projected gradient, ``rtol`` the predicted relative
    decrease of -log L; ``n_starts > 1`` adds random starts inside the physical box;
    ``hessian`` picks the curvature of the Newton steps (``hybrid``: Gauss-Newton, then
    exact near the optimum; ``gauss-newton``; ``exact``). ``compact_after``: the noise
    realisations of a layout are fitted side by side until at most ``compact_size`` of them
    (default: an eighth of the realisations) are still running, or for ``compact_after``
    Newton iterations if that comes first; the fits still running then continue
    ``compact_size`` at a time, so that the batch does not wait for its slowest fit
    (spec-likelihood ``fit_likelihood_batch``; same fits); used with one start and at least
    32 realisations, 0 disables it.
    """

    max_iter: int = 200
    gtol: float = 1e-6
    rtol: float = 1e-15
    n_starts: int = 1
    hessian: str = "hybrid"
    compact_after: int = 16
    compact_size: int = 0

    def __post_init__(self) -> None:
        if self.max_iter < 1:
            raise ValueError(f"[fit] max_iter must be >= 1, got {self.max_iter}")
        for key in ("gtol", "rtol"):
            if not getattr(self, key) > 0:
                raise ValueError(f"[fit] {key} must be > 0, got {getattr(self, key)}")
        if self.n_starts < 1:
            raise ValueError(f"[fit] n_starts must be >= 1, got {self.n_starts}")
        if self.compact_after < 0:
            raise ValueError(
                "[fit] compact_after must be >= 0 (0 disables compaction), "
                f"got {self.compact_after}"
            )
        if self.compact_size < 0:
            raise ValueError(
                f"[fit] compact_size must be >= 0 (0: an eighth of the realisations), "
                f"got {self.compact_size}"
            )
        _choice("fit", "hessian", self.hessian, ("hybrid", "gauss-newton", "exact"))


@dataclass(frozen=True)
class ComparisonConfig:
    """``[comparison]``: layouts compared with the selected K-means one, and the r fit.

    ``multires`` maps a mask name to Table IV nsides (beta_d, T_d, beta_s); a region uses
    the row of its outermost mask. ``methods`` are the compared layouts: ``kmeans``
    (grid-selected), ``multires`` (Table IV) and ``single`` (one patch). ``ell_max = 0``
    means 2 nside.
    """

    multires: Mapping[str, tuple[int, int, int]] = field(
        default_factory=lambda: dict(PTEP_MULTIRES)
    )
    methods: tuple[str, ...] = ("kmeans", "multires", "single")
    ell_min: int = 2
    ell_max: int = 0

    def __post_init__(self) -> None:
        for name, ns in self.multires.items():
            if len(ns) != 3 or any(n < 0 or (n & (n - 1)) for n in ns):
                raise ValueError(
                    f"[comparison.multires] {name} must be three nsides (0 or powers of two), "
                    f"got {list(ns)}"
                )
        if not self.methods or len(set(self.methods)) != len(self.methods):
            raise ValueError(
                f"[comparison] methods must list distinct methods, got {list(self.methods)}"
            )
        for m in self.methods:
            _choice("comparison", "methods", m, ("kmeans", "multires", "single"))
        if self.ell_min < 2:
            raise ValueError(f"[comparison] ell_min must be >= 2, got {self.ell_min}")
        if self.ell_max and self.ell_max <= self.ell_min:
            raise ValueError(
                f"[comparison] ell_max ({self.ell_max}) must exceed ell_min ({self.ell_min}), "
                "or be 0 for 2 nside"
            )


@dataclass(frozen=True)
class CampaignConfig:
    """A whole campaign (one TOML file)."""

    name: str = "default"
    sky: SkyConfig = field(default_factory=SkyConfig)
    instrument: InstrumentConfig = field(default_factory=InstrumentConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    comparison: ComparisonConfig = field(default_factory=ComparisonConfig)

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"name must be a non-empty string without '/', got {self.name!r}")
        lmax = 3 * self.sky.nside - 1
        if self.comparison.ell_max > lmax:
            raise ValueError(
                f"[comparison] ell_max ({self.comparison.ell_max}) exceeds 3 nside - 1 = {lmax}"
            )

    @property
    def ell_range(self) -> tuple[int, int]:
        """Multipole range of the r likelihood."""
        return self.comparison.ell_min, self.comparison.ell_max or 2 * self.sky.nside

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (TOML-serialisable) of every setting, defaults included."""
        return _to_plain(self)

    def to_toml(self) -> str:
        """The configuration as TOML text (round-trips through :func:`config_from_toml`)."""
        import tomli_w

        return tomli_w.dumps(self.to_dict())

    def replace(self, **sections: Mapping[str, Any] | str) -> CampaignConfig:
        """A copy with some keys changed, e.g. ``cfg.replace(sky={"nside": 8})``."""
        data = self.to_dict()
        for key, value in sections.items():
            if isinstance(value, Mapping):
                data.setdefault(key, {}).update(value)
            else:
                data[key] = value
        return config_from_dict(data)


def _choice(section: str, key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"[{section}] {key} = {value!r} is not one of {list(allowed)}")


def _to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_to_plain(v) for v in obj]
    return obj


def _convert(section: str, key: str, annotation: Any, value: Any) -> Any:
    """Check and convert one TOML value to the dataclass field type."""
    where = f"[{section}] {key}" if section else key
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a table, got {value!r}")
        return _build(annotation, value, f"{section}.{key}" if section else key)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where} must be true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where} must be an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{where} must be a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{where} must be a list, got {value!r}")
        args = typing.get_args(annotation)
        item = args[0]
        if len(args) > 1 and args[1] is not Ellipsis and len(value) != len(args):
            raise ValueError(f"{where} must have {len(args)} entries, got {list(value)}")
        return tuple(_convert(section, key, item, v) for v in value)
    if origin in (Mapping, dict) or annotation is Mapping:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where} must be a table, got {value!r}")
        _, vtype = typing.get_args(annotation)
        return {str(k): _convert(section, f"{key}.{k}", vtype, v) for k, v in value.items()}
    if isinstance(annotation, types.UnionType):
        raise TypeError(f"unsupported union annotation for {where}")
    return value


def _build(cls: type, data: Mapping[str, Any], section: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = f"[{section}]" if section else "top level"
        raise ValueError(
            f"unknown key(s) {unknown} in {where}; known keys: {names} "
            "(see `compsep config show` for the full default file)"
        )
    kwargs = {k: _convert(section, k, hints[k], v) for k, v in data.items()}
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> CampaignConfig:
    """Build and validate a :class:`CampaignConfig` from nested dicts (TOML tables)."""
    return _build(CampaignConfig, data, "")


def config_from_toml(text: str) -> CampaignConfig:
    """Parse TOML text into a validated :class:`CampaignConfig`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ValueError(f"invalid TOML: {err}") from err
    return config_from_dict(data)


def load_config(path: str | Path) -> CampaignConfig:
    """Read a campaign TOML file (missing keys take their defaults)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(
            f"config file {str(path)!r} does not exist; `compsep config show` prints one"
        )
    try:
        return config_from_toml(path.read_text())
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def default_config() -> CampaignConfig:
    """The built-in default campaign (synthetic sky, nside 16, a small grid)."""
    return CampaignConfig()

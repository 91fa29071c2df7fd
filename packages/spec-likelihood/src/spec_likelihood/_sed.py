"""Spectral energy distributions of the sky components and the mixing matrix.

Each column of the mixing matrix A(beta) of the data model ``d = A(beta) s + n``
(eq. 1 of kabalan2025_clustered_compsep.md) is the SED of one component, normalised to 1 at
the component's reference frequency nu0 so that ``s`` holds the component amplitudes at nu0.
SEDs are computed in K_RJ and converted to K_CMB (the default) by the ratio
``K_RJ_to_K_CMB(nu) / K_RJ_to_K_CMB(nu0)`` (fgbuster's ``K_RJ2K_CMB_NU0``).

Brightness-temperature (K_RJ) SEDs, with ``x = h nu / (k_B T)``:

* CMB: 1 in K_CMB (amplitude in K_CMB at every frequency).
* Dust, modified blackbody (Planck 2015 X; fgbuster ``ModifiedBlackBody``; PySM 3
  ``ModifiedBlackBody``; eq. 2.2 of farsian2020_nn_foreground_recognition.md in intensity):
  ``(nu/nu0)^(beta_d + 1) (e^{x0} - 1) / (e^{x} - 1)``.
* Synchrotron, power law with optional curvature (fgbuster ``PowerLaw`` with ``running``;
  PySM 3 ``CurvedPowerLaw`` of model s3; eq. 2.1 of farsian2020 with pivot nu0):
  ``(nu/nu0)^(beta_s + C_s ln(nu / nu_pivot))``.
* AME, spinning dust (PySM 3 ``SpDust``, models a1/a2; Ali-Haimoud et al. 2009 SpDust2):
  ``(nu0/nu)^2 j(nu * nu_ref_peak / nu_peak) / j(nu0 * nu_ref_peak / nu_peak)`` with j the
  SpDust2 emissivity table (peak at nu_ref_peak = 30 GHz) linearly interpolated, as PySM does.
  Without a table, j is the analytic log-normal of :class:`AME`.

All SEDs are pure jax functions of their parameters: jittable, vmappable, differentiable, and
exact in float64 (enable ``jax_enable_x64``).
"""

from __future__ import annotations

import abc
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import ClassVar

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from ._units import (
    H_OVER_K,
    K_CMB_to_K_RJ,
    K_CMB_to_MJysr,
    K_RJ_to_K_CMB,
    K_RJ_to_MJysr,
    _is_concrete,
    tophat_nodes,
)

__all__ = [
    "AME",
    "CMB",
    "PARAMETERS",
    "Component",
    "Dust",
    "ParameterSpec",
    "Synchrotron",
    "mixing_matrix",
    "parameter_specs",
]

_SED_UNITS = ("K_CMB", "K_RJ")


@dataclass(frozen=True)
class ParameterSpec:
    """Default initial value and physical box bounds of one spectral parameter.

    Attributes:
        name: parameter name (``beta_d``, ``T_d``, ``beta_s``, ``C_s``, ``nu_peak``).
        init: default starting value of a fit.
        lower: lower bound (inclusive).
        upper: upper bound (inclusive), strictly above ``lower``.
    """

    name: str
    init: float
    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            raise ValueError(
                f"bounds of {self.name!r} must be finite, got {self.lower, self.upper}"
            )
        if not self.lower < self.upper:
            raise ValueError(
                f"bounds of {self.name!r}: lower={self.lower} must be < upper={self.upper}"
            )
        if not self.lower <= self.init <= self.upper:
            raise ValueError(
                f"init of {self.name!r}={self.init} must lie in [{self.lower}, {self.upper}]"
            )


PARAMETERS: Mapping[str, ParameterSpec] = MappingProxyType(
    {
        # Planck 2015 X dust: beta_d ~ 1.5-1.6, T_d ~ 20 K; box as in kabalan2025 (oracle box).
        "beta_d": ParameterSpec("beta_d", 1.54, 0.5, 5.0),
        "T_d": ParameterSpec("T_d", 20.0, 5.0, 50.0),
        "beta_s": ParameterSpec("beta_s", -3.0, -7.0, -0.5),
        # PySM s3 uses C_s = -0.052 at 23 GHz (Kogut 2012).
        "C_s": ParameterSpec("C_s", 0.0, -1.0, 1.0),
        # SpDust2 peaks at 30 GHz; Planck Commander nu_peak maps span ~ 15-40 GHz.
        "nu_peak": ParameterSpec("nu_peak", 30.0, 10.0, 60.0),
    }
)
"""Default initial values and physical box bounds of the spectral parameters."""


def parameter_specs(
    overrides: Mapping[str, ParameterSpec | tuple[float, float, float]] | None = None,
) -> dict[str, ParameterSpec]:
    """The default :data:`PARAMETERS` with some entries replaced.

    Args:
        overrides: name -> ``ParameterSpec`` or ``(init, lower, upper)``.

    Returns:
        A new dict name -> ParameterSpec.

    Raises:
        ValueError: unknown name, or invalid bounds (lower >= upper, init outside).
    """
    specs = dict(PARAMETERS)
    for name, spec in (overrides or {}).items():
        if name not in PARAMETERS:
            raise ValueError(f"overrides: unknown parameter {name!r}; known: {tuple(PARAMETERS)}")
        if not isinstance(spec, ParameterSpec):
            init, lower, upper = (float(v) for v in spec)
            spec = ParameterSpec(name, init, lower, upper)
        specs[name] = spec
    return specs


def _freqs(freqs: ArrayLike) -> Array:
    nu = jnp.asarray(freqs, dtype=float)
    if nu.ndim != 1:
        raise ValueError(f"freqs must be a 1-D array of frequencies in GHz, got shape {nu.shape}")
    if not _is_concrete(nu):  # a tracer: values are checked outside jit
        return nu
    if not np.all(np.asarray(nu) > 0):
        raise ValueError("freqs must be positive frequencies in GHz")
    return nu


def _param(value: ArrayLike) -> Array:
    """Parameter array with a trailing frequency axis to broadcast against."""
    return jnp.asarray(value, dtype=float)[..., None]


def _check_positive(value: float, name: str) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite frequency in GHz, got {value!r}")


def _floats(obj: object, *names: str) -> None:
    """Store the scalar fields ``names`` of a frozen dataclass as Python floats (or None)."""
    for name in names:
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, bool):
            raise ValueError(f"{name} must be a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError) as err:
            raise ValueError(
                f"{name} must be a scalar number (fixed values are scalars; pass maps as "
                f"parameters instead), got {value!r}"
            ) from err
        object.__setattr__(obj, name, number)


def _check_units(units: str) -> None:
    if units not in _SED_UNITS:
        raise ValueError(f"units={units!r} is not supported; use one of {_SED_UNITS}")


class Component(abc.ABC):
    """Base of the sky components: a frozen, hashable SED model.

    Subclasses define ``params`` (names of the free parameters, in order) and ``sed``.
    Fixed parameters are passed to the constructor and removed from ``params``.
    """

    params: tuple[str, ...]
    units: str

    @abc.abstractmethod
    def sed(self, freqs: ArrayLike, **params: ArrayLike) -> Float[Array, "... freq"]:
        """The SED at ``freqs`` [GHz]; parameters broadcast over leading dims."""

    def _values(self, params: Mapping[str, ArrayLike]) -> dict[str, ArrayLike]:
        missing = [p for p in self.params if p not in params]
        extra = [p for p in params if p not in self.params]
        if missing or extra:
            raise ValueError(
                f"{type(self).__name__}.sed takes parameters {self.params}; "
                f"missing {missing}, unexpected {extra}"
            )
        return dict(params)

    def _to_units(self, freqs: Array, nu0: float) -> Array:
        if self.units == "K_RJ":
            return jnp.ones_like(freqs)
        return K_RJ_to_K_CMB(freqs) / K_RJ_to_K_CMB(nu0)


@dataclass(frozen=True)
class CMB(Component):
    """The CMB: a blackbody at T_CMB, flat in K_CMB.

    Args:
        units: ``"K_CMB"`` (SED = 1) or ``"K_RJ"`` (SED = x^2 e^x / (e^x - 1)^2, the K_RJ
            brightness of 1 K_CMB, fgbuster ``CMB(units="K_RJ")``).
    """

    units: str = "K_CMB"
    params: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        _check_units(self.units)

    def sed(self, freqs: ArrayLike, **params: ArrayLike) -> Float[Array, " freq"]:
        """SED at ``freqs`` [GHz], shape ``[freq]``."""
        self._values(params)
        nu = _freqs(freqs)
        if self.units == "K_CMB":
            return jnp.ones_like(nu)
        return K_CMB_to_K_RJ(nu)


@dataclass(frozen=True)
class Dust(Component):
    """Thermal dust: modified blackbody, ``(nu/nu0)^(beta_d+1) (e^{x0}-1)/(e^x-1)`` in K_RJ.

    ``x = h nu / (k_B T_d)``. This is the intensity law ``nu^beta_d B_nu(T_d)`` (eq. 2.2 of
    farsian2020; Planck 2015 X eq. 9) divided by the Rayleigh-Jeans ``2 k nu^2 / c^2``, as in
    fgbuster ``ModifiedBlackBody`` and PySM 3 d1 (``(nu/nu0)^(beta-2) B_nu(T)/B_nu0(T)`` in
    uK_RJ).

    Args:
        nu0: reference frequency [GHz] where the SED is 1 (default 150).
        beta_d: fix the spectral index to this value (removes it from ``params``).
        T_d: fix the temperature [K] to this value (removes it from ``params``).
        units: ``"K_CMB"`` (default) or ``"K_RJ"``.
    """

    nu0: float = 150.0
    beta_d: float | None = None
    T_d: float | None = None
    units: str = "K_CMB"
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        _floats(self, "nu0", "beta_d", "T_d")
        _check_positive(self.nu0, "nu0")
        _check_units(self.units)
        if self.T_d is not None and not self.T_d > 0:
            raise ValueError(f"T_d must be a positive temperature in K, got {self.T_d}")
        free = tuple(p for p in ("beta_d", "T_d") if getattr(self, p) is None)
        object.__setattr__(self, "params", free)

    def sed(self, freqs: ArrayLike, **params: ArrayLike) -> Float[Array, "... freq"]:
        """SED at ``freqs`` [GHz]; ``beta_d`` and ``T_d`` [K] broadcast over leading dims."""
        values = self._values(params)
        nu = _freqs(freqs)
        beta = _param(values.get("beta_d", self.beta_d))
        temp = _param(values.get("T_d", self.T_d))
        x = H_OVER_K * nu / temp
        x0 = H_OVER_K * self.nu0 / temp
        rj = (nu / self.nu0) ** (beta + 1.0) * jnp.expm1(x0) / jnp.expm1(x)
        return rj * self._to_units(nu, self.nu0)


@dataclass(frozen=True)
class Synchrotron(Component):
    """Synchrotron: power law ``(nu/nu0)^(beta_s + C_s ln(nu/nu_pivot))`` in K_RJ.

    With ``curved=False`` C_s = 0 (fgbuster ``PowerLaw``, PySM 3 s1). With ``curved=True`` the
    curvature C_s is a parameter: PySM 3 s3 ``CurvedPowerLaw`` (C = -0.052, pivot 23 GHz) and
    fgbuster ``PowerLaw(running=..., nu_pivot=...)``; eq. 2.1 of farsian2020 with pivot nu0.

    Args:
        nu0: reference frequency [GHz] where the SED is 1 (default 20).
        curved: add the curvature parameter ``C_s``.
        nu_pivot: pivot frequency [GHz] of the curvature term (default: ``nu0``).
        beta_s: fix the spectral index (removes it from ``params``).
        C_s: fix the curvature (implies ``curved=True``; removes it from ``params``).
        units: ``"K_CMB"`` (default) or ``"K_RJ"``.
    """

    nu0: float = 20.0
    curved: bool = False
    nu_pivot: float | None = None
    beta_s: float | None = None
    C_s: float | None = None
    units: str = "K_CMB"
    params: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        _floats(self, "nu0", "nu_pivot", "beta_s", "C_s")
        _check_positive(self.nu0, "nu0")
        _check_units(self.units)
        if self.nu_pivot is None:
            object.__setattr__(self, "nu_pivot", self.nu0)
        _check_positive(self.nu_pivot, "nu_pivot")
        if self.C_s is not None:
            object.__setattr__(self, "curved", True)
        names = ("beta_s", "C_s") if self.curved else ("beta_s",)
        object.__setattr__(self, "params", tuple(p for p in names if getattr(self, p) is None))

    def sed(self, freqs: ArrayLike, **params: ArrayLike) -> Float[Array, "... freq"]:
        """SED at ``freqs`` [GHz]; ``beta_s`` (and ``C_s``) broadcast over leading dims."""
        values = self._values(params)
        nu = _freqs(freqs)
        index = _param(values.get("beta_s", self.beta_s))
        if self.curved:
            index = index + _param(values.get("C_s", self.C_s)) * jnp.log(nu / self.nu_pivot)
        rj = jnp.exp(index * jnp.log(nu / self.nu0))
        return rj * self._to_units(nu, self.nu0)


# Widths (in ln nu) of the analytic split log-normal AME emissivity below and above its peak:
# least-squares fit of j_nu / j_peak of the SpDust2 table shipped with PySM (peak 30 GHz) over
# 5-100 GHz. The table is skewed (wider below the peak), hence two widths. The fit stays within
# 5% of the peak emissivity over 5-100 GHz and within 7% relative over 15-45 GHz.
_AME_WIDTH_BELOW = 0.48968
_AME_WIDTH_ABOVE = 0.34871


@dataclass(frozen=True, eq=False)
class AME(Component):
    """Anomalous microwave emission from spinning dust, peak frequency ``nu_peak``.

    With ``emissivity`` (path to a two-column SpDust2 table ``nu [GHz], j_nu``, e.g.
    ``../shared/data/spdust/emissivity.txt``) the K_RJ SED is PySM 3's ``SpDust`` scaling
    (models a1/a2; Ali-Haimoud, Hirata & Dickinson 2009)::

        (nu0/nu)^2 j(nu * nu_ref_peak / nu_peak) / j(nu0 * nu_ref_peak / nu_peak)

    with j linearly interpolated in the table (as ``np.interp`` in PySM), so shifting
    nu_peak rigidly shifts the table's shape in frequency.

    Without a table the emissivity is an analytic split log-normal in frequency,
    ``j(nu) = exp(-ln(nu/nu_peak)^2 / (2 W^2))`` with W = 0.490 below the peak and 0.349
    above it, fitted here to the SpDust2 table of PySM (peak 30 GHz) over 5-100 GHz: within 5%
    of the peak emissivity over 5-100 GHz and within 7% relative over 15-45 GHz, but it falls
    too fast in the tails (0.74 of SpDust2 at 10 GHz, 0.17 at 5 GHz, 0.53 at 100 GHz for a
    30 GHz peak). It is an approximation for studies without the table, not SpDust2 itself.

    Args:
        nu0: reference frequency [GHz] where the SED is 1 (default 22.8, PySM a1).
        emissivity: path of the SpDust2 table, or None for the analytic default.
        nu_ref_peak: peak frequency [GHz] of the table's own spectrum (30 for PySM's table).
        nu_peak: fix the peak frequency [GHz] (removes it from ``params``).
        units: ``"K_CMB"`` (default) or ``"K_RJ"``.
    """

    nu0: float = 22.8
    emissivity: str | Path | None = None
    nu_ref_peak: float = 30.0
    nu_peak: float | None = None
    units: str = "K_CMB"
    params: tuple[str, ...] = field(init=False)
    _table: tuple[np.ndarray, np.ndarray] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        _floats(self, "nu0", "nu_ref_peak", "nu_peak")
        _check_positive(self.nu0, "nu0")
        _check_positive(self.nu_ref_peak, "nu_ref_peak")
        _check_units(self.units)
        if self.nu_peak is not None:
            _check_positive(self.nu_peak, "nu_peak")
        table = None
        if self.emissivity is not None:
            path = Path(self.emissivity)
            if not path.is_file():
                raise ValueError(f"emissivity={str(path)!r} is not a file (a SpDust2 table)")
            data = np.loadtxt(path, dtype=np.float64)
            if data.ndim != 2 or data.shape[1] != 2 or data.shape[0] < 2:
                raise ValueError(f"emissivity table {str(path)!r} must have two columns nu, j_nu")
            if not np.all(np.diff(data[:, 0]) > 0):
                raise ValueError(f"emissivity table {str(path)!r}: frequencies must increase")
            table = (data[:, 0].copy(), data[:, 1].copy())
        object.__setattr__(self, "_table", table)
        object.__setattr__(self, "params", () if self.nu_peak is not None else ("nu_peak",))

    def __hash__(self) -> int:
        return hash((self.nu0, str(self.emissivity), self.nu_ref_peak, self.nu_peak, self.units))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AME) and hash(self) == hash(other)

    def _emissivity(self, nu: Array, nu_peak: Array) -> Array:
        if self._table is None:
            log_ratio = jnp.log(nu / nu_peak)
            width = jnp.where(log_ratio < 0, _AME_WIDTH_BELOW, _AME_WIDTH_ABOVE)
            return jnp.exp(-0.5 * (log_ratio / width) ** 2)
        table_nu, table_j = (jnp.asarray(a) for a in self._table)
        return jnp.interp(nu * self.nu_ref_peak / nu_peak, table_nu, table_j)

    def sed(self, freqs: ArrayLike, **params: ArrayLike) -> Float[Array, "... freq"]:
        """SED at ``freqs`` [GHz]; ``nu_peak`` [GHz] broadcasts over leading dims."""
        values = self._values(params)
        nu = _freqs(freqs)
        nu_peak = _param(values.get("nu_peak", self.nu_peak))
        ratio = self._emissivity(nu, nu_peak) / self._emissivity(jnp.asarray(self.nu0), nu_peak)
        rj = (self.nu0 / nu) ** 2 * ratio
        return rj * self._to_units(nu, self.nu0)


def mixing_matrix(
    components: Sequence[Component],
    freqs: ArrayLike,
    params: Mapping[str, ArrayLike],
    bandwidths: ArrayLike | None = None,
) -> Float[Array, "... freq comp"]:
    """Mixing matrix A(beta) of ``d = A s + n`` (eq. 1 of kabalan2025_clustered_compsep.md).

    Column c is ``components[c].sed(freqs, ...)``; components sharing a parameter name share
    its value. With top-hat ``bandwidths`` each entry is the band average of the SED weighted
    by the intensity per unit of the component's units (``dB/dT_CMB`` for K_CMB, ``2 k nu^2/c^2``
    for K_RJ): the band-integrated emission converted back with the band-integrated unit
    conversion, as PySM 3 integrates a model over a bandpass and converts it with
    ``bandpass_unit_conversion`` (flat transmission in intensity). The amplitudes stay those
    at the delta-frequency nu0 of each component.

    Args:
        components: the sky components, e.g. ``[CMB(), Dust(150.0), Synchrotron(20.0)]``.
        freqs: frequencies (band centres) [GHz], shape ``[freq]``.
        params: name -> value (scalar or array); every free parameter of every component
            must be present; the arrays broadcast together.
        bandwidths: optional top-hat full widths [GHz], shape ``[freq]`` (e.g.
            ``instrument.bandpasses``); ``None`` for delta bands.

    Returns:
        ``A[..., freq, comp]``, leading dims = broadcast shape of the parameter arrays.

    Raises:
        ValueError: a missing or unknown parameter name, no components, bad ``freqs``.

    Example:
        >>> import jax.numpy as jnp
        >>> from spec_likelihood import CMB, Dust, Synchrotron, mixing_matrix
        >>> comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
        >>> A = mixing_matrix(comps, jnp.array([40.0, 150.0]),
        ...                   {"beta_d": 1.54, "T_d": 20.0, "beta_s": jnp.full(5, -3.0)})
        >>> A.shape
        (5, 2, 3)
    """
    if len(components) == 0:
        raise ValueError("components must hold at least one Component")
    nu = _freqs(freqs)
    needed = {p for comp in components for p in comp.params}
    missing = sorted(needed - set(params))
    unknown = sorted(set(params) - needed)
    if missing or unknown:
        raise ValueError(
            f"params must hold exactly the free parameters {sorted(needed)}; "
            f"missing {missing}, unknown {unknown}"
        )
    values = {k: jnp.asarray(v, dtype=float) for k, v in params.items()}
    shapes = {k: v.shape for k, v in values.items()}
    try:
        lead = jnp.broadcast_shapes(*shapes.values()) if values else ()
    except ValueError as err:
        raise ValueError(f"params: parameter arrays of shapes {shapes} do not broadcast") from err
    if bandwidths is None:
        columns = [
            jnp.broadcast_to(
                comp.sed(nu, **{p: values[p] for p in comp.params}), (*lead, nu.shape[0])
            )
            for comp in components
        ]
        return jnp.stack(columns, axis=-1)
    width = jnp.asarray(bandwidths, dtype=float)
    if width.shape != nu.shape:
        raise ValueError(
            f"bandwidths must have the shape of freqs {nu.shape} (one top-hat width per band), "
            f"got {width.shape}"
        )
    if _is_concrete(width) and _is_concrete(nu):
        w, f = np.asarray(width), np.asarray(nu)
        if not (np.all(w > 0) and np.all(f - w / 2 > 0)):
            raise ValueError("bandwidths must be positive and smaller than 2 * freqs")
    nodes, weights = tophat_nodes(nu, width)
    columns = []
    for comp in components:
        sed = comp.sed(nodes.reshape(-1), **{p: values[p] for p in comp.params})
        sed = sed.reshape(*sed.shape[:-1], *nodes.shape)
        unit_weight = weights * (
            K_CMB_to_MJysr(nodes) if comp.units == "K_CMB" else K_RJ_to_MJysr(nodes)
        )
        band = jnp.sum(sed * unit_weight, axis=-1) / jnp.sum(unit_weight, axis=-1)
        columns.append(jnp.broadcast_to(band, (*lead, nu.shape[0])))
    return jnp.stack(columns, axis=-1)

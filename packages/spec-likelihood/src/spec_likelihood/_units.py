"""Brightness units of CMB maps: K_CMB, K_RJ and MJy/sr, at one frequency or band-integrated.

A temperature fluctuation dT of the CMB blackbody (``K_CMB``) and a Rayleigh-Jeans brightness
temperature (``K_RJ``) are two linearisations of the same specific intensity:

* ``dI/dT_RJ   = 2 k nu^2 / c^2``                                  (Rayleigh-Jeans law),
* ``dI/dT_CMB  = 2 k nu^2 / c^2 * x^2 e^x / (e^x - 1)^2``,  ``x = h nu / (k T_CMB)``
  (derivative of the Planck law at T_CMB),

so ``1 K_CMB = x^2 e^x / (e^x - 1)^2 K_RJ`` at frequency nu. This is the conversion used by
fgbuster (``K_RJ2K_CMB`` in ``fgbuster/component_model.py``) and by PySM 3
(``astropy.units.cmb_equivalencies``). Constants are the exact SI (CODATA 2018) values, as in
fgbuster 2.0 (scipy.constants), with T_CMB = 2.7255 K (Fixsen 2009); the fgbuster peer
oracle is reproduced to 1e-15 with them.

Band-integrated conversions follow the PySM 3 convention (``pysm3.bandpass_unit_conversion``):
for a bandpass with transmission tau(nu) in intensity units, a map in unit ``a`` converts to
unit ``b`` by the factor ``int tau dI/da dnu / int tau dI/db dnu``. Top-hat bandpasses
[nu_c - w/2, nu_c + w/2] are integrated with Gauss-Legendre quadrature (48 nodes, exact to
float64 rounding for these smooth integrands).
"""

from __future__ import annotations

from typing import Literal

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = [
    "C_LIGHT",
    "H_OVER_K",
    "H_PLANCK",
    "K_BOLTZMANN",
    "T_CMB",
    "UNITS",
    "K_CMB_to_K_RJ",
    "K_CMB_to_MJysr",
    "K_RJ_to_K_CMB",
    "K_RJ_to_MJysr",
    "tophat_nodes",
    "unit_conversion",
]

H_PLANCK = 6.62607015e-34
"""Planck constant [J s] (exact, SI 2019)."""
K_BOLTZMANN = 1.380649e-23
"""Boltzmann constant [J/K] (exact, SI 2019)."""
C_LIGHT = 299792458.0
"""Speed of light [m/s] (exact)."""
H_OVER_K = H_PLANCK / K_BOLTZMANN * 1e9
"""h / k_B in K per GHz (0.0479924307...)."""
T_CMB = 2.7255
"""CMB monopole temperature [K] (Fixsen 2009), as in fgbuster and PySM 3."""

UNITS = ("K_CMB", "uK_CMB", "K_RJ", "uK_RJ", "MJy/sr")
"""Units understood by :func:`unit_conversion`."""

Unit = Literal["K_CMB", "uK_CMB", "K_RJ", "uK_RJ", "MJy/sr"]

_N_QUAD = 48
_GL_X, _GL_W = np.polynomial.legendre.leggauss(_N_QUAD)


def K_RJ_to_K_CMB(freqs: ArrayLike) -> Float[Array, ...]:
    """Factor converting a K_RJ brightness into K_CMB at frequency ``freqs``.

    ``(e^x - 1)^2 / (x^2 e^x)`` with ``x = h nu / (k_B T_CMB)`` (fgbuster ``K_RJ2K_CMB``).

    Args:
        freqs: frequencies [GHz], any shape.

    Returns:
        The dimensionless factor, same shape as ``freqs``; multiply a K_RJ value by it.
    """
    x = H_OVER_K * jnp.asarray(freqs, dtype=float) / T_CMB
    # expm1 keeps full precision at low frequency, where x -> 0 and the factor -> 1.
    return jnp.expm1(x) ** 2 / (jnp.exp(x) * x**2)


def K_CMB_to_K_RJ(freqs: ArrayLike) -> Float[Array, ...]:
    """Factor converting a K_CMB brightness into K_RJ: ``x^2 e^x / (e^x - 1)^2``.

    Args:
        freqs: frequencies [GHz], any shape.

    Returns:
        The dimensionless factor, same shape as ``freqs``.
    """
    return 1.0 / K_RJ_to_K_CMB(freqs)


def K_RJ_to_MJysr(freqs: ArrayLike) -> Float[Array, ...]:
    """Specific intensity of 1 K_RJ in MJy/sr: ``2 k_B nu^2 / c^2 * 1e20``.

    Args:
        freqs: frequencies [GHz], any shape.

    Returns:
        MJy/sr per K_RJ, same shape as ``freqs`` (1 MJy = 1e-20 W m^-2 Hz^-1).
    """
    nu = jnp.asarray(freqs, dtype=float) * 1e9
    return 2.0 * K_BOLTZMANN * nu**2 / C_LIGHT**2 * 1e20


def K_CMB_to_MJysr(freqs: ArrayLike) -> Float[Array, ...]:
    """Specific intensity of 1 K_CMB in MJy/sr: ``dB_nu/dT`` at T_CMB.

    Args:
        freqs: frequencies [GHz], any shape.

    Returns:
        MJy/sr per K_CMB, same shape as ``freqs``.
    """
    return K_RJ_to_MJysr(freqs) * K_CMB_to_K_RJ(freqs)


def _intensity_per_unit(unit: str, freqs: Array) -> Array:
    """dI/d(unit) in MJy/sr per unit at ``freqs`` [GHz]."""
    if unit == "MJy/sr":
        return jnp.ones_like(freqs)
    scale = 1e-6 if unit.startswith("u") else 1.0
    if unit.endswith("K_CMB"):
        return scale * K_CMB_to_MJysr(freqs)
    return scale * K_RJ_to_MJysr(freqs)


def _check_unit(unit: str, name: str) -> None:
    if unit not in UNITS:
        raise ValueError(f"{name}={unit!r} is not a known unit; use one of {UNITS}")


def tophat_nodes(
    freqs: ArrayLike, bandwidths: ArrayLike
) -> tuple[Float[Array, "... n_quad"], Float[Array, "... n_quad"]]:
    """Quadrature nodes and weights of top-hat bands ``[nu_c - w/2, nu_c + w/2]``.

    Gauss-Legendre rule with 48 nodes; the weights of one band sum to its width.

    Args:
        freqs: band centres nu_c [GHz], shape ``[...]``.
        bandwidths: full widths w [GHz], broadcastable to ``freqs``; must be positive and
            smaller than ``2 * freqs``.

    Returns:
        ``(nodes [..., 48] GHz, weights [..., 48] GHz)``.
    """
    nu_c = jnp.asarray(freqs, dtype=float)
    width = jnp.asarray(bandwidths, dtype=float)
    half = 0.5 * width[..., None]
    nodes = nu_c[..., None] + half * jnp.asarray(_GL_X)
    weights = half * jnp.asarray(_GL_W)
    return nodes, jnp.broadcast_to(weights, nodes.shape)


def unit_conversion(
    freqs: ArrayLike,
    from_unit: Unit,
    to_unit: Unit,
    bandwidths: ArrayLike | None = None,
) -> Float[Array, ...]:
    """Factor converting maps from ``from_unit`` to ``to_unit`` (multiply the map by it).

    With ``bandwidths=None`` the bands are delta functions at ``freqs``. With top-hat
    ``bandwidths`` the factor is ``int dI/d(from) dnu / int dI/d(to) dnu`` over each band
    (PySM 3 ``bandpass_unit_conversion`` with flat transmission in intensity units).

    Args:
        freqs: band centres [GHz], any shape, positive.
        from_unit: one of ``UNITS``.
        to_unit: one of ``UNITS``.
        bandwidths: optional top-hat full widths [GHz], broadcastable to ``freqs``.

    Returns:
        The conversion factors, shape of ``freqs``.

    Raises:
        ValueError: unknown unit, non-positive frequency or band edge.

    Example:
        >>> import numpy as np
        >>> from spec_likelihood import unit_conversion
        >>> f = unit_conversion(np.array([30.0, 353.0]), "uK_CMB", "uK_RJ")
        >>> [round(float(v), 4) for v in f]
        [0.9771, 0.0775]
    """
    _check_unit(from_unit, "from_unit")
    _check_unit(to_unit, "to_unit")
    nu = jnp.asarray(freqs, dtype=float)
    if _is_concrete(nu) and not bool(jnp.all(nu > 0)):
        raise ValueError("freqs must be positive frequencies in GHz")
    if bandwidths is None:
        return _intensity_per_unit(from_unit, nu) / _intensity_per_unit(to_unit, nu)
    width = jnp.asarray(bandwidths, dtype=float)
    if _is_concrete(width) and _is_concrete(nu):
        lo = nu - 0.5 * width
        if not bool(jnp.all(width > 0)) or not bool(jnp.all(lo > 0)):
            raise ValueError(
                "bandwidths must be positive and smaller than 2 * freqs (band edges above 0 GHz)"
            )
    nodes, weights = tophat_nodes(nu, width)
    num = jnp.sum(weights * _intensity_per_unit(from_unit, nodes), axis=-1)
    den = jnp.sum(weights * _intensity_per_unit(to_unit, nodes), axis=-1)
    return num / den


def _is_concrete(x: Array) -> bool:
    """True when ``x`` holds values (not a tracer inside jit/grad)."""
    try:
        np.asarray(x)
    except Exception:
        return False
    return True

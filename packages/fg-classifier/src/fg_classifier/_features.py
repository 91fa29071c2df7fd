"""Network inputs built from per-pixel Q/U vectors.

``minmax`` is the paper's preparation (section 4.1.1 of farsian2020): the 2 x n_freq vector
(Q bands then U bands) is shifted by its minimum and divided by its range, so every vector
spans exactly [0, 1]. It discards the amplitude, hence the signal-to-noise ratio, which is
what a noisy classification needs most. On this package's simulations it is also not
learnable in practice: the range is set by the 11 GHz synchrotron or the 402 GHz dust, so the
curvature (AME) signature is a 0.7% (0.5%) change of the normalised vector, concentrated in
bands squeezed near 0, and Q -> -Q, U -> -U flips (random per pixel) make it a non-linear
function of the inputs. Measured on 4e4 noiseless nside-16 curvature vectors: a logistic
regression on standardised min-max inputs scores 51% (chance), an sklearn 68-34-17 tanh MLP
(Adam) 55%, the paper network with Adadelta 49% after 1.2e5 steps; on the ``snr`` inputs
below: 93%, 93% and 98%.

``snr`` (the default of :class:`~fg_classifier.ClassifierSpec`; the network standardises each
input with the training-split mean and standard deviation): each Stokes vector is first
flipped so that its lowest-frequency band is positive (Q -> -Q is a symmetry of the sky
model), then every band is divided by its white-noise sigma (by default at nside 16, so that
equal values mean equal signal-to-noise and the faint LiteBIRD bands are not drowned by the
bright QUIJOTE ones), the vector is divided by its Euclidean norm s and ``log s`` is appended.
This is still a per-vector normalisation like the paper's, but the shape stays a linear
function of the data (what a parametric fit exploits) and the amplitude, i.e. the
signal-to-noise ratio, is kept.

``snr_log`` appends ``asinh(x / sigma)`` per band to the ``snr`` features: linear at the noise
level, ``~ ln 2x/sigma`` above it, so that where synchrotron dominates its power law
``beta_s ln nu + C ln^2 nu`` (eq. 2.1) becomes a quadratic the first layer can read.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

__all__ = ["FEATURES", "check_minmax", "make_features", "minmax_normalise", "n_features"]

FEATURES = ("minmax", "snr", "snr_log")
"""Kinds of network inputs."""


def _flatten(vectors: ArrayLike, n_freq: int) -> Array:
    x = jnp.asarray(vectors)
    if x.ndim == 3:
        if x.shape[1:] != (2, n_freq):
            raise ValueError(
                f"vectors must have shape [n, 2 (Q, U), {n_freq} bands], got {x.shape}: the "
                f"classifier was trained on {n_freq} bands"
            )
        return x.reshape(x.shape[0], 2 * n_freq)
    if x.ndim == 2:
        if x.shape[1] != 2 * n_freq:
            raise ValueError(
                f"vectors must have shape [n, {2 * n_freq}] (Q then U over {n_freq} bands), "
                f"got {x.shape}: the classifier was trained on {n_freq} bands"
            )
        return x
    raise ValueError(f"vectors must be [n, 2, freq] or [n, 2 * freq], got shape {x.shape}")


def minmax_normalise(vectors: Float[ArrayLike, "n 2 freq"]) -> Float[Array, "n feat"]:
    """The paper's per-vector min-max normalisation: ``(x - min x) / (max x - min x)``.

    Args:
        vectors: Q/U vectors, shape ``[n, 2, freq]`` (flattened Q then U) or ``[n, 2 freq]``.

    Returns:
        ``[n, 2 freq]`` with every row spanning [0, 1]; a constant row maps to 0.
    """
    x = jnp.asarray(vectors)
    x = x.reshape(x.shape[0], -1)
    low = x.min(axis=1, keepdims=True)
    span = x.max(axis=1, keepdims=True) - low
    return (x - low) / jnp.where(span > 0, span, 1.0)


def check_minmax(features: Float[ArrayLike, "n feat"], atol: float = 1e-4) -> None:
    """Raise unless every row is min-max normalised (min 0, max 1, finite).

    Raises:
        ValueError: naming the first offending row and how to normalise.
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"normalised inputs must be 2-D [n, feat], got shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    bad |= np.abs(x.min(axis=1)) > atol
    bad |= np.abs(x.max(axis=1) - 1.0) > atol
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"inputs are not min-max normalised (row {row}: min {x[row].min():.3g}, "
            f"max {x[row].max():.3g}); pass raw uK_CMB vectors with normalised=False, or "
            "normalise them with minmax_normalise"
        )


def n_features(kind: str, n_freq: int) -> int:
    """Input dimension of the network for a feature kind and band count."""
    if kind not in FEATURES:
        raise ValueError(f"features={kind!r} is unknown; use one of {FEATURES}")
    return {"minmax": 2 * n_freq, "snr": 2 * n_freq + 1, "snr_log": 4 * n_freq + 1}[kind]


def make_features(
    vectors: Float[ArrayLike, "n 2 freq"],
    kind: str,
    scale: Float[ArrayLike, " freq"],
) -> Float[Array, "n feat"]:
    """Network inputs of raw Q/U vectors.

    Args:
        vectors: Q/U vectors [uK_CMB], shape ``[n, 2, freq]`` or ``[n, 2 freq]``.
        kind: ``"minmax"``, ``"snr"`` or ``"snr_log"`` (see the module docstring).
        scale: per-band noise sigma of the ``snr`` features [uK_CMB] (unused by ``minmax``).

    Returns:
        Features ``[n, n_features(kind, freq)]``.

    Raises:
        ValueError: wrong number of bands or unknown kind.
    """
    scale = jnp.asarray(scale)
    n_features(kind, scale.shape[0])
    x = _flatten(vectors, scale.shape[0])
    if kind == "minmax":
        return minmax_normalise(x)
    n_freq = scale.shape[0]
    # Q -> -Q (or U -> -U) maps the sky model onto itself (every component's amplitude is
    # sign-symmetric and the AME follows the dust sign), so each Stokes vector is flipped to
    # make its lowest-frequency band positive: a canonical sign, no information lost
    stokes = x.reshape(x.shape[0], 2, n_freq)
    sign = jnp.where(stokes[:, :, :1] < 0, -1.0, 1.0)
    x = (stokes * sign).reshape(x.shape[0], 2 * n_freq)
    white = x / jnp.tile(scale, 2)
    norm = jnp.linalg.norm(white, axis=1, keepdims=True)
    safe = jnp.where(norm > 0, norm, 1.0)
    parts = [white / safe, jnp.log(safe)]
    if kind == "snr_log":
        parts.append(jnp.arcsinh(white))
    return jnp.concatenate(parts, axis=1)

"""Summary statistics of periodic maps: power spectra, Minkowski functionals, nearest neighbours.

Power spectra (Fig. 2, C.2) are azimuthal averages of |DFT|^2 (ortho normalisation, so a
Gaussian field's spectrum equals the eigenvalues of its covariance) in unit-width |k| bins.

Minkowski functionals (Fig. 2, C.2) of the excursion set {u > nu} of a periodic map,
per unit area in pixel units:

* area fraction: fraction of pixels above nu;
* perimeter density: Crofton estimate (pi / 4) x (number of sign changes of u - nu
  between horizontally or vertically adjacent pixels, wrapping around), divided by n^2
  (a curve of length L crosses two orthogonal families of unit-spaced lines 4 L / pi
  times on average);
* Euler characteristic density: V - E + F of the union of closed pixel squares above nu
  on the torus (8-connectivity for the excursion set, 4-connectivity for its complement,
  as ``skimage.measure.euler_number(..., connectivity=2)``), the same with the roles
  swapped, or (default) their mean; divided by n^2.

For an isotropic Gaussian field of variance s0^2 and gradient variance s1^2 = <|grad u|^2>,
with nu in units of s0 (Adler 1981; Schmalzing & Gorski 1998):
area = erfc(nu / sqrt 2) / 2, perimeter = s1 / (2 sqrt 2 s0) exp(-nu^2 / 2),
Euler = (2 pi)^(-3/2) s1^2 / (2 s0^2) nu exp(-nu^2 / 2).

Overfitting check (App. B.5): the distance of a sample to a training map is the minimum
over periodic shifts of the mean squared difference, computed for all shifts at once by
FFT cross-correlation.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int


def power_spectrum(
    maps: Float[Array, "*batch n n"], pixel_arcmin: float | None = None
) -> tuple[np.ndarray, Float[Array, "*batch bins"]]:
    """Azimuthally averaged power spectrum in bins |k| in [j - 1/2, j + 1/2), j = 1..n/2.

    Args:
        maps: periodic square maps.
        pixel_arcmin: if given, bin centres are returned as multipoles ell = 2 pi k / (n delta).

    Returns:
        (bin centres (k in DFT units or ell), per-mode power averaged in each bin).
    """
    n = maps.shape[-1]
    if maps.ndim < 2 or maps.shape[-2] != n:
        raise ValueError(f"maps must be (..., n, n), got {maps.shape}")
    k = np.fft.fftfreq(n) * n
    kk = np.sqrt(k[:, None] ** 2 + k[None, :] ** 2)
    idx = np.rint(kk).astype(int)
    nb = n // 2
    onehot = np.stack([(idx == j) for j in range(1, nb + 1)], -1).astype(np.float32)
    onehot = jnp.asarray(onehot / onehot.sum(axis=(0, 1)))
    p = jnp.abs(jnp.fft.fft2(maps, norm="ortho")) ** 2
    ps = jnp.einsum("...ij,ijb->...b", p, onehot.astype(p.dtype))
    centres = np.arange(1, nb + 1, dtype=float)
    if pixel_arcmin is not None:
        centres = 2 * np.pi * centres / (n * pixel_arcmin * np.pi / (180 * 60))
    return centres, ps


def minkowski_functionals(
    maps: Float[Array, "*batch n n"], thresholds: Float[Array, " t"], connectivity: int = 0
) -> tuple[Float[Array, "*batch t"], Float[Array, "*batch t"], Float[Array, "*batch t"]]:
    """Area fraction, perimeter density and Euler-characteristic density of {u > nu} (periodic).

    Densities are per pixel area; perimeters in pixel lengths. Pass standardised maps
    to read thresholds in units of the standard deviation.

    Args:
        maps: periodic square maps.
        thresholds: levels nu.
        connectivity: 8 (closed pixel squares, as skimage ``connectivity=2``), 4 (as
            skimage ``connectivity=1``; on the torus chi_4(A) = -chi_8(complement of A)),
            or 0 (default) for their mean, which removes the leading pixelisation bias
            of either choice against the continuous field's curve.
    """
    if connectivity not in (0, 4, 8):
        raise ValueError(f"connectivity must be 0, 4 or 8, got {connectivity}")
    maps = jnp.asarray(maps)
    n0, n1 = maps.shape[-2:]
    thresholds = jnp.asarray(thresholds, maps.dtype)

    def one(nu):
        on = maps > nu
        area = on.mean(axis=(-2, -1))
        cross = (on != jnp.roll(on, 1, axis=-2)).sum(axis=(-2, -1)) + (
            on != jnp.roll(on, 1, axis=-1)
        ).sum(axis=(-2, -1))
        perimeter = (math.pi / 4) * cross / (n0 * n1)
        chi8 = _euler_closed_squares(on)
        if connectivity == 8:
            chi = chi8
        else:
            chi4 = -_euler_closed_squares(~on)
            chi = chi4 if connectivity == 4 else 0.5 * (chi8 + chi4)
        return area, perimeter, chi / (n0 * n1)

    a, p, e = jax.vmap(one, out_axes=-1)(thresholds)
    return a, p, e


def _euler_closed_squares(on: Array) -> Array:
    """V - E + F of the union of the closed pixel squares where ``on`` (torus)."""
    up = jnp.roll(on, 1, axis=-2)
    left = jnp.roll(on, 1, axis=-1)
    diag = jnp.roll(up, 1, axis=-1)
    faces = on.sum(axis=(-2, -1))
    edges = (on | up).sum(axis=(-2, -1)) + (on | left).sum(axis=(-2, -1))
    verts = (on | up | left | diag).sum(axis=(-2, -1))
    return verts - edges + faces


def spectral_moments(per_mode_variance: Float[Array, "n n"]) -> tuple[float, float]:
    """(s0^2, s1^2): pixel variance and gradient variance <|grad u|^2> (pixel units).

    For a Gaussian field whose ortho-DFT modes have variance ``per_mode_variance``.
    """
    n = per_mode_variance.shape[-1]
    k = 2 * np.pi * np.fft.fftfreq(n)
    k2 = k[:, None] ** 2 + k[None, :] ** 2
    p = np.asarray(per_mode_variance)
    return float(p.mean()), float((k2 * p).mean())


def gaussian_minkowski_functionals(
    thresholds: np.ndarray, s0_squared: float, s1_squared: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Analytic area fraction, perimeter density and Euler density of a Gaussian field.

    Thresholds in units of s0 (module docstring for the formulas).
    """
    from math import erfc

    nu = np.asarray(thresholds, dtype=float)
    g = np.exp(-(nu**2) / 2)
    area = np.array([0.5 * erfc(v / math.sqrt(2)) for v in nu.ravel()]).reshape(nu.shape)
    perimeter = math.sqrt(s1_squared / s0_squared) / (2 * math.sqrt(2)) * g
    euler = (2 * math.pi) ** -1.5 * s1_squared / (2 * s0_squared) * nu * g
    return area, perimeter, euler


def periodic_distances(
    samples: Float[Array, "s n n"], references: Float[Array, "r n n"]
) -> tuple[Float[Array, "s r"], Int[Array, "s r 2"]]:
    """Min over periodic shifts of the mean squared difference between each sample and reference.

    Returns:
        (distances ``(s, r)``, shifts ``(s, r, 2)`` such that
        ``roll(reference, shift, axis=(0, 1))`` is closest to the sample).
    """
    n0, n1 = samples.shape[-2:]
    fs = jnp.fft.fft2(samples)
    fr = jnp.fft.fft2(references)
    # cross-correlation c[d] = sum_x s[x] r[x - d] for every shift d
    corr = jnp.real(jnp.fft.ifft2(fs[:, None] * jnp.conj(fr[None])))
    flat = corr.reshape(*corr.shape[:2], -1)
    best = jnp.argmax(flat, -1)
    cmax = jnp.max(flat, -1)
    norms = (samples**2).sum(axis=(-2, -1))[:, None] + (references**2).sum(axis=(-2, -1))[None]
    dist = (norms - 2 * cmax) / (n0 * n1)
    shifts = jnp.stack([best // n1, best % n1], -1)
    return jnp.maximum(dist, 0.0), shifts


def nearest_training_neighbour(
    samples: Float[Array, "s n n"], training: Float[Array, "r n n"], chunk: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance to the closest training map under periodic shifts (App. B.5)."""
    best_d = np.full(samples.shape[0], np.inf)
    best_i = np.zeros(samples.shape[0], dtype=int)
    fn = jax.jit(periodic_distances)
    for start in range(0, training.shape[0], chunk):
        d, _ = fn(jnp.asarray(samples), jnp.asarray(training[start : start + chunk]))
        d = np.asarray(d)
        i = d.argmin(1)
        di = d[np.arange(len(i)), i]
        better = di < best_d
        best_d[better] = di[better]
        best_i[better] = start + i[better]
    return best_i, best_d

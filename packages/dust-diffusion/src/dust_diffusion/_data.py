"""Dust-like training maps on periodic flat patches, augmentations and a loader (Sect. 2, App. B).

The paper's turbulence maps (CATS) are not public, so two procedural families of
non-Gaussian, dust-like periodic fields are provided:

* log-normal: x = exp(s g) for a Gaussian field g with P(k) ~ k^-gamma, with the
  slope gamma and the log-amplitude s drawn per map;
* filamentary: particles on a lattice displaced by the Zel'dovich approximation
  x = q + D grad(nabla^-2 delta_L) (past shell crossing for the drawn D), deposited
  with cloud-in-cell on the periodic grid and log-scaled, which gives sheets and
  filaments around voids as in column-density maps.

Every map is standardised (zero mean, unit standard deviation): the model's units
are those of a standardised dust map, and the CMB amplitude sigma is quoted in them
(the paper's sigma = 0.6 sigma_x). Periodic shifts and the 8 dihedral symmetries of
the square leave the distribution of a periodic isotropic field unchanged.
"""

from __future__ import annotations

from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ._flatsky import apply_fourier_filter


def _kgrid(n: int) -> tuple[Array, Array]:
    k = jnp.fft.fftfreq(n) * n
    return k[:, None] * jnp.ones((1, n)), jnp.ones((n, 1)) * k[None, :]


def standardise(maps: Float[Array, "*batch n n"]) -> Float[Array, "*batch n n"]:
    """Zero mean, unit standard deviation per map."""
    m = maps.mean(axis=(-2, -1), keepdims=True)
    s = maps.std(axis=(-2, -1), keepdims=True)
    return (maps - m) / s


def _power_law_field(key: Array, n: int, slope: Array, k_cut: Array) -> Array:
    kx, ky = _kgrid(n)
    kk = jnp.maximum(jnp.sqrt(kx**2 + ky**2), 1.0)
    amp = kk ** (-slope / 2) * jnp.exp(-0.5 * (kk / k_cut) ** 2)
    amp = amp.at[0, 0].set(0.0)
    g = apply_fourier_filter(jax.random.normal(key, (n, n)), amp)
    return g / g.std()


def lognormal_map(
    key: Array,
    n: int,
    slope_range: tuple[float, float] = (2.2, 3.6),
    log_amplitude_range: tuple[float, float] = (0.4, 1.4),
) -> Float[Array, "n n"]:
    """One standardised log-normal dust-like map exp(s g), g Gaussian with P(k) ~ k^-slope."""
    k1, k2, k3 = jax.random.split(key, 3)
    slope = jax.random.uniform(k1, (), minval=slope_range[0], maxval=slope_range[1])
    s = jax.random.uniform(k2, (), minval=log_amplitude_range[0], maxval=log_amplitude_range[1])
    g = _power_law_field(k3, n, slope, jnp.asarray(n / 2.0))
    return standardise(jnp.exp(s * g))


def _cic_deposit(pos: Array, n: int) -> Array:
    """Cloud-in-cell density of unit-mass particles at ``pos`` (pixel units) on a periodic grid."""
    i0 = jnp.floor(pos).astype(jnp.int32)
    f = pos - i0
    rho = jnp.zeros((n, n))
    for dx in (0, 1):
        for dy in (0, 1):
            w = (f[:, 0] if dx else 1 - f[:, 0]) * (f[:, 1] if dy else 1 - f[:, 1])
            rho = rho.at[(i0[:, 0] + dx) % n, (i0[:, 1] + dy) % n].add(w)
    return rho


def filament_map(
    key: Array,
    n: int,
    slope_range: tuple[float, float] = (1.5, 3.0),
    growth_range: tuple[float, float] = (0.8, 2.5),
    floor_range: tuple[float, float] = (0.02, 0.3),
    oversampling: int = 2,
    smoothing: float = 0.75,
) -> Float[Array, "n n"]:
    """One standardised filamentary map: Zel'dovich-displaced particles, CIC, log-scaled.

    The linear density delta_L has P(k) ~ k^-slope with a cut-off at k = n/4; the
    displacement psi = grad nabla^-2 delta_L is scaled so that std(div psi) = growth
    (> 1: shell crossing); the CIC density is smoothed by a Gaussian of ``smoothing``
    pixels (hiding the particle lattice in voids) and log(rho / <rho> + floor) is
    returned standardised.
    """
    k1, k2, k3, k4 = jax.random.split(key, 4)
    slope = jax.random.uniform(k1, (), minval=slope_range[0], maxval=slope_range[1])
    growth = jax.random.uniform(k2, (), minval=growth_range[0], maxval=growth_range[1])
    floor = jnp.exp(
        jax.random.uniform(k3, (), minval=jnp.log(floor_range[0]), maxval=jnp.log(floor_range[1]))
    )
    # everything on a grid oversampled by `oversampling` (one particle per fine pixel),
    # block-averaged back to n at the end
    m = n * oversampling
    delta = _power_law_field(k4, m, slope, jnp.asarray(n / 4.0))
    kx, ky = _kgrid(m)
    k2grid = (2 * jnp.pi / m) ** 2 * (kx**2 + ky**2)
    dk = jnp.fft.fft2(delta) / jnp.where(k2grid > 0, k2grid, 1.0)
    # psi = grad(phi) with nabla^2 phi = -delta, so div psi = -delta (matter flows out of voids)
    psi_x = jnp.real(jnp.fft.ifft2(1j * (2 * jnp.pi / m) * kx * dk))
    psi_y = jnp.real(jnp.fft.ifft2(1j * (2 * jnp.pi / m) * ky * dk))
    psi = jnp.stack([psi_x, psi_y], -1) * growth
    q = jnp.stack(jnp.meshgrid(jnp.arange(m), jnp.arange(m), indexing="ij"), -1) + 0.5
    pos = (q + psi).reshape(-1, 2) % m
    rho = _cic_deposit(pos, m)
    rho = apply_fourier_filter(rho, jnp.exp(-0.5 * k2grid * (smoothing * oversampling) ** 2))
    rho = rho.reshape(n, oversampling, n, oversampling).mean(axis=(1, 3))
    rho = jnp.maximum(rho / rho.mean(), 0.0)
    return standardise(jnp.log(rho + floor))


def procedural_dust_maps(
    key: Array, n_maps: int, n: int, filament_fraction: float = 0.5
) -> Float[Array, "n_maps n n"]:
    """A batch of standardised dust-like maps, a fraction ``filament_fraction`` filamentary.

    Args:
        key: PRNG key (same key, same maps).
        n_maps: number of maps.
        n: side in pixels (any even n >= 8).
        filament_fraction: share of Zel'dovich maps; the rest are log-normal.
    """
    if n < 8 or n % 2:
        raise ValueError(f"n must be an even number >= 8, got {n}")
    if not 0 <= filament_fraction <= 1:
        raise ValueError(f"filament_fraction must be in [0, 1], got {filament_fraction}")
    n_fil = round(n_maps * filament_fraction)
    k1, k2 = jax.random.split(key)
    parts = []
    if n_fil:
        parts.append(jax.jit(jax.vmap(lambda k: filament_map(k, n)))(jax.random.split(k1, n_fil)))
    if n_maps - n_fil:
        parts.append(
            jax.jit(jax.vmap(lambda k: lognormal_map(k, n)))(jax.random.split(k2, n_maps - n_fil))
        )
    return jnp.concatenate(parts, 0)


def dihedral(maps: Float[Array, "*batch n n"], index: int | Array) -> Float[Array, "*batch n n"]:
    """Element ``index`` (0..7) of the dihedral group: rot90^(index % 4), transposed if >= 4."""
    index = jnp.asarray(index)
    branches = [
        (
            lambda x, k=k, f=f: (
                jnp.swapaxes(jnp.rot90(x, k, axes=(-2, -1)), -1, -2)
                if f
                else jnp.rot90(x, k, axes=(-2, -1))
            )
        )
        for f in (False, True)
        for k in range(4)
    ]
    return jax.lax.switch(index, branches, maps)


def augment(key: Array, maps: Float[Array, "batch n n"]) -> Float[Array, "batch n n"]:
    """Random dihedral symmetry and random periodic shift, independently per map."""
    k1, k2 = jax.random.split(key)
    b, n = maps.shape[0], maps.shape[-1]
    idx = jax.random.randint(k1, (b,), 0, 8)
    shifts = jax.random.randint(k2, (b, 2), 0, n)
    out = jax.vmap(dihedral)(maps, idx)
    return jax.vmap(lambda x, s: jnp.roll(x, (s[0], s[1]), axis=(-2, -1)))(out, shifts)


def periodic_crop(
    key: Array, maps: Float[Array, "batch h w"], size: int
) -> Float[Array, "batch size size"]:
    """Random size x size windows of each map, wrapping around its edges.

    The crop is itself periodic only when size equals the map's side; smaller crops
    of a periodic map have edge discontinuities (use :func:`block_downsample` to
    keep periodicity).
    """
    h, w = maps.shape[-2:]
    if size > min(h, w):
        raise ValueError(f"size={size} exceeds the map side {min(h, w)}")
    off = jax.random.randint(key, (maps.shape[0], 2), 0, jnp.asarray([h, w]))

    def one(x, o):
        rows = (o[0] + jnp.arange(size)) % h
        cols = (o[1] + jnp.arange(size)) % w
        return x[rows][:, cols]

    return jax.vmap(one)(maps, off)


def block_downsample(maps: np.ndarray | Array, factor: int) -> np.ndarray:
    """Average non-overlapping factor x factor blocks (keeps periodicity)."""
    maps = np.asarray(maps)
    h, w = maps.shape[-2:]
    if factor < 1 or h % factor or w % factor:
        raise ValueError(f"factor={factor} must divide the map shape {(h, w)}")
    s = (*maps.shape[:-2], h // factor, factor, w // factor, factor)
    return maps.reshape(s).mean(axis=(-3, -1))


def load_maps(path: str | Path) -> np.ndarray:
    """Load maps from a ``.npy``/``.fits`` file or a folder of them as ``(n_maps, h, w)`` float32.

    2-D arrays are one map; 3-D arrays are stacks of maps. FITS files are read from
    their first image HDU with astropy. All maps must share their shape.
    """
    path = Path(path)
    if path.is_dir():
        files = sorted(
            p
            for p in path.iterdir()
            if p.suffix == ".npy" or p.name.endswith((".fits", ".fits.gz", ".fit"))
        )
        if not files:
            raise ValueError(f"path {path} holds no .npy or .fits files")
    elif path.exists():
        files = [path]
    else:
        raise ValueError(f"path {path} does not exist")
    out = []
    for f in files:
        if f.suffix == ".npy":
            a = np.load(f)
        else:
            from astropy.io import fits

            with fits.open(f) as hdul:
                data = next((h.data for h in hdul if h.data is not None), None)
            if data is None:
                raise ValueError(f"FITS file {f} has no image data")
            a = np.asarray(data)
        a = np.asarray(a, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ValueError(f"{f}: expected a 2-D map or a 3-D stack, got shape {a.shape}")
        out.append(a)
    shapes = {a.shape[1:] for a in out}
    if len(shapes) > 1:
        raise ValueError(f"maps under {path} have different shapes {sorted(shapes)}")
    return np.concatenate(out, 0)

"""Simulated multi-frequency Q/U vectors and test maps of the four foreground models.

Section 2.4 and 4.1.1 of farsian2020_nn_foreground_recognition.md. Each pixel holds

    d(nu) = s_CMB + A_d m_d f_d(nu) + A_s m_s f_s(nu; beta_s, C) + [A_AME m_a f_AME(nu)] + n(nu)

in uK_CMB for Q and U, with

* f_d: modified blackbody with constant (beta_d, T_d) = (1.54, 20 K) (eq. 2.2),
* f_s: synchrotron ``(nu/nu0)^(beta_s + C ln(nu/nu_pivot))`` (eq. 2.1) with beta_s ~ N(-3, 0.2)
  drawn per pixel and C = 0 (pure power law) or -0.052 at nu_pivot = 23 GHz (curved),
* AME polarised at 2% of its intensity along the dust polarisation angle (section 2.3),
* m_c = 1 + 0.3 g, g ~ N(0, 1) drawn per pixel, per component and per Stokes parameter: the
  30% Gaussian amplitude modulation of section 4.1.1 that generalises the training set,
* n: white noise with sigma = depth_p / pixel size (Table 1) when requested.

All SEDs come from ``spec_likelihood`` (K_CMB, equal to 1 at the reference frequency).
The four models are indexed ``0 power_law, 1 curved, 2 power_law_ame, 3 curved_ame``; a task
(:data:`TASKS`) picks two or four of them and numbers its classes in that order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int
from spec_likelihood import AME, Dust, Instrument, Synchrotron, white_noise_sigma

from ._sky import SkyTemplates, _check_nside, pixel_lonlat

__all__ = [
    "MODELS",
    "TASKS",
    "SimulationConfig",
    "TestMaps",
    "TrainingSet",
    "maps_to_vectors",
    "region_layout",
    "simulate_test_maps",
    "simulate_training_set",
    "simulate_vectors",
    "task_models",
]

MODELS: tuple[str, ...] = ("power_law", "curved", "power_law_ame", "curved_ame")
"""The four foreground models: synchrotron power law or curved, without or with polarised AME."""

TASKS: dict[str, tuple[int, ...]] = {
    "curvature": (0, 1),
    "ame": (0, 2),
    "four": (0, 1, 2, 3),
}
"""Classification tasks of the paper: model indices (into :data:`MODELS`) of each class."""


def task_models(task: str) -> tuple[int, ...]:
    """Model indices of a task's classes.

    Raises:
        ValueError: unknown task.
    """
    if task not in TASKS:
        raise ValueError(f"task={task!r} is unknown; use one of {tuple(TASKS)}")
    return TASKS[task]


@dataclass(frozen=True)
class SimulationConfig:
    """Physical settings of the simulations (defaults: section 2.4 of Farsian et al. 2020).

    Attributes:
        beta_d: dust spectral index (constant).
        T_d: dust temperature [K] (constant).
        beta_s_mean: mean of the per-pixel synchrotron spectral index.
        beta_s_std: standard deviation of the per-pixel synchrotron spectral index.
        curvature: synchrotron curvature C of the curved models.
        nu_pivot: pivot frequency [GHz] of the curvature term.
        ame_pol_frac: AME polarisation fraction.
        ame_nu_peak: AME peak frequency [GHz].
        ame_emissivity: SpDust2 emissivity table (``../shared/data/spdust/emissivity.txt``),
            or None for spec-likelihood's analytic AME spectrum.
        modulation: relative standard deviation of the per-pixel amplitude modulation.
    """

    beta_d: float = 1.54
    T_d: float = 20.0
    beta_s_mean: float = -3.0
    beta_s_std: float = 0.2
    curvature: float = -0.052
    nu_pivot: float = 23.0
    ame_pol_frac: float = 0.02
    ame_nu_peak: float = 30.0
    ame_emissivity: str | None = None
    modulation: float = 0.3

    def __post_init__(self) -> None:
        for name in ("beta_s_std", "ame_pol_frac", "modulation"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.ame_emissivity is not None and not Path(self.ame_emissivity).is_file():
            raise ValueError(f"ame_emissivity={self.ame_emissivity!r} is not a file")


class TrainingSet(NamedTuple):
    """Simulated vectors with their classes.

    Attributes:
        data: Q/U vectors [uK_CMB], shape ``[n, 2, freq]``.
        labels: class index within the task, shape ``[n]``.
        models: model index into :data:`MODELS`, shape ``[n]``.
    """

    data: Float[Array, "n 2 freq"]
    labels: Int[Array, " n"]
    models: Int[Array, " n"]


class TestMaps(NamedTuple):
    """Simulated frequency maps whose sky is split into regions of different true models.

    Attributes:
        maps: frequency maps [uK_CMB], shape ``[real, freq, 2, pix]`` (Q, U; RING).
        labels: true class within the task per pixel, shape ``[pix]``.
        models: true model index per pixel, shape ``[pix]``.
        beta_s: synchrotron spectral index per realisation and pixel, shape ``[real, pix]``.
    """

    maps: Float[Array, "real freq 2 pix"]
    labels: Int[np.ndarray, " pix"]
    models: Int[np.ndarray, " pix"]
    beta_s: Float[Array, "real pix"]


def _seds(
    freqs: Array, config: SimulationConfig, sync_nu0: float, dust_nu0: float, ame_nu0: float
) -> tuple[Synchrotron, Array, Array]:
    dust = Dust(nu0=dust_nu0, beta_d=config.beta_d, T_d=config.T_d)
    ame = AME(nu0=ame_nu0, emissivity=config.ame_emissivity, nu_peak=config.ame_nu_peak)
    sync = Synchrotron(nu0=sync_nu0, curved=True, nu_pivot=config.nu_pivot)
    return sync, dust.sed(freqs), ame.sed(freqs)


@partial(jax.jit, static_argnames=("config", "sync_nu0", "dust_nu0", "ame_nu0"))
def _simulate(
    key: Array,
    freqs: Array,
    dust_qu: Array,
    sync_qu: Array,
    ame_i: Array,
    dust_angle: Array,
    cmb_qu: Array,
    models: Array,
    noise_sigma: Array,
    *,
    config: SimulationConfig,
    sync_nu0: float,
    dust_nu0: float,
    ame_nu0: float,
) -> tuple[Array, Array]:
    n = models.shape[0]
    k_mod, k_beta, k_noise = jax.random.split(key, 3)
    mod = 1.0 + config.modulation * jax.random.normal(k_mod, (3, n, 2), dtype=dust_qu.dtype)
    beta_s = config.beta_s_mean + config.beta_s_std * jax.random.normal(
        k_beta, (n,), dtype=dust_qu.dtype
    )
    curved = (models == 1) | (models == 3)
    has_ame = ((models == 2) | (models == 3)).astype(dust_qu.dtype)
    sync, f_dust, f_ame = _seds(freqs, config, sync_nu0, dust_nu0, ame_nu0)
    f_sync = sync.sed(freqs, beta_s=beta_s, C_s=jnp.where(curved, config.curvature, 0.0))
    ame_qu = (
        config.ame_pol_frac
        * ame_i[:, None]
        * jnp.stack([jnp.cos(2.0 * dust_angle), jnp.sin(2.0 * dust_angle)], axis=-1)
    )
    data = (
        cmb_qu[:, :, None]
        + (dust_qu * mod[0])[:, :, None] * f_dust
        + (sync_qu * mod[1])[:, :, None] * f_sync[:, None, :]
        + (ame_qu * mod[2] * has_ame[:, None])[:, :, None] * f_ame
    )
    noise = jax.random.normal(k_noise, data.shape, dtype=data.dtype)
    return data + noise * noise_sigma, beta_s


def simulate_vectors(
    key: Array,
    freqs: Float[Array, " freq"],
    *,
    dust_qu: Float[Array, "n 2"],
    sync_qu: Float[Array, "n 2"],
    ame_i: Float[Array, " n"],
    dust_angle: Float[Array, " n"],
    cmb_qu: Float[Array, "n 2"],
    models: Int[Array, " n"],
    noise_sigma: Float[Array, " freq"] | None = None,
    config: SimulationConfig = SimulationConfig(),
    sync_nu0: float = 23.0,
    dust_nu0: float = 353.0,
    ame_nu0: float = 30.0,
) -> tuple[Float[Array, "n 2 freq"], Float[Array, " n"]]:
    """Q/U vectors of individual pixels for given template amplitudes and models.

    Args:
        key: ``jax.random`` key (modulation, beta_s and noise draws).
        freqs: band frequencies [GHz].
        dust_qu: dust Q, U at ``dust_nu0`` [uK_CMB].
        sync_qu: synchrotron Q, U at ``sync_nu0`` [uK_CMB].
        ame_i: AME intensity at ``ame_nu0`` [uK_CMB].
        dust_angle: dust polarisation angle [rad] (the AME polarisation angle).
        cmb_qu: CMB Q, U [uK_CMB].
        models: model index per vector (into :data:`MODELS`).
        noise_sigma: white-noise standard deviation per band [uK_CMB], or None (noiseless).
        config: physical settings.
        sync_nu0, dust_nu0, ame_nu0: reference frequencies [GHz] of the amplitudes.

    Returns:
        ``(data [n, 2, freq] uK_CMB, beta_s [n])``.
    """
    freqs = jnp.asarray(freqs, dtype=float)
    sigma = jnp.zeros_like(freqs) if noise_sigma is None else jnp.asarray(noise_sigma, float)
    if sigma.shape != freqs.shape:
        raise ValueError(f"noise_sigma must have shape {freqs.shape}, got {sigma.shape}")
    models = jnp.asarray(models, dtype=jnp.int32)
    if models.ndim != 1:
        raise ValueError(f"models must be 1-D, got shape {models.shape}")
    return _simulate(
        key,
        freqs,
        jnp.asarray(dust_qu, float),
        jnp.asarray(sync_qu, float),
        jnp.asarray(ame_i, float),
        jnp.asarray(dust_angle, float),
        jnp.asarray(cmb_qu, float),
        models,
        sigma,
        config=config,
        sync_nu0=float(sync_nu0),
        dust_nu0=float(dust_nu0),
        ame_nu0=float(ame_nu0),
    )


def _key(seed: int | Array) -> Array:
    if isinstance(seed, int | np.integer) and not isinstance(seed, bool):
        return jax.random.key(int(seed))
    if isinstance(seed, jax.Array):
        return seed
    raise ValueError(f"seed must be an int or a jax.random key, got {seed!r}")


def _noise_sigma(instrument: Instrument, noise_nside: int | None) -> Array | None:
    if noise_nside is None:
        return None
    return white_noise_sigma(instrument, _check_nside(noise_nside, "noise_nside"))


def _cmb_pool(
    templates: SkyTemplates, realisations: Sequence[int] | None, test: bool
) -> np.ndarray:
    """CMB realisation indices of training vectors (``test=False``) or test maps.

    Default: the last realisation is held out for the test maps and the training vectors draw
    from the others, so that no test CMB value was seen in training (with a single
    realisation both use it).
    """
    n_cmb = templates.cmb_qu.shape[0]
    if realisations is None:
        if n_cmb == 1:
            return np.zeros(1, np.int64)
        return np.array([n_cmb - 1]) if test else np.arange(n_cmb - 1)
    pool = np.asarray(realisations, dtype=np.int64).reshape(-1)
    if pool.size == 0 or pool.min() < 0 or pool.max() >= n_cmb:
        raise ValueError(
            f"cmb_realisations must be a non-empty list of indices in 0..{n_cmb - 1} (the "
            f"templates hold {n_cmb} CMB realisations), got {realisations!r}"
        )
    return pool


def simulate_training_set(
    templates: SkyTemplates,
    instrument: Instrument,
    task: str,
    *,
    n_maps: int = 2,
    oversample: int = 1,
    noise_nside: int | None = None,
    config: SimulationConfig = SimulationConfig(),
    cmb_realisations: Sequence[int] | None = None,
    seed: int | Array = 0,
) -> TrainingSet:
    """Training vectors: ``n_maps`` full-sky maps of every model of the task.

    As in section 4.1.1: for each model, ``n_maps`` sets of multi-frequency maps, each with
    its own beta_s draw, amplitude modulation and (optionally) noise. The training vectors are
    independent pixels; their CMB values are drawn at random pixels of random realisations of
    ``templates.cmb_qu``, the same pool for every class (the paper's one realisation per set
    would tie a finite set of CMB values to each class, which a network can memorise).
    By default the last CMB realisation of ``templates`` is left out of that pool: it is the
    one :func:`simulate_test_maps` uses, so test CMB values are never seen in training.
    ``oversample = (nside_train / templates.nside)^2`` emulates a training resolution above
    the templates' one: every template pixel is used ``oversample`` times, each with
    independent draws (what an ``ud_grade``-d template at ``nside_train`` gives per pixel).

    Args:
        templates: sky templates.
        instrument: bands and noise depths (e.g. ``spec_likelihood.farsian2020()``).
        task: a key of :data:`TASKS`.
        n_maps: maps per model (the paper: 2 noiseless at nside 1024, 100 noisy at nside 16).
        oversample: uses of each template pixel per map (>= 1).
        noise_nside: nside whose pixel size sets the white-noise level; None: noiseless.
        config: physical settings.
        cmb_realisations: indices of the ``templates.cmb_qu`` realisations to draw from
            (default: all but the last, held out for the test maps; all if there is one).
        seed: integer seed or ``jax.random`` key; use different seeds for training and test
            sets (independent beta_s, modulation and noise draws).

    Returns:
        The :class:`TrainingSet`, in model-major order (shuffle before batching).
    """
    models = task_models(task)
    if n_maps < 1 or oversample < 1:
        raise ValueError(f"n_maps and oversample must be >= 1, got {n_maps}, {oversample}")
    sigma = _noise_sigma(instrument, noise_nside)
    freqs = jnp.asarray(instrument.frequencies, dtype=float)
    key = _key(seed)
    pool = _cmb_pool(templates, cmb_realisations, test=False)
    pix = np.tile(np.arange(templates.npix), oversample)
    dust = jnp.asarray(templates.dust_qu[:, pix].T, float)
    sync = jnp.asarray(templates.sync_qu[:, pix].T, float)
    ame = jnp.asarray(templates.ame_i[pix], float)
    angle = jnp.asarray(templates.dust_angle[pix], float)
    chunks, labels, model_ids = [], [], []
    for label, model in enumerate(models):
        for _ in range(n_maps):
            key, sub, k_real, k_pix = jax.random.split(key, 4)
            # CMB values from random pixels of random realisations, one pool for all classes:
            # a class-specific CMB realisation would let the network recognise the class from
            # memorised CMB values instead of the foreground SED
            real = pool[np.asarray(jax.random.randint(k_real, pix.shape, 0, pool.size))]
            cmb_pix = np.asarray(jax.random.randint(k_pix, pix.shape, 0, templates.npix))
            cmb = jnp.asarray(templates.cmb_qu[real, :, cmb_pix], float)
            data, _ = simulate_vectors(
                sub,
                freqs,
                dust_qu=dust,
                sync_qu=sync,
                ame_i=ame,
                dust_angle=angle,
                cmb_qu=cmb,
                models=jnp.full(pix.shape[0], model, dtype=jnp.int32),
                noise_sigma=sigma,
                config=config,
                sync_nu0=templates.sync_nu0,
                dust_nu0=templates.dust_nu0,
                ame_nu0=templates.ame_nu0,
            )
            chunks.append(data)
            labels.append(jnp.full(pix.shape[0], label, dtype=jnp.int32))
            model_ids.append(jnp.full(pix.shape[0], model, dtype=jnp.int32))
    return TrainingSet(jnp.concatenate(chunks), jnp.concatenate(labels), jnp.concatenate(model_ids))


def region_layout(nside: int, task: str, n_lon: int | None = None) -> Int[np.ndarray, " pix"]:
    """Test-map layout: the sky split into regions of different true models (Figs 4, 5, 7).

    Longitude sectors (``n_lon``, default twice the number of classes) times three latitude
    bands (b < -20 deg, |b| <= 20 deg, b > 20 deg); the class of sector s in band a is
    ``(s + a) mod n_classes``, so that every class appears in the Galactic plane and at high
    latitude, in balanced proportions.

    Args:
        nside: HEALPix resolution (RING).
        task: a key of :data:`TASKS`.
        n_lon: number of longitude sectors.

    Returns:
        The class (within the task) of every pixel, shape ``[12 nside^2]``; usable as a patch
        layout (labels 0..K-1).
    """
    n_classes = len(task_models(task))
    n_lon = 2 * n_classes if n_lon is None else int(n_lon)
    if n_lon < 1:
        raise ValueError(f"n_lon must be >= 1, got {n_lon}")
    lon, lat = pixel_lonlat(nside)
    sector = np.minimum((lon / 360.0 * n_lon).astype(np.int64), n_lon - 1)
    band = np.digitize(lat, [-20.0, 20.0])
    return ((sector + band) % n_classes).astype(np.int32)


def simulate_test_maps(
    templates: SkyTemplates,
    instrument: Instrument,
    task: str,
    *,
    layout: Int[np.ndarray, " pix"] | None = None,
    n_real: int = 1,
    noise: bool = False,
    config: SimulationConfig = SimulationConfig(),
    cmb_realisations: Sequence[int] | None = None,
    seed: int | Array = 1,
) -> TestMaps:
    """Test frequency maps whose regions follow different true models (Figs 4, 5, 7, 8).

    Args:
        templates: sky templates at the test resolution.
        instrument: bands and noise depths.
        task: a key of :data:`TASKS`.
        layout: class per pixel (within the task), default :func:`region_layout`.
        n_real: independent realisations (CMB, beta_s, modulation, noise).
        noise: add white noise at the templates' nside.
        config: physical settings.
        cmb_realisations: ``templates.cmb_qu`` realisations of the test maps, realisation ``r``
            using ``cmb_realisations[r % len]`` (default: the last one, which
            :func:`simulate_training_set` holds out by default).
        seed: integer seed or ``jax.random`` key (use one no training set uses: the
            beta_s, modulation and noise draws are then independent of training).

    Returns:
        The :class:`TestMaps` (maps ``[real, freq, 2, pix]`` uK_CMB).
    """
    models = np.asarray(task_models(task))
    layout = region_layout(templates.nside, task) if layout is None else np.asarray(layout)
    if layout.shape != (templates.npix,) or layout.min() < 0 or layout.max() >= models.shape[0]:
        raise ValueError(
            f"layout must hold classes 0..{models.shape[0] - 1} on {templates.npix} pixels"
        )
    if n_real < 1:
        raise ValueError(f"n_real must be >= 1, got {n_real}")
    sigma = _noise_sigma(instrument, templates.nside if noise else None)
    key = _key(seed)
    pool = _cmb_pool(templates, cmb_realisations, test=True)
    freqs = jnp.asarray(instrument.frequencies, dtype=float)
    model_map = models[layout]
    maps, betas = [], []
    for r in range(n_real):
        key, sub = jax.random.split(key)
        data, beta_s = simulate_vectors(
            sub,
            freqs,
            dust_qu=templates.dust_qu.T,
            sync_qu=templates.sync_qu.T,
            ame_i=templates.ame_i,
            dust_angle=templates.dust_angle,
            cmb_qu=templates.cmb_qu[pool[r % pool.size]].T,
            models=model_map,
            noise_sigma=sigma,
            config=config,
            sync_nu0=templates.sync_nu0,
            dust_nu0=templates.dust_nu0,
            ame_nu0=templates.ame_nu0,
        )
        maps.append(jnp.transpose(data, (2, 1, 0)))
        betas.append(beta_s)
    return TestMaps(
        jnp.stack(maps), layout.astype(np.int32), model_map.astype(np.int32), jnp.stack(betas)
    )


def maps_to_vectors(maps: Float[Array, "freq 2 pix"]) -> Float[Array, "pix 2 freq"]:
    """Frequency maps ``[freq, 2, pix]`` to per-pixel vectors ``[pix, 2, freq]``."""
    maps = jnp.asarray(maps)
    if maps.ndim != 3 or maps.shape[1] != 2:
        raise ValueError(f"maps must have shape [freq, 2 (Q, U), pix], got {maps.shape}")
    return jnp.transpose(maps, (2, 1, 0))

"""Training of the cosmology-conditioned score network with the renormalised loss (App. B.2, eq. 5).

For dust maps z_0 (standardised), phi ~ U(prior), t ~ U(t_min, 1) and coloured noise
e = Sigma(phi)^{1/2} n, z_t = sqrt(alpha) z_0 + sqrt(1 - alpha) e and the network m
minimises E || m(z_t, t, phi) - (z_t - sqrt(alpha) z_0) / sqrt(1 - alpha) ||^2
(eq. 5 with lambda(t) = 1), i.e. m = -sqrt(1 - alpha) Sigma grad log p_t. AdamW with an
inverse-square-root learning-rate schedule (App. B.4), gradient clipping, an exponential
moving average of the weights, orbax checkpoints. Every random draw of step k comes
from ``fold_in(key, k)``, so a run resumed from a checkpoint continues exactly as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Array, Float

from ._cosmology import FIDUCIAL_PHI, sample_phi
from ._data import augment
from ._sde import LinearSchedule, NoiseFn, diffuse, sample_posterior, sample_prior
from ._unet import UNet

EigenvalueFn = Callable[[Array], Array]


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of a training run (saved as ``config.json`` beside the checkpoints).

    Attributes:
        size: patch side in pixels (divisible by 2^len(channels)).
        pixel_arcmin: pixel side in arcmin (8 in the paper).
        channels: UNet widths per level.
        emb_dim: width of the time and cosmology embeddings.
        groups: GroupNorm groups.
        batch_size: maps per step.
        peak_learning_rate: AdamW peak of the inverse-square-root schedule.
        warmup_steps: linear warm-up length, after which lr ~ 1 / sqrt(step).
        weight_decay: AdamW decoupled weight decay.
        grad_clip: global gradient-norm clip.
        ema_decay: decay of the exponential moving average of the weights.
        t_min: smallest diffusion time drawn in training.
        beta_min: beta(0) of the linear schedule.
        beta_max: beta(1) of the linear schedule.
        condition_on_cosmology: draw phi from the prior per sample; else use ``fixed_phi``.
        fixed_phi: (H0, omega_b) when not conditioning.
        seed: seed of the initialisation and of every training draw.
    """

    size: int = 64
    pixel_arcmin: float = 8.0
    channels: tuple[int, ...] = (32, 64, 128)
    emb_dim: int = 128
    groups: int = 8
    batch_size: int = 32
    peak_learning_rate: float = 5e-4
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_min: float = 1e-3
    beta_min: float = 0.1
    beta_max: float = 20.0
    condition_on_cosmology: bool = True
    fixed_phi: tuple[float, float] = FIDUCIAL_PHI
    seed: int = 0

    def __post_init__(self) -> None:
        stride = 2 ** len(self.channels)
        if self.size % stride:
            raise ValueError(f"size={self.size} must be divisible by 2^len(channels)={stride}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    @property
    def schedule(self) -> LinearSchedule:
        """The SDE's beta schedule."""
        return LinearSchedule(self.beta_min, self.beta_max)

    def to_json(self) -> str:
        """JSON text of the configuration."""
        return json.dumps(dataclasses.asdict(self), indent=1)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        """Inverse of :meth:`to_json`."""
        d = json.loads(text)
        d["channels"] = tuple(d["channels"])
        d["fixed_phi"] = tuple(d["fixed_phi"])
        return cls(**d)


class TrainState(NamedTuple):
    """Everything a training run needs to continue: weights, optimiser, EMA, step, PRNG key."""

    params: Any
    opt_state: Any
    ema: Any
    step: Array
    key: Array


def inverse_sqrt_schedule(peak: float, warmup_steps: int) -> optax.Schedule:
    """lr(s) = peak min((s + 1) / warmup, sqrt(warmup / (s + 1)))."""
    w = max(warmup_steps, 1)

    def schedule(count):
        s = count + 1.0
        return peak * jnp.minimum(s / w, jnp.sqrt(w / s))

    return schedule


def make_model(config: TrainConfig) -> UNet:
    """The UNet of a configuration, initialised from ``config.seed``.

    Shapes come from ``nnx.eval_shape`` and values from numpy (LeCun-normal kernels,
    zero biases, unit GroupNorm scales, as flax's defaults): no XLA program is
    compiled, which on a CPU saves minutes for a UNet's many initialisers.
    """
    abstract = nnx.eval_shape(
        lambda: UNet(config.channels, config.emb_dim, config.groups, rngs=nnx.Rngs(0))
    )
    graphdef, state = nnx.split(abstract)
    rng = np.random.default_rng(config.seed)

    def init(path, leaf):
        name = path[-1].key
        shape, dtype = leaf.shape, leaf.dtype
        if name == "kernel":
            fan_in = int(np.prod(shape[:-1]))
            return jnp.asarray(rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape), dtype)
        if name == "scale":
            return jnp.ones(shape, dtype)
        return jnp.zeros(shape, dtype)

    pure = jax.tree_util.tree_map_with_path(init, nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, pure)
    return nnx.merge(graphdef, state)


class Trainer:
    """Training, sampling and separation for one configuration and one training set.

    Args:
        config: hyper-parameters.
        dust_maps: ``(n_maps, size, size)`` standardised training maps.
        eigenvalue_fn: ``phi[batch, 2] -> (batch, size, size)`` normalised Fourier
            eigenvalues of Sigma(phi) (e.g. :meth:`CMBSpectra.eigenvalues`), jit-able.
    """

    def __init__(
        self,
        config: TrainConfig,
        dust_maps: Float[Array, "n_maps n n"] | np.ndarray,
        eigenvalue_fn: EigenvalueFn,
    ):
        dust_maps = np.asarray(dust_maps, np.float32)
        if dust_maps.ndim != 3 or dust_maps.shape[1:] != (config.size, config.size):
            raise ValueError(
                f"dust_maps must be (n_maps, {config.size}, {config.size}), got {dust_maps.shape}"
            )
        self.config = config
        self.schedule = config.schedule
        self.eigenvalue_fn = eigenvalue_fn
        self.data = jnp.asarray(dust_maps)
        self.graphdef, self._initial_params = nnx.split(make_model(config))
        self.tx = optax.chain(
            optax.clip_by_global_norm(config.grad_clip),
            optax.adamw(
                inverse_sqrt_schedule(config.peak_learning_rate, config.warmup_steps),
                weight_decay=config.weight_decay,
            ),
        )
        self._chunks: dict[Any, Callable] = {}

    def init_state(self) -> TrainState:
        """Fresh weights, optimiser state and EMA at step 0."""
        params = jax.tree.map(jnp.copy, self._initial_params)
        return TrainState(
            params=params,
            opt_state=self.tx.init(params),
            ema=jax.tree.map(jnp.copy, params),
            step=jnp.asarray(0, jnp.int32),
            key=jax.random.PRNGKey(self.config.seed + 1),
        )

    def _phi(self, key: Array, batch: int) -> Array:
        if self.config.condition_on_cosmology:
            return sample_phi(key, (batch,)).astype(jnp.float32)
        return jnp.broadcast_to(jnp.asarray(self.config.fixed_phi, jnp.float32), (batch, 2))

    def loss(self, params: Any, x0: Array, key: Array) -> Array:
        """Renormalised denoising loss (eq. 5) on a batch of clean maps ``x0``."""
        kt, kp, kn = jax.random.split(key, 3)
        b = x0.shape[0]
        t = jax.random.uniform(kt, (b,), jnp.float32, self.config.t_min, 1.0)
        phi = self._phi(kp, b)
        lam = self.eigenvalue_fn(phi).astype(jnp.float32)
        zt, target = diffuse(kn, x0, t, jnp.sqrt(lam), self.schedule)
        pred = nnx.merge(self.graphdef, params)(zt, t, phi)
        return jnp.mean((pred - target) ** 2)

    def _one_step(self, state: TrainState, data: Array) -> tuple[TrainState, Array]:
        key = jax.random.fold_in(state.key, state.step)
        kb, ka, kl = jax.random.split(key, 3)
        idx = jax.random.randint(kb, (self.config.batch_size,), 0, data.shape[0])
        x0 = augment(ka, data[idx])
        loss, grads = jax.value_and_grad(self.loss)(state.params, x0, kl)
        updates, opt_state = self.tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        d = self.config.ema_decay
        ema = jax.tree.map(lambda e, p: d * e + (1 - d) * p, state.ema, params)
        return TrainState(params, opt_state, ema, state.step + 1, state.key), loss

    def train_steps(self, state: TrainState, n_steps: int) -> tuple[TrainState, Array]:
        """Run ``n_steps`` optimisation steps in one compiled loop; returns (state, losses)."""
        if n_steps not in self._chunks:

            def run(state, data):
                return jax.lax.scan(lambda s, _: self._one_step(s, data), state, None, n_steps)

            self._chunks[n_steps] = jax.jit(run, donate_argnums=0)
        return self._chunks[n_steps](state, self.data)

    def model(self, params: Any) -> UNet:
        """The network with the given weights (``state.params`` or ``state.ema``)."""
        return nnx.merge(self.graphdef, params)

    def noise_fn(self, params: Any, phi: Array) -> NoiseFn:
        """m(z, t) of the network for one cosmology ``phi`` = (H0, omega_b)."""
        phi = jnp.asarray(phi, jnp.float32)

        def fn(z, t):
            model = nnx.merge(self.graphdef, params)
            return model(z, t, jnp.broadcast_to(phi, (z.shape[0], 2)))

        return fn

    def eigenvalues(self, phi: Array) -> Array:
        """Normalised Fourier eigenvalues of Sigma for one phi (the fixed one if unconditioned)."""
        if not self.config.condition_on_cosmology:
            phi = jnp.asarray(self.config.fixed_phi, jnp.float32)
        return self.eigenvalue_fn(jnp.asarray(phi, jnp.float32)[None])[0]

    def _compiled(self, key: tuple, build: Callable) -> Callable:
        if key not in self._chunks:
            self._chunks[key] = jax.jit(build())
        return self._chunks[key]

    def generate(
        self,
        params: Any,
        key: Array,
        n_samples: int,
        phi: Array = FIDUCIAL_PHI,
        n_steps: int = 1000,
        method: str = "sde",
    ) -> Array:
        """Unconditional dust samples (reverse SDE or probability-flow ODE from t = 1)."""

        def build():
            def run(params, key, phi):
                lam = self.eigenvalues(phi)
                fn = self.noise_fn(params, phi)
                return sample_prior(key, fn, n_samples, lam, self.schedule, n_steps, method)

            return run

        run = self._compiled(("generate", n_samples, n_steps, method), build)
        return run(params, key, jnp.asarray(phi, jnp.float32))

    def separate(
        self,
        params: Any,
        key: Array,
        y: Array,
        sigma: float,
        phi: Array = FIDUCIAL_PHI,
        n_samples: int = 16,
        n_steps: int = 1000,
    ) -> tuple[Array, Array]:
        """Posterior (dust, CMB) samples for one observation y = x + sigma Sigma(phi)^{1/2} n."""

        def build():
            def run(params, key, y, phi):
                lam = self.eigenvalues(phi)
                fn = self.noise_fn(params, phi)
                return sample_posterior(key, fn, y, sigma, lam, self.schedule, n_samples, n_steps)

            return run

        run = self._compiled(("separate", float(sigma), n_samples, n_steps), build)
        return run(params, key, jnp.asarray(y, jnp.float32), jnp.asarray(phi, jnp.float32))


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path, state: TrainState, config: TrainConfig, max_to_keep: int = 3
) -> Path:
    """Save ``state`` under ``directory/<step>`` with orbax (plus ``config.json``).

    Only the latest ``max_to_keep`` checkpoints are kept.
    """
    import orbax.checkpoint as ocp

    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write_text(directory / "config.json", config.to_json())
    leaves = [np.asarray(x) for x in jax.tree.leaves(state)]
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, enable_async_checkpointing=False
    )
    with ocp.CheckpointManager(directory, options=options) as mngr:
        mngr.save(int(state.step), args=ocp.args.StandardSave({"leaves": leaves}), force=True)
        mngr.wait_until_finished()
    return directory / str(int(state.step))


def latest_checkpoint_step(directory: str | Path) -> int | None:
    """Latest saved step under ``directory`` (None if there is none)."""
    import orbax.checkpoint as ocp

    directory = Path(directory).resolve()
    if not directory.exists():
        return None
    with ocp.CheckpointManager(directory) as mngr:
        return mngr.latest_step()


def restore_checkpoint(
    directory: str | Path, template: TrainState, step: int | None = None
) -> TrainState:
    """Restore the state saved at ``step`` (default: latest) with the structure of ``template``."""
    import orbax.checkpoint as ocp

    directory = Path(directory).resolve()
    leaves, treedef = jax.tree.flatten(template)
    abstract = {"leaves": [jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype) for x in leaves]}
    with ocp.CheckpointManager(directory) as mngr:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"directory {directory} holds no checkpoint")
        restored = mngr.restore(step, args=ocp.args.StandardRestore(abstract))
    return jax.tree.unflatten(treedef, [jnp.asarray(x) for x in restored["leaves"]])


def load_config(directory: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` saved beside the checkpoints in ``directory``."""
    return TrainConfig.from_json((Path(directory) / "config.json").read_text())


def run_training(
    run_dir: str | Path,
    trainer: Trainer,
    n_steps: int | None = None,
    seconds: float | None = None,
    chunk: int = 50,
    checkpoint_every: int = 1000,
    log: Callable[[str], None] | None = print,
    max_to_keep: int = 3,
) -> tuple[TrainState, list[float]]:
    """Train until ``n_steps`` total steps or ``seconds`` of wall time, resuming from ``run_dir``.

    Checkpoints go to ``run_dir/checkpoints`` every ``checkpoint_every`` steps and at the
    end; mean losses per chunk are appended to ``run_dir/losses.csv`` (step, loss).
    A run resumed from its last checkpoint continues exactly as if uninterrupted.

    Returns:
        (final state, chunk-mean losses of this call).
    """
    import time

    if n_steps is None and seconds is None:
        raise ValueError("give n_steps (total steps) or seconds (wall-time budget)")
    run_dir = Path(run_dir)
    ckpt = run_dir / "checkpoints"
    run_dir.mkdir(parents=True, exist_ok=True)
    template = trainer.init_state()
    if latest_checkpoint_step(ckpt) is not None:
        saved = load_config(ckpt)
        if saved != trainer.config:
            raise ValueError(
                f"run_dir {run_dir} was trained with a different configuration:\n{saved}\n"
                "use a new run_dir or the saved configuration"
            )
        state = restore_checkpoint(ckpt, template)
        if log:
            log(f"resumed from step {int(state.step)}")
    else:
        state = template
    t0 = time.perf_counter()
    losses: list[float] = []
    last_saved = int(state.step)
    with open(run_dir / "losses.csv", "a") as f:
        while True:
            step = int(state.step)
            if n_steps is not None and step >= n_steps:
                break
            if seconds is not None and time.perf_counter() - t0 >= seconds:
                break
            k = chunk if n_steps is None else min(chunk, n_steps - step)
            state, loss = trainer.train_steps(state, k)
            mean = float(jnp.mean(loss))
            losses.append(mean)
            f.write(f"{int(state.step)},{mean:.6g}\n")
            f.flush()
            if log:
                log(f"step {int(state.step)} loss {mean:.4f} ({time.perf_counter() - t0:.0f} s)")
            if int(state.step) - last_saved >= checkpoint_every:
                save_checkpoint(ckpt, state, trainer.config, max_to_keep)
                last_saved = int(state.step)
    if int(state.step) != last_saved or latest_checkpoint_step(ckpt) is None:
        save_checkpoint(ckpt, state, trainer.config, max_to_keep)
    return state, losses

"""Training of the cosmology-conditioned score network with the renormalised loss (App. B.2, eq. 5).

For dust maps z_0 (standardised), phi ~ U(prior), t ~ U(t_min, 1) and coloured noise
e = Sigma(phi)^{1/2} n, z_t = sqrt(alpha) z_0 + sqrt(1 - alpha) e and the network m
minimises E || m(z_t, t, phi) - (z_t - sqrt(alpha) z_0) / sqrt(1 - alpha) ||^2
(eq. 5 with lambda(t) = 1), i.e. m = -sqrt(1 - alpha) Sigma grad log p_t. AdamW with an
inverse-square-root learning-rate schedule (App. B.4), gradient clipping, an exponential
moving average of the weights, orbax checkpoints. Every random draw of step k comes
from ``fold_in(key, k)``, so a run resumed from a checkpoint continues exactly as an
uninterrupted one.

Portable state files (:func:`save_state` / :func:`load_state`): one ``.npz`` holding the
configuration, step, PRNG key, weights, EMA (float32 or bfloat16) and optionally the
AdamW moments, small enough to carry between machines. Without the moments, resuming is
a documented warm restart: the Adam moments (and their bias-correction count) start
afresh while the learning-rate schedule, the step count and the data stream continue.

Mixed precision (``precision="bfloat16"``): the UNet's convolutions and activations run
in bfloat16 with float32 weights, GroupNorm statistics, loss and optimiser; samplers keep
the SDE state, the noise and the Fourier filters in float32.
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
from ._fast_unet import fast_noise_fn
from ._sde import LinearSchedule, NoiseFn, diffuse, sample_posterior, sample_prior
from ._unet import UNet

EigenvalueFn = Callable[[Array], Array]

PRECISIONS = ("float32", "bfloat16")
STATE_FILE = "state.npz"
_STATE_FORMAT = "dust-diffusion-state-1"


def resolve_precision(precision: str | None = "auto") -> str:
    """Computation precision of the network: 'auto' (or None) is bfloat16 on a GPU, else float32."""
    if precision in (None, "auto"):
        return "bfloat16" if jax.default_backend() == "gpu" else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    return precision


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
        precision: computation precision of the network in training, 'float32' or
            'bfloat16' (mixed precision; weights, loss and optimiser stay float32). It does
            not change the weights' structure, so a run may resume in the other precision.
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
    precision: str = "float32"

    def __post_init__(self) -> None:
        stride = 2 ** len(self.channels)
        if self.size % stride:
            raise ValueError(f"size={self.size} must be divisible by 2^len(channels)={stride}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def same_run(self, other: TrainConfig) -> bool:
        """Equal up to ``precision`` (which a resumed run may change)."""
        return dataclasses.replace(self, precision=other.precision) == other

    def same_architecture(self, other: TrainConfig) -> bool:
        """Same UNet weights' structure (channels, embedding width, groups)."""
        return (self.channels, self.emb_dim, self.groups) == (
            other.channels,
            other.emb_dim,
            other.groups,
        )

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


def _abstract_model(config: TrainConfig, precision: str = "float32") -> UNet:
    dtype = None if precision == "float32" else jnp.bfloat16
    return nnx.eval_shape(
        lambda: UNet(config.channels, config.emb_dim, config.groups, rngs=nnx.Rngs(0), dtype=dtype)
    )


def make_model(config: TrainConfig) -> UNet:
    """The (float32) UNet of a configuration, initialised from ``config.seed``.

    Shapes come from ``nnx.eval_shape`` and values from numpy (LeCun-normal kernels,
    zero biases, unit GroupNorm scales, as flax's defaults): no XLA program is
    compiled, which on a CPU saves minutes for a UNet's many initialisers.
    """
    graphdef, state = nnx.split(_abstract_model(config))
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
        self._graphdefs = {"float32": self.graphdef}
        self.tx = optax.chain(
            optax.clip_by_global_norm(config.grad_clip),
            optax.adamw(
                inverse_sqrt_schedule(config.peak_learning_rate, config.warmup_steps),
                weight_decay=config.weight_decay,
            ),
        )
        self._chunks: dict[Any, Callable] = {}

    def graphdef_for(self, precision: str | None = "float32") -> Any:
        """The network's graph for a precision (same weights' structure for all)."""
        precision = resolve_precision(precision)
        if precision not in self._graphdefs:
            self._graphdefs[precision] = nnx.split(_abstract_model(self.config, precision))[0]
        return self._graphdefs[precision]

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
        pred = nnx.merge(self.graphdef_for(self.config.precision), params)(zt, t, phi)
        return jnp.mean((pred.astype(jnp.float32) - target) ** 2)

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

    def model(self, params: Any, precision: str | None = "float32") -> UNet:
        """The network with the given weights (``state.params`` or ``state.ema``)."""
        return nnx.merge(self.graphdef_for(precision), params)

    def noise_fn(
        self, params: Any, phi: Array, precision: str | None = "auto", fast: bool = True
    ) -> NoiseFn:
        """m(z, t) of the network for one cosmology ``phi`` = (H0, omega_b).

        ``precision``: 'float32', 'bfloat16' (mixed precision) or 'auto' (bfloat16 on a
        GPU). The returned m has the dtype of z whatever the precision.
        ``fast``: evaluate the network with :mod:`dust_diffusion._fast_unet` (the same
        function, fewer memory passes; the weights are cast and rearranged and the
        cosmology embeddings computed once, here, rather than in every call), else with
        the flax module (the reference). Call it inside the jitted sampler, outside its
        loop, so that the preparation happens once per sampling.
        """
        phi = jnp.asarray(phi, jnp.float32)
        if fast:
            dtype = jnp.bfloat16 if resolve_precision(precision) == "bfloat16" else None
            return fast_noise_fn(params, self.config.groups, phi, dtype)
        graphdef = self.graphdef_for(precision)

        def fn(z, t):
            model = nnx.merge(graphdef, params)
            return model(z, t, jnp.broadcast_to(phi, (z.shape[0], 2))).astype(z.dtype)

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
        precision: str | None = "auto",
    ) -> Array:
        """Unconditional dust samples (reverse SDE or probability-flow ODE from t = 1).

        The whole reverse loop is one compiled ``lax.scan`` (cached per shape, method
        and precision); ``precision='auto'`` runs the network in bfloat16 on a GPU.
        """
        precision = resolve_precision(precision)

        def build():
            def run(params, key, phi):
                lam = self.eigenvalues(phi)
                fn = self.noise_fn(params, phi, precision)
                return sample_prior(key, fn, n_samples, lam, self.schedule, n_steps, method)

            return run

        run = self._compiled(("generate", n_samples, n_steps, method, precision), build)
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
        precision: str | None = "auto",
    ) -> tuple[Array, Array]:
        """Posterior (dust, CMB) samples for one observation y = x + sigma Sigma(phi)^{1/2} n.

        One compiled program per (sigma, n_samples, n_steps, precision); y and phi are
        arguments, so new observations and cosmologies do not recompile.
        """
        precision = resolve_precision(precision)

        def build():
            def run(params, key, y, phi):
                lam = self.eigenvalues(phi)
                fn = self.noise_fn(params, phi, precision)
                return sample_posterior(key, fn, y, sigma, lam, self.schedule, n_samples, n_steps)

            return run

        run = self._compiled(("separate", float(sigma), n_samples, n_steps, precision), build)
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


def state_file_path(path: str | Path) -> Path:
    """A state file path: ``path`` itself if it ends in .npz, else ``path/state.npz``."""
    path = Path(path)
    return path if path.suffix == ".npz" else path / STATE_FILE


def _named_leaves(tree: Any) -> tuple[list[str], list[Any]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [jax.tree_util.keystr(k) for k, _ in flat], [v for _, v in flat]


def save_state(
    path: str | Path,
    state: TrainState,
    config: TrainConfig,
    *,
    optimizer: bool = True,
    ema_dtype: str = "float32",
    params: bool = True,
) -> Path:
    """Write ``state`` to one portable ``.npz`` (``path`` or ``path/state.npz``).

    Args:
        path: file (``*.npz``) or folder.
        state: the training state.
        config: its configuration (stored inside the file).
        optimizer: keep the AdamW moments (exact resume). Without them the file is
            about half the size and :func:`load_state` performs a warm restart.
        ema_dtype: 'float32' or 'bfloat16' storage of the EMA weights (bfloat16 rounds
            them once, to 2^-9 relative; they are cast back to float32 on loading).
        params: keep the raw weights; without them a resume restarts from the EMA.

    Returns:
        The file written (atomically). Sizes for the default UNet (2.4 M weights):
        ~38 MB with everything, ~14 MB with ``optimizer=False, ema_dtype='bfloat16'``.
    """
    if ema_dtype not in PRECISIONS:
        raise ValueError(f"ema_dtype must be one of {PRECISIONS}, got {ema_dtype!r}")
    file = state_file_path(path)
    file.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {
        "format": np.asarray(_STATE_FORMAT),
        "config": np.asarray(config.to_json()),
        "step": np.asarray(state.step),
        "key": np.asarray(state.key),
        "ema_dtype": np.asarray(ema_dtype),
    }
    parts = [("ema", state.ema)]
    if params:
        parts.append(("params", state.params))
    if optimizer:
        parts.append(("opt", state.opt_state))
    for prefix, tree in parts:
        names, leaves = _named_leaves(tree)
        arrays[f"names.{prefix}"] = np.asarray(names)
        for i, leaf in enumerate(leaves):
            x = np.asarray(leaf)
            if prefix == "ema" and ema_dtype == "bfloat16":
                x = x.astype(jnp.bfloat16).view(np.uint16)
            arrays[f"{prefix}.{i:05d}"] = x
    fd, tmp = tempfile.mkstemp(dir=file.parent, suffix=".npz.tmp")
    with os.fdopen(fd, "wb") as f:
        np.savez(f, **arrays)
    os.chmod(tmp, 0o644)
    os.replace(tmp, file)
    return file


def load_state_config(path: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` stored in a state file (or folder holding ``state.npz``)."""
    file = state_file_path(path)
    if not file.exists():
        raise ValueError(
            f"no state file at {file} (write one with save_state / train --save-state)"
        )
    with np.load(file) as data:
        return TrainConfig.from_json(str(data["config"]))


def _restore_tree(data: Any, prefix: str, template: Any, file: Path) -> Any:
    names, leaves = _named_leaves(template)
    saved = [str(n) for n in data[f"names.{prefix}"]]
    if saved != names:
        raise ValueError(f"{file}: the saved {prefix} tree does not match this model's structure")
    out = []
    for i, ref in enumerate(leaves):
        x = data[f"{prefix}.{i:05d}"]
        if prefix == "ema" and str(data["ema_dtype"]) == "bfloat16":
            x = x.view(jnp.bfloat16)
        ref = np.asarray(ref)
        if x.shape != ref.shape:
            raise ValueError(
                f"{file}: {prefix}{names[i]} has shape {x.shape}, expected {ref.shape}"
            )
        out.append(jnp.asarray(x.astype(ref.dtype)))
    return jax.tree.unflatten(jax.tree.structure(template), out)


def _with_schedule_count(opt_state: Any, step: int) -> Any:
    """Set the learning-rate schedule's step counter(s) of an optax state to ``step``."""
    if isinstance(opt_state, optax.ScaleByScheduleState):
        return optax.ScaleByScheduleState(count=jnp.asarray(step, opt_state.count.dtype))
    if isinstance(opt_state, tuple):
        items = [_with_schedule_count(x, step) for x in opt_state]
        return type(opt_state)(*items) if hasattr(opt_state, "_fields") else tuple(items)
    return opt_state


def load_state(path: str | Path, trainer: Trainer, *, weights_only: bool = False) -> TrainState:
    """Read a state file written by :func:`save_state` for ``trainer``.

    With the optimizer moments saved, the state is restored exactly (the run continues
    bit for bit). Without them, a warm restart: weights (raw, else EMA) and EMA as saved,
    step and PRNG key as saved (so the learning-rate schedule and the data stream
    continue), fresh AdamW moments whose bias correction starts again at count 0.

    Args:
        path: state file or folder holding ``state.npz``.
        trainer: the trainer to resume; its configuration must equal the saved one
            (up to ``precision``), or only share the architecture with ``weights_only``.
        weights_only: take only the weights (raw and EMA) and start at step 0, e.g. to
            initialise a 256 x 256 run from a 64 x 64 model (the UNet is convolutional).
    """
    file = state_file_path(path)
    saved = load_state_config(file)
    config = trainer.config
    if weights_only:
        if not saved.same_architecture(config):
            raise ValueError(
                f"{file} holds a UNet with channels={saved.channels}, emb_dim={saved.emb_dim}, "
                f"groups={saved.groups}; the trainer's is channels={config.channels}, "
                f"emb_dim={config.emb_dim}, groups={config.groups}"
            )
    elif not saved.same_run(config):
        raise ValueError(
            f"{file} was trained with a different configuration:\n{saved}\n"
            "build the Trainer from load_state_config(path), or pass weights_only=True"
        )
    template = trainer.init_state()
    with np.load(file) as data:
        if str(data["format"]) != _STATE_FORMAT:
            raise ValueError(f"{file} is not a {_STATE_FORMAT} file")
        ema = _restore_tree(data, "ema", template.ema, file)
        has_params = "names.params" in data
        params = _restore_tree(data, "params", template.params, file) if has_params else ema
        params = jax.tree.map(jnp.copy, params)
        if weights_only:
            return template._replace(params=params, ema=ema, opt_state=trainer.tx.init(params))
        step = int(data["step"])
        if "names.opt" in data:
            opt_state = _restore_tree(data, "opt", template.opt_state, file)
        else:
            opt_state = _with_schedule_count(trainer.tx.init(params), step)
        return TrainState(
            params=params,
            opt_state=opt_state,
            ema=ema,
            step=jnp.asarray(step, jnp.int32),
            key=jnp.asarray(data["key"]),
        )


def run_training(
    run_dir: str | Path,
    trainer: Trainer,
    n_steps: int | None = None,
    seconds: float | None = None,
    chunk: int = 50,
    checkpoint_every: int = 1000,
    log: Callable[[str], None] | None = print,
    max_to_keep: int = 3,
    resume_from: str | Path | None = None,
    init_from: str | Path | None = None,
) -> tuple[TrainState, list[float]]:
    """Train until ``n_steps`` total steps or ``seconds`` of wall time, resuming from ``run_dir``.

    Checkpoints go to ``run_dir/checkpoints`` every ``checkpoint_every`` steps and at the
    end; mean losses per chunk are appended to ``run_dir/losses.csv`` (step, loss).
    A run resumed from its last checkpoint continues exactly as if uninterrupted.
    When ``run_dir`` holds no checkpoint yet, training starts from the state file
    ``resume_from`` (see :func:`load_state`: exact or warm restart) or from the weights of
    ``init_from`` (same architecture, any patch size; step 0), else from scratch.
    ``seconds`` counts training only (compilation of the first chunk included).

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
        if not saved.same_run(trainer.config):
            raise ValueError(
                f"run_dir {run_dir} was trained with a different configuration:\n{saved}\n"
                "use a new run_dir or the saved configuration"
            )
        state = restore_checkpoint(ckpt, template)
        if log:
            log(f"resumed from step {int(state.step)}")
    elif resume_from is not None:
        state = load_state(resume_from, trainer)
        if log:
            log(f"resumed from {state_file_path(resume_from)} at step {int(state.step)}")
    elif init_from is not None:
        state = load_state(init_from, trainer, weights_only=True)
        if log:
            log(f"initialised the weights from {state_file_path(init_from)}")
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

"""Training loop: validation split, early stopping, seeded shuffles, orbax checkpoints.

The paper (section 3) trains with Keras' Adadelta at learning rate 1.0 (Keras defaults
rho = 0.95, epsilon = 1e-7), keeps 20% of the vectors aside for validation (section 4.1.1) and
minimises the binary / sparse categorical cross-entropy. Retraining on noisy vectors from the
noiseless network (section 4.3) is :func:`train` started from a trained classifier.

Adadelta's step is ``sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) g``: its length is ~sqrt(eps)
= 3e-4 per weight at the start and grows only as updates accumulate, whatever the batch size,
so what makes the paper's networks learn is the *number of steps* and how clean each step's
direction is. Measured on 4e4 noiseless nside-16 curvature vectors (paper network, ``snr``
inputs): after ~4e3 steps batches of 1024 reach 74% test accuracy, batches of 256 63%; batches
of 32 (Keras' ``fit`` default; the paper states none) need ~5e4 steps to pass 90% and ~1.2e5
for 98%, and the four-class network stays at chance after 1e5 steps of 32 but reaches 79%
after 1.5e4 steps of 256. The default batch is therefore 256 (on a GPU, where a step costs
about the same for any batch this small, 1024 is better). ``steps_per_epoch`` (Keras' ``fit``
argument of the same name) caps the steps between two validations so that large training
sets are validated, early-stopped and time-limited at a useful rate.

One epoch is a single jitted ``lax.scan`` over shuffled mini-batches (the model and optimiser
state are split with ``nnx.split`` and merged inside the scan body), so the Python overhead
is per epoch, not per step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jaxtyping import Array, ArrayLike, Float, Int

from ._models import Classifier

__all__ = ["TrainConfig", "TrainResult", "make_optimizer", "train"]

_OPTIMIZERS = ("adadelta", "adamw")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings.

    Attributes:
        optimizer: ``"adadelta"`` (paper: Keras Adadelta) or ``"adamw"`` (modern variant, with
            a warm-up + cosine learning-rate schedule).
        learning_rate: peak learning rate (paper: 1.0 with Adadelta).
        rho: Adadelta decay (Keras default 0.95).
        eps: Adadelta epsilon (Keras default 1e-7).
        weight_decay: AdamW decoupled weight decay.
        batch_size: mini-batch size (see the module docstring for why 256 and not Keras' 32).
        max_epochs: epoch limit.
        steps_per_epoch: optional cap on the mini-batches per epoch (each epoch draws them from
            a fresh shuffle of the training split); None: one pass over it.
        patience: early stopping: epochs without a validation-loss improvement.
        min_delta: smallest validation-loss decrease counted as an improvement.
        val_fraction: fraction of the vectors held out for validation (paper: 0.2).
        seed: seed of the split, the shuffles and the dropout masks.
        max_seconds: optional wall-time budget; training stops after the epoch that exceeds
            it (the best weights so far are kept).
    """

    optimizer: str = "adadelta"
    learning_rate: float = 1.0
    rho: float = 0.95
    eps: float = 1e-7
    weight_decay: float = 1e-4
    batch_size: int = 256
    max_epochs: int = 100
    steps_per_epoch: int | None = None
    patience: int = 10
    min_delta: float = 1e-4
    val_fraction: float = 0.2
    seed: int = 0
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.optimizer not in _OPTIMIZERS:
            raise ValueError(f"optimizer={self.optimizer!r}; use one of {_OPTIMIZERS}")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be >= 1")
        if self.steps_per_epoch is not None and self.steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1 or None, got {self.steps_per_epoch}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")


class TrainResult(NamedTuple):
    """Outcome of :func:`train`.

    Attributes:
        classifier: the classifier with the best validation-loss weights.
        history: per-epoch ``loss``, ``accuracy``, ``val_loss``, ``val_accuracy`` lists.
        best_epoch: 1-based epoch of the best validation loss.
        epochs_run: epochs actually run.
        stopped_early: early stopping (or the time budget) ended the run before
            ``max_epochs``.
        train_seconds: wall time of the epochs (compilation included).
    """

    classifier: Classifier
    history: dict[str, list[float]]
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    train_seconds: float


def make_optimizer(config: TrainConfig, steps_per_epoch: int) -> optax.GradientTransformation:
    """The optax optimiser of a :class:`TrainConfig`."""
    if config.optimizer == "adadelta":
        return optax.adadelta(config.learning_rate, rho=config.rho, eps=config.eps)
    total = max(config.max_epochs * steps_per_epoch, 2)
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, config.learning_rate, warmup_steps=min(steps_per_epoch, total // 2), decay_steps=total
    )
    return optax.adamw(schedule, weight_decay=config.weight_decay)


def _loss(logits: Array, labels: Array) -> tuple[Array, Array]:
    """Mean cross-entropy and accuracy (sigmoid for one logit, softmax otherwise)."""
    if logits.shape[1] == 1:
        z = logits[:, 0]
        loss = optax.sigmoid_binary_cross_entropy(z, labels.astype(z.dtype))
        pred = (z > 0).astype(labels.dtype)
    else:
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
        pred = jnp.argmax(logits, axis=1).astype(labels.dtype)
    return loss.mean(), (pred == labels).mean()


@partial(jax.jit, static_argnames=("graphdef",))
def _train_epoch(graphdef, state, x: Array, y: Array, batches: Array):
    def step(state, idx):
        model, optimizer = nnx.merge(graphdef, state)
        xb, yb = x[idx], y[idx]

        def loss_fn(model):
            return _loss(model(xb), yb)

        (loss, acc), grads = nnx.value_and_grad(loss_fn, has_aux=True)(model)
        optimizer.update(model, grads)
        return nnx.state((model, optimizer)), (loss, acc)

    state, (losses, accs) = jax.lax.scan(step, state, batches)
    return state, losses.mean(), accs.mean()


@partial(jax.jit, static_argnames=("graphdef",))
def _eval_chunk(graphdef, state, x: Array, y: Array, weight: Array):
    model, _ = nnx.merge(graphdef, state)
    model.eval()
    logits = model(x)
    if logits.shape[1] == 1:
        z = logits[:, 0]
        loss = optax.sigmoid_binary_cross_entropy(z, y.astype(z.dtype))
        correct = (z > 0).astype(y.dtype) == y
    else:
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y)
        correct = jnp.argmax(logits, axis=1).astype(y.dtype) == y
    return jnp.sum(loss * weight), jnp.sum(correct * weight)


def _evaluate(graphdef, state, x: Array, y: Array, chunk: int) -> tuple[float, float]:
    n = x.shape[0]
    chunk = min(chunk, n)
    loss_sum = correct = 0.0
    for start in range(0, n, chunk):
        xb, yb = x[start : start + chunk], y[start : start + chunk]
        pad = chunk - xb.shape[0]
        weight = jnp.concatenate([jnp.ones(xb.shape[0]), jnp.zeros(pad)]).astype(x.dtype)
        if pad:
            xb = jnp.concatenate([xb, jnp.zeros((pad, xb.shape[1]), xb.dtype)])
            yb = jnp.concatenate([yb, jnp.zeros(pad, yb.dtype)])
        ls, cs = _eval_chunk(graphdef, state, xb, yb, weight)
        loss_sum += float(ls)
        correct += float(cs)
    return loss_sum / n, correct / n


def train(
    classifier: Classifier,
    vectors: Float[ArrayLike, "n 2 freq"],
    labels: Int[ArrayLike, " n"],
    config: TrainConfig = TrainConfig(),
    *,
    checkpoint_dir: str | Path | None = None,
    verbose: bool = False,
) -> TrainResult:
    """Train (or retrain) a classifier on raw Q/U vectors.

    The input classifier is not modified: training runs on a copy. With ``snr``/``snr_log`` features
    the input standardisation is fitted on the training split the first time a classifier is
    trained and kept when it is retrained.

    Args:
        classifier: initial classifier (:meth:`Classifier.create`, or a trained one to
            retrain, e.g. on noisy vectors after noiseless training, section 4.3).
        vectors: raw vectors [uK_CMB], shape ``[n, 2, freq]``.
        labels: class per vector (0..n_classes-1 of the classifier's task).
        config: optimisation settings.
        checkpoint_dir: if given, the best weights and metadata are written there with orbax.
        verbose: print one line per epoch.

    Returns:
        The :class:`TrainResult`.

    Raises:
        ValueError: wrong shapes, labels out of range, too few vectors for one batch.
    """
    clf = classifier.copy()
    x = clf.features(vectors)
    y = jnp.asarray(labels, dtype=jnp.int32)
    if y.shape != (x.shape[0],):
        raise ValueError(f"labels must have shape ({x.shape[0]},), got {y.shape}")
    if int(y.min()) < 0 or int(y.max()) >= clf.spec.n_classes:
        raise ValueError(f"labels must lie in 0..{clf.spec.n_classes - 1}")
    key = jax.random.key(config.seed)
    key, k_split = jax.random.split(key)
    perm = jax.random.permutation(k_split, x.shape[0])
    n_val = max(1, round(config.val_fraction * x.shape[0]))
    x_val, y_val = x[perm[:n_val]], y[perm[:n_val]]
    x_tr, y_tr = x[perm[n_val:]], y[perm[n_val:]]
    n_tr = x_tr.shape[0]
    steps = n_tr // config.batch_size
    if steps < 1:
        raise ValueError(
            f"batch_size={config.batch_size} exceeds the {n_tr} training vectors; lower it"
        )
    if config.steps_per_epoch is not None:
        steps = min(steps, config.steps_per_epoch)
    if clf.spec.features != "minmax" and not clf.scaling_fitted:
        mean = x_tr.mean(axis=0)
        std = x_tr.std(axis=0)
        clf.model.feature_mean[...] = mean
        clf.model.feature_std[...] = jnp.where(std > 0, std, 1.0)
        clf.scaling_fitted = True
    clf.model.train()
    optimizer = nnx.Optimizer(clf.model, make_optimizer(config, steps), wrt=nnx.Param)
    graphdef, state = nnx.split((clf.model, optimizer))
    eval_graphdef = graphdef
    history: dict[str, list[float]] = {
        "loss": [],
        "accuracy": [],
        "val_loss": [],
        "val_accuracy": [],
    }
    best_loss, best_epoch, best_state, wait = np.inf, 0, state, 0
    stopped_early = False
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        key, k_epoch = jax.random.split(key)
        order = jax.random.permutation(k_epoch, n_tr)[: steps * config.batch_size]
        state, loss, acc = _train_epoch(graphdef, state, x_tr, y_tr, order.reshape(steps, -1))
        val_loss, val_acc = _evaluate(eval_graphdef, state, x_val, y_val, 65536)
        history["loss"].append(float(loss))
        history["accuracy"].append(float(acc))
        history["val_loss"].append(val_loss)
        history["val_accuracy"].append(val_acc)
        if verbose:
            print(
                f"epoch {epoch:4d} loss {float(loss):.4f} acc {float(acc):.4f} "
                f"val_loss {val_loss:.4f} val_acc {val_acc:.4f}",
                flush=True,
            )
        if not np.isfinite(val_loss):
            stopped_early = True
            break
        if val_loss < best_loss - config.min_delta:
            best_loss, best_epoch, best_state, wait = val_loss, epoch, state, 0
        else:
            wait += 1
            if wait >= config.patience:
                stopped_early = True
                break
        if config.max_seconds is not None and time.perf_counter() - start > config.max_seconds:
            stopped_early = epoch < config.max_epochs
            break
    seconds = time.perf_counter() - start
    model, _ = nnx.merge(graphdef, best_state)
    model.eval()
    clf.model = model
    result = TrainResult(clf, history, best_epoch, epoch, stopped_early, seconds)
    if checkpoint_dir is not None:
        from ._checkpoint import save_classifier

        save_classifier(checkpoint_dir, clf, history=history)
    return result

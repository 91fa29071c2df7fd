"""UNet equivariance, training, orbax checkpoints, state files, mixed precision, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from dust_diffusion import (
    TrainConfig,
    Trainer,
    gaussian_field,
    inverse_sqrt_schedule,
    latest_checkpoint_step,
    load_config,
    load_state,
    load_state_config,
    resolve_precision,
    restore_checkpoint,
    run_training,
    save_checkpoint,
    save_state,
)
from dust_diffusion._flatsky import power_law_eigenvalues

N = 16


def toy_eigenvalue_fn(phi):
    """A cosmology-dependent toy Sigma: slope set by H0 (keeps tests free of CAMB)."""
    k = np.fft.fftfreq(N) * N
    kk = jnp.asarray(np.maximum(np.sqrt(k[:, None] ** 2 + k[None, :] ** 2), 1.0), jnp.float32)
    slope = 1.0 + (phi[:, 0] - 50.0) / 40.0
    lam = kk[None] ** (-slope[:, None, None])
    return lam / lam.mean(axis=(1, 2), keepdims=True)


def tiny_config(**kw):
    base = {
        "size": N,
        "channels": (8, 16, 16),
        "emb_dim": 16,
        "groups": 4,
        "batch_size": 8,
        "peak_learning_rate": 3e-3,
        "warmup_steps": 5,
    }
    return TrainConfig(**(base | kw))


@pytest.fixture(scope="module")
def maps():
    lam = jnp.asarray(power_law_eigenvalues(N, 3.0), jnp.float32)
    g = gaussian_field(jax.random.key(0), lam, (64,))
    return np.asarray(jnp.exp(g) - jnp.exp(g).mean(axis=(1, 2), keepdims=True), np.float32)


@pytest.fixture(scope="module")
def trainer(maps):
    return Trainer(tiny_config(), maps, toy_eigenvalue_fn)


def test_unet_equivariant_to_shifts_by_total_stride_in_both_precisions(trainer):
    state = trainer.init_state()
    model = trainer.model(state.params)
    assert model.total_stride == 8
    z = jax.random.normal(jax.random.key(0), (2, N, N), jnp.float32)
    t = jnp.asarray([0.2, 0.7], jnp.float32)
    phi = jnp.asarray([[60.0, 0.02], [80.0, 0.05]], jnp.float32)
    f = jax.jit(lambda p, z: trainer.model(p)(z, t, phi))
    out = f(state.params, z)
    for shift in [(8, 0), (0, 8), (8, 8)]:
        out2 = f(state.params, jnp.roll(z, shift, (1, 2)))
        np.testing.assert_allclose(np.roll(out, shift, (1, 2)), out2, atol=1e-5)
    with pytest.raises(ValueError, match="divisible"):
        model(jnp.zeros((1, 12, 12), jnp.float32), t[:1], phi[:1])
    # mixed precision: the same float32 weights drive a bfloat16 graph returning float32 m
    b = jax.jit(lambda p, z: trainer.model(p, "bfloat16")(z, t, phi))
    out16 = b(state.params, z)
    assert out16.dtype == jnp.float32
    assert jax.tree.structure(nnx_params(trainer, "bfloat16")) == jax.tree.structure(state.params)
    # bfloat16 keeps 8 mantissa bits: relative rounding 2^-9 per operation
    assert 1e-5 < rel(out16, out) < 3e-2
    np.testing.assert_allclose(
        np.roll(out16, (8, 8), (1, 2)), b(state.params, jnp.roll(z, (8, 8), (1, 2))), atol=3e-2
    )


def test_loss_decreases(trainer):
    state = trainer.init_state()
    losses = []
    for _ in range(14):  # chunks of 3: the program the other tests compile too
        state, loss = trainer.train_steps(state, 3)
        losses.append(np.asarray(loss))
    losses = np.concatenate(losses)
    assert int(state.step) == 42
    assert np.all(np.isfinite(losses))
    assert losses[-10:].mean() < 0.8 * losses[:5].mean()


def test_resume_gives_same_state(trainer, tmp_path):
    a, _ = run_training(tmp_path / "a", trainer, n_steps=6, chunk=3, log=None)
    _b1, _ = run_training(tmp_path / "b", trainer, n_steps=3, chunk=3, log=None)
    assert latest_checkpoint_step(tmp_path / "b" / "checkpoints") == 3
    b, _ = run_training(tmp_path / "b", trainer, n_steps=6, chunk=3, log=None)
    assert int(b.step) == 6
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert load_config(tmp_path / "b" / "checkpoints") == trainer.config
    other = Trainer(tiny_config(seed=5), np.asarray(trainer.data), toy_eigenvalue_fn)
    with pytest.raises(ValueError, match="different configuration"):
        run_training(tmp_path / "b", other, n_steps=9, log=None)


def test_checkpoint_round_trip(trainer, tmp_path):
    state, _ = trainer.train_steps(trainer.init_state(), 3)
    save_checkpoint(tmp_path, state, trainer.config)
    back = restore_checkpoint(tmp_path, trainer.init_state())
    for x, y in zip(jax.tree.leaves(state), jax.tree.leaves(back), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    with pytest.raises(ValueError, match="no checkpoint"):
        restore_checkpoint(tmp_path / "none", trainer.init_state())


def test_generate_and_separate_shapes(trainer):
    state = trainer.init_state()
    x = trainer.generate(state.ema, jax.random.key(0), 3, (70.0, 0.03), n_steps=5)
    assert x.shape == (3, N, N) and bool(jnp.isfinite(x).all())
    y = np.asarray(trainer.data[0])
    dust, cmb = trainer.separate(state.ema, jax.random.key(1), y, 0.6, (70.0, 0.03), 4, 5)
    assert dust.shape == (4, N, N)
    np.testing.assert_allclose(np.asarray(dust + cmb), np.broadcast_to(y, (4, N, N)), atol=1e-5)


def test_config_json_schedule_and_errors():
    c = tiny_config()
    assert type(c).from_json(c.to_json()) == c
    sched = inverse_sqrt_schedule(1e-3, 100)
    assert float(sched(49)) == pytest.approx(5e-4)
    assert float(sched(99)) == pytest.approx(1e-3)
    assert float(sched(399)) == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="divisible"):
        tiny_config(size=20)
    with pytest.raises(ValueError, match="dust_maps"):
        Trainer(tiny_config(), np.zeros((2, 8, 8)), toy_eigenvalue_fn)


# --- mixed precision ---------------------------------------------------------------------


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def nnx_params(trainer, precision):
    from flax import nnx

    model = nnx.merge(trainer.graphdef_for(precision), trainer.init_state().params)
    return nnx.state(model, nnx.Param)


def test_bfloat16_sampling_tracks_float32(trainer):
    state, _ = trainer.train_steps(trainer.init_state(), 3)
    key = jax.random.key(4)
    x32 = trainer.generate(state.ema, key, 3, (70.0, 0.03), n_steps=5, precision="float32")
    x16 = trainer.generate(state.ema, key, 3, (70.0, 0.03), n_steps=5, precision="bfloat16")
    # the SDE state, noise and filters stay float32; only m is computed in bfloat16
    assert x16.dtype == jnp.float32 and bool(jnp.isfinite(x16).all())
    assert rel(x16, x32) < 3e-2
    assert resolve_precision("auto") == "float32"  # CPU
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("float16")
    with pytest.raises(ValueError, match="precision"):
        tiny_config(precision="half")


# --- portable state files ------------------------------------------------------------------


def leaves_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_state_file_exact_round_trip_and_resume(trainer, tmp_path):
    state, _ = trainer.train_steps(trainer.init_state(), 3)
    file = save_state(tmp_path / "full", state, trainer.config)
    assert file == tmp_path / "full" / "state.npz"
    back = load_state(tmp_path / "full", trainer)
    leaves_equal(back, state)
    assert load_state_config(file) == trainer.config
    # continuing from the file is bit-identical to continuing in memory
    a, _ = trainer.train_steps(jax.tree.map(jnp.copy, state), 3)
    b, _ = trainer.train_steps(back, 3)
    leaves_equal(a, b)
    assert int(b.step) == 6


def test_slim_state_warm_restart(trainer, tmp_path):
    state, _ = trainer.train_steps(trainer.init_state(), 3)
    full = save_state(tmp_path / "full.npz", state, trainer.config)
    slim = save_state(
        tmp_path / "slim.npz", state, trainer.config, optimizer=False, ema_dtype="bfloat16"
    )
    # weights 4 B + EMA 2 B per parameter against 4 x 4 B with the AdamW moments
    assert slim.stat().st_size < 0.45 * full.stat().st_size
    back = load_state(slim, trainer)
    leaves_equal(back.params, state.params)
    for x, y in zip(jax.tree.leaves(back.ema), jax.tree.leaves(state.ema), strict=True):
        assert x.dtype == jnp.float32
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2**-8, atol=0)
    assert int(back.step) == 3
    np.testing.assert_array_equal(np.asarray(back.key), np.asarray(state.key))
    # warm restart: fresh Adam moments and bias-correction count, schedule count continues
    adam = [s for s in jax.tree.leaves(back.opt_state, is_leaf=is_state) if is_adam(s)]
    sched = [s for s in jax.tree.leaves(back.opt_state, is_leaf=is_state) if is_sched(s)]
    assert len(adam) == 1 and len(sched) == 1
    assert int(adam[0].count) == 0 and int(sched[0].count) == 3
    assert all(float(jnp.abs(m).max()) == 0.0 for m in jax.tree.leaves(adam[0].mu))
    # run_training resumes the step count from the file in a new run folder
    out, losses = run_training(
        tmp_path / "run", trainer, n_steps=6, chunk=3, log=None, resume_from=slim
    )
    assert int(out.step) == 6 and len(losses) == 1 and np.isfinite(losses[0])
    sched = [s for s in jax.tree.leaves(out.opt_state, is_leaf=is_state) if is_sched(s)]
    assert int(sched[0].count) == 6
    assert (tmp_path / "run" / "losses.csv").read_text().startswith("6,")
    # and a params-free file restarts from the EMA weights
    ema_only = save_state(tmp_path / "e.npz", state, trainer.config, optimizer=False, params=False)
    leaves_equal(load_state(ema_only, trainer).params, state.ema)


def is_state(x):
    return isinstance(x, optax.ScaleByAdamState | optax.ScaleByScheduleState)


def is_adam(x):
    return isinstance(x, optax.ScaleByAdamState)


def is_sched(x):
    return isinstance(x, optax.ScaleByScheduleState)


def test_state_file_checks_and_weights_only(trainer, tmp_path):
    state, _ = trainer.train_steps(trainer.init_state(), 3)
    file = save_state(tmp_path, state, trainer.config, optimizer=False)
    other = Trainer(tiny_config(seed=5), np.asarray(trainer.data), toy_eigenvalue_fn)
    with pytest.raises(ValueError, match="different configuration"):
        load_state(file, other)
    # precision may change on resume
    bf = Trainer(tiny_config(precision="bfloat16"), np.asarray(trainer.data), toy_eigenvalue_fn)
    assert int(load_state(file, bf).step) == 3
    # a larger patch with the same architecture takes the weights, at step 0
    big = Trainer(
        tiny_config(size=2 * N), np.zeros((2, 2 * N, 2 * N), np.float32), toy_eigenvalue_fn
    )
    init = load_state(file, big, weights_only=True)
    assert int(init.step) == 0
    leaves_equal(init.params, state.params)
    wide = Trainer(tiny_config(channels=(8, 16, 32)), np.asarray(trainer.data), toy_eigenvalue_fn)
    with pytest.raises(ValueError, match="channels"):
        load_state(file, wide, weights_only=True)
    with pytest.raises(ValueError, match="no state file"):
        load_state(tmp_path / "missing", trainer)
    with pytest.raises(ValueError, match="ema_dtype"):
        save_state(tmp_path / "x.npz", state, trainer.config, ema_dtype="float16")

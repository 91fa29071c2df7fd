"""UNet equivariance, renormalised-loss training, resumable orbax checkpoints, sampling."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import (
    TrainConfig,
    Trainer,
    gaussian_field,
    inverse_sqrt_schedule,
    latest_checkpoint_step,
    load_config,
    restore_checkpoint,
    run_training,
    save_checkpoint,
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


def test_unet_equivariant_to_shifts_by_total_stride(trainer):
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


def test_loss_decreases(trainer):
    state = trainer.init_state()
    state, losses = trainer.train_steps(state, 40)
    losses = np.asarray(losses)
    assert int(state.step) == 40
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

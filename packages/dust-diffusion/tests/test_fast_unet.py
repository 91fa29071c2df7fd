"""The inference path (_fast_unet) against the flax module and jnp.pad(mode='wrap')."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import TrainConfig, Trainer, UNet
from dust_diffusion._fast_unet import (
    _conv,
    circular_pad,
    conv_circular,
    group_norm_silu,
    prepare_unet,
    subpixel_kernel,
    upsample_conv,
)
from flax import nnx

F32 = jnp.float32


def normal(seed, shape):
    return jax.random.normal(jax.random.key(seed), shape, F32)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / np.linalg.norm(b)


def wrap(x, lo, hi):
    return jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="wrap")


@pytest.mark.parametrize("shape,pad", [((2, 5, 7, 3), 1), ((1, 4, 4, 2), 2), ((1, 3, 3, 1), 3)])
def test_circular_pad_equals_wrap(shape, pad):
    x = normal(0, shape)
    np.testing.assert_array_equal(circular_pad(x, pad), wrap(x, pad, pad))


@pytest.mark.parametrize(
    "k,pad,n", [(3, (1, 1), 8), (2, (1, 1), 6), (3, (2, 0), 7), (3, (1, 1), 3)]
)
def test_conv_circular_equals_conv_of_wrapped(k, pad, n):
    x, kern, bias = normal(1, (2, n, n, 3)), normal(2, (k, k, 3, 5)), normal(3, (5,))
    ref = _conv(wrap(x, *pad), kern, bias)
    out = conv_circular(x, kern, bias, pad)
    assert out.shape == ref.shape
    assert rel(out, ref) < 1e-6


def test_subpixel_upsample_conv_equals_conv_of_upsampled():
    h, kern, bias = normal(4, (2, 6, 6, 3)), normal(5, (3, 3, 3, 4)), normal(6, (4,))
    up = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
    ref = _conv(wrap(up, 1, 1), kern, bias)
    for border in (True, False):
        out = upsample_conv(h, subpixel_kernel(kern), bias, border)
        assert rel(out, ref) < 1e-6


@pytest.mark.parametrize("with_shift", [False, True])
def test_group_norm_silu_equals_flax(with_shift):
    x = 3.0 + 2.0 * normal(7, (2, 6, 6, 12))
    norm = nnx.GroupNorm(12, num_groups=4, rngs=nnx.Rngs(0))
    scale, bias = 1 + 0.1 * normal(8, (12,)), 0.1 * normal(9, (12,))
    norm.scale[...] = scale
    norm.bias[...] = bias
    shift = normal(10, (2, 12)) if with_shift else None
    ref = jax.nn.silu(norm(x + (0 if shift is None else shift[:, None, None, :])))
    out = group_norm_silu(x, scale, bias, 4, shift, pad=0)
    assert rel(out, ref) < 1e-5
    np.testing.assert_array_equal(
        group_norm_silu(x, scale, bias, 4, shift, pad=1)[:, 1:-1, 1:-1], out
    )


@pytest.fixture(scope="module")
def tiny_unet():
    """A tiny UNet with randomised weights (norm scales and biases too)."""
    graphdef, state = nnx.split(UNet((8, 16, 16), 16, 4, rngs=nnx.Rngs(0)))
    leaves, treedef = jax.tree.flatten(state)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    leaves = [
        x + 0.1 * jax.random.normal(k, x.shape, x.dtype) for x, k in zip(leaves, keys, strict=True)
    ]
    return graphdef, jax.tree.unflatten(treedef, leaves)


def inputs(batch=3, n=16):
    z = normal(11, (batch, n, n))
    t = jnp.linspace(0.05, 0.95, batch, dtype=F32)
    phi = jnp.stack([jnp.linspace(60, 80, batch), jnp.linspace(0.02, 0.04, batch)], 1).astype(F32)
    return z, t, phi


@pytest.mark.parametrize("pad_mode", ["border", "concat"])
def test_fast_forward_equals_module_float32(tiny_unet, pad_mode):
    graphdef, state = tiny_unet
    z, t, phi = inputs()
    ref = nnx.merge(graphdef, state)(z, t, phi)
    out = prepare_unet(state, 4, pad_mode=pad_mode)(z, t, phi)
    assert out.dtype == F32 and out.shape == ref.shape
    assert rel(out, ref) < 1e-5
    # cosmology embeddings prepared once
    fixed = prepare_unet(state, 4, phi=phi[:1], pad_mode=pad_mode)
    ref1 = nnx.merge(graphdef, state)(z, t, jnp.broadcast_to(phi[:1], phi.shape))
    assert rel(fixed(z, t), ref1) < 1e-5


def test_fast_forward_bfloat16_tracks_float32(tiny_unet):
    graphdef, state = tiny_unet
    z, t, phi = inputs()
    ref = nnx.merge(graphdef, state)(z, t, phi)
    ref16 = nnx.merge(
        nnx.split(UNet((8, 16, 16), 16, 4, rngs=nnx.Rngs(0), dtype=jnp.bfloat16))[0], state
    )
    out = prepare_unet(state, 4, jnp.bfloat16)(z, t, phi)
    assert out.dtype == F32  # output head and m in float32
    err_fast, err_module = rel(out, ref), rel(ref16(z, t, phi), ref)
    assert err_fast < 0.05 and err_fast < 2 * err_module


def test_fast_path_keeps_activations_bfloat16(tiny_unet):
    """No float32 tensor of a convolution's size in the bf16 path except the head's input."""
    _, state = tiny_unet
    z, t, phi = inputs()
    net = prepare_unet(state, 4, jnp.bfloat16, phi=phi)
    jaxpr = jax.make_jaxpr(lambda z, t: net(z, t))(z, t)
    convs = [e for e in jaxpr.eqns if e.primitive.name == "conv_general_dilated"]
    dtypes = [str(e.invars[0].aval.dtype) for e in convs]
    # the float32 head: one full convolution and its two boundary strips
    assert dtypes.count("float32") == 3 and dtypes.count("bfloat16") == len(dtypes) - 3


def test_trainer_noise_fn_fast_equals_module():
    config = TrainConfig(size=16, channels=(8, 16, 16), emb_dim=16, groups=4)
    trainer = Trainer(config, np.zeros((1, 16, 16), np.float32), lambda phi: None)
    params = trainer.init_state().params
    z, t, _ = inputs()
    phi = jnp.asarray([68.0, 0.03], F32)
    fast = trainer.noise_fn(params, phi, "float32")(z, t)
    ref = trainer.noise_fn(params, phi, "float32", fast=False)(z, t)
    assert rel(fast, ref) < 1e-5

"""Score network: a three-level periodic UNet conditioned on time and cosmology (App. B.1).

Each level has one ResBlock of three 3x3 convolutions (GroupNorm + SiLU before each),
with 'circular' padding so the network respects the periodic boundary conditions of the
patches, and a rescaled residual connection. A sine/cosine embedding of t, transformed
by an MLP, and an embedding of phi (one linear layer + SiLU, then a per-block MLP) are
added at the start of every block. Resolution is halved by 2x2 average pooling between
levels and restored by nearest-neighbour upsampling followed by a convolution; encoder
features are concatenated into the decoder. The total stride is 2^levels, so the
network is exactly equivariant to periodic shifts by multiples of ``total_stride``.

The output is the renormalised score m(z_t, t, phi) = -sqrt(1 - alpha) Sigma grad log p_t
(App. B.2).

Mixed precision: with ``dtype=jnp.bfloat16`` the convolutions and activations run in
bfloat16 (tensor cores) while the parameters stay float32; GroupNorm statistics, the
time/cosmology embeddings, the output head and the returned m are float32. The
parameter tree does not depend on ``dtype``, so one set of weights serves both modes.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from ._cosmology import normalise_phi

# flax < 0.12 holds lists of submodules as plain lists
_List = getattr(nnx, "List", list)


def sinusoidal_embedding(t: Float[Array, " batch"], dim: int) -> Float[Array, "batch dim"]:
    """Sine/cosine embedding of 1000 t with geometric frequencies (Song et al. 2021)."""
    half = dim // 2
    freqs = jnp.exp(-math.log(10_000.0) * jnp.arange(half, dtype=t.dtype) / max(half - 1, 1))
    arg = 1000.0 * t[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(arg), jnp.cos(arg)], -1)


def _conv(cin: int, cout: int, k: int, rngs: nnx.Rngs, dtype=None) -> nnx.Conv:
    return nnx.Conv(cin, cout, (k, k), padding="CIRCULAR", dtype=dtype, rngs=rngs)


def _norm(c: int, groups: int, rngs: nnx.Rngs, dtype=None) -> nnx.GroupNorm:
    # flax computes the statistics in (at least) float32 whatever ``dtype`` (the output's)
    return nnx.GroupNorm(c, num_groups=_groups(c, groups), dtype=dtype, rngs=rngs)


def _groups(c: int, groups: int) -> int:
    g = min(groups, c)
    while c % g:
        g -= 1
    return g


class ResBlock(nnx.Module):
    """GroupNorm-SiLU-Conv x 3 with time and cosmology embeddings added after the first conv."""

    def __init__(
        self, cin: int, cout: int, emb_dim: int, groups: int, *, rngs: nnx.Rngs, dtype=None
    ):
        self.norm1 = _norm(cin, groups, rngs, dtype)
        self.conv1 = _conv(cin, cout, 3, rngs, dtype)
        self.t_proj = nnx.Linear(emb_dim, cout, rngs=rngs)
        self.phi_mlp1 = nnx.Linear(emb_dim, cout, rngs=rngs)
        self.phi_mlp2 = nnx.Linear(cout, cout, rngs=rngs)
        self.norm2 = _norm(cout, groups, rngs, dtype)
        self.conv2 = _conv(cout, cout, 3, rngs, dtype)
        self.norm3 = _norm(cout, groups, rngs, dtype)
        self.conv3 = _conv(cout, cout, 3, rngs, dtype)
        self.skip = _conv(cin, cout, 1, rngs, dtype)

    def __call__(self, x: Array, t_emb: Array, phi_emb: Array) -> Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        cond = self.t_proj(t_emb) + self.phi_mlp2(jax.nn.silu(self.phi_mlp1(phi_emb)))
        h = h + cond[:, None, None, :].astype(h.dtype)
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        h = self.conv3(jax.nn.silu(self.norm3(h)))
        return (self.skip(x) + h) / math.sqrt(2.0)


def _pool(x: Array) -> Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4))


class UNet(nnx.Module):
    """Periodic UNet m(z, t, phi) on ``(batch, n, n)`` maps, n divisible by ``total_stride``.

    Args:
        channels: channels per level (three levels in the paper).
        emb_dim: width of the time and cosmology embeddings.
        groups: GroupNorm groups (reduced to a divisor of each width).
        rngs: flax random streams for the initialisation.
        dtype: computation dtype of the convolutions and activations (None: float32;
            ``jnp.bfloat16`` for mixed precision). Parameters are always float32.
    """

    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128),
        emb_dim: int = 128,
        groups: int = 8,
        *,
        rngs: nnx.Rngs,
        dtype=None,
    ):
        if len(channels) < 1:
            raise ValueError("channels must list at least one level width")
        self.channels = tuple(channels)
        self.emb_dim = emb_dim
        self.dtype = dtype
        self.t_mlp1 = nnx.Linear(emb_dim, emb_dim, rngs=rngs)
        self.t_mlp2 = nnx.Linear(emb_dim, emb_dim, rngs=rngs)
        self.phi_embed = nnx.Linear(2, emb_dim, rngs=rngs)
        self.inp = _conv(1, channels[0], 3, rngs, dtype)
        down = []
        prev = channels[0]
        for c in channels:
            down.append(ResBlock(prev, c, emb_dim, groups, rngs=rngs, dtype=dtype))
            prev = c
        self.down = _List(down)
        self.mid = ResBlock(prev, prev, emb_dim, groups, rngs=rngs, dtype=dtype)
        up_convs, up_blocks = [], []
        for c in reversed(channels):
            up_convs.append(_conv(prev, prev, 3, rngs, dtype))
            up_blocks.append(ResBlock(prev + c, c, emb_dim, groups, rngs=rngs, dtype=dtype))
            prev = c
        self.up_convs = _List(up_convs)
        self.up_blocks = _List(up_blocks)
        self.out_norm = _norm(prev, groups, rngs, dtype)
        # float32 head: a 3x3 conv to one channel, negligible cost
        self.out = _conv(prev, 1, 3, rngs, jnp.float32 if dtype is not None else None)

    @property
    def total_stride(self) -> int:
        """Downsampling factor at the bottleneck (2^levels)."""
        return 2 ** len(self.channels)

    def __call__(
        self,
        z: Float[Array, "batch n n"],
        t: Float[Array, " batch"],
        phi: Float[Array, "batch 2"],
    ) -> Float[Array, "batch n n"]:
        n = z.shape[-1]
        if z.ndim != 3 or z.shape[-2] != n or n % self.total_stride:
            raise ValueError(
                f"z must be (batch, n, n) with n divisible by {self.total_stride}, got {z.shape}"
            )
        t_emb = sinusoidal_embedding(t.astype(z.dtype), self.emb_dim)
        t_emb = self.t_mlp2(jax.nn.silu(self.t_mlp1(t_emb)))
        phi_emb = jax.nn.silu(self.phi_embed(normalise_phi(phi.astype(z.dtype))))
        if self.dtype is not None:
            z = z.astype(self.dtype)
        h = self.inp(z[..., None])
        skips = []
        for block in self.down:
            h = block(h, t_emb, phi_emb)
            skips.append(h)
            h = _pool(h)
        h = self.mid(h, t_emb, phi_emb)
        for conv, block in zip(self.up_convs, self.up_blocks, strict=True):
            h = conv(jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2))
            h = block(jnp.concatenate([h, skips.pop()], -1), t_emb, phi_emb)
        return self.out(jax.nn.silu(self.out_norm(h)))[..., 0].astype(t_emb.dtype)

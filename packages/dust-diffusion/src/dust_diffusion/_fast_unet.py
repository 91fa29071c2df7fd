"""Inference-only evaluation of the :class:`~dust_diffusion.UNet` (same weights, same function).

The flax module (``_unet.UNet``) is the reference and the training path; this module
evaluates the same network from its weights with fewer passes over the activations, for
the thousand network calls of a reverse-SDE sampling:

* everything stays NHWC, with the convolutions written as ``lax.conv_general_dilated``
  on NHWC/HWIO operands (no layout changes between layers);
* circular padding is one concatenation of border slices, written by the same fusion
  that applies GroupNorm + SiLU (no separate ``jnp.pad`` pass);
* GroupNorm statistics are per-channel float32 sums of x and x^2 over the pixels (one
  read of the bfloat16 activations, no float32 copy), combined per group on the tiny
  ``(batch, channels)`` arrays; the normalisation is one per-(batch, channel) affine map
  followed by SiLU;
* the per-block time/cosmology embedding added after ``conv1`` is folded into the
  statistics and the affine map of the next GroupNorm (the sum is never materialised);
* nearest-neighbour upsampling followed by a 3x3 convolution is evaluated at the low
  resolution as one 2x2 convolution with four times the output channels (one per output
  sub-pixel phase) and a pixel shuffle: 4 instead of 9 taps per output pixel and no
  upsampled tensor; the input convolution (one channel) is nine fused multiply-adds;
* the weights are cast to the compute dtype, and the sub-pixel kernels and the
  cosmology part of the embeddings built, once per sampling (:func:`prepare_unet`), not
  once per step.

In float32 the result equals the module's to rounding (the tests check 1e-5 relative);
in bfloat16 (``dtype=jnp.bfloat16``: convolutions and activations in bfloat16, statistics,
embeddings and output head in float32, as the module) to bfloat16 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float

from ._cosmology import normalise_phi
from ._unet import _groups, sinusoidal_embedding

_DN = ("NHWC", "HWIO", "NHWC")
_EPS = 1e-6  # flax GroupNorm's epsilon
# rows: the 2 taps of a sub-pixel phase; columns: the 3 taps of the original kernel
_PHASE_TAPS = np.array([[[1, 0, 0], [0, 1, 1]], [[1, 1, 0], [0, 0, 1]]], np.float32)


def circular_pad(x: Array, pad: int = 1) -> Array:
    """Periodic padding of the two spatial axes of NHWC ``x`` (= ``jnp.pad(mode='wrap')``)."""
    return _pad_general(x, pad, pad) if pad else x


def _conv(x: Array, kernel: Array, bias: Array | None = None, padding="VALID") -> Array:
    y = jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN)
    return y if bias is None else y + bias


def _wrapped_rows(x: Array, axis: int, rows: list[int]) -> Array:
    n = x.shape[axis]
    parts = [jax.lax.slice_in_dim(x, r % n, r % n + 1, axis=axis) for r in rows]
    return jnp.concatenate(parts, axis=axis)


def conv_circular(x: Array, kernel: Array, bias: Array, pad: tuple[int, int] = (1, 1)) -> Array:
    """Convolution of NHWC ``x`` circularly padded by ``pad`` on both spatial axes.

    Computed without the padded tensor: one convolution with implicit zero padding,
    whose output is right except where a window crosses the boundary (``pad[0]`` first
    and ``pad[1]`` last rows/columns for a kernel of ``pad[0] + pad[1] + 1`` taps);
    those rows (then columns, corners included) are recomputed from thin circularly
    padded strips and written over it in place. Equals ``conv_valid(circular_pad(x))``.
    """
    lo, hi = pad
    k = kernel.shape[0]
    b, n = x.shape[0], x.shape[1]
    if x.shape[2] != n or kernel.shape[1] != k or n < k + lo + hi:
        return _conv(_pad_general(x, lo, hi), kernel, bias)
    out = _conv(x, kernel, bias, ((lo, hi), (lo, hi)))
    n_out = n + lo + hi - k + 1
    bad = [p for p in range(n_out) if p < lo or p - lo + k - 1 > n - 1]
    if not bad:
        return out
    # rows: strips of k input rows (wrapped), padded circularly along the width
    strips = [_wrapped_rows(x, 1, list(range(p - lo, p - lo + k))) for p in bad]
    rows = _conv(_pad_axis(jnp.concatenate(strips, 0), 2, lo, hi), kernel, bias)
    # columns: strips of k input columns, padded circularly along the height
    strips = [_wrapped_rows(x, 2, list(range(p - lo, p - lo + k))) for p in bad]
    cols = _conv(_pad_axis(jnp.concatenate(strips, 0), 1, lo, hi), kernel, bias)
    for i, p in enumerate(bad):
        out = jax.lax.dynamic_update_slice(out, rows[i * b : (i + 1) * b], (0, p, 0, 0))
    for i, p in enumerate(bad):
        out = jax.lax.dynamic_update_slice(out, cols[i * b : (i + 1) * b], (0, 0, p, 0))
    return out


def _pad_axis(x: Array, axis: int, lo: int, hi: int) -> Array:
    n = x.shape[axis]
    parts = [jax.lax.slice_in_dim(x, n - lo, n, axis=axis)] if lo else []
    parts.append(x)
    if hi:
        parts.append(jax.lax.slice_in_dim(x, 0, hi, axis=axis))
    return jnp.concatenate(parts, axis=axis) if len(parts) > 1 else x


def _pad_general(x: Array, lo: int, hi: int) -> Array:
    if max(lo, hi) > min(x.shape[1], x.shape[2]):
        return jnp.pad(x, ((0, 0), (lo, hi), (lo, hi), (0, 0)), mode="wrap")
    return _pad_axis(_pad_axis(x, 1, lo, hi), 2, lo, hi)


def _linear(p: dict, x: Array) -> Array:
    return x @ p["kernel"] + p["bias"]


def group_norm_silu(
    x: Float[Array, "b h w c"],
    scale: Float[Array, " c"],
    bias: Float[Array, " c"],
    groups: int,
    shift: Float[Array, "b c"] | None = None,
    pad: int = 1,
    out_dtype=None,
) -> Array:
    """silu(GroupNorm(x + shift)) with float32 statistics, circularly padded by ``pad``.

    ``shift`` (per batch and channel, e.g. the time/cosmology embedding) is folded into
    the statistics: per channel, E[x + s] = E[x] + s and E[(x + s)^2] = E[x^2] + 2 s E[x]
    + s^2, so only per-channel sums of x and x^2 are taken over the pixels. As flax's
    GroupNorm (``use_fast_variance``), var = E[y^2] - E[y]^2 clipped at 0, eps = 1e-6.
    """
    b, c = x.shape[0], x.shape[-1]
    g = _groups(c, groups)
    xf = x.astype(jnp.float32)
    m1 = jnp.mean(xf, axis=(1, 2))  # (b, c)
    m2 = jnp.mean(xf * xf, axis=(1, 2))
    if shift is not None:
        shift = shift.astype(jnp.float32)
        m2 = m2 + shift * (2 * m1 + shift)
        m1 = m1 + shift
    mean = m1.reshape(b, g, c // g).mean(-1)
    var = jnp.maximum(m2.reshape(b, g, c // g).mean(-1) - mean * mean, 0.0)
    inv = jnp.repeat(jax.lax.rsqrt(var + _EPS), c // g, axis=1)
    mul = inv * scale.astype(jnp.float32)
    add = bias.astype(jnp.float32) - jnp.repeat(mean, c // g, axis=1) * mul
    if shift is not None:
        add = add + shift * mul
    y = jax.nn.silu(xf * mul[:, None, None, :] + add[:, None, None, :])
    return circular_pad(y.astype(out_dtype or x.dtype), pad)


def _pool(x: Array) -> Array:
    b, h, w, c = x.shape
    return x.reshape(b, h // 2, 2, w // 2, 2, c).mean(axis=(2, 4)).astype(x.dtype)


def subpixel_kernel(kernel: Float[Array, "3 3 cin cout"]) -> Float[Array, "2 2 cin 4*cout"]:
    """2x2 kernel of the four phases of conv3x3(nearest_upsample_2x(h)), stacked on outputs.

    With ``hp`` = h circularly padded by 1 and Y = conv_valid(hp, K), output pixel
    (2i + a, 2j + b) of the upsampled convolution is Y[i + a, j + b, phase (a, b)].
    """
    k = jnp.einsum("ary,bsx,yxio->rsiabo", _PHASE_TAPS, _PHASE_TAPS, kernel)
    return k.reshape(2, 2, kernel.shape[2], 4 * kernel.shape[3])


def upsample_conv(h: Array, kernel4: Array, bias: Array, border: bool = True) -> Array:
    """conv3x3_circular(nearest_upsample_2x(h)) from the sub-pixel kernel (see above)."""
    b, n, _, _ = h.shape
    cout = kernel4.shape[-1] // 4
    y = conv_circular(h, kernel4, None) if border else _conv(circular_pad(h, 1), kernel4)
    y = y.reshape(b, n + 1, n + 1, 2, 2, cout)
    rows = []
    for a in (0, 1):
        cols = [y[:, a : a + n, s : s + n, a, s] for s in (0, 1)]
        rows.append(jnp.stack(cols, axis=3))  # (b, n, n, 2, c)
    out = jnp.stack(rows, axis=2)  # (b, n, 2, n, 2, c)
    return out.reshape(b, 2 * n, 2 * n, cout) + bias


def input_conv(z: Float[Array, "b n n"], kernel: Array, bias: Array, dtype) -> Array:
    """3x3 circular convolution of a one-channel map, as nine fused multiply-adds."""
    zp = circular_pad(z[..., None].astype(dtype), 1)
    n = z.shape[-1]
    w = kernel[:, :, 0, :].astype(dtype)
    acc = None
    for dy in range(3):
        for dx in range(3):
            term = zp[:, dy : dy + n, dx : dx + n, :].astype(jnp.float32) * w[dy, dx].astype(
                jnp.float32
            )
            acc = term if acc is None else acc + term
    return (acc.astype(dtype) + bias.astype(dtype)).astype(dtype)


def pure_params(params: Any) -> dict:
    """Nested dict of the UNet's weights from an ``nnx.State`` (or such a dict itself)."""
    if isinstance(params, nnx.State):
        return nnx.to_pure_dict(params)
    if isinstance(params, nnx.Module):
        return nnx.to_pure_dict(nnx.state(params))
    return params


class FastUNet:
    """m(z, t, phi) of a :class:`UNet` from prepared weights (see :func:`prepare_unet`).

    ``pad_mode``: 'border' (default) convolves with implicit zero padding and rewrites
    the boundary rows and columns (:func:`conv_circular`); 'concat' materialises the
    circularly padded activations (as the module does), for comparison.
    """

    def __init__(
        self,
        weights: dict,
        groups: int,
        dtype,
        phi_cond: list | None = None,
        pad_mode: str = "border",
    ):
        if pad_mode not in ("border", "concat"):
            raise ValueError(f"pad_mode must be 'border' or 'concat', got {pad_mode!r}")
        self.w = weights
        self.groups = groups
        self.dtype = dtype
        self.phi_cond = phi_cond  # per block: (1 or batch, c) float32, or None
        self.pad_mode = pad_mode

    def _norm_conv(self, x: Array, norm: tuple, conv: tuple, shift=None, out_dtype=None):
        """conv3x3_circular(silu(GroupNorm(x + shift)))."""
        border = self.pad_mode == "border"
        a = group_norm_silu(x, *norm, self.groups, shift, 0 if border else 1, out_dtype)
        a = a.astype(conv[0].dtype)
        return conv_circular(a, *conv) if border else _conv(a, *conv)

    def _blocks(self) -> list[dict]:
        w = self.w
        return [*w["down"], w["mid"], *w["up_blocks"]]

    def cosmology_embeddings(self, phi: Float[Array, "batch 2"]) -> list[Array]:
        """Per-block float32 (batch, c) cosmology part of the shifts added after ``conv1``."""
        w = self.w
        phi_emb = jax.nn.silu(_linear(w["phi_embed"], normalise_phi(phi.astype(jnp.float32))))
        return [
            _linear(p["phi_mlp2"], jax.nn.silu(_linear(p["phi_mlp1"], phi_emb)))
            for p in self._blocks()
        ]

    def embeddings(self, t: Float[Array, " batch"], phi: Array | None) -> list[Array]:
        """Per-block float32 (batch, c) time + cosmology shifts added after ``conv1``."""
        w = self.w
        t_emb = sinusoidal_embedding(t.astype(jnp.float32), w["t_mlp1"]["kernel"].shape[0])
        t_emb = _linear(w["t_mlp2"], jax.nn.silu(_linear(w["t_mlp1"], t_emb)))
        phi_cond = self.cosmology_embeddings(phi) if self.phi_cond is None else self.phi_cond
        return [
            _linear(p["t_proj"], t_emb) + pc for p, pc in zip(self._blocks(), phi_cond, strict=True)
        ]

    def _block(self, p: dict, x: Array, cond: Array) -> Array:
        h = self._norm_conv(x, p["norm1"], p["conv1"])
        h = self._norm_conv(h, p["norm2"], p["conv2"], shift=cond)
        h = self._norm_conv(h, p["norm3"], p["conv3"])
        return (_conv(x, *p["skip"]) + h) / math.sqrt(2.0)

    def __call__(
        self,
        z: Float[Array, "batch n n"],
        t: Float[Array, " batch"],
        phi: Float[Array, "batch 2"] | None = None,
    ) -> Float[Array, "batch n n"]:
        w = self.w
        levels = len(w["down"])
        n = z.shape[-1]
        if z.ndim != 3 or z.shape[-2] != n or n % 2**levels:
            raise ValueError(f"z must be (batch, n, n) with n divisible by {2**levels}")
        conds = iter(self.embeddings(t, phi))
        h = input_conv(z, *w["inp"], self.dtype)
        skips = []
        for p in w["down"]:
            h = self._block(p, h, next(conds))
            skips.append(h)
            h = _pool(h)
        h = self._block(w["mid"], h, next(conds))
        for (k4, bias), p in zip(w["up_convs"], w["up_blocks"], strict=True):
            h = upsample_conv(h, k4, bias, self.pad_mode == "border")
            h = self._block(p, jnp.concatenate([h, skips.pop()], -1), next(conds))
        out = self._norm_conv(h, w["out_norm"], w["out"])  # float32 head
        return out[..., 0].astype(z.dtype)


def prepare_unet(
    params: Any,
    groups: int,
    dtype=None,
    phi: Float[Array, "batch 2"] | None = None,
    pad_mode: str = "border",
) -> FastUNet:
    """Cast and rearrange a UNet's weights once for repeated evaluation.

    Args:
        params: the module's weights (``nnx.State``, its pure dict, or the module).
        groups: the UNet's GroupNorm groups (not stored in the weights).
        dtype: compute dtype (None or float32; ``jnp.bfloat16`` for mixed precision).
        phi: a fixed cosmology ``(1 or batch, 2)``: its embeddings are computed here,
            and the returned network ignores the ``phi`` of its calls.
        pad_mode: see :class:`FastUNet`.
    """
    cd = jnp.dtype(dtype or jnp.float32)
    p = pure_params(params)

    def conv(q):  # (kernel, bias) in the compute dtype, as flax's promote_dtype
        return (q["kernel"].astype(cd), q["bias"].astype(cd))

    def norm(q):  # flax casts the affine parameters to the norm's dtype
        return (q["scale"].astype(cd), q["bias"].astype(cd))

    def block(q):
        out = {k: conv(q[k]) for k in ("conv1", "conv2", "conv3", "skip")}
        out |= {k: norm(q[k]) for k in ("norm1", "norm2", "norm3")}
        out |= {k: q[k] for k in ("t_proj", "phi_mlp1", "phi_mlp2")}
        return out

    def seq(d):
        return [d[i] for i in range(len(d))] if isinstance(d, dict) else list(d)

    w = {
        "t_mlp1": p["t_mlp1"],
        "t_mlp2": p["t_mlp2"],
        "phi_embed": p["phi_embed"],
        "inp": (p["inp"]["kernel"], p["inp"]["bias"]),
        "down": [block(q) for q in seq(p["down"])],
        "mid": block(p["mid"]),
        "up_convs": [
            (subpixel_kernel(q["kernel"]).astype(cd), q["bias"].astype(cd))
            for q in seq(p["up_convs"])
        ],
        "up_blocks": [block(q) for q in seq(p["up_blocks"])],
        "out_norm": norm(p["out_norm"]),
        "out": (p["out"]["kernel"], p["out"]["bias"]),
    }
    net = FastUNet(w, groups, cd, pad_mode=pad_mode)
    if phi is not None:
        net.phi_cond = net.cosmology_embeddings(jnp.asarray(phi, jnp.float32).reshape(-1, 2))
    return net


def fast_noise_fn(
    params: Any, groups: int, phi: Array, dtype=None, pad_mode: str = "border"
) -> Callable[[Array, Array], Array]:
    """m(z, t) for one cosmology with weights prepared once (call inside the jitted sampler)."""
    phi = jnp.asarray(phi, jnp.float32).reshape(-1, 2)
    net = prepare_unet(params, groups, dtype, phi, pad_mode)
    return lambda z, t: net(z, t).astype(z.dtype)

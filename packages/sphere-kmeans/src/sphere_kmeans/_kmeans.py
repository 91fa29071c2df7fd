"""Spherical K-means of unit vectors (HEALPix pixel directions), in JAX.

Spherical K-means (Dhillon & Modha 2001) assigns each unit vector to the
centroid of maximal cosine and sets each centroid to the normalised mean of
its members; it minimises the sum of squared chord distances
``sum_i |x_i - c_{l(i)}|^2 = sum_i (2 - 2 x_i . c_{l(i)})``, the quantity
reported as ``inertia``. The patches of Kabalan et al. 2025 (sec. II.C) are
such clusters of the pixels of a sky region.

Design:
- k-means++ seeding with greedy local trials (Arthur & Vassilvitskii 2007, as in
  scikit-learn), several restarts vmapped, the lowest inertia kept;
- Lloyd iterations in a ``lax.while_loop``; when a neighbour graph is given
  (``pixel_neighbours``) the assignment step only compares each point with the
  clusters of itself and its 8 neighbours (O(9 n) instead of O(n K)); every
  local fixed point is checked by an exact O(n K) assignment and iterations go
  on until the exact assignment changes nothing, so the result is a true
  Lloyd fixed point either way;
- empty clusters are reseeded on the point farthest from its centroid among
  clusters with at least two members, so all labels 0..K-1 are used;
- a variable number of clusters under one compilation: arrays are padded to a
  static ``k_max`` and ``n_clusters`` is traced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, Int

from ._validation import check_n_clusters


class KMeansResult(NamedTuple):
    """Result of :func:`kmeans` (a pytree; batched along leading axes under vmap).

    Attributes:
        labels: cluster of each point ``[n]``, int32, every value in 0..K-1 used.
        centroids: unit centroids ``[k_max, 3]``; rows ``>= n_clusters`` are zero.
        inertia: sum of squared chord distances of the points to their centroid.
        n_iter: Lloyd iterations done by the returned restart.
        converged: True when the labels are a fixed point of the exact assignment
            (or the relative inertia change fell below ``tol``) before ``max_iter``.
    """

    labels: Int[Array, " n"]
    centroids: Float[Array, "k_max 3"]
    inertia: Float[Array, ""]
    n_iter: Int[Array, ""]
    converged: Bool[Array, ""]


# Internally points and centroids are stored as coordinate rows (x [3, n], c [3, k]):
# XLA's CPU backend handles [n, K] elementwise products of rows far better than
# reductions over a trailing axis of length 3.


def _dot(x, c):
    """Cosines between every point and every centroid given as broadcastable rows."""
    return x[0] * c[0] + x[1] * c[1] + x[2] * c[2]


def _exact_assign(x, c, active):
    # The products fuse with the argmax: the [n, K] matrix is never stored.
    cos = _dot(x[:, :, None], c[:, None, :])
    cos = jnp.where(active[None, :], cos, -jnp.inf)
    return jnp.argmax(cos, axis=1).astype(jnp.int32)


def _local_assign(x, c, labels, neighbours):
    cand = jnp.concatenate([labels[:, None], labels[neighbours]], axis=1)  # [n, 1 + m]
    cos = _dot(x[:, :, None], c[:, cand])
    return jnp.take_along_axis(cand, jnp.argmax(cos, axis=1)[:, None], axis=1)[:, 0]


def _centroids(x, labels, k_max, previous):
    sums = jax.vmap(lambda row: jax.ops.segment_sum(row, labels, num_segments=k_max))(x)
    norm = jnp.sqrt(jnp.sum(sums**2, axis=0))
    ok = norm > 1e-12
    # A zero mean (empty or perfectly antipodal members) keeps the previous centroid.
    return jnp.where(ok, sums / jnp.where(ok, norm, 1.0), previous)


def _sq_dist(x, c, labels):
    """Squared chord distance of each point to its centroid."""
    return jnp.sum((x - c[:, labels]) ** 2, axis=0)


def _fill_empty(x, labels, c, active, k_max):
    """Move, one at a time, the farthest point of a multi-member cluster into each empty one."""
    counts = jnp.zeros(k_max, jnp.int32).at[labels].add(1)

    def empty(cnt):
        return active & (cnt == 0)

    def body(state):
        labels, counts, c = state
        e = jnp.argmax(empty(counts)).astype(labels.dtype)
        d = jnp.where(counts[labels] >= 2, _sq_dist(x, c, labels), -1.0)
        p = jnp.argmax(d)
        old = labels[p]
        labels = labels.at[p].set(e)
        counts = counts.at[old].add(-1).at[e].add(1)
        c = c.at[:, e].set(x[:, p])
        return labels, counts, c

    labels, _, c = jax.lax.while_loop(lambda s: jnp.any(empty(s[1])), body, (labels, counts, c))
    return labels, c


def _inertia(x, c, labels):
    return jnp.sum(_sq_dist(x, c, labels))


_BLOCK = 128


def _sample_d2(key, d2, n_trials):
    """Draw ``n_trials`` indices with probability proportional to ``d2`` (uniform if all zero).

    Two-level inverse-CDF sampling (block sums, then within one block) keeps each
    draw O(n) with short scans, instead of a full-length cumulative sum.
    """
    n = d2.shape[0]
    nb = -(-n // _BLOCK)
    blocks = jnp.pad(d2, (0, nb * _BLOCK - n)).reshape(nb, _BLOCK)
    bsum = jnp.cumsum(jnp.sum(blocks, axis=1))
    total = bsum[-1]
    u = jax.random.uniform(key, (n_trials,), dtype=d2.dtype) * total
    b = jnp.clip(jnp.searchsorted(bsum, u, side="right"), 0, nb - 1)
    below = jnp.where(b > 0, bsum[b - 1], 0.0)
    within = jnp.cumsum(blocks[b], axis=1)  # [trials, BLOCK]
    j = jnp.sum(within <= (u - below)[:, None], axis=1)
    idx = jnp.clip(b * _BLOCK + jnp.minimum(j, _BLOCK - 1), 0, n - 1)
    uniform = (jax.random.uniform(key, (n_trials,), dtype=d2.dtype) * n).astype(jnp.int32)
    return jnp.where(total > 0, idx, jnp.clip(uniform, 0, n - 1))


def _second_ring(neighbours):
    """Unique members of each point's 2-step neighbourhood (itself included), with weights.

    Returns ``(idx [n, m], weight [n, m])`` where duplicates carry weight 0.
    """
    n = neighbours.shape[0]
    self_ = jnp.arange(n, dtype=neighbours.dtype)[:, None]
    ring = jnp.concatenate([self_, neighbours, neighbours[neighbours].reshape(n, -1)], axis=1)
    ring = jnp.sort(ring, axis=1)
    first = jnp.concatenate([jnp.ones((n, 1), bool), ring[:, 1:] != ring[:, :-1]], axis=1)
    return ring, first


def _kmeanspp(x, k, key, k_max, n_trials, ring=None):
    """Greedy k-means++ seeding on the chord distance; columns >= k stay zero.

    The greedy choice among the ``n_trials`` D^2-sampled candidates keeps the one
    that lowers the potential sum(D^2) most. With a neighbour ``ring`` (from
    :func:`_second_ring`) that decrease is summed over the candidate's 2-step
    neighbourhood only: exact once the candidate's zone of influence lies inside
    it, which holds for all but the first few centres of a dense layout, and
    O(trials * m) instead of O(trials * n) per step.
    """
    n = x.shape[1]
    key, sub = jax.random.split(key)
    first = jax.random.randint(sub, (), 0, n)
    c = jnp.zeros((3, k_max), x.dtype).at[:, 0].set(x[:, first])
    d2 = jnp.maximum(2.0 - 2.0 * _dot(x, x[:, first]), 0.0)

    def body(state):
        i, c, d2, key = state
        key, sub = jax.random.split(key)
        cand = _sample_d2(sub, d2, n_trials)
        if ring is None:
            dc = jnp.maximum(2.0 - 2.0 * _dot(x[:, :, None], x[:, None, cand]), 0.0)  # [n, T]
            gain = jnp.sum(jnp.maximum(d2[:, None] - dc, 0.0), axis=0)
        else:
            idx, weight = ring[0][cand], ring[1][cand]  # [T, m]
            dc = jnp.maximum(2.0 - 2.0 * _dot(x[:, idx], x[:, cand][:, :, None]), 0.0)
            gain = jnp.sum(jnp.where(weight, jnp.maximum(d2[idx] - dc, 0.0), 0.0), axis=1)
        best = cand[jnp.argmax(gain)]
        c = c.at[:, i].set(x[:, best])
        d2 = jnp.minimum(d2, jnp.maximum(2.0 - 2.0 * _dot(x, x[:, best]), 0.0))
        return i + 1, c, d2, key

    # A while loop bounded by the traced k: padding columns cost nothing.
    _, c, _, _ = jax.lax.while_loop(lambda s: s[0] < k, body, (jnp.int32(1), c, d2, key))
    return c


def _single_run(x, k, key, neighbours, *, k_max, max_iter, tol, n_trials):
    active = jnp.arange(k_max) < k
    ring = None if neighbours is None else _second_ring(neighbours)
    c = _kmeanspp(x, k, key, k_max, n_trials, ring)
    labels = _exact_assign(x, c, active)
    labels, c = _fill_empty(x, labels, c, active, k_max)
    c = _centroids(x, labels, k_max, c)
    inertia = _inertia(x, c, labels)

    def cond(state):
        _, _, _, it, done = state
        return (~done) & (it < max_iter)

    def body(state):
        labels, c, inertia, it, _ = state
        if neighbours is None:
            new = _exact_assign(x, c, active)
        else:
            new = _local_assign(x, c, labels, neighbours)
            # At a local fixed point, confirm with the exact assignment.
            new = jax.lax.cond(
                jnp.all(new == labels), lambda: _exact_assign(x, c, active), lambda: new
            )
        new, c_filled = _fill_empty(x, new, c, active, k_max)
        fixed = jnp.all(new == labels)
        c = _centroids(x, new, k_max, c_filled)
        new_inertia = _inertia(x, c, new)
        small = jnp.abs(inertia - new_inertia) <= tol * jnp.abs(inertia)
        return new, c, new_inertia, it + 1, fixed | small

    labels, c, inertia, n_iter, done = jax.lax.while_loop(
        cond, body, (labels, c, inertia, jnp.int32(0), jnp.bool_(False))
    )
    centroids = jnp.where(active[:, None], c.T, 0.0)
    return KMeansResult(labels, centroids, inertia, n_iter, done)


def _kmeans_restarts(x, k, key, tol, neighbours, *, k_max, n_init, max_iter, n_trials):
    keys = jax.random.split(key, n_init)
    run = partial(_single_run, k_max=k_max, max_iter=max_iter, tol=tol, n_trials=n_trials)
    results = jax.vmap(lambda kk: run(x.T, k, kk, neighbours))(keys)
    best = jnp.argmin(results.inertia)
    return jax.tree.map(lambda a: a[best], results)


_STATIC = ("k_max", "n_init", "max_iter", "n_trials")
_kmeans_jit = jax.jit(_kmeans_restarts, static_argnames=_STATIC)


@partial(jax.jit, static_argnames=_STATIC)
def _kmeans_batch_jit(x, ks, key, tol, neighbours, **static):
    return jax.vmap(lambda k: _kmeans_restarts(x, k, key, tol, neighbours, **static))(ks)


def _is_concrete(a) -> bool:
    return not isinstance(a, jax.core.Tracer)


def _check_vectors(vectors):
    if _is_concrete(vectors):
        arr = np.asarray(vectors)
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            raise ValueError(f"vectors must have shape [n, 3] with n >= 1, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError("vectors contains NaN or inf; pass unit vectors of region pixels")
        norms = np.linalg.norm(arr, axis=1)
        if np.any(np.abs(norms - 1) > 1e-3):
            raise ValueError("vectors must be unit vectors (|x| = 1); normalise them first")
    x = jnp.asarray(vectors)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim != 2 or x.shape[1] != 3:
        raise ValueError(f"vectors must have shape [n, 3], got {x.shape}")
    return x


def _check_options(k_max, n_init, max_iter, n_local_trials, neighbours, seed, n):
    if isinstance(k_max, bool) or not isinstance(k_max, int) or not k_max >= 1:
        raise ValueError(f"k_max must be a positive Python int, got {k_max!r}")
    for name, value in (("n_init", n_init), ("max_iter", max_iter)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if n_local_trials is None:
        n_local_trials = 2 + int(math.log(k_max))
    if neighbours is not None:
        neighbours = jnp.asarray(neighbours, dtype=jnp.int32)
        if neighbours.ndim != 2 or neighbours.shape[0] != n:
            raise ValueError(
                f"neighbours must have shape [n, m] with n = {n}, got {neighbours.shape}"
            )
    if isinstance(seed, int | np.integer) or (
        hasattr(seed, "dtype") and jnp.issubdtype(jnp.asarray(seed).dtype, jnp.integer)
    ):
        key = jax.random.key(seed)
    else:
        key = seed
    return n_local_trials, neighbours, key


def kmeans(
    vectors: Float[Array, "n 3"],
    n_clusters: int | Int[Array, ""],
    *,
    seed: int | Array = 0,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 0.0,
    k_max: int | None = None,
    neighbours: Int[Array, "n m"] | None = None,
    n_local_trials: int | None = None,
) -> KMeansResult:
    """Spherical K-means clustering of unit vectors.

    Args:
        vectors: unit vectors ``[n, 3]`` (e.g. from :func:`pixel_vectors`); the
            dtype (float32, or float64 with ``jax_enable_x64``) is kept.
        n_clusters: number of clusters K, ``1 <= K <= n``. With ``k_max`` set it
            may be a traced integer: every K <= k_max then shares one compilation.
        seed: integer seed or ``jax.random`` key (vmappable).
        n_init: restarts from independent k-means++ seeds (vmapped); the lowest
            inertia is returned.
        max_iter: maximum Lloyd iterations per restart.
        tol: stop early when the relative inertia change of one iteration is
            ``<= tol``; the default 0 iterates to an exact Lloyd fixed point.
        k_max: static padded number of clusters (default: ``n_clusters``).
        neighbours: optional ``[n, m]`` neighbour positions (``pixel_neighbours``)
            enabling the fast local assignment; the result is still an exact
            Lloyd fixed point.
        n_local_trials: candidates per k-means++ step (default ``2 + int(ln k_max)``,
            scikit-learn's greedy rule).

    Returns:
        :class:`KMeansResult`.

    Raises:
        ValueError: if ``vectors`` is not ``[n, 3]`` or holds NaN/inf, if
            ``n_clusters`` is not an integer in [1, n] or exceeds ``k_max``.

    Example:
        >>> import numpy as np
        >>> from sphere_kmeans import kmeans, pixel_vectors
        >>> _, vec = pixel_vectors(8)
        >>> res = kmeans(vec, 12, seed=0)
        >>> int(res.labels.max()) + 1
        12
    """
    x = _check_vectors(vectors)
    n = x.shape[0]
    if _is_concrete(n_clusters):
        k_int = check_n_clusters(n_clusters, n)
    elif k_max is None:
        raise ValueError("n_clusters is traced: pass a static k_max (upper bound on n_clusters)")
    else:
        k_int = None
    if k_max is None:
        k_max = k_int
    n_local_trials, neighbours, key = _check_options(
        k_max, n_init, max_iter, n_local_trials, neighbours, seed, n
    )
    if k_int is not None and k_int > k_max:
        raise ValueError(f"n_clusters ({k_int}) exceeds k_max ({k_max}); raise k_max")
    k = jnp.minimum(jnp.asarray(n_clusters, jnp.int32), min(n, k_max))
    tol_arr = jnp.asarray(tol, x.dtype)
    return _kmeans_jit(
        x,
        k,
        key,
        tol_arr,
        neighbours,
        k_max=k_max,
        n_init=n_init,
        max_iter=max_iter,
        n_trials=n_local_trials,
    )


def kmeans_batch(
    vectors: Float[Array, "n 3"],
    n_clusters: Sequence[int],
    *,
    seed: int | Array = 0,
    n_init: int = 1,
    max_iter: int = 300,
    tol: float = 0.0,
    k_max: int | None = None,
    neighbours: Int[Array, "n m"] | None = None,
    n_local_trials: int | None = None,
) -> KMeansResult:
    """Spherical K-means of the same points for several cluster counts in one call.

    Every count is clustered exactly as :func:`kmeans` would with the same ``seed``,
    ``k_max`` and options (same seeding, same Lloyd iterations, same labels), but all of
    them run side by side, vmapped over K: the sequential parts (K k-means++ steps, the
    Lloyd iterations) then take as long as the largest count alone instead of the sum
    over all counts, which is what a grid over many K_bd needs on a GPU. The price is
    that the exact O(n k_max) assignment is evaluated at every Lloyd iteration of every
    count (vmapped control flow runs both branches), so on a CPU with large ``k_max``
    a loop over :func:`kmeans` can be cheaper.

    Args:
        vectors: unit vectors ``[n, 3]``.
        n_clusters: cluster counts, each in ``[1, n]`` and ``<= k_max``.
        seed, n_init, max_iter, tol, neighbours, n_local_trials: as in :func:`kmeans`;
            the same seed serves every count.
        k_max: static padded number of clusters (default: the largest count).

    Returns:
        :class:`KMeansResult` with a leading axis over ``n_clusters`` (``labels
        [B, n]``, ``centroids [B, k_max, 3]``, ...).

    Raises:
        ValueError: as :func:`kmeans`, and if ``n_clusters`` is empty.

    Example:
        >>> from sphere_kmeans import kmeans_batch, pixel_vectors
        >>> _, vec = pixel_vectors(8)
        >>> res = kmeans_batch(vec, [4, 12], seed=0, k_max=16)
        >>> [int(row.max()) + 1 for row in res.labels]
        [4, 12]
    """
    x = _check_vectors(vectors)
    n = x.shape[0]
    if isinstance(n_clusters, int | np.integer) or np.ndim(n_clusters) != 1:
        raise ValueError(
            f"n_clusters must be a sequence of cluster counts, got {n_clusters!r}; "
            "use kmeans() for a single count"
        )
    counts = [check_n_clusters(k, n) for k in n_clusters]
    if not counts:
        raise ValueError("n_clusters is empty: pass at least one cluster count")
    if k_max is None:
        k_max = max(counts)
    n_local_trials, neighbours, key = _check_options(
        k_max, n_init, max_iter, n_local_trials, neighbours, seed, n
    )
    if max(counts) > k_max:
        raise ValueError(f"n_clusters ({max(counts)}) exceeds k_max ({k_max}); raise k_max")
    ks = jnp.asarray(counts, jnp.int32)
    return _kmeans_batch_jit(
        x,
        ks,
        key,
        jnp.asarray(tol, x.dtype),
        neighbours,
        k_max=k_max,
        n_init=n_init,
        max_iter=max_iter,
        n_trials=n_local_trials,
    )

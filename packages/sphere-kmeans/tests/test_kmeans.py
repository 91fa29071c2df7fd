import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sphere_kmeans import kmeans, kmeans_batch, pixel_neighbours, pixel_vectors


@pytest.fixture(scope="module")
def region(gal_mask):
    idx, vec = pixel_vectors(32, gal_mask("GAL020", 32))
    return vec, pixel_neighbours(32, idx)


def _chord_inertia(vec, labels):
    """Independent numpy inertia: squared chord distance to normalised cluster means."""
    k = labels.max() + 1
    sums = np.zeros((k, 3))
    np.add.at(sums, labels, vec)
    cent = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    return np.sum((vec - cent[labels]) ** 2)


def _euclid_inertia(vec, labels):
    k = labels.max() + 1
    sums = np.zeros((k, 3))
    np.add.at(sums, labels, vec)
    means = sums / np.bincount(labels)[:, None]
    return np.sum((vec - means[labels]) ** 2)


def _check_lloyd_fixed_point(vec, res):
    labels = np.asarray(res.labels)
    k = labels.max() + 1
    cent = np.asarray(res.centroids)[:k]
    np.testing.assert_allclose(np.linalg.norm(cent, axis=1), 1.0, atol=1e-5)
    # every point is assigned to the centroid of maximal cosine
    cos = vec @ cent.T
    assert np.all(cos[np.arange(len(vec)), labels] >= cos.max(axis=1) - 1e-6)
    # centroids are the normalised means
    sums = np.zeros((k, 3))
    np.add.at(sums, labels, vec)
    np.testing.assert_allclose(cent, sums / np.linalg.norm(sums, axis=1, keepdims=True), atol=1e-5)


def test_inertia_close_to_sklearn(region):
    vec, nb = region
    # Small K on these regions has a few competing basins (e.g. 121.6 vs 126.6 at K = 10
    # on the |b| cut, reached by either code from the same seeds): compare best-of-8
    # restarts with scikit-learn's best-of-4.
    for k in (10, 50, 200, 500):  # one compilation: K is traced below k_max
        ours = kmeans(vec, k, seed=0, n_init=8, neighbours=nb, k_max=500, n_local_trials=8)
        sk = KMeans(k, n_init=4, random_state=0).fit(vec)
        labels = np.asarray(ours.labels)
        assert len(np.unique(labels)) == k
        assert bool(ours.converged)
        ours_chord = _chord_inertia(vec, labels)
        np.testing.assert_allclose(float(ours.inertia), ours_chord, rtol=1e-4)
        # Same objective for both partitions: squared chord distance to normalised means
        # (spherical K-means' objective) ...
        assert ours_chord <= 1.01 * _chord_inertia(vec, sk.labels_)
        # ... and scikit-learn's own objective (squared distance to Euclidean means).
        assert _euclid_inertia(vec, labels) <= 1.01 * sk.inertia_


@pytest.mark.parametrize("use_neighbours", [False, True])
def test_result_is_lloyd_fixed_point(region, use_neighbours):
    vec, nb = region
    res = kmeans(vec, 60, seed=3, k_max=64, neighbours=nb if use_neighbours else None)
    assert bool(res.converged)
    _check_lloyd_fixed_point(vec, res)


def test_recovers_well_separated_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1.0]])
    truth = rng.integers(0, 6, 3000)
    pts = centres[truth] + 0.05 * rng.normal(size=(3000, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    res = kmeans(pts, 6, seed=1, n_init=3)
    labels = np.asarray(res.labels)
    # a perfect one-to-one map between found and true clusters
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    assert len(pairs) == 6


def test_seed_determinism_and_seed_dependence(region):
    vec, nb = region
    a = kmeans(vec, 40, seed=7, k_max=64, neighbours=nb)
    b = kmeans(vec, 40, seed=7, k_max=64, neighbours=nb)
    c = kmeans(vec, 40, seed=8, k_max=64, neighbours=nb)
    np.testing.assert_array_equal(a.labels, b.labels)
    assert not np.array_equal(a.labels, c.labels)


def test_jit_vs_eager(region):
    vec, _ = region
    eager = kmeans(vec, 25, seed=2, k_max=64)
    jitted = jax.jit(lambda v: kmeans(v, 25, seed=2, k_max=64))(jnp.asarray(vec))
    np.testing.assert_array_equal(eager.labels, jitted.labels)
    np.testing.assert_allclose(eager.inertia, jitted.inertia, rtol=1e-6)


def test_vmap_over_seeds_equals_loop(region):
    vec, nb = region
    seeds = jnp.arange(3)
    batched = jax.vmap(lambda s: kmeans(vec, 30, seed=s, k_max=64, neighbours=nb))(seeds)
    for i in range(3):
        single = kmeans(vec, 30, seed=int(seeds[i]), k_max=64, neighbours=nb)
        np.testing.assert_array_equal(batched.labels[i], single.labels)
        np.testing.assert_allclose(batched.inertia[i], single.inertia, rtol=1e-6)


def test_variable_k_shares_one_compilation(region):
    from sphere_kmeans._kmeans import _kmeans_jit

    vec, nb = region
    kmeans(vec, 5, seed=0, k_max=64, neighbours=nb)
    before = _kmeans_jit._cache_size()
    for k in (7, 20, 64, 33):
        res = kmeans(vec, k, seed=0, k_max=64, neighbours=nb)
        assert len(np.unique(res.labels)) == k
        assert int(res.labels.max()) == k - 1
        assert np.all(np.asarray(res.centroids)[k:] == 0)
    assert _kmeans_jit._cache_size() == before
    # traced K under jit and vmap: a grid over K in one call
    ks = jnp.array([3, 9, 17])
    out = jax.vmap(lambda k: kmeans(vec, k, seed=0, k_max=64, neighbours=nb))(ks)
    for i, k in enumerate(ks.tolist()):
        assert len(np.unique(out.labels[i])) == k


@pytest.mark.parametrize("use_neighbours", [True, False])
def test_batch_equals_one_at_a_time(region, use_neighbours):
    vec, nb = region
    nb = nb if use_neighbours else None
    counts = [2, 9, 33, 64, 17]
    batch = kmeans_batch(vec, counts, seed=5, k_max=64, neighbours=nb, n_local_trials=4)
    assert batch.labels.shape == (len(counts), len(vec))
    for i, k in enumerate(counts):
        # tighter padding for the single call: the result does not depend on k_max
        single = kmeans(vec, k, seed=5, k_max=max(k, 8), neighbours=nb, n_local_trials=4)
        np.testing.assert_array_equal(batch.labels[i], single.labels)
        np.testing.assert_allclose(batch.inertia[i], single.inertia, rtol=1e-12)
        assert int(batch.n_iter[i]) == int(single.n_iter)
        assert bool(batch.converged[i])
        _check_lloyd_fixed_point(vec, jax.tree.map(lambda a, i=i: a[i], batch))


@pytest.mark.parametrize(
    ("counts", "kwargs", "match"),
    [
        ([], {}, "empty"),
        (5, {}, "sequence"),
        ([3, 0], {}, "n_clusters"),
        ([3, 9], {"k_max": 8}, "k_max"),
        ([3], {"max_iter": 0}, "max_iter"),
    ],
)
def test_batch_bad_arguments(counts, kwargs, match):
    _, vec = pixel_vectors(4)
    with pytest.raises(ValueError, match=match):
        kmeans_batch(vec, counts, **kwargs)


def test_padded_equals_unpadded(region):
    vec, nb = region
    # the default number of k-means++ trials depends on k_max: fix it to compare
    a = kmeans(vec, 12, seed=4, neighbours=nb, n_local_trials=5)
    b = kmeans(vec, 12, seed=4, k_max=64, neighbours=nb, n_local_trials=5)
    np.testing.assert_array_equal(a.labels, b.labels)


def test_extreme_k():
    _, vec = pixel_vectors(2)
    one = kmeans(vec, 1)
    assert np.all(np.asarray(one.labels) == 0)
    np.testing.assert_allclose(
        float(one.inertia), _chord_inertia(vec, np.zeros(48, int)), rtol=1e-5
    )
    full = kmeans(vec, 48, seed=0)
    assert sorted(np.asarray(full.labels).tolist()) == list(range(48))
    assert float(full.inertia) < 1e-10


def test_duplicate_points_still_use_every_label():
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(5, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    vec = np.repeat(pts, 4, axis=0)  # 20 points, 5 distinct
    res = kmeans(vec, 8, seed=0)
    assert sorted(set(np.asarray(res.labels).tolist())) == list(range(8))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_clusters": 0}, "n_clusters"),
        ({"n_clusters": 1000}, "n_clusters"),
        ({"n_clusters": 2.5}, "n_clusters"),
        ({"n_clusters": 5, "k_max": 3}, "k_max"),
        ({"n_clusters": 5, "n_init": 0}, "n_init"),
    ],
)
def test_bad_arguments(kwargs, match):
    _, vec = pixel_vectors(4)
    with pytest.raises(ValueError, match=match):
        kmeans(vec, **kwargs)


def test_bad_vectors():
    _, vec = pixel_vectors(4)
    bad = vec.copy()
    bad[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        kmeans(bad, 3)
    with pytest.raises(ValueError, match="shape"):
        kmeans(vec[:, :2], 3)
    with pytest.raises(ValueError, match="unit"):
        kmeans(vec * 2, 3)
    with pytest.raises(ValueError, match="neighbours"):
        kmeans(vec, 3, neighbours=np.zeros((5, 8), int))

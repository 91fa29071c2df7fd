import healpy as hp
import numpy as np
import pytest
from sphere_kmeans import (
    binned_labels,
    labels_to_map,
    multires_labels,
    patch_sizes,
    pixel_vectors,
    relabel_contiguous,
)


@pytest.mark.parametrize("nside_patch", [0, 1, 2, 4, 8, 16])
def test_multires_labels_equal_ud_grade_parents(gal020_16, nside_patch):
    labels = multires_labels(16, gal020_16, nside_patch)
    idx, _ = pixel_vectors(16, gal020_16)
    if nside_patch == 0:
        assert np.all(labels == 0)
        return
    # Independent reference: healpy ud_grade of a map of parent indices (RING).
    parent_map = hp.ud_grade(np.arange(12 * nside_patch**2, dtype=np.float64), 16)
    parent = parent_map[idx].astype(int)
    # Same partition: a bijection between labels and parents.
    pairs = set(zip(labels.tolist(), parent.tolist(), strict=True))
    assert len(pairs) == len(set(labels.tolist())) == len(set(parent.tolist()))
    assert labels.min() == 0 and labels.max() == len(set(parent.tolist())) - 1


def test_multires_bad_input(gal020_16):
    with pytest.raises(ValueError, match="nside_patch"):
        multires_labels(16, gal020_16, 3)
    with pytest.raises(ValueError, match="exceed"):
        multires_labels(16, gal020_16, 32)


@pytest.mark.parametrize("n_bins", [1, 2, 5, 17])
def test_binned_labels_match_digitize(n_bins):
    rng = np.random.default_rng(1)
    values = rng.normal(1.54, 0.1, 3000)
    labels = binned_labels(values, n_bins)
    edges = np.linspace(values.min(), values.max(), n_bins + 1)
    ref = np.digitize(values, edges[1:-1])
    # Same partition as numpy.digitize, contiguous and ordered by value.
    _, ref_contig = np.unique(ref, return_inverse=True)
    np.testing.assert_array_equal(labels, ref_contig)
    assert set(labels.tolist()) == set(range(labels.max() + 1))


def test_binned_labels_drops_empty_bins_and_errors():
    labels = binned_labels(np.array([0.0, 0.05, 1.0]), 10)
    assert labels.tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match="n_bins"):
        binned_labels(np.arange(3.0), 0)
    with pytest.raises(ValueError, match="NaN"):
        binned_labels(np.array([0.0, np.nan]), 2)


def test_relabel_contiguous():
    labels = np.array([7, 7, 3, 100, 3, -2])
    out = relabel_contiguous(labels)
    assert out.tolist() == [0, 0, 1, 2, 1, 3]
    rng = np.random.default_rng(0)
    big = rng.integers(0, 50, 10_000) * 13
    out = relabel_contiguous(big)
    _, first = np.unique(big, return_index=True)
    assert out.max() + 1 == first.size
    # equal labels stay equal, different stay different
    assert np.all(
        (out[:, None][:200] == out[None, :200]) == (big[:, None][:200] == big[None, :200])
    )


def test_labels_to_map_and_sizes(gal020_16):
    idx, _ = pixel_vectors(16, gal020_16)
    labels = multires_labels(16, gal020_16, 2)
    m = labels_to_map(labels, idx, 16)
    assert np.all(m[~gal020_16] == hp.UNSEEN)
    np.testing.assert_array_equal(m[idx], labels)
    sizes = patch_sizes(labels)
    assert sizes.sum() == idx.size and np.all(sizes > 0)
    with pytest.raises(ValueError, match="same length"):
        labels_to_map(labels[:-1], idx, 16)

import healpy as hp
import numpy as np
import pytest
from sphere_kmeans import disjoint_zones, hemisphere_split, pixel_neighbours, pixel_vectors


def test_pixel_vectors_match_healpy(gal020_16):
    idx, vec = pixel_vectors(16, gal020_16)
    np.testing.assert_array_equal(idx, np.flatnonzero(gal020_16))
    np.testing.assert_allclose(vec, np.array(hp.pix2vec(16, idx)).T, rtol=0, atol=1e-15)
    np.testing.assert_allclose(np.linalg.norm(vec, axis=1), 1.0, atol=1e-14)


def test_pixel_vectors_full_sky_and_01_mask():
    idx, _ = pixel_vectors(4)
    assert idx.tolist() == list(range(192))
    m = np.zeros(192, dtype=np.uint8)
    m[[3, 50]] = 1
    assert pixel_vectors(4, m)[0].tolist() == [3, 50]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((3, None), "nside"),
        ((4.0, None), "nside"),
        ((4, np.ones(100, bool)), "mask"),
        ((4, np.zeros(192, bool)), "empty"),
        ((4, np.full(192, np.nan)), "NaN"),
    ],
)
def test_pixel_vectors_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        pixel_vectors(*args)


def test_neighbours_are_adjacent_region_pixels(gal020_16):
    idx, vec = pixel_vectors(16, gal020_16)
    nb = pixel_neighbours(16, idx)
    assert nb.shape == (idx.size, 8)
    assert nb.min() >= 0 and nb.max() < idx.size
    # Each neighbour is either the pixel itself or a true HEALPix neighbour inside the region.
    full = hp.get_all_neighbours(16, idx).T
    for i in range(0, idx.size, 37):
        others = set(idx[nb[i]]) - {idx[i]}
        assert others <= set(full[i][full[i] >= 0])
        assert others == set(full[i][(full[i] >= 0) & gal020_16[np.maximum(full[i], 0)]])
    # neighbours are close: within ~2 pixel sizes
    cos = np.einsum("nd,nkd->nk", vec, vec[nb])
    assert np.degrees(np.arccos(cos.min())) < 2.5 * hp.nside2resol(16, arcmin=True) / 60


def test_hemisphere_split(gal020_16):
    up, lo = hemisphere_split(16, gal020_16)
    assert not np.any(up & lo)
    np.testing.assert_array_equal(up | lo, gal020_16)
    z = hp.pix2vec(16, np.arange(gal020_16.size))[2]
    assert np.all(z[up] >= 0) and np.all(z[lo] < 0)
    assert up.sum() > 0 and lo.sum() > 0


def test_disjoint_zones(gal_mask):
    masks = [gal_mask(n, 16) for n in ("GAL020", "GAL040", "GAL060")]
    zones = disjoint_zones(masks)
    total = np.sum(zones, axis=0)
    assert total.max() == 1
    np.testing.assert_array_equal(total.astype(bool), masks[2])
    np.testing.assert_array_equal(zones[1], masks[1] & ~masks[0])
    with pytest.raises(ValueError, match="does not contain"):
        disjoint_zones([masks[1], masks[0]])
    with pytest.raises(ValueError, match="at least one"):
        disjoint_zones([])

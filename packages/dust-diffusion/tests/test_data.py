"""Procedural dust-like maps, symmetries, crops and the map loader."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from dust_diffusion import (
    augment,
    block_downsample,
    dihedral,
    load_maps,
    periodic_crop,
    procedural_dust_maps,
    standardise,
)


@pytest.fixture(scope="module")
def maps():
    return np.asarray(procedural_dust_maps(jax.random.key(0), 6, 32))


def test_procedural_maps_are_standardised_deterministic_and_non_gaussian(maps):
    assert maps.shape == (6, 32, 32)
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(maps.std(axis=(1, 2)), 1, rtol=1e-4)
    again = np.asarray(procedural_dust_maps(jax.random.key(0), 6, 32))
    np.testing.assert_array_equal(maps, again)
    flat = maps.reshape(6, -1)
    skew = (flat**3).mean(1)
    kurt = (flat**4).mean(1) - 3
    # dust-like: bright filaments and clumps over a faint background
    assert np.mean(np.abs(skew) + np.abs(kurt)) > 0.5
    assert np.all(np.isfinite(maps))


def test_procedural_maps_are_periodic(maps):
    # differences across the wrap-around edge look like interior neighbour differences
    interior = np.mean((maps[:, 1:] - maps[:, :-1]) ** 2)
    edge = np.mean((maps[:, 0] - maps[:, -1]) ** 2)
    assert edge < 3 * interior


def test_procedural_maps_argument_errors():
    with pytest.raises(ValueError, match="n must be"):
        procedural_dust_maps(jax.random.key(0), 2, 7)
    with pytest.raises(ValueError, match="filament_fraction"):
        procedural_dust_maps(jax.random.key(0), 2, 16, filament_fraction=2.0)


def test_dihedral_group():
    x = jnp.arange(16.0).reshape(4, 4)
    elems = [np.asarray(dihedral(x, i)) for i in range(8)]
    np.testing.assert_array_equal(elems[0], x)
    keys = {e.tobytes() for e in elems}
    assert len(keys) == 8
    for i in range(8):
        for j in range(8):
            assert np.asarray(dihedral(elems[i], j)).tobytes() in keys


def test_augment_permutes_values_per_map(maps):
    out = np.asarray(augment(jax.random.key(1), jnp.asarray(maps)))
    for a, b in zip(maps, out, strict=True):
        np.testing.assert_array_equal(np.sort(a.ravel()), np.sort(b.ravel()))


def test_periodic_crop_wraps_and_full_size_is_a_roll():
    x = jnp.arange(36.0).reshape(1, 6, 6)
    c = np.asarray(periodic_crop(jax.random.key(0), x, 6))[0]
    shifts = [(a, b) for a in range(6) for b in range(6)]
    assert any(np.array_equal(c, np.roll(np.asarray(x[0]), s, (0, 1))) for s in shifts)
    small = np.asarray(periodic_crop(jax.random.key(3), jnp.tile(x, (5, 1, 1)), 4))
    assert small.shape == (5, 4, 4)
    with pytest.raises(ValueError, match="size"):
        periodic_crop(jax.random.key(0), x, 7)


def test_block_downsample():
    x = np.arange(64.0).reshape(8, 8)
    d = block_downsample(x, 4)
    assert d.shape == (2, 2)
    assert d[0, 0] == x[:4, :4].mean()
    with pytest.raises(ValueError, match="factor"):
        block_downsample(x, 3)


def test_load_maps_npy_and_fits(tmp_path):
    from astropy.io import fits

    rng = np.random.default_rng(0)
    a = rng.normal(size=(16, 16)).astype(np.float32)
    b = rng.normal(size=(2, 16, 16)).astype(np.float32)
    np.save(tmp_path / "a.npy", a)
    fits.PrimaryHDU(b).writeto(tmp_path / "b.fits")
    maps = load_maps(tmp_path)
    assert maps.shape == (3, 16, 16)
    np.testing.assert_array_equal(maps[0], a)
    np.testing.assert_array_equal(maps[1:], b)
    np.testing.assert_array_equal(load_maps(tmp_path / "a.npy")[0], a)
    np.save(tmp_path / "c.npy", np.zeros((8, 8)))
    with pytest.raises(ValueError, match="different shapes"):
        load_maps(tmp_path)
    with pytest.raises(ValueError, match=r"no \.npy"):
        (tmp_path / "empty").mkdir()
        load_maps(tmp_path / "empty")


def test_pywph_validation_maps(dust_maps_dir):
    m = load_maps(dust_maps_dir / "pywph_I_1.npy")
    assert m.shape == (1, 512, 512)
    small = standardise(block_downsample(m, 8))
    assert small.shape == (1, 64, 64)
    assert np.isfinite(np.asarray(small)).all()

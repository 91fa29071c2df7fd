"""Search spaces: mixed-radix addressing against itertools, zipping, filters, hashing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from grid_dispatch import SearchSpace, config_hash


def test_product_order_matches_itertools():
    axes = {"a": [3, 1, 2], "b": [0.5, 1.5], "c": ["x", "y", "z", "w"]}
    space = SearchSpace(axes)
    expected = [dict(zip(axes, combo, strict=True)) for combo in itertools.product(*axes.values())]
    assert len(space) == len(expected) == 24
    assert list(space) == expected
    cols = space.columns(np.arange(len(space)))
    for name in axes:
        assert cols[name].tolist() == [e[name] for e in expected]
    assert space.shape == (3, 2, 4)


def test_zipped_axes_advance_together():
    space = SearchSpace({"k": [1, 2, 3], "x": [0.1, 0.2], "m": [10, 20, 30]}, zipped=[("k", "m")])
    assert space.factors == (("k", "m"), ("x",))
    expected = [
        {"k": k, "x": x, "m": m}
        for (k, m), x in itertools.product(zip([1, 2, 3], [10, 20, 30], strict=True), [0.1, 0.2])
    ]
    assert list(space) == expected


def test_filter_keeps_the_same_configurations_as_a_list_comprehension():
    axes = {"a": list(range(7)), "b": list(range(5)), "c": [0.0, 1.0]}
    space = SearchSpace(axes, where=lambda c: (c["a"] >= c["b"]) & (c["c"] < 1))
    full = [dict(zip(axes, t, strict=True)) for t in itertools.product(*axes.values())]
    expected = [c for c in full if c["a"] >= c["b"] and c["c"] < 1]
    assert len(space) == len(expected)
    assert list(space) == expected
    assert space.unfiltered_size == 70 and space.is_filtered
    for i in (0, 7, len(space) - 1):
        assert space.index_of(space[i]) == i
    with pytest.raises(ValueError, match="excluded by the filter"):
        space.index_of({"a": 0, "b": 4, "c": 0.0})


def test_index_roundtrip_and_negative_index():
    space = SearchSpace({"a": [1, 2], "b": ["p", "q", "r"]})
    for i in range(len(space)):
        assert space.index_of(space[i]) == i
    assert space[-1] == {"a": 2, "b": "r"}
    with pytest.raises(ValueError, match="indices must lie"):
        space.columns(np.array([6]))


def test_large_space_is_never_materialised():
    # 10^12 configurations: addressing works without building anything of that size.
    space = SearchSpace({f"a{i}": list(range(100)) for i in range(6)})
    assert len(space) == 10**12
    assert space[10**12 - 1] == {f"a{i}": 99 for i in range(6)}
    assert space[123456789012] == {"a0": 12, "a1": 34, "a2": 56, "a3": 78, "a4": 90, "a5": 12}


def test_hashes_are_stable_and_match_config_hash():
    space = SearchSpace({"K_bd": [10, 20], "beta": [1.5, 1.6], "name": ["u", "v"]})
    hashes = space.hashes(np.arange(len(space)))
    assert hashes.dtype == np.uint64
    assert len(set(hashes.tolist())) == len(space)
    for i in range(len(space)):
        assert int(hashes[i]) == config_hash(space[i])
    # Depends on names and values only: a bigger, reordered space agrees.
    other = SearchSpace({"name": ["v", "u", "w"], "beta": [1.6, 1.5], "K_bd": [30, 20, 10]})
    for i in range(len(space)):
        cfg = space[i]
        assert int(other.hashes(np.array([other.index_of(cfg)]))[0]) == int(hashes[i])
    # Pinned value: the hash must never change between versions or machines.
    assert config_hash({"K_bd": 10, "beta": 1.5, "name": "u"}) == int(hashes[0])
    assert config_hash({"K_bd": 10, "beta": 1.5, "name": "u"}) == 0x28AFD7C520FBDD67
    assert config_hash({"a": 1}) == 0xF7C3DE135B8455F3
    assert config_hash({"a": 1}) != config_hash({"a": 1.0})


def test_fingerprint_distinguishes_spaces():
    a = SearchSpace({"x": [1, 2], "y": [3, 4]})
    assert a.fingerprint == SearchSpace({"x": [1, 2], "y": [3, 4]}).fingerprint
    assert a.fingerprint != SearchSpace({"y": [3, 4], "x": [1, 2]}).fingerprint
    assert a.fingerprint != SearchSpace({"x": [1, 2], "y": [3, 5]}).fingerprint
    assert a.fingerprint != SearchSpace({"x": [1, 2], "y": [3, 4]}, zipped=[("x", "y")]).fingerprint
    filt = SearchSpace({"x": [1, 2], "y": [3, 4]}, where=lambda c: c["x"] < 2)
    assert a.fingerprint != filt.fingerprint


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"axes": {}}, "non-empty"),
        ({"axes": {"a": []}}, "axis 'a' is empty"),
        ({"axes": [("a", [1]), ("a", [2])]}, "duplicate axis name 'a'"),
        ({"axes": {"a": [1, 1]}}, "duplicate values"),
        ({"axes": {"a": [1, "x"]}}, "mixes strings and numbers"),
        ({"axes": {"a": [True, False]}}, "boolean"),
        ({"axes": {"a": [1.0, float("nan")]}}, "finite"),
        ({"axes": {"a": [[1, 2]]}}, "one-dimensional"),
        ({"axes": {"a": "abc"}}, "must be a sequence"),
        ({"axes": {"1a": [1]}}, "identifier"),
        ({"axes": {"a": [1, 2], "b": [1]}, "zipped": [("a", "b")]}, "equal lengths"),
        ({"axes": {"a": [1, 2]}, "zipped": [("a", "z")]}, "unknown axis 'z'"),
        ({"axes": {"a": [1, 2]}, "zipped": ["a"]}, "at least two"),
        ({"axes": {"a": [1, 2]}, "where": lambda c: c["a"] > 5}, "rejects every"),
        ({"axes": {"a": [1, 2]}, "where": lambda c: True}, "boolean array"),
    ],
)
def test_bad_spaces_raise_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SearchSpace(**kwargs)

"""Discrete search spaces addressed by a global index (mixed radix), never materialised.

A space is an ordered list of *factors*. A factor is either one named axis or a
group of *zipped* axes of equal length that advance together. The raw grid is
the Cartesian product of the factors in row-major order (the last factor varies
fastest, as in ``itertools.product``), so configuration ``i`` has digits
``d_f = (i // s_f) % n_f`` with strides ``s_f = prod_{g > f} n_g``. An optional
vectorised filter keeps a subset; the kept raw indices are stored as one int64
array (8 bytes per configuration), never as a list of Python objects. This is
the grid ``G`` of section II.D of Kabalan et al. (2025), ``N = |G|``.

Configurations have a stable 64-bit hash that depends only on the axis names and
values (not on the index or on the other values of an axis), so the same
configuration hashes the same in a grown or filtered space and in another run.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

Predicate = Callable[[dict[str, np.ndarray]], Any]

_FILTER_CHUNK = 1 << 20
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _kind_of(value: Any, axis: str) -> str:
    """Classify one axis value as 'int', 'float' or 'str' (bools are rejected)."""
    if isinstance(value, bool | np.bool_):
        raise ValueError(
            f"axis {axis!r}: boolean values are not supported; use the integers 0 and 1"
        )
    if isinstance(value, int | np.integer):
        return "int"
    if isinstance(value, float | np.floating):
        return "float"
    if isinstance(value, str | np.str_):
        return "str"
    raise ValueError(
        f"axis {axis!r}: value {value!r} of type {type(value).__name__} is not an int, "
        "float or str; axes hold discrete scalar values only"
    )


def _axis_array(name: str, values: Any) -> np.ndarray:
    """Validate one axis and return its values as an int64, float64 or str array."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"axis name {name!r} must be a Python identifier string")
    if isinstance(values, str | bytes) or not hasattr(values, "__len__"):
        raise ValueError(f"axis {name!r}: values must be a sequence (list, tuple or 1-d array)")
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"axis {name!r}: values must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"axis {name!r} is empty; give it at least one value")
    # Classify the given objects: np.asarray would silently turn [1, "x"] into strings.
    items = arr.tolist() if isinstance(values, np.ndarray) else list(values)
    kinds = {_kind_of(v, name) for v in items}
    if kinds == {"int"}:
        out = arr.astype(np.int64)
    elif kinds <= {"int", "float"}:
        out = arr.astype(np.float64)
        if not np.all(np.isfinite(out)):
            raise ValueError(f"axis {name!r}: values must be finite")
    elif kinds == {"str"}:
        out = arr.astype(np.str_)
    else:
        raise ValueError(
            f"axis {name!r} mixes strings and numbers ({sorted(kinds)}); use one type per axis"
        )
    if len(np.unique(out)) != out.size:
        raise ValueError(f"axis {name!r} has duplicate values; each value must appear once")
    return out


def _value_token(name: str, kind: str, value: Any) -> bytes:
    """Canonical bytes of one named value: exact for floats (hex), kind-tagged."""
    if kind == "int":
        text = f"i:{int(value)}"
    elif kind == "float":
        text = f"f:{float(value).hex()}"
    else:
        text = f"s:{value}"
    return f"{name}={text}".encode()


def _hash64(data: bytes) -> np.uint64:
    return np.frombuffer(hashlib.blake2b(data, digest_size=8).digest(), dtype="<u8")[0]


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser on uint64 arrays (wrap-around arithmetic is intended)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _array_kind(arr: np.ndarray) -> str:
    return {"i": "int", "f": "float", "U": "str"}[arr.dtype.kind]


def config_hash(config: Mapping[str, Any]) -> int:
    """Stable 64-bit hash of one configuration (a mapping of axis name to value).

    Depends only on the names and values (ints, floats and strings are hashed
    distinctly: ``1`` and ``1.0`` differ), not on the order of the mapping or on
    the space the configuration came from. Equal to :meth:`SearchSpace.hashes`.

    Example:
        >>> config_hash({"K_bd": 10, "K_Td": 5}) == config_hash({"K_Td": 5, "K_bd": 10})
        True
    """
    if not config:
        raise ValueError("config must hold at least one axis value")
    h = np.zeros(1, dtype=np.uint64)
    for name in sorted(config):
        kind = _kind_of(config[name], name)
        token = _hash64(_value_token(name, kind, config[name]))
        h = _mix(h ^ np.asarray([token], dtype=np.uint64))
    return int(h[0])


class SearchSpace:
    """A discrete search space of named axes: product and zipped factors, optional filter.

    Args:
        axes: mapping (or sequence of ``(name, values)`` pairs) of axis name to its
            discrete values (ints, floats or strings; finite, distinct, at least one).
            The order fixes the row-major order of the grid: the last factor varies
            fastest.
        zipped: groups of axis names that advance together (equal lengths); each
            group is one factor placed where its first member appears in ``axes``.
        where: optional vectorised filter: called with a dict of axis name to a
            numpy array of values (one entry per raw configuration) and returning
            a boolean array of the same length; configurations where it is False
            are dropped. It must be deterministic (every process evaluates it).

    Example:
        >>> space = SearchSpace({"K_bd": [1, 2, 4], "K_Td": [1, 2], "K_bs": [1, 2]},
        ...                     where=lambda c: c["K_Td"] <= c["K_bd"])
        >>> len(space), space[0]
        (10, {'K_bd': 1, 'K_Td': 1, 'K_bs': 1})
    """

    def __init__(
        self,
        axes: Mapping[str, Sequence[Any] | np.ndarray] | Sequence[tuple[str, Any]],
        *,
        zipped: Sequence[Sequence[str]] = (),
        where: Predicate | None = None,
    ) -> None:
        pairs = list(axes.items()) if isinstance(axes, Mapping) else list(axes)
        if not pairs:
            raise ValueError("axes must be a non-empty mapping of axis name to values")
        self._values: dict[str, np.ndarray] = {}
        for pair in pairs:
            if not isinstance(pair, tuple | list) or len(pair) != 2:
                raise ValueError("axes must be a mapping or a sequence of (name, values) pairs")
            name, vals = pair
            if name in self._values:
                raise ValueError(f"duplicate axis name {name!r}; axis names must be unique")
            self._values[name] = _axis_array(name, vals)
        names = list(self._values)
        in_group: dict[str, int] = {}
        groups = [list(g) for g in zipped]
        for gi, group in enumerate(groups):
            if isinstance(group, str) or len(group) < 2:
                raise ValueError(
                    f"zipped group {group!r} must list at least two axis names, e.g. [('a', 'b')]"
                )
            for name in group:
                if name not in self._values:
                    raise ValueError(f"zipped group {group!r} names unknown axis {name!r}")
                if name in in_group:
                    raise ValueError(f"axis {name!r} appears in more than one zipped group")
                in_group[name] = gi
            lengths = {name: self._values[name].size for name in group}
            if len(set(lengths.values())) != 1:
                raise ValueError(f"zipped axes must have equal lengths, got {lengths}")
        factors: list[tuple[str, ...]] = []
        seen_groups: set[int] = set()
        for name in names:
            if name in in_group:
                gi = in_group[name]
                if gi not in seen_groups:
                    seen_groups.add(gi)
                    factors.append(tuple(groups[gi]))
            else:
                factors.append((name,))
        self._factors = tuple(factors)
        self._radix = np.array([self._values[f[0]].size for f in factors], dtype=np.int64)
        self._strides = np.ones(len(factors), dtype=np.int64)
        for f in range(len(factors) - 2, -1, -1):
            self._strides[f] = self._strides[f + 1] * self._radix[f + 1]
        self._raw_size = math.prod(int(r) for r in self._radix)
        self._token_hash = {
            name: np.array(
                [_hash64(_value_token(name, _array_kind(v), x)) for x in v.tolist()],
                dtype=np.uint64,
            )
            for name, v in self._values.items()
        }
        self._selected: np.ndarray | None = None
        self._fingerprint: str | None = None
        self._has_filter = where is not None
        if where is not None:
            self._selected = self._apply_filter(where)
            if self._selected.size == 0:
                raise ValueError("the filter `where` rejects every configuration; relax it")

    def _apply_filter(self, where: Predicate) -> np.ndarray:
        kept = []
        for start in range(0, self._raw_size, _FILTER_CHUNK):
            raw = np.arange(start, min(start + _FILTER_CHUNK, self._raw_size), dtype=np.int64)
            mask = np.asarray(where(self._columns_raw(raw)))
            if mask.shape != raw.shape or mask.dtype != np.bool_:
                raise ValueError(
                    "`where` must return a boolean array with one entry per configuration "
                    f"(expected shape {raw.shape}, got {mask.dtype} {mask.shape}); write it "
                    "with numpy operators, e.g. lambda c: c['a'] <= c['b']"
                )
            kept.append(raw[mask])
        return np.concatenate(kept)

    # ------------------------------------------------------------------ structure
    @property
    def names(self) -> tuple[str, ...]:
        """Axis names in declaration order."""
        return tuple(self._values)

    @property
    def factors(self) -> tuple[tuple[str, ...], ...]:
        """Factors of the product in order: one name, or the names of a zipped group."""
        return self._factors

    @property
    def shape(self) -> tuple[int, ...]:
        """Length of each factor (the mixed radix); the product is the unfiltered size."""
        return tuple(int(r) for r in self._radix)

    @property
    def unfiltered_size(self) -> int:
        """Number of configurations before the filter."""
        return self._raw_size

    @property
    def is_filtered(self) -> bool:
        """Whether a `where` filter was given."""
        return self._has_filter

    def axis_values(self, name: str) -> np.ndarray:
        """The values of one axis (a copy)."""
        if name not in self._values:
            raise ValueError(f"unknown axis {name!r}; axes are {list(self._values)}")
        return self._values[name].copy()

    def __len__(self) -> int:
        return self._raw_size if self._selected is None else int(self._selected.size)

    def __repr__(self) -> str:
        parts = ", ".join(
            "(" + "+".join(f) + f")[{n}]" if len(f) > 1 else f"{f[0]}[{n}]"
            for f, n in zip(self._factors, self.shape, strict=True)
        )
        filt = f", filtered to {len(self)}" if self._has_filter else ""
        return f"SearchSpace({parts}{filt})"

    # ----------------------------------------------------------------- addressing
    def raw_indices(self, indices: np.ndarray) -> np.ndarray:
        """Map global (filtered) indices to raw product indices."""
        idx = self._check_indices(indices)
        return idx if self._selected is None else self._selected[idx]

    def index_of_raw(self, raw: int) -> int | None:
        """Global index of a raw product index, or None when the filter excludes it."""
        if not 0 <= raw < self._raw_size:
            raise ValueError(f"raw index must lie in [0, {self._raw_size}), got {raw}")
        if self._selected is None:
            return int(raw)
        pos = int(np.searchsorted(self._selected, raw))
        return pos if pos < self._selected.size and self._selected[pos] == raw else None

    def digits(self, indices: Any) -> np.ndarray:
        """Mixed-radix digits, shape ``(n, n_factors)``, of global indices."""
        raw = self.raw_indices(indices)
        return (raw[:, None] // self._strides[None, :]) % self._radix[None, :]

    def _check_indices(self, indices: Any) -> np.ndarray:
        idx = np.asarray(indices)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise ValueError("indices must be a 1-d integer array")
        idx = idx.astype(np.int64, copy=False)
        n = len(self)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ValueError(f"indices must lie in [0, {n}); got [{idx.min()}, {idx.max()}]")
        return idx

    def _columns_raw(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {}
        for f, names in enumerate(self._factors):
            digit = (raw // self._strides[f]) % self._radix[f]
            for name in names:
                cols[name] = self._values[name][digit]
        return cols

    def columns(self, indices: Any) -> dict[str, np.ndarray]:
        """Axis values of many configurations at once: name -> array of length ``n``."""
        return self._columns_raw(self.raw_indices(indices))

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not isinstance(index, int | np.integer):
            raise ValueError("SearchSpace[i] takes one integer index; use columns(indices)")
        i = int(index) + (len(self) if index < 0 else 0)
        cols = self.columns(np.array([i]))
        return {name: col[0].item() for name, col in cols.items()}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def index_of(self, config: Mapping[str, Any]) -> int:
        """Global index of a configuration (inverse of ``space[i]``)."""
        if set(config) != set(self._values):
            raise ValueError(f"config keys {sorted(config)} must be exactly {sorted(self._values)}")
        raw = 0
        for f, names in enumerate(self._factors):
            positions = []
            for name in names:
                hits = np.flatnonzero(self._values[name] == config[name])
                if hits.size == 0:
                    raise ValueError(f"value {config[name]!r} is not on axis {name!r}")
                positions.append(int(hits[0]))
            if len(set(positions)) != 1:
                raise ValueError(f"values of zipped axes {names} do not sit at the same position")
            raw += positions[0] * int(self._strides[f])
        if self._selected is None:
            return raw
        pos = int(np.searchsorted(self._selected, raw))
        if pos >= self._selected.size or self._selected[pos] != raw:
            raise ValueError(f"configuration {dict(config)} is excluded by the filter")
        return pos

    # -------------------------------------------------------------------- hashing
    def hashes(self, indices: Any) -> np.ndarray:
        """Stable 64-bit hashes (uint64) of many configurations; equals :func:`config_hash`."""
        raw = self.raw_indices(indices)
        h = np.zeros(raw.size, dtype=np.uint64)
        pos = {}
        for f, names in enumerate(self._factors):
            digit = (raw // self._strides[f]) % self._radix[f]
            for name in names:
                pos[name] = digit
        for name in sorted(self._values):
            h = _mix(h ^ self._token_hash[name][pos[name]])
        return h

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description: axes, factors, sizes and the fingerprint."""
        return {
            "axes": {name: v.tolist() for name, v in self._values.items()},
            "factors": [list(f) for f in self._factors],
            "size": len(self),
            "unfiltered_size": self._raw_size,
            "filtered": self._has_filter,
            "fingerprint": self.fingerprint,
        }

    @property
    def fingerprint(self) -> str:
        """Hex digest identifying the space exactly (axes, order, zipping, filter result)."""
        if self._fingerprint is None:
            self._fingerprint = self._compute_fingerprint()
        return self._fingerprint

    def _compute_fingerprint(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        desc = {
            "axes": {n: [_array_kind(v), v.tolist()] for n, v in self._values.items()},
            "factors": [list(f) for f in self._factors],
        }
        h.update(json.dumps(desc, sort_keys=False).encode())
        if self._selected is not None:
            h.update(self._selected.tobytes())
        return h.hexdigest()

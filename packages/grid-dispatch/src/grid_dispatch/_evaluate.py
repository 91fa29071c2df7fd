"""Evaluating an objective on batches of configurations: vmapped, grouped, looped or batched.

The objective takes one configuration, a dict ``{axis name: value}``, and returns
a dict of scalars or small arrays. In ``"vmap"`` mode the batch is evaluated by
one ``jit(vmap(objective))`` call per group of equal *static* axis values
(static axes, and every string axis, reach the objective as Python values, so
they may fix shapes; the others arrive as traced scalars). Batches are padded to
a fixed size so that each static group compiles once, and sharded over the
process's local devices along the batch axis. In ``"loop"`` mode the objective
is called once per configuration with Python values (for objectives that cannot
be traced). ``"auto"`` starts with vmap and falls back to the loop when tracing
fails on a value-dependent branch. In ``"batched"`` mode the objective evaluates a
whole batch itself: it is called as ``objective(configs)`` with ``configs`` a dict
``{axis name: 1-D numpy array}`` holding the batch's values (unpadded, every axis
included) and returns a dict of arrays whose leading dimension is the batch length
(for objectives that cannot be vmapped by JAX but vectorise on their own, e.g. by
building host-side data for many configurations and fitting them in one padded
device call). If a batched call raises, its configurations are evaluated again one
at a time (batches of length 1) so that only the failing ones are recorded as
errors.

A configuration whose evaluation raises, or whose outputs hold a NaN or an
infinity, is recorded with status ``"error"`` or ``"nonfinite"`` and its message;
it is never dropped.
"""

from __future__ import annotations

import logging
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._space import SearchSpace

logger = logging.getLogger("grid_dispatch")

Objective = Callable[[dict[str, Any]], Mapping[str, Any]]
BatchedObjective = Callable[[dict[str, np.ndarray]], Mapping[str, Any]]

STATUS_OK = "ok"
STATUS_ERROR = "error"
STATUS_NONFINITE = "nonfinite"

_TRACE_ERRORS: tuple[type[Exception], ...] = (
    jax.errors.ConcretizationTypeError,
    jax.errors.TracerBoolConversionError,
    jax.errors.TracerIntegerConversionError,
    jax.errors.TracerArrayConversionError,
)


# Compiled vmapped objectives, shared by every Evaluator of the same objective object, so
# a resumed or repeated run in the same process does not trace and compile again. The
# compiled functions reference their objective, so the cache is bounded (least recent out).
_COMPILED: OrderedDict[int, tuple[Any, dict[tuple, Callable]]] = OrderedDict()
_COMPILED_MAX = 8


def _compiled_cache(objective: Any) -> dict[tuple, Callable]:
    entry = _COMPILED.get(id(objective))
    if entry is None or entry[0] is not objective:
        entry = (objective, {})
        _COMPILED[id(objective)] = entry
        while len(_COMPILED) > _COMPILED_MAX:
            _COMPILED.popitem(last=False)
    _COMPILED.move_to_end(id(objective))
    return entry[1]


@dataclass(frozen=True)
class BatchResult:
    """Outputs of one batch: ``outputs[key]`` has shape ``(n, *shape_of_key)``.

    Attributes:
        indices: global configuration indices, shape ``(n,)``.
        outputs: objective outputs per key (rows of failed configurations hold zeros
            for ``"error"`` rows; they are stored as nulls).
        status: ``"ok"``, ``"error"`` or ``"nonfinite"`` per row.
        error: message per row (object array, ``None`` when ok).
    """

    indices: np.ndarray
    outputs: dict[str, np.ndarray]
    status: np.ndarray
    error: np.ndarray


def concat_batches(
    batches: Sequence[BatchResult], schema: dict[str, tuple[np.dtype, tuple[int, ...]]] | None
) -> BatchResult:
    """Concatenate batch results (a batch evaluated before the schema was known gets zeros)."""
    if len(batches) == 1 and set(batches[0].outputs) == set(schema or {}):
        return batches[0]
    outputs = {}
    for key, (dtype, shape) in (schema or {}).items():
        outputs[key] = np.concatenate(
            [
                b.outputs[key] if key in b.outputs else np.zeros((b.indices.size, *shape), dtype)
                for b in batches
            ]
        )
    return BatchResult(
        np.concatenate([b.indices for b in batches]),
        outputs,
        np.concatenate([b.status for b in batches]),
        np.concatenate([b.error for b in batches]),
    )


def reduce_over_seeds(
    objective: Callable[[dict[str, Any], Any], Mapping[str, Any]],
    n_seeds: int,
    *,
    stats: Sequence[str] = ("mean", "std"),
    ddof: int = 1,
    seed_batch_size: int | None = None,
    keep_per_seed: bool = False,
) -> Objective:
    """Wrap ``objective(config, seed)`` into ``objective(config)`` reduced over seeds.

    The seeds ``0 .. n_seeds-1`` (an int32 index: use it to pick a noise realisation
    or to fold into a PRNG key) are evaluated with ``vmap`` (or ``lax.map`` in
    chunks of ``seed_batch_size`` to bound memory), and each output ``k`` becomes
    ``k_mean``, ``k_std`` (sample std with ``ddof``), ``k_min``, ``k_max`` as asked.

    Args:
        objective: function of a configuration and a seed index returning a dict.
        n_seeds: number of seeds (>= 1; >= 2 for ``std`` with ``ddof=1``).
        stats: any of ``"mean"``, ``"std"``, ``"min"``, ``"max"``.
        ddof: delta degrees of freedom of the standard deviation.
        seed_batch_size: evaluate this many seeds at a time (``None``: all at once).
        keep_per_seed: also return each output per seed as ``k_per_seed``.
    """
    allowed = {"mean", "std", "min", "max"}
    if not isinstance(n_seeds, int) or n_seeds < 1:
        raise ValueError(f"n_seeds must be a positive integer, got {n_seeds!r}")
    if not stats or not set(stats) <= allowed:
        raise ValueError(f"stats must be a non-empty subset of {sorted(allowed)}, got {stats!r}")
    if "std" in stats and n_seeds <= ddof:
        raise ValueError(f"std with ddof={ddof} needs n_seeds > {ddof}, got {n_seeds}")
    if seed_batch_size is not None and (
        not isinstance(seed_batch_size, int) or seed_batch_size < 1
    ):
        raise ValueError(
            f"seed_batch_size must be a positive integer or None, got {seed_batch_size}"
        )
    funcs = {
        "mean": lambda x: jnp.mean(x, axis=0),
        "std": lambda x: jnp.std(x, axis=0, ddof=ddof),
        "min": lambda x: jnp.min(x, axis=0),
        "max": lambda x: jnp.max(x, axis=0),
    }

    def reduced(config: dict[str, Any]) -> dict[str, Any]:
        seeds = jnp.arange(n_seeds, dtype=jnp.int32)
        per_seed = lambda s: dict(objective(config, s))
        if seed_batch_size is None:
            values = jax.vmap(per_seed)(seeds)
        else:
            values = jax.lax.map(per_seed, seeds, batch_size=seed_batch_size)
        out = {}
        for key, val in values.items():
            for stat in stats:
                out[f"{key}_{stat}"] = funcs[stat](val)
            if keep_per_seed:
                out[f"{key}_per_seed"] = val
        return out

    return reduced


def _format_error(exc: BaseException) -> str:
    last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
    where = f" (at {last[0].filename}:{last[0].lineno})" if last else ""
    return f"{type(exc).__name__}: {exc}{where}"


class Evaluator:
    """Evaluate an objective on batches of global indices of a search space.

    Args:
        objective: function of one configuration dict returning a dict of arrays
            (in ``"batched"`` mode: function of a dict of 1-D arrays, one entry per
            configuration of the batch, returning arrays with that leading dimension).
        space: the search space.
        batch_size: padded batch size of one vmapped call (rounded up to a multiple
            of the number of devices); in ``"batched"`` mode the largest number of
            configurations passed to one objective call (batches are not padded).
        static_axes: axes passed as Python values (they may set shapes); string
            axes are always static. Not used in ``"batched"`` mode.
        mode: ``"auto"``, ``"vmap"``, ``"loop"`` or ``"batched"``.
        devices: devices to shard each batch over (default ``jax.local_devices()``).
            Not used in ``"batched"`` mode, where the objective places its own work
            (``devices`` is then empty).
    """

    def __init__(
        self,
        objective: Objective | BatchedObjective,
        space: SearchSpace,
        *,
        batch_size: int = 1024,
        static_axes: Sequence[str] = (),
        mode: str = "auto",
        devices: Sequence[Any] | None = None,
    ) -> None:
        if not callable(objective):
            raise ValueError("objective must be callable: objective(config) -> dict")
        if mode not in ("auto", "vmap", "loop", "batched"):
            raise ValueError(f"mode must be 'auto', 'vmap', 'loop' or 'batched', got {mode!r}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if isinstance(static_axes, str):
            raise ValueError("static_axes must be a sequence of axis names, e.g. ('K_bd',)")
        unknown = [a for a in static_axes if a not in space.names]
        if unknown:
            raise ValueError(f"static_axes {unknown} are not axes of the space {space.names}")
        self.objective = objective
        self.space = space
        self.mode = mode
        self.schema: dict[str, tuple[np.dtype, tuple[int, ...]]] | None = None
        if mode == "batched":
            if static_axes:
                raise ValueError(
                    "static_axes has no effect in mode='batched' (every axis reaches the "
                    "objective as a numpy array); remove it"
                )
            if devices is not None:
                raise ValueError(
                    "devices is not used in mode='batched' (the objective places its own "
                    "work on devices); remove it"
                )
            self.batch_size = batch_size
            self.devices: list[Any] = []
            self.static_axes: tuple[str, ...] = ()
            self.dynamic_axes = tuple(space.names)
            return
        self.devices = list(jax.local_devices() if devices is None else devices)
        if not self.devices:
            raise ValueError("devices must hold at least one device")
        n_dev = len(self.devices)
        self.batch_size = -(-batch_size // n_dev) * n_dev
        strings = [n for n in space.names if space.axis_values(n).dtype.kind == "U"]
        self.static_axes = tuple(dict.fromkeys([*static_axes, *strings]))
        self.dynamic_axes = tuple(n for n in space.names if n not in self.static_axes)
        self._dyn_dtype = {
            n: jax.dtypes.canonicalize_dtype(space.axis_values(n).dtype) for n in self.dynamic_axes
        }
        if n_dev > 1:
            mesh = jax.sharding.Mesh(np.array(self.devices), ("batch",))
            self._sharding: Any = jax.sharding.NamedSharding(
                mesh, jax.sharding.PartitionSpec("batch")
            )
        else:
            self._sharding = self.devices[0]
        self._compiled = _compiled_cache(objective)

    # ------------------------------------------------------------------ helpers
    def _check_schema(self, outputs: Mapping[str, Any], leading: int) -> dict[str, np.ndarray]:
        if not isinstance(outputs, Mapping) or not outputs:
            raise ValueError(
                "objective must return a non-empty dict of scalars or arrays, got "
                f"{type(outputs).__name__}"
            )
        arrays = {}
        for key, val in outputs.items():
            if not isinstance(key, str) or not key.isidentifier():
                raise ValueError(f"objective output key {key!r} must be an identifier string")
            arr = np.asarray(val)
            if arr.dtype.kind not in "biuf":
                raise ValueError(
                    f"objective output {key!r} has dtype {arr.dtype}; return bool, int or float"
                )
            arrays[key] = arr
        schema = {k: (v.dtype, v.shape[leading:]) for k, v in arrays.items()}
        if self.schema is None:
            reserved = {"config_index", "config_hash", "status", "error", *self.space.names}
            clash = sorted(reserved & set(schema))
            if clash:
                raise ValueError(
                    f"objective output keys {clash} clash with axis or bookkeeping column "
                    "names; rename them"
                )
            self.schema = schema
        elif set(schema) != set(self.schema):
            raise ValueError(
                "objective returned inconsistent keys: "
                f"{sorted(schema)} here but {sorted(self.schema)} before; "
                "return the same keys for every configuration"
            )
        else:
            for key, (dtype, shape) in schema.items():
                if shape != self.schema[key][1]:
                    raise ValueError(
                        f"objective output {key!r} has shape {shape} here but "
                        f"{self.schema[key][1]} before; shapes must not change"
                    )
                if dtype != self.schema[key][0]:
                    arrays[key] = arrays[key].astype(self.schema[key][0])
        return arrays

    def _static_groups(
        self, cols: dict[str, np.ndarray], n: int
    ) -> list[tuple[dict[str, Any], np.ndarray]]:
        if not self.static_axes:
            return [({}, np.arange(n))]
        codes = np.zeros(n, dtype=np.int64)
        for name in self.static_axes:
            _, inv = np.unique(cols[name], return_inverse=True)
            codes = codes * (int(inv.max()) + 1) + inv
        groups = []
        for code in np.unique(codes):
            rows = np.flatnonzero(codes == code)
            static = {name: cols[name][rows[0]].item() for name in self.static_axes}
            groups.append((static, rows))
        return groups

    def _vmapped(self, static: dict[str, Any]) -> Callable:
        key = (
            tuple(static.items()),
            tuple(self._dyn_dtype.items()),
            self.batch_size,
            tuple(d.id for d in self.devices),
        )
        fn = self._compiled.get(key)
        if fn is None:
            objective = self.objective

            def one(dyn: dict[str, Any]) -> Mapping[str, Any]:
                return objective({**static, **dyn})

            fn = jax.jit(jax.vmap(one))
            self._compiled[key] = fn
        return fn

    # -------------------------------------------------------------- evaluation
    def evaluate(self, indices: np.ndarray) -> BatchResult:
        """Evaluate the configurations at ``indices`` (at most ``batch_size`` of them)."""
        indices = np.asarray(indices, dtype=np.int64)
        n = indices.size
        if n == 0 or n > self.batch_size:
            raise ValueError(f"a batch holds 1..{self.batch_size} indices, got {n}")
        cols = self.space.columns(indices)
        status = np.full(n, STATUS_OK, dtype="<U9")
        errors = np.full(n, None, dtype=object)
        parts: list[tuple[np.ndarray, dict[str, np.ndarray]]] = []
        if self.mode == "batched":
            groups = []
            part, errs = self._batched(cols, n)
            parts.append((np.arange(n), part))
            for r, err in enumerate(errs):
                if err is not None:
                    status[r], errors[r] = STATUS_ERROR, err
        else:
            groups = self._static_groups(cols, n)
        for static, rows in groups:
            part = None
            if self.mode != "loop":
                part = self._try_vmap(static, {k: cols[k][rows] for k in self.dynamic_axes})
            if part is None:
                part, errs = self._loop({k: v[rows] for k, v in cols.items()})
                for r, err in zip(rows, errs, strict=True):
                    if err is not None:
                        status[r], errors[r] = STATUS_ERROR, err
            parts.append((rows, part))
        schema = self.schema or {}
        outputs = {k: np.zeros((n, *shape), dtype=dtype) for k, (dtype, shape) in schema.items()}
        for rows, part in parts:
            for key, val in part.items():
                outputs[key][rows] = val
        ok = status == STATUS_OK
        bad_keys = {}
        for key, val in outputs.items():
            if val.dtype.kind == "f":
                row_bad = ok & ~np.isfinite(val.reshape(n, -1)).all(axis=1)
                if row_bad.any():
                    bad_keys[key] = row_bad
        if bad_keys:
            for r in np.flatnonzero(np.logical_or.reduce(list(bad_keys.values()))):
                status[r] = STATUS_NONFINITE
                keys = ", ".join(k for k, rows in bad_keys.items() if rows[r])
                errors[r] = f"non-finite values in {keys}"
        return BatchResult(indices, outputs, status, errors)

    def _try_vmap(
        self, static: dict[str, Any], dyn_cols: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray] | None:
        try:
            if dyn_cols:
                count = next(iter(dyn_cols.values())).size
                size = self.batch_size
                padded = {}
                for name, col in dyn_cols.items():
                    buf = np.empty(size, dtype=self._dyn_dtype[name])
                    buf[:count] = col
                    buf[count:] = col[0]
                    padded[name] = buf
                args = jax.device_put(padded, self._sharding)
                out = jax.device_get(self._vmapped(static)(args))
            else:
                # Every axis is static, so the group is one configuration: no batch axis.
                count = size = 1
                key = ("unbatched", tuple(static.items()))
                if key not in self._compiled:
                    objective = self.objective
                    self._compiled[key] = jax.jit(lambda: dict(objective(dict(static))))
                out = jax.device_get(self._compiled[key]())
                out = {k: np.asarray(v)[None] for k, v in out.items()}
        except _TRACE_ERRORS as exc:
            if self.mode == "vmap":
                raise ValueError(
                    "objective cannot be traced by jax.vmap (value-dependent Python control "
                    f"flow or shapes: {type(exc).__name__}); use mode='loop', or declare the "
                    "shape-setting axes in static_axes"
                ) from exc
            logger.info("event=fallback_to_loop reason=%s", type(exc).__name__)
            self.mode = "loop"
            return None
        except Exception as exc:
            # Attribute the failure to configurations by evaluating them one by one.
            logger.info("event=vmap_failed error=%r action=loop_batch", _format_error(exc))
            return None
        arrays = self._check_schema(out, leading=1)
        for key, val in arrays.items():
            if val.shape[:1] != (size,):
                raise ValueError(
                    f"objective output {key!r} is not per-configuration under vmap "
                    f"(leading size {val.shape[:1]}, expected {size})"
                )
        return {k: v[:count] for k, v in arrays.items()}

    def _checked_batch(self, out: Any, n: int) -> dict[str, np.ndarray]:
        """Outputs of one batched call, checked: a wrong shape is a bug, not a failed config."""
        if isinstance(out, Mapping):
            for key, val in out.items():
                shape = np.shape(val)
                if shape[:1] != (n,):
                    raise ValueError(
                        f"batched objective output {key!r} has shape {shape}; expected leading "
                        f"dimension {n} (one row per configuration of the batch: the length "
                        "of each array in configs)"
                    )
        return self._check_schema(out, leading=1)

    def _batched(
        self, cols: dict[str, np.ndarray], n: int
    ) -> tuple[dict[str, np.ndarray], list[str | None]]:
        """Evaluate a batch in one objective call; if it raises, each configuration alone."""
        try:
            out = self.objective({k: v.copy() for k, v in cols.items()})
            out = jax.device_get(dict(out)) if isinstance(out, Mapping) else out
        except Exception as exc:
            if n == 1:
                return {}, [_format_error(exc)]
            logger.info("event=batch_failed error=%r action=one_by_one", _format_error(exc))
            singles = [
                self._batched({k: v[i : i + 1] for k, v in cols.items()}, 1) for i in range(n)
            ]
            errs = [err[0] for _, err in singles]
            if self.schema is None:
                # Every configuration failed: the output keys are not known yet.
                return {}, errs
            result = {k: np.zeros((n, *s), dtype=dt) for k, (dt, s) in self.schema.items()}
            for i, (row, err) in enumerate(singles):
                if err[0] is None:
                    for key, val in row.items():
                        result[key][i] = val[0]
            return result, errs
        return self._checked_batch(out, n), [None] * n

    def _loop(self, cols: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str | None]]:
        n = next(iter(cols.values())).size
        rows: list[dict[str, np.ndarray] | None] = []
        errs: list[str | None] = []
        for i in range(n):
            config = {k: v[i].item() for k, v in cols.items()}
            try:
                out = self.objective(config)
                out = jax.device_get(dict(out)) if isinstance(out, Mapping) else out
            except Exception as exc:
                rows.append(None)
                errs.append(_format_error(exc))
                continue
            rows.append(self._check_schema(out, leading=0))
            errs.append(None)
        if self.schema is None:
            # Every configuration so far failed: the output keys are not known yet.
            return {}, errs
        result = {k: np.zeros((n, *shape), dtype=dt) for k, (dt, shape) in self.schema.items()}
        for i, row in enumerate(rows):
            if row is not None:
                for key, val in row.items():
                    result[key][i] = val
        return result, errs

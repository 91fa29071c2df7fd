"""Aggregating a run folder: one table, an xarray Dataset, top-k, best per group, seed means.

:func:`load_results` merges the batches of all processes into one pandas
DataFrame sorted by ``config_index`` with columns ``config_index``,
``config_hash``, one per axis, ``status``, ``error`` and one per objective
output (array outputs hold one numpy array per row). Only files that pass the
same validation as resume are read, so a corrupt file never leaks into a table.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ._space import SearchSpace
from ._store import _META_KEY, read_space_description, scan_results

logger = logging.getLogger("grid_dispatch")

_BOOKKEEPING = ("config_index", "config_hash", "status", "error")


def _space_from_description(desc: dict[str, Any]) -> SearchSpace:
    zipped = [f for f in desc["factors"] if len(f) > 1]
    return SearchSpace(desc["axes"], zipped=zipped)


def load_results(
    out_dir: str | os.PathLike,
    space: SearchSpace | None = None,
    *,
    on_duplicate: str = "error",
    on_corrupt: str = "error",
) -> pd.DataFrame:
    """All results of a run folder as one DataFrame sorted by ``config_index``.

    Args:
        out_dir: the run folder of :func:`run_grid`.
        space: the run's space (needed only for filtered spaces, whose filter is
            code and is not stored; otherwise rebuilt from ``space.json``).
        on_duplicate: ``"error"`` (raise if a configuration appears twice) or
            ``"first"`` (keep the first occurrence).
        on_corrupt: ``"error"`` (raise if a batch file fails validation: run
            :func:`run_grid` again to redo its configurations) or ``"skip"``.

    The table's ``attrs`` hold ``axes`` (the axis names) and ``n_missing`` (grid
    configurations without a row: not yet evaluated, or in skipped corrupt files).
    """
    if on_duplicate not in ("error", "first"):
        raise ValueError(f"on_duplicate must be 'error' or 'first', got {on_duplicate!r}")
    if on_corrupt not in ("error", "skip"):
        raise ValueError(f"on_corrupt must be 'error' or 'skip', got {on_corrupt!r}")
    desc = read_space_description(out_dir)
    if space is not None and not isinstance(space, SearchSpace):
        raise ValueError(f"space must be a SearchSpace or None, got {type(space).__name__}")
    if space is None:
        if desc["filtered"]:
            raise ValueError(
                "this run used a filtered space; pass the same SearchSpace as `space=`"
            )
        space = _space_from_description(desc)
    if space.fingerprint != desc["fingerprint"]:
        raise ValueError("`space` is not the space this run folder was created with")
    scan = scan_results(out_dir, space, owned=set())
    if scan.ignored and on_corrupt == "error":
        raise ValueError(
            f"{len(scan.ignored)} corrupt batch files in {str(out_dir)!r} ({scan.ignored[:3]}...); "
            "run run_grid again to redo their configurations, or pass on_corrupt='skip'"
        )
    frames = []
    shapes: dict[str, list[int]] = {}
    for path in scan.files:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[_META_KEY])
        shapes.update(meta["output_shapes"])
        frames.append(table.to_pandas())
    if not frames:
        columns = ["config_index", "config_hash", *space.names, "status", "error"]
        empty = pd.DataFrame(columns=columns)
        empty.attrs.update(axes=list(space.names), n_missing=len(space))
        return empty
    df = pd.concat(frames, ignore_index=True)
    for key, shape in shapes.items():
        if len(shape) > 1 and key in df:
            df[key] = [None if v is None else np.reshape(v, shape) for v in df[key]]
    dup = df["config_index"].duplicated()
    if dup.any():
        if on_duplicate == "error":
            raise ValueError(
                f"{int(dup.sum())} configurations appear more than once in {str(out_dir)!r}; "
                "pass on_duplicate='first' to keep one"
            )
        df = df[~dup]
    df = df.sort_values("config_index", kind="stable").reset_index(drop=True)
    df.attrs.update(axes=list(space.names), n_missing=len(space) - len(df))
    return df


def _axes_of(df: pd.DataFrame, space: SearchSpace | None) -> list[str]:
    if space is not None:
        return list(space.names)
    axes = df.attrs.get("axes")
    if axes is None:
        raise ValueError(
            "cannot tell axis columns from outputs: pass `space=`, or use a DataFrame from "
            "load_results (it records them in df.attrs['axes'])"
        )
    return list(axes)


def output_columns(df: pd.DataFrame, space: SearchSpace | None = None) -> list[str]:
    """Objective output columns of a results table (neither axes nor bookkeeping)."""
    axes = set(_axes_of(df, space))
    return [c for c in df.columns if c not in _BOOKKEEPING and c not in axes]


def _check_columns(df: pd.DataFrame, names: Sequence[str], arg: str) -> None:
    missing = [c for c in names if c not in df.columns]
    if missing:
        raise ValueError(f"{arg} names unknown columns {missing}; columns are {list(df.columns)}")


def top_k(
    df: pd.DataFrame, k: int, by: str, *, ascending: bool = True, only_ok: bool = True
) -> pd.DataFrame:
    """The ``k`` best rows by column ``by`` (smallest first when ``ascending``).

    Failed rows (status other than ``ok``) are left out unless ``only_ok=False``;
    ties keep grid order.
    """
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    _check_columns(df, [by], "by")
    rows = df[df["status"] == "ok"] if only_ok else df
    return rows.sort_values(by, ascending=ascending, kind="stable").head(k)


def best_per_group(
    df: pd.DataFrame, group_by: str | Sequence[str], by: str, *, ascending: bool = True
) -> pd.DataFrame:
    """For each value of ``group_by``, the successful row with the best ``by``."""
    groups = [group_by] if isinstance(group_by, str) else list(group_by)
    _check_columns(df, [*groups, by], "group_by/by")
    rows = df[df["status"] == "ok"].sort_values(by, ascending=ascending, kind="stable")
    return rows.groupby(groups, sort=True).head(1).sort_values(groups).reset_index(drop=True)


def mean_over(
    df: pd.DataFrame,
    seed_axes: str | Sequence[str],
    values: Sequence[str] | None = None,
    *,
    space: SearchSpace | None = None,
    ddof: int = 1,
) -> pd.DataFrame:
    """Mean and standard deviation of scalar outputs over seed axes, per configuration.

    Groups by every other axis; for each output ``v`` returns ``v_mean``, ``v_std``
    (with ``ddof``; NaN for a single seed) and ``n_ok`` (successful seeds), using
    ``ok`` rows only.

    Args:
        df: results of :func:`load_results`.
        seed_axes: the axes to average over (e.g. ``"seed"``).
        values: output columns (default: every numeric scalar output).
        space: the run's space (default: the axes recorded by ``load_results``).
        ddof: delta degrees of freedom of the standard deviation.
    """
    seeds = [seed_axes] if isinstance(seed_axes, str) else list(seed_axes)
    axes = _axes_of(df, space)
    unknown = [s for s in seeds if s not in axes]
    if unknown:
        raise ValueError(f"seed_axes {unknown} are not axes; axes are {axes}")
    keep = [a for a in axes if a not in seeds]
    if values is None:
        values = [c for c in output_columns(df, space) if pd.api.types.is_numeric_dtype(df[c])]
    _check_columns(df, values, "values")
    ok = df[df["status"] == "ok"]
    grouped = ok.groupby(keep if keep else np.zeros(len(ok), dtype=int), sort=True)
    stats = {}
    for v in values:
        stats[f"{v}_mean"] = grouped[v].mean()
        stats[f"{v}_std"] = grouped[v].std(ddof=ddof)
    stats["n_ok"] = grouped.size()
    out = pd.DataFrame(stats)
    return out.reset_index() if keep else out.reset_index(drop=True)


def to_xarray(df: pd.DataFrame, space: SearchSpace, values: Sequence[str] | None = None) -> Any:
    """Results as an ``xarray.Dataset`` with one dimension per factor of ``space``.

    A zipped group becomes one dimension named after its axes joined by ``"__"``,
    with each axis as a coordinate along it. Configurations that are filtered out,
    missing or failed hold NaN. Array outputs get extra dimensions ``<key>_dim<i>``.
    Needs the ``xarray`` extra.
    """
    try:
        import xarray as xr
    except ImportError as exc:
        raise ValueError("to_xarray needs xarray: pip install 'grid-dispatch[xarray]'") from exc
    if values is None:
        values = output_columns(df, space)
    _check_columns(df, ["config_index", *values], "values")
    dims = ["__".join(f) for f in space.factors]
    shape = space.shape
    coords: dict[str, Any] = {}
    for dim, factor in zip(dims, space.factors, strict=True):
        for name in factor:
            coords[name] = (dim, space.axis_values(name))
    ok = df[df["status"] == "ok"]
    raw = space.raw_indices(ok["config_index"].to_numpy())
    data_vars = {}
    for key in values:
        column = ok[key].to_numpy()
        sample = np.asarray(column[0]) if column.size else np.zeros(())
        extra = sample.shape
        flat = np.full((space.unfiltered_size, *extra), np.nan)
        if column.size:
            flat[raw] = np.stack([np.asarray(v, dtype=float) for v in column])
        extra_dims = [f"{key}_dim{i}" for i in range(len(extra))]
        data_vars[key] = ([*dims, *extra_dims], flat.reshape(*shape, *extra))
    return xr.Dataset(data_vars, coords=coords)

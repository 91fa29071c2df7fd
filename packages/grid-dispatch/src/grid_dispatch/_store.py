"""Atomic Parquet batches, per-process manifests, and the O(N) resume scan.

Layout of a run folder::

    out_dir/space.json                         the space (checked on resume)
    out_dir/results/rank-00003/manifest.jsonl  one JSON line per finished batch
    out_dir/results/rank-00003/batch-*.parquet one file per evaluated batch
    out_dir/quarantine/                        corrupt files moved aside

A batch is serialised in memory, written to a temporary file, flushed to disk
and renamed into place with ``os.replace`` (atomic on POSIX), and only then
recorded in the manifest with its size, BLAKE2b digest and index ranges. A kill
at any instant therefore leaves either no file, an unlisted complete file
(adopted on resume after a full read), or a listed file. On resume every file
is checked against its manifest entry (size and digest) or read in full; a
truncated or corrupt file is moved to ``quarantine/`` and its configurations,
no longer marked done, are evaluated again. The done set is a boolean array of
length N, so the scan is O(N + bytes).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ._evaluate import BatchResult
from ._space import SearchSpace

logger = logging.getLogger("grid_dispatch")

SPACE_FILE = "space.json"
RESULTS_DIR = "results"
QUARANTINE_DIR = "quarantine"
MANIFEST = "manifest.jsonl"
_META_KEY = b"grid_dispatch"


def rank_dir(out_dir: Path, process_index: int) -> Path:
    return Path(out_dir) / RESULTS_DIR / f"rank-{process_index:05d}"


def _atomic_write_bytes(path: Path, data: bytes, fsync: bool = True) -> None:
    tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        if fsync:
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def prepare_run_dir(out_dir: str | os.PathLike, space: SearchSpace) -> Path:
    """Create ``out_dir`` and its ``space.json``, or check that it holds this same space."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / RESULTS_DIR).mkdir(exist_ok=True)
    desc = space.describe()
    path = out / SPACE_FILE
    if path.exists():
        old = json.loads(path.read_text())
        if old.get("fingerprint") != desc["fingerprint"]:
            raise ValueError(
                f"out_dir {str(out)!r} holds results of a different search space "
                f"(fingerprint {old.get('fingerprint')} != {desc['fingerprint']}); "
                "use a new out_dir or the original space"
            )
    else:
        _atomic_write_bytes(path, json.dumps(desc, indent=1).encode())
    return out


def read_space_description(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``space.json`` of a run folder."""
    path = Path(out_dir) / SPACE_FILE
    if not path.exists():
        raise ValueError(f"{str(out_dir)!r} is not a grid-dispatch run folder (no {SPACE_FILE})")
    return json.loads(path.read_text())


def _ranges(indices: np.ndarray) -> list[list[int]]:
    """Sorted indices as half-open runs ``[[start, stop], ...]``."""
    idx = np.sort(indices)
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [idx.size]])
    return [[int(idx[a]), int(idx[b - 1]) + 1] for a, b in zip(starts, stops, strict=True)]


def batch_table(batch: BatchResult, space: SearchSpace) -> pa.Table:
    """One batch as an Arrow table: bookkeeping, axis values, outputs (nulls for errors)."""
    n = batch.indices.size
    cols: dict[str, pa.Array] = {
        "config_index": pa.array(batch.indices, type=pa.int64()),
        "config_hash": pa.array(space.hashes(batch.indices), type=pa.uint64()),
    }
    for name, values in space.columns(batch.indices).items():
        cols[name] = pa.array(values)
    cols["status"] = pa.array(batch.status, type=pa.string())
    failed_any = batch.status != "ok"
    cols["error"] = (
        pa.array(batch.error, type=pa.string()) if failed_any.any() else pa.nulls(n, pa.string())
    )
    failed = batch.status == "error"
    shapes = {}
    for key, val in batch.outputs.items():
        shapes[key] = list(val.shape[1:])
        if val.ndim == 1:
            cols[key] = pa.array(val, mask=failed)
        else:
            flat = pa.array(val.reshape(-1))
            size = int(np.prod(val.shape[1:]))
            cols[key] = pa.FixedSizeListArray.from_arrays(flat, size, mask=pa.array(failed))
    meta = {"fingerprint": space.fingerprint, "output_shapes": shapes, "rows": n}
    return pa.table(cols).replace_schema_metadata({_META_KEY: json.dumps(meta).encode()})


def write_batch(
    directory: Path, batch: BatchResult, space: SearchSpace, *, fsync: bool = True
) -> dict[str, Any]:
    """Write one batch atomically and append its manifest line; returns the line."""
    table = batch_table(batch, space)
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="snappy")
    data = sink.getvalue().to_pybytes()
    name = f"batch-{int(batch.indices[0]):012d}-{batch.indices.size}-{uuid.uuid4().hex[:8]}.parquet"
    _atomic_write_bytes(directory / name, data, fsync=fsync)
    entry = {
        "file": name,
        "rows": int(batch.indices.size),
        "bytes": len(data),
        "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest(),
        "ranges": _ranges(batch.indices),
        "failed": int(np.count_nonzero(batch.status != "ok")),
    }
    # The manifest is an index, not the record: a line lost in a crash only makes the
    # next scan read the (already durable) file in full and adopt it, so no fsync here.
    _append_manifest(directory, entry)
    return entry


def _append_manifest(directory: Path, entry: dict[str, Any]) -> None:
    # One write() of one line: a kill leaves at worst a partial last line, which is ignored.
    line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    fd = os.open(directory / MANIFEST, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def _read_manifest(directory: Path) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    path = directory / MANIFEST
    if not path.exists():
        return entries
    for line in path.read_bytes().splitlines():
        try:
            entry = json.loads(line)
            entries[entry["file"]] = entry
        except (ValueError, KeyError, TypeError):
            continue
    return entries


def _digest(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, lambda: hashlib.blake2b(digest_size=16)).hexdigest()


def _read_valid_table(path: Path, fingerprint: str) -> pa.Table | None:
    """Read a whole Parquet batch, or None when it is unreadable or not of this space."""
    try:
        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[_META_KEY])
    except Exception:
        return None
    if meta.get("fingerprint") != fingerprint or meta.get("rows") != table.num_rows:
        return None
    return table


@dataclass
class ScanReport:
    """What the resume scan found."""

    done: np.ndarray
    files: list[Path] = field(default_factory=list)
    adopted: list[str] = field(default_factory=list)
    quarantined: list[str] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    duplicates: int = 0

    @property
    def n_done(self) -> int:
        return int(np.count_nonzero(self.done))


def scan_results(
    out_dir: str | os.PathLike,
    space: SearchSpace,
    *,
    owned: set[int] | None = None,
) -> ScanReport:
    """Find the configurations already done, validating every batch file.

    Args:
        out_dir: the run folder.
        space: its search space.
        owned: process indices whose folders this process may repair (quarantine
            corrupt files, delete stale temporary files, adopt unlisted complete
            files); ``None``: all of them (a single process owns the folder).
    """
    out = Path(out_dir)
    fingerprint = space.fingerprint
    count = np.zeros(len(space), dtype=np.int32)
    report = ScanReport(done=np.zeros(len(space), dtype=bool))
    results = out / RESULTS_DIR
    dirs = sorted(results.glob("rank-*")) if results.exists() else []
    for directory in dirs:
        try:
            rank = int(directory.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        mine = owned is None or rank in owned
        manifest = _read_manifest(directory)
        for path in sorted(directory.iterdir()):
            name = path.name
            if name.startswith(".tmp-"):
                if mine:
                    # A temporary file is never a result: a kill interrupted its write.
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()
                continue
            if not (name.startswith("batch-") and name.endswith(".parquet")):
                continue
            entry = manifest.get(name)
            indices: np.ndarray | None = None
            if entry is not None:
                try:
                    ok = path.stat().st_size == entry["bytes"] and _digest(path) == entry["blake2b"]
                except FileNotFoundError:
                    continue
                if ok:
                    indices = np.concatenate(
                        [np.arange(a, b, dtype=np.int64) for a, b in entry["ranges"]]
                    )
            else:
                table = _read_valid_table(path, fingerprint)
                if table is not None:
                    indices = table.column("config_index").to_numpy()
                    if mine:
                        data = path.read_bytes()
                        _append_manifest(
                            directory,
                            {
                                "file": name,
                                "rows": table.num_rows,
                                "bytes": len(data),
                                "blake2b": hashlib.blake2b(data, digest_size=16).hexdigest(),
                                "ranges": _ranges(indices),
                                "adopted": True,
                            },
                        )
                        report.adopted.append(name)
            if indices is None:
                if mine:
                    qdir = out / QUARANTINE_DIR
                    qdir.mkdir(exist_ok=True)
                    os.replace(path, qdir / f"{directory.name}-{name}")
                    report.quarantined.append(name)
                    logger.warning("event=corrupt_file file=%s action=quarantined_and_redo", name)
                else:
                    report.ignored.append(name)
                continue
            if indices.size and (indices.min() < 0 or indices.max() >= len(space)):
                report.ignored.append(name)
                continue
            count[indices] += 1
            report.files.append(path)
    report.done = count > 0
    report.duplicates = int(np.count_nonzero(count > 1))
    if report.duplicates:
        logger.warning("event=duplicate_results configurations=%d", report.duplicates)
    return report

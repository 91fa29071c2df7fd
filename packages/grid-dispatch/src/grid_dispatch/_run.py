"""Running a grid: partition, resume, evaluate in batches, checkpoint, report.

Each process takes its contiguous chunk ``G_I = G[floor(I N/P) : floor((I+1) N/P)]``
(section II.D of Kabalan et al. 2025) or, with ``balance="dynamic"`` under MPI,
draws batches from one shared queue of all pending configurations (an atomic
counter on rank 0: fast processes take more batches when configurations differ
in cost). Either way the configurations already on disk are skipped (O(N)
resume scan) and each batch is written atomically before it counts as done.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._evaluate import BatchedObjective, BatchResult, Evaluator, Objective, concat_batches
from ._partition import Backend, chunk_bounds, resolve_backend
from ._progress import ProgressReporter
from ._space import SearchSpace
from ._store import prepare_run_dir, rank_dir, scan_results, write_batch

logger = logging.getLogger("grid_dispatch")

_SLOT_NEXT = 0
_SLOT_DONE = 1
_MAX_INFLIGHT = 2


@dataclass(frozen=True)
class RunSummary:
    """What one process did in :func:`run_grid`.

    Attributes:
        process_index: this process ``I``.
        process_count: number of processes ``P``.
        backend: backend name (``single``, ``mpi``, ``slurm``, ``jax``, ``static``).
        n_total: configurations in the grid ``N``.
        n_done_before: configurations found done on disk at the start (all processes).
        n_evaluated: configurations this process evaluated in this run.
        n_failed: of those, how many were recorded as ``error`` or ``nonfinite``.
        n_files: Parquet files this process wrote.
        wall_s: wall time of this process's run.
        eval_s: time inside objective evaluation (including transfers).
        write_s: time spent serialising and writing batches (in a writer thread that
            overlaps evaluation, so ``eval_s + write_s`` may exceed ``wall_s``).
        quarantined: corrupt files found and moved aside (their work was redone).
        adopted: complete files found without a manifest line and kept.
        n_devices: local devices each batch was sharded over (0 in ``mode="batched"``,
            where the objective places its own work).
    """

    process_index: int
    process_count: int
    backend: str
    n_total: int
    n_done_before: int
    n_evaluated: int
    n_failed: int
    n_files: int
    wall_s: float
    eval_s: float
    write_s: float
    quarantined: tuple[str, ...]
    adopted: tuple[str, ...]
    n_devices: int

    @property
    def seconds_per_config(self) -> float:
        """Wall time per evaluated configuration (nan when none was evaluated)."""
        return self.wall_s / self.n_evaluated if self.n_evaluated else float("nan")


def run_grid(
    objective: Objective | BatchedObjective,
    space: SearchSpace,
    out_dir: str | os.PathLike,
    *,
    batch_size: int = 1024,
    static_axes: Sequence[str] = (),
    mode: str = "auto",
    backend: str | Backend = "auto",
    balance: str = "static",
    devices: Sequence[Any] | None = None,
    progress: bool = True,
    quiet: bool = False,
    log_every_s: float = 30.0,
    rows_per_file: int = 16384,
    flush_every_s: float = 10.0,
    fsync: bool = True,
) -> RunSummary:
    """Evaluate ``objective`` on every configuration of ``space``, resumably.

    Call it the same way in every process (``mpiexec -n P python script.py``, a SLURM
    array, or ``jax.distributed``); re-running it after an interruption evaluates
    only what is missing. Read the results with :func:`load_results`.

    Args:
        objective: ``objective(config) -> dict`` of scalars or small arrays (see
            :class:`Evaluator` for static axes and modes); with ``mode="batched"``,
            ``objective(configs) -> dict`` where ``configs`` maps each axis name to a
            1-D numpy array of the batch's values and every output has that length
            as its leading dimension.
        space: the search space.
        out_dir: run folder shared by all processes (Parquet batches + manifests).
        batch_size: configurations per vmapped call (padded to this size; a multiple
            of the number of devices); with ``mode="batched"``, the most configurations
            passed to one objective call (not padded: the last batch of a chunk, or of
            a resumed run, is shorter).
        static_axes: axes passed to the objective as Python values (may set shapes);
            each distinct combination compiles once.
        mode: ``"auto"`` (vmap, falling back to a loop), ``"vmap"``, ``"loop"`` or
            ``"batched"`` (the objective evaluates a batch itself; a batch whose call
            raises is evaluated again one configuration at a time, so only the
            failing ones are recorded as errors).
        backend: ``"auto"``, ``"single"``, ``"mpi"``, ``"slurm"``, ``"jax"`` or an
            object such as ``StaticPartition(i, p)``.
        balance: ``"static"`` (contiguous chunks, §II.D) or ``"dynamic"`` (a shared
            queue; needs the MPI backend).
        devices: devices to shard each batch over (default: all local devices; not
            used with ``mode="batched"``).
        progress: draw the progress bar on process 0.
        quiet: no bar at all; progress only as log lines (batch jobs).
        log_every_s: seconds between ``event=progress`` log lines.
        rows_per_file: write a Parquet file once this many rows are buffered.
        flush_every_s: ... or once this many seconds passed since the last write
            (0: write every batch), bounding the work a crash can lose.
        fsync: flush each file to stable storage before renaming it into place.

    Returns:
        This process's :class:`RunSummary`.
    """
    t0 = time.perf_counter()
    if not isinstance(space, SearchSpace):
        raise ValueError("space must be a grid_dispatch.SearchSpace")
    if not isinstance(rows_per_file, int) or rows_per_file < 1:
        raise ValueError(f"rows_per_file must be a positive integer, got {rows_per_file!r}")
    if not flush_every_s >= 0:
        raise ValueError(f"flush_every_s must be >= 0 seconds, got {flush_every_s!r}")
    if balance not in ("static", "dynamic"):
        raise ValueError(f"balance must be 'static' or 'dynamic', got {balance!r}")
    be = resolve_backend(backend)
    n, p, me = len(space), be.process_count, be.process_index
    start, stop = chunk_bounds(n, p, me)
    counter = be.shared_counter() if p > 1 else None
    if balance == "dynamic" and p > 1 and counter is None:
        raise ValueError(
            f"balance='dynamic' needs processes that share a counter (backend 'mpi'); "
            f"backend {be.name!r} supports only balance='static'"
        )
    evaluator = Evaluator(
        objective, space, batch_size=batch_size, static_axes=static_axes, mode=mode, devices=devices
    )

    if me == 0:
        prepare_run_dir(out_dir, space)
    be.barrier()
    prepare_run_dir(out_dir, space)
    my_dir = rank_dir(out_dir, me)
    my_dir.mkdir(parents=True, exist_ok=True)
    scan = scan_results(out_dir, space, owned=None if p == 1 else {me})
    be.barrier()

    if balance == "dynamic" and p > 1:
        pending = None
        if me == 0:
            pending = np.flatnonzero(~scan_results(out_dir, space, owned=set()).done)
        pending = be.broadcast(pending)
        n_done_before = n - pending.size
    else:
        pending = start + np.flatnonzero(~scan.done[start:stop])
        n_done_before = scan.n_done

    global_view = counter is not None or p == 1
    total = n if global_view else stop - start
    initial = n_done_before if global_view else (stop - start) - pending.size
    reporter = ProgressReporter(
        total,
        initial,
        show_bar=progress and not quiet and me == 0,
        log_every_s=log_every_s,
        label="grid" if global_view else f"grid chunk {me}/{p}",
        fields={"process": me, "processes": p, "backend": be.name},
    )
    reporter.log("start")

    def batches():
        if balance == "dynamic" and p > 1:
            while True:
                pos = counter.fetch_add(_SLOT_NEXT, evaluator.batch_size)
                if pos >= pending.size:
                    return
                yield pending[pos : pos + evaluator.batch_size]
        else:
            for a in range(0, pending.size, evaluator.batch_size):
                yield pending[a : a + evaluator.batch_size]

    n_eval = n_failed = n_files = 0
    eval_s = 0.0
    write_times: list[float] = []
    mine_done = initial

    def timed_write(result: BatchResult) -> None:
        t = time.perf_counter()
        write_batch(my_dir, result, space, fsync=fsync)
        write_times.append(time.perf_counter() - t)

    # Evaluated batches are buffered into files of about `rows_per_file` rows (or
    # whatever `flush_every_s` seconds produced) and written by a background thread
    # that overlaps the next evaluations. A configuration counts as done on disk
    # only once its file is renamed into place; a crash loses at most the buffer.
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grid-dispatch-writer")
    inflight: deque[Future] = deque()
    buffer: list[BatchResult] = []
    buffered = 0
    last_flush = time.perf_counter()

    def flush() -> None:
        nonlocal buffered, last_flush, n_files
        if buffer:
            inflight.append(writer.submit(timed_write, concat_batches(buffer, evaluator.schema)))
            n_files += 1
            buffer.clear()
            buffered = 0
        last_flush = time.perf_counter()
        while len(inflight) > _MAX_INFLIGHT:
            inflight.popleft().result()

    try:
        for idx in batches():
            t1 = time.perf_counter()
            result = evaluator.evaluate(idx)
            eval_s += time.perf_counter() - t1
            buffer.append(result)
            buffered += idx.size
            n_eval += idx.size
            n_failed += int(np.count_nonzero(result.status != "ok"))
            if buffered >= rows_per_file or time.perf_counter() - last_flush >= flush_every_s:
                flush()
            if counter is not None:
                before = counter.fetch_add(_SLOT_DONE, idx.size)
                reporter.update(n_done_before + before + idx.size)
            else:
                mine_done += idx.size
                reporter.update(mine_done)
        flush()
        while inflight:
            inflight.popleft().result()
    finally:
        writer.shutdown(wait=True)
        reporter.close()
    write_s = float(sum(write_times))
    be.barrier()
    if counter is not None:
        counter.free()
    summary = RunSummary(
        process_index=me,
        process_count=p,
        backend=be.name,
        n_total=n,
        n_done_before=n_done_before,
        n_evaluated=n_eval,
        n_failed=n_failed,
        n_files=n_files,
        wall_s=time.perf_counter() - t0,
        eval_s=eval_s,
        write_s=write_s,
        quarantined=tuple(scan.quarantined),
        adopted=tuple(scan.adopted),
        n_devices=len(evaluator.devices),
    )
    reporter.log("finish")
    return summary

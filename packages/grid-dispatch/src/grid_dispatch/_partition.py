"""Splitting a grid over processes, and the process backends that run the pieces.

Static partition (section II.D of Kabalan et al. 2025): process ``I`` of ``P``
owns the contiguous chunk

    G_I = G[floor(I N / P) : floor((I + 1) N / P)],   N = |G|,

which is disjoint and complete for any ``N >= P`` without divisibility
assumptions. Backends say who this process is (``I``, ``P``) and how processes
talk: not at all (a single process, a SLURM job array, an explicit partition),
through MPI (mpi4py: barriers, broadcast, and a one-sided shared counter used
for dynamic load balancing and a global progress count), or through
``jax.distributed`` (barriers).
"""

from __future__ import annotations

import os
from typing import Any, Protocol

import numpy as np

_MPI_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MPI_LOCALNRANKS", "PMIX_SIZE")


def chunk_bounds(n: int, process_count: int, process_index: int) -> tuple[int, int]:
    """Bounds ``[start, stop)`` of process ``I``'s contiguous chunk of ``N`` items (§II.D).

    Args:
        n: grid size ``N`` (>= 1).
        process_count: number of processes ``P`` (1 <= P <= N).
        process_index: this process ``I`` (0 <= I < P).

    Example:
        >>> [chunk_bounds(10, 3, i) for i in range(3)]
        [(0, 3), (3, 6), (6, 10)]
    """
    for name, value in (("n", n), ("process_count", process_count)):
        if not isinstance(value, int | np.integer) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if process_count > n:
        raise ValueError(
            f"process_count P={process_count} is larger than the grid size N={n}; "
            "use at most N processes (or a larger grid)"
        )
    if not isinstance(process_index, int | np.integer) or not 0 <= process_index < process_count:
        raise ValueError(f"process_index must lie in [0, {process_count}), got {process_index!r}")
    return process_index * n // process_count, (process_index + 1) * n // process_count


class SharedCounter(Protocol):
    """Two global int64 counters (next work position, completed configurations)."""

    def fetch_add(self, slot: int, value: int) -> int: ...

    def free(self) -> None: ...


class Backend(Protocol):
    """Who this process is among ``process_count`` and how processes communicate."""

    name: str
    process_index: int
    process_count: int

    def barrier(self) -> None: ...

    def broadcast(self, obj: Any) -> Any: ...

    def shared_counter(self) -> SharedCounter | None: ...


class StaticPartition:
    """Process ``process_index`` of ``process_count`` independent processes (no communication).

    Use it for job arrays and hand-launched processes; resume and aggregation work
    through the shared output folder alone.
    """

    def __init__(self, process_index: int, process_count: int, name: str = "static") -> None:
        if not isinstance(process_count, int | np.integer) or process_count < 1:
            raise ValueError(f"process_count must be a positive integer, got {process_count!r}")
        if not isinstance(process_index, int | np.integer) or not (
            0 <= process_index < process_count
        ):
            raise ValueError(
                f"process_index must lie in [0, {process_count}), got {process_index!r}"
            )
        self.name = name
        self.process_index = int(process_index)
        self.process_count = int(process_count)

    def barrier(self) -> None:
        """Independent processes never wait for each other."""

    def broadcast(self, obj: Any) -> Any:
        if self.process_count > 1:
            raise ValueError(f"backend {self.name!r} cannot broadcast between processes")
        return obj

    def shared_counter(self) -> SharedCounter | None:
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.process_index}/{self.process_count}, {self.name!r})"


class SingleProcess(StaticPartition):
    """The whole grid in this one process."""

    def __init__(self) -> None:
        super().__init__(0, 1, name="single")


def slurm_array_backend(environ: dict[str, str] | None = None) -> StaticPartition:
    """A static partition from SLURM job-array variables.

    Reads ``SLURM_ARRAY_TASK_ID`` and ``SLURM_ARRAY_TASK_MIN``/``_MAX`` (or
    ``SLURM_ARRAY_TASK_COUNT``) and ``SLURM_ARRAY_TASK_STEP``; e.g.
    ``sbatch --array=0-7`` gives processes 0..7 of 8.
    """
    env = os.environ if environ is None else environ
    if "SLURM_ARRAY_TASK_ID" not in env:
        raise ValueError("SLURM_ARRAY_TASK_ID is not set: not inside a SLURM job array")
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        lo = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        step = int(env.get("SLURM_ARRAY_TASK_STEP", "1"))
        if "SLURM_ARRAY_TASK_COUNT" in env:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            count = (int(env["SLURM_ARRAY_TASK_MAX"]) - lo) // step + 1
    except (KeyError, ValueError) as exc:
        raise ValueError(
            "SLURM array variables are incomplete or not integers; need SLURM_ARRAY_TASK_ID and "
            "SLURM_ARRAY_TASK_COUNT (or SLURM_ARRAY_TASK_MIN/MAX)"
        ) from exc
    if (task - lo) % step:
        raise ValueError(f"SLURM_ARRAY_TASK_ID={task} is not on the array's step grid")
    return StaticPartition((task - lo) // step, count, name="slurm")


class _MPICounter:
    """One-sided (RMA) int64 counters held by rank 0; atomic fetch-and-add from any rank."""

    def __init__(self, comm: Any) -> None:
        from mpi4py import MPI

        self._mpi = MPI
        nbytes = 2 * 8 if comm.Get_rank() == 0 else 0
        self._win = MPI.Win.Allocate(nbytes, disp_unit=8, comm=comm)
        if comm.Get_rank() == 0:
            buf = np.frombuffer(self._win.tomemory(), dtype=np.int64)
            buf[:] = 0
        comm.Barrier()

    def fetch_add(self, slot: int, value: int) -> int:
        mpi = self._mpi
        origin = np.array([value], dtype=np.int64)
        result = np.zeros(1, dtype=np.int64)
        self._win.Lock(0, mpi.LOCK_SHARED)
        self._win.Fetch_and_op(origin, result, 0, target_disp=slot, op=mpi.SUM)
        self._win.Unlock(0)
        return int(result[0])

    def free(self) -> None:
        self._win.Free()


class MPIBackend:
    """Processes of one MPI communicator (mpi4py); launch with ``mpiexec -n P``."""

    def __init__(self, comm: Any = None) -> None:
        try:
            from mpi4py import MPI
        except ImportError as exc:
            raise ValueError(
                "backend 'mpi' needs mpi4py: pip install 'grid-dispatch[mpi]'"
            ) from exc
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.name = "mpi"
        self.process_index = int(self.comm.Get_rank())
        self.process_count = int(self.comm.Get_size())

    def barrier(self) -> None:
        self.comm.Barrier()

    def broadcast(self, obj: Any) -> Any:
        return self.comm.bcast(obj, root=0)

    def shared_counter(self) -> SharedCounter | None:
        return _MPICounter(self.comm)

    def __repr__(self) -> str:
        return f"MPIBackend({self.process_index}/{self.process_count})"


class JaxDistributedBackend:
    """Processes of a ``jax.distributed`` job (call ``jax.distributed.initialize()`` first).

    Barriers are ``multihost_utils.sync_global_devices``; on CPU-only processes enable
    cross-process collectives first:
    ``jax.config.update("jax_cpu_collectives_implementation", "gloo")``.
    """

    def __init__(self) -> None:
        import jax

        self.name = "jax"
        self.process_index = int(jax.process_index())
        self.process_count = int(jax.process_count())
        self._n_barriers = 0

    def barrier(self) -> None:
        if self.process_count > 1:
            from jax.experimental import multihost_utils

            self._n_barriers += 1
            multihost_utils.sync_global_devices(f"grid_dispatch_{self._n_barriers}")

    def broadcast(self, obj: Any) -> Any:
        if self.process_count > 1:
            raise ValueError("backend 'jax' does not broadcast Python objects; use 'mpi'")
        return obj

    def shared_counter(self) -> SharedCounter | None:
        return None

    def __repr__(self) -> str:
        return f"JaxDistributedBackend({self.process_index}/{self.process_count})"


def _mpi_launched(env: Any) -> bool:
    for var in _MPI_SIZE_VARS:
        value = env.get(var)
        if value is not None and value.isdigit() and int(value) > 1:
            return True
    return False


def resolve_backend(backend: str | Backend = "auto") -> Backend:
    """Turn a backend name into a backend (objects pass through).

    Names: ``"single"``, ``"mpi"``, ``"slurm"``, ``"jax"``, or ``"auto"``: MPI when
    launched by ``mpiexec`` with more than one process, else a SLURM array when
    ``SLURM_ARRAY_TASK_ID`` is set, else ``jax.distributed`` when it spans more
    than one process, else a single process.
    """
    if not isinstance(backend, str):
        for attr in ("process_index", "process_count", "barrier", "broadcast", "shared_counter"):
            if not hasattr(backend, attr):
                raise ValueError(f"backend object {backend!r} lacks {attr!r}")
        return backend
    if backend == "single":
        return SingleProcess()
    if backend == "mpi":
        return MPIBackend()
    if backend == "slurm":
        return slurm_array_backend()
    if backend == "jax":
        return JaxDistributedBackend()
    if backend == "auto":
        if _mpi_launched(os.environ):
            return MPIBackend()
        if "SLURM_ARRAY_TASK_ID" in os.environ:
            return slurm_array_backend()
        import jax

        if jax.process_count() > 1:
            return JaxDistributedBackend()
        return SingleProcess()
    raise ValueError(
        f"backend must be 'auto', 'single', 'mpi', 'slurm', 'jax' or a backend object, "
        f"got {backend!r}"
    )

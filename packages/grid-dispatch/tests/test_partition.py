"""The contiguous chunk formula of §II.D and the process backends."""

from __future__ import annotations

import pytest
from grid_dispatch import (
    SingleProcess,
    StaticPartition,
    chunk_bounds,
    resolve_backend,
    slurm_array_backend,
)


def test_chunk_formula_for_all_small_n_and_p():
    for n in range(1, 51):
        for p in range(1, min(n, 8) + 1):
            bounds = [chunk_bounds(n, p, i) for i in range(p)]
            # The paper's formula exactly.
            assert bounds == [(i * n // p, (i + 1) * n // p) for i in range(p)]
            # Contiguous: each chunk starts where the previous stopped; complete: 0..n.
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(bounds[i][1] == bounds[i + 1][0] for i in range(p - 1))
            # Disjoint and complete as sets too, and balanced to within one item.
            items = [k for a, b in bounds for k in range(a, b)]
            assert sorted(items) == list(range(n)) and len(items) == len(set(items))
            sizes = [b - a for a, b in bounds]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((3, 4, 0), "larger than the grid size"),
        ((0, 1, 0), "n must be a positive integer"),
        ((5, 0, 0), "process_count must be a positive integer"),
        ((5, 2, 2), r"process_index must lie in \[0, 2\)"),
        ((5, 2, -1), r"process_index must lie"),
    ],
)
def test_chunk_bounds_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        chunk_bounds(*args)


def test_slurm_array_variables():
    be = slurm_array_backend(
        {"SLURM_ARRAY_TASK_ID": "5", "SLURM_ARRAY_TASK_MIN": "3", "SLURM_ARRAY_TASK_MAX": "9"}
    )
    assert (be.process_index, be.process_count, be.name) == (2, 7, "slurm")
    be = slurm_array_backend(
        {
            "SLURM_ARRAY_TASK_ID": "4",
            "SLURM_ARRAY_TASK_COUNT": "5",
            "SLURM_ARRAY_TASK_MIN": "0",
            "SLURM_ARRAY_TASK_STEP": "2",
        }
    )
    assert (be.process_index, be.process_count) == (2, 5)
    with pytest.raises(ValueError, match="not inside a SLURM job array"):
        slurm_array_backend({})
    with pytest.raises(ValueError, match="incomplete or not integers"):
        slurm_array_backend({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"})
    with pytest.raises(ValueError, match="step grid"):
        slurm_array_backend(
            {
                "SLURM_ARRAY_TASK_ID": "3",
                "SLURM_ARRAY_TASK_COUNT": "4",
                "SLURM_ARRAY_TASK_STEP": "2",
            }
        )


def test_resolve_backend(monkeypatch):
    for var in (
        "PMI_SIZE",
        "OMPI_COMM_WORLD_SIZE",
        "MPI_LOCALNRANKS",
        "PMIX_SIZE",
        "SLURM_ARRAY_TASK_ID",
    ):
        monkeypatch.delenv(var, raising=False)
    assert resolve_backend("auto").name == "single"
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    be = resolve_backend("auto")
    assert (be.name, be.process_index, be.process_count) == ("slurm", 1, 3)
    mine = StaticPartition(0, 2)
    assert resolve_backend(mine) is mine
    assert isinstance(resolve_backend("single"), SingleProcess)
    assert resolve_backend("jax").process_count == 1
    with pytest.raises(ValueError, match="backend must be"):
        resolve_backend("threads")
    with pytest.raises(ValueError, match="lacks"):
        resolve_backend(object())
    with pytest.raises(ValueError, match="process_index must lie"):
        StaticPartition(2, 2)
    with pytest.raises(ValueError, match="cannot broadcast"):
        StaticPartition(0, 2).broadcast(1)

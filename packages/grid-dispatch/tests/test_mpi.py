"""``mpiexec -n 3`` runs (static chunks, dynamic balancing, batched mode) equal one process."""

from __future__ import annotations

import importlib.util
import os
import subprocess

import pandas as pd
import pytest
from grid_dispatch import load_results, run_grid


def _module(scripts):
    spec = importlib.util.spec_from_file_location("grid_job", scripts / "grid_job.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def single(tmp_path_factory, scripts):
    job = _module(scripts)
    out = tmp_path_factory.mktemp("single")
    run_grid(
        job.objective, job.reference_space(), out, batch_size=16, backend="single", progress=False
    )
    return load_results(out, job.reference_space())


@pytest.fixture(scope="module")
def single_batched(tmp_path_factory, scripts):
    job = _module(scripts)
    out = tmp_path_factory.mktemp("single_batched")
    run_grid(
        job.batched_objective,
        job.reference_space(),
        out,
        batch_size=16,
        mode="batched",
        backend="single",
        progress=False,
    )
    return load_results(out, job.reference_space())


def _mpiexec_3(mpiexec, scripts, out, balance, mode):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "SLURM_"))}
    env["JAX_PLATFORMS"] = "cpu"
    proc = subprocess.run(
        [
            str(mpiexec),
            "-n",
            "3",
            str(mpiexec.parent / "python"),
            str(scripts / "grid_job.py"),
            str(out),
            "mpi",
            balance,
            mode,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith("process="))
    assert [line.split()[0] for line in lines] == ["process=0/3", "process=1/3", "process=2/3"]
    assert all("backend=mpi" in line for line in lines)
    return [int(line.split("evaluated=")[1]) for line in lines]


@pytest.mark.mpi
@pytest.mark.parametrize("balance", ["static", "dynamic"])
def test_mpiexec_3_equals_single_process(tmp_path, mpiexec, scripts, single, balance):
    out = tmp_path / "mpi"
    evaluated = _mpiexec_3(mpiexec, scripts, out, balance, "auto")
    assert sum(evaluated) == len(single)
    if balance == "static":
        # Chunks of 117 over 3: 39 each, written by the owning rank only.
        assert evaluated == [39, 39, 39]
    job = _module(scripts)
    merged = load_results(out, job.reference_space())
    pd.testing.assert_frame_equal(merged, single, check_exact=True)


@pytest.mark.mpi
def test_mpiexec_3_dynamic_batched_equals_single_process(
    tmp_path, mpiexec, scripts, single, single_batched
):
    out = tmp_path / "mpi"
    assert sum(_mpiexec_3(mpiexec, scripts, out, "dynamic", "batched")) == len(single)
    merged = load_results(out, _module(scripts).reference_space())
    pd.testing.assert_frame_equal(merged, single_batched, check_exact=False, rtol=1e-12)
    # The numpy batch objective (float64) agrees with the vmapped jax one (float32).
    pd.testing.assert_frame_equal(merged, single, check_dtype=False, check_exact=False, rtol=1e-5)

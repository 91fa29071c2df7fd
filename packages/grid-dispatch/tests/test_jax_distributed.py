"""Two ``jax.distributed`` processes on CPU (gloo collectives) split the grid by §II.D chunks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import jax.numpy as jnp
import pandas as pd
from grid_dispatch import SearchSpace, load_results, run_grid


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_jax_distributed_processes_equal_single_process(tmp_path, scripts):
    out, port = tmp_path / "dist", _free_port()
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    procs = [
        subprocess.Popen(
            [sys.executable, str(scripts / "jax_distributed_job.py"), str(out), str(port), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), results
    lines = sorted(line for o, _ in results for line in o.splitlines() if "process=" in line)
    # N = 21 over P = 2: chunks [0, 10) and [10, 21); both see all 21 rows after the barrier.
    assert lines == [
        "process=0/2 backend=jax evaluated=10 rows=21",
        "process=1/2 backend=jax evaluated=11 rows=21",
    ]
    space = SearchSpace({"a": list(range(7)), "b": [0.5, 1.5, 2.5]})
    run_grid(
        lambda c: {"y": jnp.sqrt(c["a"] * c["b"])},
        space,
        tmp_path / "one",
        batch_size=4,
        backend="single",
        progress=False,
    )
    pd.testing.assert_frame_equal(
        load_results(out), load_results(tmp_path / "one"), check_exact=True
    )

"""One MPI process of bench_overhead.py's scaling run (CPU-bound objective).

usage: mpiexec -n P python _scaling_worker.py OUT_DIR N_CONFIGS
"""

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from grid_dispatch import SearchSpace, run_grid
from mpi4py import MPI

out, n = Path(sys.argv[1]), int(sys.argv[2])
space = SearchSpace({"a": np.linspace(0.5, 1.5, n // 16), "b": np.arange(16)})
base = jax.random.normal(jax.random.key(0), (48, 48)) / 48**0.5


def heavy(config):
    m = base * config["a"] + jnp.float32(config["b"]) * 1e-3

    def step(m, _):
        return jnp.tanh(m @ base), None

    m, _ = jax.lax.scan(step, m, None, length=40)
    return {"trace": jnp.trace(m), "norm": jnp.linalg.norm(m)}


# Compile outside the timed run (the compiled function is shared by the next run_grid).
warm = SearchSpace({"a": [1.0], "b": [0]})
run_grid(
    heavy,
    warm,
    out / f"warm-{MPI.COMM_WORLD.Get_rank()}",
    batch_size=64,
    backend="single",
    progress=False,
)
MPI.COMM_WORLD.Barrier()
cpu0 = time.process_time()
summary = run_grid(heavy, space, out / "run", batch_size=64, backend="mpi", progress=False)
report = {**asdict(summary), "cpu_s": time.process_time() - cpu0}
(out / f"summary-{summary.process_index}.json").write_text(json.dumps(report))

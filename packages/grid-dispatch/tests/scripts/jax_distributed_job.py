"""One process of a 2-process jax.distributed grid on CPU (used by the tests).

usage: jax_distributed_job.py OUT_DIR PORT PROCESS_ID
"""

import sys

import jax

out, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)

import jax.numpy as jnp  # noqa: E402
from grid_dispatch import SearchSpace, load_results, run_grid  # noqa: E402

space = SearchSpace({"a": list(range(7)), "b": [0.5, 1.5, 2.5]})
summary = run_grid(
    lambda c: {"y": jnp.sqrt(c["a"] * c["b"])},
    space,
    out,
    batch_size=4,
    backend="auto",
    progress=False,
)
# run_grid ends on a barrier: every process's results are on disk when it returns.
n_rows = len(load_results(out))
sys.stdout.write(
    f"process={summary.process_index}/{summary.process_count} backend={summary.backend} "
    f"evaluated={summary.n_evaluated} rows={n_rows}\n"
)
jax.distributed.shutdown()

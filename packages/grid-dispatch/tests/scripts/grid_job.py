"""One process of the reference grid job (MPI, SLURM array or single), used by the tests.

usage: grid_job.py OUT_DIR BACKEND BALANCE [MODE]   (MODE: auto, the default, or batched)
"""

import sys

import jax.numpy as jnp
import numpy as np
from grid_dispatch import SearchSpace, run_grid


def reference_space() -> SearchSpace:
    return SearchSpace(
        {"k": [1, 2, 3, 4, 5], "x": np.linspace(-1.0, 1.0, 13), "model": ["a", "b"]},
        where=lambda c: ~((c["k"] == 5) & (c["model"] == "b")),
    )


def objective(config):
    w = 1.0 if config["model"] == "a" else -0.5
    t = jnp.arange(32.0) / 32.0
    loss = jnp.sum(jnp.cos(t * config["k"] + config["x"]) ** 2) * w + config["x"] ** 2
    bad = jnp.where(config["x"] > 0.9, jnp.nan, 1.0)  # a few non-finite rows, recorded
    return {"loss": loss, "flag": bad, "profile": jnp.sin(t[:4] * config["k"])}


def batched_objective(configs):
    """``objective`` for a whole batch at once, in numpy (for ``mode="batched"``)."""
    w = np.where(configs["model"] == "a", 1.0, -0.5)
    t = np.arange(32.0) / 32.0
    k, x = configs["k"][:, None], configs["x"]
    loss = np.sum(np.cos(t * k + x[:, None]) ** 2, axis=1) * w + x**2
    bad = np.where(x > 0.9, np.nan, 1.0)
    return {"loss": loss, "flag": bad, "profile": np.sin(t[:4] * k)}


if __name__ == "__main__":
    out, backend, balance = sys.argv[1:4]
    mode = sys.argv[4] if len(sys.argv) > 4 else "auto"
    summary = run_grid(
        batched_objective if mode == "batched" else objective,
        reference_space(),
        out,
        batch_size=16,
        backend=backend,
        balance=balance,
        mode=mode,
        progress=False,
        flush_every_s=0.0,
    )
    # One write of one short line: atomic on a pipe shared by several processes.
    sys.stdout.write(
        f"process={summary.process_index}/{summary.process_count} backend={summary.backend} "
        f"evaluated={summary.n_evaluated}\n"
    )
    sys.stdout.flush()

"""Per-configuration overhead of grid-dispatch vs jax-grid-search 0.2.1, and MPI scaling on CPU.

1. Overhead: a trivial jitted objective ``(x-2)^2 + (y-1)^2`` over a 400 x 250 grid
   (100,000 configurations), timed end to end (space construction, compilation,
   evaluation, atomic Parquet checkpoints with fsync) for grid-dispatch and for
   jax-grid-search 0.2.1 in this same process, next to a bare ``jit(vmap)`` loop
   (the floor: no bookkeeping, no disk).
2. Scaling: a CPU-bound objective (chained 48x48 matrix products, 16,384
   configurations) over 1, 2 and 4 ``mpiexec`` processes, each XLA process pinned to
   one thread; efficiency is ``T_1 / (P * T_P)`` with ``T_P`` the slowest process's
   ``run_grid`` wall time (compilation excluded by a warm-up), and work efficiency
   ``CPU_1 / sum_P CPU_P``. On a 2-core machine 4 processes cannot beat 2.

Usage: python bench_overhead.py [--quick] [--skip-scaling]
Writes results/overhead_<machine>.json next to this file and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from grid_dispatch import SearchSpace, load_results, run_grid

HERE = Path(__file__).resolve().parent


def objective(config):
    return {"value": (config["x"] - 2.0) ** 2 + (config["y"] - 1.0) ** 2}


def timed(fn):
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def bench_ours(xs, ys, batch_size, workdir):
    out = Path(tempfile.mkdtemp(dir=workdir))

    def go():
        space = SearchSpace({"x": xs, "y": ys})
        return run_grid(objective, space, out, batch_size=batch_size, progress=False, quiet=True)

    summary, wall, cpu = timed(go)
    df = load_results(out)
    assert len(df) == xs.size * ys.size and df["config_index"].is_unique
    best = df.loc[df["value"].idxmin()]
    shutil.rmtree(out)
    return {
        "tool": f"grid-dispatch (batch {batch_size})",
        "n": int(summary.n_evaluated),
        "wall_s": wall,
        "cpu_s": cpu,
        "us_per_config_wall": wall / summary.n_evaluated * 1e6,
        "us_per_config_cpu": cpu / summary.n_evaluated * 1e6,
        "best": [float(best["x"]), float(best["y"])],
    }


def bench_theirs(xs, ys, batch_size, workdir):
    try:
        from jax_grid_search import DistributedGridSearch
    except ImportError as exc:
        return {"tool": "jax-grid-search 0.2.1", "error": f"not installed: {exc}"}
    out = Path(tempfile.mkdtemp(dir=workdir))

    def go():
        gs = DistributedGridSearch(
            lambda x, y: objective({"x": x, "y": y}),
            {"x": xs, "y": ys},
            batch_size=batch_size,
            progress_bar=False,
            result_dir=str(out),
        )
        gs.run()
        return len(gs.combinations)

    n, wall, cpu = timed(go)
    shutil.rmtree(out)
    return {
        "tool": f"jax-grid-search 0.2.1 (batch {batch_size})",
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "us_per_config_wall": wall / n * 1e6,
        "us_per_config_cpu": cpu / n * 1e6,
    }


def bench_bare(xs, ys, batch_size):
    def go():
        gx, gy = np.meshgrid(xs, ys, indexing="ij")
        gx, gy = gx.ravel().astype(np.float32), gy.ravel().astype(np.float32)
        f = jax.jit(jax.vmap(lambda x, y: objective({"x": x, "y": y})["value"]))
        outs = []
        for a in range(0, gx.size, batch_size):
            bx = np.resize(gx[a : a + batch_size], batch_size)
            by = np.resize(gy[a : a + batch_size], batch_size)
            outs.append(np.asarray(f(jnp.asarray(bx), jnp.asarray(by))))
        return gx.size

    n, wall, cpu = timed(go)
    return {
        "tool": f"bare jit(vmap) loop (batch {batch_size})",
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "us_per_config_wall": wall / n * 1e6,
        "us_per_config_cpu": cpu / n * 1e6,
    }


def bench_scaling(n_configs, processes, workdir):
    mpiexec = Path(sys.executable).parent / "mpiexec"
    if not mpiexec.exists():
        return {"error": f"no mpiexec next to {sys.executable} (install the 'mpich' wheel)"}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PMI_", "SLURM_"))}
    env.update(
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
        OMP_NUM_THREADS="1",
    )
    rows = []
    for p in processes:
        out = Path(tempfile.mkdtemp(dir=workdir))
        t0 = time.perf_counter()
        proc = subprocess.run(
            [
                str(mpiexec),
                "-n",
                str(p),
                sys.executable,
                str(HERE / "_scaling_worker.py"),
                str(out),
                str(n_configs),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        launch_wall = time.perf_counter() - t0
        if proc.returncode != 0:
            return {"error": proc.stdout[-2000:] + proc.stderr[-2000:]}
        reports = [json.loads(f.read_text()) for f in sorted(out.glob("summary-*.json"))]
        assert sum(r["n_evaluated"] for r in reports) == n_configs
        rows.append(
            {
                "processes": p,
                "run_wall_s": max(r["wall_s"] for r in reports),
                "cpu_s_total": sum(r["cpu_s"] for r in reports),
                "launch_wall_s": launch_wall,
                "per_process_evaluated": [r["n_evaluated"] for r in reports],
            }
        )
        shutil.rmtree(out)
    t1, c1 = rows[0]["run_wall_s"], rows[0]["cpu_s_total"]
    for r in rows:
        r["speedup"] = t1 / r["run_wall_s"]
        r["efficiency"] = t1 / (r["processes"] * r["run_wall_s"])
        # Work efficiency: CPU seconds of 1 process / CPU seconds of all P processes: the
        # distribution's own overhead, less sensitive to other load on the machine than
        # wall-clock efficiency (bounded by the free cores). MPI barriers busy-poll, so
        # a process that finishes first burns CPU while it waits: a lower bound.
        r["work_efficiency"] = c1 / r["cpu_s_total"]
    return {"n_configs": n_configs, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x smaller grids (smoke run)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-theirs", action="store_true", help="omit jax-grid-search")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    xs = np.linspace(0.0, 4.0, 400 // scale)
    ys = np.linspace(-1.0, 3.0, 250)
    workdir = Path(tempfile.mkdtemp(prefix="gd-bench-"))
    load_before = os.getloadavg()
    overhead = [
        bench_bare(xs, ys, 4096),
        bench_ours(xs, ys, 4096, workdir),
        bench_ours(xs, ys, 1024, workdir),
    ]
    if not args.skip_theirs:
        overhead.append(bench_theirs(xs, ys, 4096, workdir))
    scaling = (
        None
        if args.skip_scaling
        else bench_scaling(16384 if not args.quick else 256, (1, 2, 4), workdir)
    )
    shutil.rmtree(workdir, ignore_errors=True)
    machine = f"{platform.machine()}-{os.cpu_count()}cpu"
    result = {
        "benchmark": "overhead",
        "machine": machine,
        "cpu_count": os.cpu_count(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "jax": jax.__version__,
        "python": platform.python_version(),
        "n_configs": int(xs.size * ys.size),
        "overhead": overhead,
        "mpi_scaling": scaling,
    }
    HERE.joinpath("results").mkdir(exist_ok=True)
    path = HERE / "results" / f"overhead_{machine}{'_quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1))

    print(
        f"\nper-configuration overhead, {result['n_configs']:,} configurations ({machine}, "
        f"load average {load_before[0]:.1f})"
    )
    print(f"{'tool':42s} {'wall s':>8s} {'us/cfg wall':>12s} {'us/cfg cpu':>11s}")
    for row in overhead:
        if "error" in row:
            print(f"{row['tool']:42s} {row['error']}")
            continue
        print(
            f"{row['tool']:42s} {row['wall_s']:8.2f} {row['us_per_config_wall']:12.1f} "
            f"{row['us_per_config_cpu']:11.1f}"
        )
    if scaling and "rows" in scaling:
        print(f"\nMPI scaling on CPU, {scaling['n_configs']} CPU-bound configurations")
        print(
            f"{'processes':>9s} {'run wall s':>10s} {'speedup':>8s} {'efficiency':>10s} "
            f"{'work eff.':>9s}"
        )
        for r in scaling["rows"]:
            print(
                f"{r['processes']:9d} {r['run_wall_s']:10.2f} {r['speedup']:8.2f} "
                f"{r['efficiency']:10.2f} {r['work_efficiency']:9.2f}"
            )
    elif scaling:
        print("MPI scaling failed:", scaling["error"])
    print(f"\nsaved {path}")


if __name__ == "__main__":
    main()

"""1 -> 2 GPU scaling of grid-dispatch with a GPU-bound objective.

The objective, per configuration, runs a small vmapped optimisation: ``n_starts``
random starts of ``steps`` gradient-descent steps on a ``dim x dim`` least-squares
problem whose matrix depends on the configuration (matrix products dominate).
Two ways to use two GPUs are measured against one:

* ``devices``: one process; each batch is sharded over ``jax.local_devices()``
  (1 device vs all local devices).
* ``processes``: 1 vs 2 processes, each seeing one GPU through
  ``CUDA_VISIBLE_DEVICES``, splitting the grid into contiguous chunks
  (``StaticPartition``, the §II.D formula) in one shared run folder.

Parallel efficiency is ``T_1 / (n * T_n)``, with ``T`` the ``run_grid`` wall time
after compilation (each measurement first runs a one-batch warm-up). On a machine
with one device (or CPU only) the script still runs: the device comparison uses
what exists and the process comparison splits the CPU.

Usage (GPU, ~3-4 minutes): PYTHONPATH=packages/grid-dispatch/src python \
    packages/grid-dispatch/benchmarks/gpu_bench.py --out DIR
Quick CPU check: add ``--quick``. Writes DIR/gpu_bench.json and prints a table last.
"""

from __future__ import annotations

import argparse
import json
import os

# The parent and its worker processes share the GPUs: no process may grab 75% of each.
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from grid_dispatch import SearchSpace, StaticPartition, load_results, run_grid

SIZES = {
    # n_configs is calibrated so that one device takes about --target-s seconds.
    "full": {"batch": 512, "dim": 256, "steps": 100, "n_starts": 32},
    "quick": {"batch": 16, "dim": 16, "steps": 10, "n_starts": 4},
}


def make_space(n_configs: int) -> SearchSpace:
    if n_configs % 64:
        raise ValueError(f"n_configs must be a multiple of 64, got {n_configs}")
    return SearchSpace(
        {"scale": np.linspace(0.5, 1.5, n_configs // 64), "shift": np.linspace(-1.0, 1.0, 64)}
    )


def calibrate(objective, size, devices, scratch: Path, target_s: float) -> tuple[int, float]:
    """Configurations that keep one device busy for about ``target_s`` seconds."""
    probe = make_space(max(64, 4 * size["batch"]))
    summary = timed_run(objective, probe, scratch / "calibrate", size, devices=devices[:1])
    per_config = summary.wall_s / summary.n_evaluated
    unit = 64 * size["batch"] // np.gcd(64, size["batch"])
    n = int(max(2 * unit, min(2**20, round(target_s / per_config / unit) * unit)))
    return n, per_config


def make_objective(dim: int, steps: int, n_starts: int):
    key = jax.random.key(0)
    base = jax.random.normal(key, (dim, dim)) / dim**0.5
    target = jax.random.normal(jax.random.fold_in(key, 1), (dim,))
    starts = jax.random.normal(jax.random.fold_in(key, 2), (n_starts, dim))

    def objective(config):
        a = base * config["scale"] + config["shift"] * jnp.eye(dim) * 0.1
        gram, rhs = a.T @ a, a.T @ target
        lr = 0.5 / (jnp.linalg.norm(a, ord="fro") ** 2 / dim + 1.0)

        def descend(x0):
            def step(x, _):
                return x - lr * (gram @ x - rhs), None

            x, _ = jax.lax.scan(step, x0, None, length=steps)
            return jnp.sum((a @ x - target) ** 2)

        losses = jax.vmap(descend)(starts)
        return {"loss_min": jnp.min(losses), "loss_mean": jnp.mean(losses)}

    return objective


def timed_run(objective, space, out, size, *, backend="single", devices=None, tag="0"):
    """Warm-up (compile) on one batch, then the timed run over the whole space."""
    warm = SearchSpace({"scale": [1.0], "shift": [0.0]})
    run_grid(
        objective,
        warm,
        Path(out) / f"warm-{tag}",
        batch_size=size["batch"],
        backend="single",
        devices=devices,
        progress=False,
    )
    return run_grid(
        objective,
        space,
        Path(out) / "run",
        batch_size=size["batch"],
        backend=backend,
        devices=devices,
        progress=False,
        quiet=True,
    )


def worker(args) -> None:
    size = SIZES[args.size]
    objective = make_objective(size["dim"], size["steps"], size["n_starts"])
    backend = StaticPartition(args.process_index, args.process_count, name="processes")
    summary = timed_run(
        objective,
        make_space(args.n_configs),
        args.out,
        size,
        backend=backend,
        tag=str(args.process_index),
    )
    report = {**asdict(summary), "devices": [str(d) for d in jax.local_devices()]}
    Path(args.out, f"summary-{args.process_index}.json").write_text(json.dumps(report))


def run_processes(n_proc: int, gpus: list[str], out: Path, size_name: str, n_configs: int) -> dict:
    procs = []
    t0 = time.perf_counter()
    for i in range(n_proc):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[i % len(gpus)]
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            "--out",
            str(out),
            "--size",
            size_name,
            "--process-index",
            str(i),
            "--process-count",
            str(n_proc),
            "--n-configs",
            str(n_configs),
        ]
        procs.append(
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        )
    logs = [p.communicate()[0] for p in procs]
    launch_wall = time.perf_counter() - t0
    if any(p.returncode for p in procs):
        raise RuntimeError("worker failed:\n" + "\n".join(logs))
    reports = [json.loads((out / f"summary-{i}.json").read_text()) for i in range(n_proc)]
    return {
        "n": n_proc,
        "run_wall_s": max(r["wall_s"] for r in reports),
        "launch_wall_s": launch_wall,
        "evaluated": [r["n_evaluated"] for r in reports],
        "devices": [r["devices"] for r in reports],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu_bench.json")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke run)")
    parser.add_argument("--size", default=None, choices=sorted(SIZES))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--process-index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--process-count", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--skip-processes", action="store_true")
    parser.add_argument(
        "--target-s",
        type=float,
        default=30.0,
        help="seconds one device should take (sets the grid size)",
    )
    parser.add_argument("--n-configs", type=int, default=None, help="fix the grid size")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    size_name = args.size or ("quick" if args.quick else "full")
    size = SIZES[size_name]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="gd-gpu-", dir=out))
    objective = make_objective(size["dim"], size["steps"], size["n_starts"])
    devices = jax.local_devices()
    if args.n_configs is None:
        target = 2.0 if size_name == "quick" else args.target_s
        n_configs, per_config = calibrate(objective, size, devices, scratch, target)
    else:
        n_configs, per_config = args.n_configs, float("nan")
    size = {**size, "n_configs": n_configs}
    space = make_space(n_configs)
    result: dict = {
        "benchmark": "gpu_bench",
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "n_local_devices": len(devices),
        "jax": jax.__version__,
        "sizes": size,
        "calibration_s_per_config": per_config,
        "flop_per_config_approx": 2 * size["n_starts"] * size["steps"] * size["dim"] ** 2
        + 2 * size["dim"] ** 3,
    }

    # 1. One process, batches sharded over 1 device vs all local devices.
    rows = []
    for n_dev in sorted({1, len(devices)}):
        summary = timed_run(
            objective, space, scratch / f"dev{n_dev}", size, devices=devices[:n_dev]
        )
        rows.append(
            {
                "n": n_dev,
                "run_wall_s": summary.wall_s,
                "configs_per_s": summary.n_evaluated / summary.wall_s,
            }
        )
    reference = load_results(scratch / "dev1" / "run")
    for r in rows:
        other = load_results(scratch / f"dev{r['n']}" / "run")
        r["max_rel_diff_vs_1"] = float(
            np.max(
                np.abs(other["loss_min"] - reference["loss_min"]) / np.abs(reference["loss_min"])
            )
        )
        r["efficiency"] = rows[0]["run_wall_s"] / (r["n"] * r["run_wall_s"])
    result["devices"] = rows

    # 2. 1 vs 2 processes, one GPU each through CUDA_VISIBLE_DEVICES.
    if not args.skip_processes:
        gpus = [str(i) for i in range(len(devices))] if devices[0].platform == "gpu" else []
        prow = []
        for n_proc in (1, 2):
            prow.append(
                run_processes(n_proc, gpus, scratch / f"proc{n_proc}", size_name, n_configs)
            )
        merged = load_results(scratch / "proc2" / "run")
        single = load_results(scratch / "proc1" / "run")
        for r in prow:
            r["efficiency"] = prow[0]["run_wall_s"] / (r["n"] * r["run_wall_s"])
        result["processes"] = prow
        result["processes_merged_equal_single"] = bool(
            merged["config_index"].equals(single["config_index"])
            and np.allclose(merged["loss_min"], single["loss_min"], rtol=1e-5)
        )
    shutil.rmtree(scratch, ignore_errors=True)
    (out / "gpu_bench.json").write_text(json.dumps(result, indent=1))

    print(
        f"\ngrid-dispatch GPU scaling: {size['n_configs']} configurations, "
        f"{devices[0].device_kind} x{len(devices)} ({devices[0].platform})"
    )
    print(f"{'mode':10s} {'n':>3s} {'run wall s':>10s} {'efficiency':>10s}")
    for r in result["devices"]:
        print(f"{'devices':10s} {r['n']:3d} {r['run_wall_s']:10.2f} {r['efficiency']:10.2f}")
    for r in result.get("processes", []):
        print(f"{'processes':10s} {r['n']:3d} {r['run_wall_s']:10.2f} {r['efficiency']:10.2f}")
    print(f"saved {out / 'gpu_bench.json'}")


if __name__ == "__main__":
    main()

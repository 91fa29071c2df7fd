"""Where a large-layout campaign spends its time, stage by stage (GPU; runs on a CPU too).

One region of the paper comparison (``paper_c1d1s1.toml``, GAL020_U by default), the
costs the Table III projection is built from:

1. K-means per K (compile apart): total, and the k-means++ seeding alone;
2. fits of all noise realisations per layout, padded to the campaign's k_max, for layouts
   from (250, 5, 5) to (3500, 80, 80): run time per layout, iterations, and the same with
   ``max_iter`` capped (cost per Newton iteration), dense vs term-by-term Schur complement.

Usage (repository root)::

    python packages/compsep-pipeline/benchmarks/gpu_stage_costs.py --sky SKY.npz \
        --cls CLS.npz --mask-file GAL.npz --out DIR [--n-real 100] [--tiny]

Prints one line per measurement and writes ``DIR/stage_costs.json`` after each stage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from _paper_region import add_region_arguments, region_problem


def _save(out: Path, record: dict) -> None:
    tmp = out / "stage_costs.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "stage_costs.json")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=100)
    p.add_argument("--k-values", default="5,80,250,1500,3500")
    p.add_argument("--layouts", default="250,5,5;1500,20,20;3500,80,80;3500,5,5;250,80,80")
    p.add_argument("--k-max", default="3500,80,80")
    p.add_argument("--tiny", action="store_true", help="CPU smoke settings")
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    import compsep_pipeline as cp
    import sphere_kmeans
    from compsep_pipeline._campaign import RegionFitter, _n_tuples
    from spec_likelihood import _optimize
    from sphere_kmeans import _kmeans as km

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    k_values = [int(v) for v in args.k_values.split(",")]
    layouts = [tuple(int(v) for v in s.split(",")) for s in args.layouts.split(";")]
    k_max_t = tuple(int(v) for v in args.k_max.split(","))
    if args.tiny:
        k_values, layouts, k_max_t = [5, 40], [(40, 5, 5), (40, 10, 10)], (40, 10, 10)
        args.n_real = 4

    cfg, prob = region_problem(args)
    record: dict = {
        "device": str(jax.devices()[0]),
        "region": args.region,
        "n_pix": int(prob.indices.size),
        "n_real": args.n_real,
        "kmeans": [],
        "fits": [],
    }
    print("device", record["device"], "n_pix", record["n_pix"], flush=True)

    # 1. K-means: compile + run, then run alone (another seed), and the seeding alone.
    patcher = prob.patcher
    x = patcher.vectors
    for k in k_values:
        k = min(k, patcher.n_pix)
        k_max = 1 << max(k - 1, 0).bit_length()
        run = lambda seed, k=k, k_max=k_max: jax.block_until_ready(
            sphere_kmeans.kmeans(
                x,
                k,
                seed=seed,
                k_max=k_max,
                neighbours=patcher._neighbours,
                n_local_trials=8,
                max_iter=100,
            ).labels
        )
        t0 = time.perf_counter()
        run(0)
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        res = sphere_kmeans.kmeans(
            x,
            k,
            seed=1,
            k_max=k_max,
            neighbours=patcher._neighbours,
            n_local_trials=8,
            max_iter=100,
        )
        jax.block_until_ready(res.labels)
        total = time.perf_counter() - t0
        ring = km._second_ring(jax.numpy.asarray(patcher._neighbours))
        seed_fn = jax.jit(
            lambda key, k=k, k_max=k_max, ring=ring: km._kmeanspp(
                jax.numpy.asarray(x).T, k, key, k_max, 8, ring
            )
        )
        jax.block_until_ready(seed_fn(jax.random.key(0)))
        t0 = time.perf_counter()
        jax.block_until_ready(seed_fn(jax.random.key(1)))
        seeding = time.perf_counter() - t0
        row = {
            "k": k,
            "first_call_s": first,
            "run_s": total,
            "seeding_s": seeding,
            "lloyd_iters": int(res.n_iter),
        }
        record["kmeans"].append(row)
        print("kmeans", row, flush=True)
        _save(out, record)

    # 2. Fits, padded to the campaign's k_max.
    k_max = dict(zip(("beta_d", "T_d", "beta_s"), k_max_t, strict=True))
    lays = {c: patcher.layout(c) for c in layouts}
    variants = [("sparse", _optimize._DENSE_SCHUR_MAX, None)]
    variants += [("sparse_iter3", _optimize._DENSE_SCHUR_MAX, 3)]
    variants += [("dense", 1 << 62, None)]
    default_max = _optimize._DENSE_SCHUR_MAX
    for label, dense_max, max_iter in variants:
        _optimize._DENSE_SCHUR_MAX = dense_max
        c = cfg if max_iter is None else cfg.replace(fit={"max_iter": max_iter})
        batch = cp.auto_batch(args.n_real, k_max, jax.default_backend() == "gpu")
        if label == "dense":
            batch = 1
        for counts in layouts:
            fitter = RegionFitter(prob, c, k_max, batch=batch)
            t0 = time.perf_counter()
            try:
                fits = fitter.fit([lays[counts]] * batch, keep_maps=False)
            except Exception as err:
                row = {"variant": label, "counts": counts, "error": repr(err)[:300]}
                print("fit", row, flush=True)
                record["fits"].append(row)
                _save(out, record)
                continue
            row = {
                "variant": label,
                "counts": counts,
                "batch": batch,
                "tuples": _n_tuples(lays[counts]),
                "compile_s": fits[0].compile_s * batch,
                "run_s_per_layout": fits[0].run_s,
                "wall_s": time.perf_counter() - t0,
                "iters_mean": float(np.mean(fits[0].n_iter)),
                "iters_max": int(np.max(fits[0].n_iter)),
                "converged": float(np.mean(fits[0].converged)),
            }
            record["fits"].append(row)
            print("fit", row, flush=True)
            _save(out, record)
    _optimize._DENSE_SCHUR_MAX = default_max
    print("done", flush=True)


if __name__ == "__main__":
    sys.exit(main())

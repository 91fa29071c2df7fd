"""Newton iterations per noise realisation: the tail that a vmapped fit waits for.

A vmapped batch of fits runs until its slowest member stops, so the largest iteration
count, not the mean, sets the cost of a layout. For each layout this prints and saves the
mean, 90th percentile and maximum iteration counts over the realisations of one region,
the final -log L of each fit, and the run time (CPU or GPU).

Usage (repository root; the sky from ``compsep simulate``, see ``paper_c1d1s1.toml``)::

    python packages/compsep-pipeline/benchmarks/gpu_fit_tail.py --sky SKY.npz \
        --cls CLS.npz --mask-file GAL.npz --out DIR [--n-real 24]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _paper_region import add_region_arguments, region_problem


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=24)
    p.add_argument("--layouts", default="250,5,5;1500,20,20;3500,80,80;3500,5,5")
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from compsep_pipeline._campaign import RegionFitter

    cfg, prob = region_problem(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.layouts.split(";"):
        counts = tuple(int(v) for v in spec.split(","))
        layout = prob.patcher.layout(counts)
        k_max = dict(zip(("beta_d", "T_d", "beta_s"), counts, strict=True))
        fit = RegionFitter(prob, cfg, k_max, batch=1).fit([layout], keep_maps=False)[0]
        it = np.asarray(fit.n_iter)
        row = {
            "counts": counts,
            "iters_mean": float(it.mean()),
            "iters_p90": float(np.percentile(it, 90)),
            "iters_max": int(it.max()),
            "converged": float(np.mean(fit.converged)),
            "run_s": fit.run_s,
            "nll": np.asarray(fit.nll).tolist(),
        }
        rows.append(row)
        print({k: v for k, v in row.items() if k != "nll"}, flush=True)
    record = {"device": str(jax.devices()[0]), "region": args.region, "rows": rows}
    tmp = out / "fit_tail.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "fit_tail.json")


if __name__ == "__main__":
    sys.exit(main())

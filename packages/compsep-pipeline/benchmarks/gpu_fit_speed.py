"""Side by side: the fit of one layout x all realisations with each optimiser variant.

Variants (one process, one region, same data): ``general`` (spec-likelihood 0.2.3: the
general closed-form term derivatives, one vmapped batch), ``column`` (0.3.0: the
column-structured derivatives, one batch) and ``column+compact`` (0.3.0 and
``[fit] compact_after``: the slow fits continue in compacted batches). For each layout:
compile and run times, mean / largest Newton iterations, and the largest difference of
-log L to the first variant (the fits must agree).

Usage (repository root; the sky from ``compsep simulate``, see ``paper_c1d1s1.toml``)::

    python packages/compsep-pipeline/benchmarks/gpu_fit_speed.py --sky SKY.npz --cls CLS.npz \
        --mask-file GAL.npz --out DIR [--n-real 100] [--layouts "3500,80,80;250,5,5"]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _paper_region import add_region_arguments, region_problem

VARIANTS = {
    "general": (False, 0),
    "column": (True, 0),
    "column+compact": (True, 16),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=100)
    p.add_argument("--layouts", default="3500,80,80;5000,80,80;3500,5,5;1500,20,20;250,5,5")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--compact-after", type=int, default=16)
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from compsep_pipeline._campaign import RegionFitter
    from spec_likelihood import _likelihood

    cfg, prob = region_problem(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for spec in args.layouts.split(";"):
        counts = tuple(int(v) for v in spec.split(","))
        layout = prob.patcher.layout(counts)
        k_max = dict(zip(("beta_d", "T_d", "beta_s"), counts, strict=True))
        ref = None
        for name in args.variants.split(","):
            column, compact = VARIANTS[name]
            compact = args.compact_after if compact else 0
            _likelihood._COLUMN_FORM = column
            fitter = RegionFitter(prob, cfg.replace(fit={"compact_after": compact}), k_max, 2)
            first = fitter.fit([layout] * 2, keep_maps=False)[0]
            fit = fitter.fit([layout] * 2, keep_maps=False)[0]
            nll = np.asarray(fit.nll)
            ref = nll if ref is None else ref
            row = {
                "counts": counts,
                "variant": name,
                "compile_s": first.compile_s * 2,
                "run_s_per_layout": fit.run_s,
                "iters_mean": float(np.mean(fit.n_iter)),
                "iters_max": int(np.max(fit.n_iter)),
                "converged": float(np.mean(fit.converged)),
                "max_abs_dnll_vs_first": float(np.max(np.abs(nll - ref))),
                "nll_mean": float(np.mean(nll)),
            }
            rows.append(row)
            print(row, flush=True)
    _likelihood._COLUMN_FORM = True
    record = {"device": str(jax.devices()[0]), "region": args.region, "rows": rows}
    tmp = out / "fit_speed.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "fit_speed.json")


if __name__ == "__main__":
    sys.exit(main())

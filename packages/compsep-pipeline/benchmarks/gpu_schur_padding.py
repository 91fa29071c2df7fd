"""Padded layouts as in a Table III grid: sparse vs dense Schur, grid vs bucketed k_max.

A grid pads every layout to its largest patch counts (one compilation per tuple bucket).
For layouts of Table III's range this times the fits of all realisations with the Newton
step's Schur complement built term by term (sparse) or densely, with the layout padded to
the grid's k_max (5000, 80, 80) or to the next power of two of its own K_bd. Diagnostic
behind keeping the grid's padding and the sparse threshold (results:
``results/gpu_h200_table3_throughput/schur_padding.json``).

Usage (repository root)::

    python packages/compsep-pipeline/benchmarks/gpu_schur_padding.py --sky SKY.npz \
        --cls CLS.npz --mask-file GAL.npz --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
from _paper_region import add_region_arguments, region_problem

LAYOUTS = [(300, 80, 80), (300, 5, 5), (800, 50, 60), (1800, 50, 50), (2800, 70, 30)]
LAYOUTS += [(3800, 80, 80), (4800, 20, 20)]
NAMES = ("beta_d", "T_d", "beta_s")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=100)
    args = p.parse_args(argv)

    from compsep_pipeline._campaign import RegionFitter
    from spec_likelihood import _optimize

    cfg, prob = region_problem(args)
    n_pix = int(prob.indices.size)
    default = _optimize._DENSE_SCHUR_MAX
    rows = []
    for counts in LAYOUTS:
        layout = prob.patcher.layout(counts)
        bucket = min(n_pix, 1 << (counts[0] - 1).bit_length())
        for padding, k_max in (("grid", (5000, 80, 80)), ("bucket", (bucket, 80, 80))):
            for schur, limit in (("sparse", default), ("dense", 1 << 30)):
                if padding == "bucket" and schur == "sparse" and k_max[0] * 160 <= default:
                    continue  # the sparse form is not used below the threshold
                _optimize._DENSE_SCHUR_MAX = limit
                row = {"counts": counts, "k_max": k_max, "schur": schur}
                try:
                    fitter = RegionFitter(prob, cfg, dict(zip(NAMES, k_max, strict=True)), 1)
                    first = fitter.fit([layout], keep_maps=False)[0]
                    fit = fitter.fit([layout], keep_maps=False)[0]
                    row |= {
                        "compile_s": first.compile_s,
                        "run_s": fit.run_s,
                        "iters_max": int(np.max(fit.n_iter)),
                        "nll0": float(fit.nll[0]),
                    }
                except Exception as err:  # a failed variant (e.g. out of memory) is recorded
                    row["error"] = str(err)[:200]
                rows.append(row)
                print(row, flush=True)
    _optimize._DENSE_SCHUR_MAX = default
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "schur_padding.json.tmp"
    tmp.write_text(json.dumps(rows, indent=1))
    os.replace(tmp, out / "schur_padding.json")


if __name__ == "__main__":
    sys.exit(main())

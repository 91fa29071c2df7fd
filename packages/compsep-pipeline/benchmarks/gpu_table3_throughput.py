"""Throughput of the paper's Table III grid search, measured on a stratified sample.

Table III of kabalan2025_clustered_compsep: K_bd 100..5000 in steps of 100 (50 values) x
K_Td, K_bs in {1, 5, 20, 30, 50, 60, 70, 80} (64 pairs) = 3200 configurations per region,
six regions, 100 noise realisations: 19,200 configurations, 1.92 million fits (the paper:
~1000 A100-hours). This runs every ``--stride``-th K_bd value (default 5: K_bd = 300, 800,
..., 4800, whose mean is the grid's 2550) x all 64 pairs through the campaign's own grid
path (``run_region_grid``: K-means, padded layouts, fits of all realisations, device
metrics, Parquet through grid-dispatch), selection by CMB variance (eq. 9), and projects the
full campaign: per region, the compilations once plus ``stride`` x the rest of the grid
wall time, times six regions.

Usage (repository root; the sky from ``compsep simulate``, see ``paper_c1d1s1.toml``)::

    python packages/compsep-pipeline/benchmarks/gpu_table3_throughput.py --sky SKY.npz \
        --cls CLS.npz --mask-file GAL.npz --out DIR [--region GAL020_U] [--stride 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from _paper_region import add_region_arguments, region_problem

TABLE3_OTHER = [1, 5, 20, 30, 50, 60, 70, 80]
PAPER_REGIONS, PAPER_CONFIGS, PAPER_FITS = 6, 19_200, 1_920_000


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_region_arguments(p, n_real=100)
    p.add_argument("--stride", type=int, default=5, help="every stride-th K_bd of Table III")
    p.add_argument("--offset", type=int, default=300, help="first K_bd of the sample")
    p.add_argument("--other", default=",".join(map(str, TABLE3_OTHER)), help="K_Td = K_bs")
    p.add_argument("--batch", type=int, default=0, help="[grid] batch (0: automatic)")
    args = p.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    from compsep_pipeline._campaign import run_region_grid, select_best

    t_start = time.perf_counter()
    cfg, prob = region_problem(args)
    setup_s = time.perf_counter() - t_start
    k_bd = list(range(args.offset, 5001, 100 * args.stride))
    other = [int(v) for v in args.other.split(",")]
    cfg = cfg.replace(
        grid={
            "K_bd": k_bd,
            "K_Td": other,
            "K_bs": other,
            "with_r": False,
            "selection": "cmb_variance",
            "batch": args.batch,
        }
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    df = run_region_grid(prob, cfg, out / "grid", progress=False)
    grid_wall = time.perf_counter() - t0
    ok = df[df["status"] == "ok"]
    n_cfg = len(df)
    compile_s = float(ok["compile_s"].sum())
    patch_s = float(ok["patch_s"].sum())
    run_s = float(ok["run_s"].sum())
    # every K_bd-dependent cost scales with the number of K_bd values; compilations (one per
    # tuple bucket) do not
    region_full_s = compile_s + (grid_wall - compile_s) * args.stride
    by_kbd = ok.groupby("K_bd")[["run_s", "n_iter"]].mean().reset_index()
    record = {
        "device": str(jax.devices()[0]),
        "region": args.region,
        "n_pix": int(prob.indices.size),
        "n_real": args.n_real,
        "K_bd": k_bd,
        "K_Td_K_bs": other,
        "n_configs": n_cfg,
        "n_failed": int((df["status"] != "ok").sum()),
        "setup_s": setup_s,
        "grid_wall_s": grid_wall,
        "compile_s": compile_s,
        "patch_s": patch_s,
        "fit_run_s": run_s,
        "other_s": grid_wall - compile_s - patch_s - run_s,
        "per_config_s": (grid_wall - compile_s) / n_cfg,
        "fits_per_s": n_cfg * args.n_real / grid_wall,
        "converged_fraction": float(ok["converged_fraction"].mean()),
        "selected": list(select_best(df, "cmb_variance")),
        "run_s_by_kbd": by_kbd.to_dict(orient="list"),
        "projection_region_s": region_full_s,
        "projection_table3_h": PAPER_REGIONS * region_full_s / 3600,
        "projection_note": "6 x (compilations + stride x the rest of this region's grid wall)",
    }
    print(json.dumps({k: v for k, v in record.items() if k != "run_s_by_kbd"}, indent=1))
    tmp = out / "table3_throughput.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "table3_throughput.json")


if __name__ == "__main__":
    sys.exit(main())

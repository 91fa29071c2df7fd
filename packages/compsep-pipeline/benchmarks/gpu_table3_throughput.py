"""Throughput of the paper's Table III grid search, measured on a stratified sample.

Table III of kabalan2025_clustered_compsep: K_bd 100..5000 in steps of 100 (50 values) x
K_Td, K_bs in {1, 5, 20, 30, 50, 60, 70, 80} (64 pairs) = 3200 configurations per region,
six regions, 100 noise realisations: 19,200 configurations, 1.92 million fits (the paper:
~1000 A100-hours). This runs every ``--stride``-th K_bd value (default 5: K_bd = 300, 800,
..., 4800, whose mean is the grid's 2550) x all 64 pairs through the campaign's own grid
path (``run_region_grid``: K-means, padded layouts, fits of all realisations, device
metrics, Parquet through grid-dispatch), selection by CMB variance (eq. 9), after timing the
K-means of every patch count of the full grid (side by side, as the full campaign does
them), and projects the full campaign: per region, the compilations and every K-means once
plus ``stride`` x (fits + per-configuration overheads), times six regions.

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
    p.add_argument(
        "--fit",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="[fit] override, e.g. --fit compact_after=32 (repeatable)",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="[grid] override, e.g. --grid gtol=0.01 --grid rtol=1e-13 (screening tolerances)",
    )
    p.add_argument(
        "--cache",
        default=None,
        help="persistent JAX compilation cache folder (shared by the runs of several regions)",
    )
    args = p.parse_args(argv)
    fit_overrides, grid_overrides = {}, {}
    for option, items, target in (
        ("--fit", args.fit, fit_overrides),
        ("--grid", args.grid, grid_overrides),
    ):
        for item in items:
            key, sep, value = item.partition("=")
            if not sep:
                p.error(f"{option} takes KEY=VALUE, got {item!r}")
            try:
                target[key] = json.loads(value)
            except json.JSONDecodeError:
                target[key] = value

    import jax

    jax.config.update("jax_enable_x64", True)
    from compsep_pipeline._campaign import (
        enable_compilation_cache,
        pixel_bucket,
        run_region_grid,
        select_best,
    )

    if args.cache:
        enable_compilation_cache(args.cache)

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
            **grid_overrides,
        },
        fit=fit_overrides,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # The K-means of every patch count of the full Table III grid (all 50 K_bd and the 8
    # other K), as the full campaign's run_region_grid does them: side by side
    # (KMeansPatcher.prefetch); timed here, the sample's grid then finds them cached.
    all_k = sorted({*range(100, 5001, 100), *other})
    t0 = time.perf_counter()
    if hasattr(prob.patcher, "prefetch"):
        prob.patcher.prefetch(all_k)
    else:  # code before compsep-pipeline 0.3.4: one K at a time
        for k in all_k:
            prob.patcher.labels(k)
    kmeans_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    df = run_region_grid(prob, cfg, out / "grid", progress=False)
    grid_wall = time.perf_counter() - t0
    ok = df[df["status"] == "ok"]
    n_cfg = len(df)
    # configurations whose patch counts differ only above the pixel count share one layout,
    # fitted once and reported on each row: count its timings once
    n_pix = int(prob.indices.size)
    fitted = ok[~ok[["K_bd", "K_Td", "K_bs"]].clip(upper=n_pix).duplicated()]
    compile_s = float(fitted["compile_s"].sum())
    patch_s = float(fitted["patch_s"].sum())
    run_s = float(fitted["run_s"].sum())
    # the fits and the per-configuration overheads scale with the number of K_bd values;
    # compilations (one per tuple bucket) do not; K-means: all counts once, timed above
    # the warm start (one single-patch fit, and the compilation of its bucket) is per region
    warm = df.attrs.get("warm_start") or {"start": None, "seconds": 0.0}
    fit_other_s = grid_wall - compile_s - patch_s - warm["seconds"]
    region_full_s = compile_s + patch_s + kmeans_s + warm["seconds"] + fit_other_s * args.stride
    by_kbd = ok.groupby("K_bd")[["run_s", "n_iter"]].mean().reset_index()
    record = {
        "device": str(jax.devices()[0]),
        "region": args.region,
        "n_pix": int(prob.indices.size),
        "n_pix_padded": pixel_bucket(int(prob.indices.size)),
        "compilation_cache": args.cache,
        "n_real": args.n_real,
        "K_bd": k_bd,
        "K_Td_K_bs": other,
        "fit": {k: getattr(cfg.fit, k) for k in ("gtol", "rtol", "compact_after", "compact_size")},
        "grid_screening": {k: getattr(cfg.grid, k, 0.0) for k in ("gtol", "rtol")},
        "n_configs": n_cfg,
        "n_failed": int((df["status"] != "ok").sum()),
        "setup_s": setup_s,
        "grid_wall_s": grid_wall,
        "compile_s": compile_s,
        "patch_s": patch_s,
        "fit_run_s": run_s,
        "other_s": fit_other_s - run_s,
        "kmeans_s": kmeans_s,
        "warm_start": warm["start"],
        "warm_start_s": warm["seconds"],
        "kmeans_k": len(all_k),
        "per_config_s": (grid_wall - compile_s) / n_cfg,
        "n_layouts_fitted": len(fitted),
        "fits_per_s": len(fitted) * args.n_real / grid_wall,
        "converged_fraction": float(ok["converged_fraction"].mean()),
        "selected": list(select_best(df, "cmb_variance")),
        "run_s_by_kbd": by_kbd.to_dict(orient="list"),
        "projection_region_s": region_full_s,
        "projection_table3_h": PAPER_REGIONS * region_full_s / 3600,
        "projection_note": (
            "6 x (compilations + K-means of all 50 K_bd and the 8 other K (timed, before "
            "the grid) + the warm start + stride x (fits + per-configuration overheads))"
        ),
    }
    print(json.dumps({k: v for k, v in record.items() if k != "run_s_by_kbd"}, indent=1))
    cols = ["K_bd", "K_Td", "K_bs", "status", "cmb_variance", "nll", "n_iter", "run_s", "compile_s"]
    df[[c for c in cols if c in df.columns]].to_csv(out / "grid_rows.csv", index=False)
    tmp = out / "table3_throughput.json.tmp"
    tmp.write_text(json.dumps(record, indent=2))
    os.replace(tmp, out / "table3_throughput.json")


if __name__ == "__main__":
    sys.exit(main())

"""GPU paper comparison: K-means (grid-selected) vs multi-resolution vs one patch on c1d1s1.

Runs the campaign of ``paper_c1d1s1.toml`` (nside 64, r = 0, 100 noise realisations, three
disjoint regions) from a PySM sky simulated beforehand with ``compsep simulate`` (see the
TOML file), writes the whole run folder (report.md, plots, r.csv...) under ``--out`` and
prints the r table and the throughput. Needs only JAX, numpy, healpy, pandas, pyarrow,
matplotlib and the workspace's src folders on PYTHONPATH (no camb: pass ``--cls`` with the
CMB spectra ``.npz`` if the CAMB templates are not cached on the machine)::

    python packages/compsep-pipeline/benchmarks/gpu_paper_comparison.py \
        --sky runs/sky_c1d1s1_ns64.npz --cls runs/camb_templates.npz --out OUT
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

from compsep_pipeline import load_config, run_campaign, run_regions  # noqa: E402

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sky", type=Path, required=True, help="PySM sky .npz (compsep simulate)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--config", type=Path, default=HERE / "paper_c1d1s1.toml")
    parser.add_argument("--cls", type=Path, default=None, help="CMB spectra .npz (no camb)")
    parser.add_argument("--n-real", type=int, default=None, help="override [noise] n_realisations")
    parser.add_argument(
        "--work",
        type=Path,
        default=Path("/tmp/compsep-paper-run"),
        help="run folder (resumable: re-run the command to finish an interrupted campaign); "
        "the report, tables and plots are copied to --out",
    )
    parser.add_argument("--mask-file", type=Path, default=None, help="e.g. Planck GAL masks")
    parser.add_argument(
        "--regions",
        default=None,
        help="comma-separated regions: run only this part (grid + comparison fits) into "
        "--work, e.g. one part per GPU; a final call without --regions writes the report",
    )
    args = parser.parse_args()
    cfg = load_config(args.config).replace(sky={"file": str(args.sky)})
    if args.mask_file is not None:
        cfg = cfg.replace(regions={"mask_file": str(args.mask_file)})
    if args.cls is not None:
        cfg = cfg.replace(sky={"cls_file": str(args.cls)})
    if args.n_real is not None:
        cfg = cfg.replace(noise={"n_realisations": args.n_real})
    t0 = time.perf_counter()
    if args.regions:
        names = [n for n in args.regions.split(",") if n]
        selection = run_regions(cfg, args.work, names, progress=True)
        print(f"part {names}: {time.perf_counter() - t0:.1f} s; selection {selection}")
        return
    result = run_campaign(cfg, args.work, progress=False)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in (
        "report.md",
        "report.html",
        "r.csv",
        "comparison.csv",
        "selection.json",
        "timings.json",
        "grid_results.parquet",
        "spectra.parquet",
        "config.toml",
    ):
        shutil.copy2(args.work / name, args.out / name)
    shutil.copytree(args.work / "plots", args.out / "plots", dirs_exist_ok=True)
    wall = time.perf_counter() - t0
    grid = result.grid
    n_fits = (len(grid) + len(result.comparison)) * cfg.noise.n_realisations
    parts = json.loads((args.work / "timings.json").read_text()).get("parts", {})
    summary = {
        "device": str(jax.devices()[0]),
        "wall_s": wall,
        "parts_wall_s": {k: v.get("total_s") for k, v in parts.items()},
        "n_configs": len(grid),
        "n_fits": n_fits,
        "fits_per_s_wall": n_fits / wall,
        "grid_compile_s": float(grid["compile_s"].sum()),
        "grid_run_s": float(grid["run_s"].sum()),
        "selection": {k: list(v) for k, v in result.selection.items()},
        "r": result.r.to_dict(orient="records"),
    }
    (args.out / "gpu_paper_comparison.json").write_text(json.dumps(summary, indent=2))
    print(result.r.to_string(index=False))
    print(f"{'quantity':<30}{'value':>20}")
    for key in ("wall_s", "n_configs", "n_fits", "fits_per_s_wall", "grid_compile_s", "grid_run_s"):
        print(f"{key:<30}{summary[key]:>20.2f}")
    for region, counts in summary["selection"].items():
        print(f"{'selected ' + region:<30}{tuple(counts)!s:>20}")


if __name__ == "__main__":
    main()

"""CPU benchmark: the built-in default campaign (the README's main job), end to end.

Runs ``compsep run`` on the default configuration (synthetic sky, nside 16, GAL020, a
16-configuration grid, 6 noise realisations, three compared layouts) in a temporary
folder and reports the wall time of each stage, fits/s, and the split of the grid's time
between compilation, execution and K-means patches. Writes
``benchmarks/results/bench_campaign_<machine>.json`` and prints a table.

    python packages/compsep-pipeline/benchmarks/bench_campaign.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import pandas as pd
from compsep_pipeline import default_config, run_campaign


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    cfg = default_config()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = run_campaign(cfg, Path(tmp) / "run", progress=False)
        wall = time.perf_counter() - t0
        timings = json.loads((Path(tmp) / "run" / "timings.json").read_text())
    grid: pd.DataFrame = result.grid
    n_fits = len(grid) * cfg.noise.n_realisations
    out = {
        "machine": platform.node(),
        "device": str(jax.devices()[0]),
        "config": "default",
        "nside": cfg.sky.nside,
        "n_configs": len(grid),
        "n_realisations": cfg.noise.n_realisations,
        "wall_s": wall,
        "grid_s": timings["grid_s"],
        "compare_s": timings["compare_s"],
        "spectra_s": timings["spectra_s"],
        "grid_compile_s": float(grid["compile_s"].sum()),
        "grid_run_s": float(grid["run_s"].sum()),
        "grid_patch_s": float(grid["patch_s"].sum()),
        "fits_per_s_grid_wall": n_fits / timings["grid_s"],
        "fits_per_s_exec": n_fits / float(grid["run_s"].sum()),
        "selection": {k: list(v) for k, v in result.selection.items()},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_campaign_{platform.node() or 'cpu'}.json"
    path.write_text(json.dumps(out, indent=2))
    print(f"default campaign on {out['device']}: {path}")
    print(f"{'quantity':<36}{'value':>16}")
    for key in (
        "wall_s",
        "grid_s",
        "grid_compile_s",
        "grid_run_s",
        "grid_patch_s",
        "compare_s",
        "spectra_s",
        "fits_per_s_grid_wall",
        "fits_per_s_exec",
    ):
        print(f"{key:<36}{out[key]:>16.2f}")


if __name__ == "__main__":
    main()

"""One region of the paper comparison (``paper_c1d1s1.toml``), shared by the benchmarks."""

from __future__ import annotations

import argparse
from pathlib import Path

HERE = Path(__file__).resolve().parent


def add_region_arguments(p: argparse.ArgumentParser, n_real: int) -> None:
    """``--sky --cls --mask-file --region --out --n-real`` of a one-region benchmark."""
    p.add_argument("--sky", required=True, help="PySM sky .npz (compsep simulate)")
    p.add_argument("--cls", required=True, help="CMB spectra .npz")
    p.add_argument("--mask-file", default=None, help="e.g. the Planck GAL masks .npz")
    p.add_argument("--region", default="GAL020_U")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--n-real", type=int, default=n_real, help="noise realisations")


def region_problem(args: argparse.Namespace):
    """The configuration and :class:`compsep_pipeline.RegionProblem` named by ``args``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    import compsep_pipeline as cp

    cfg = cp.load_config(HERE / "paper_c1d1s1.toml").replace(
        sky={"file": args.sky, "cls_file": args.cls},
        regions={"mask_file": args.mask_file},
        noise={"n_realisations": args.n_real},
    )
    sky = cp.SkyMaps.load(args.sky)
    mask = cp.build_regions(cfg, sky)[args.region]
    return cfg, cp.region_problem(cfg, sky, cp.build_instrument(cfg), args.region, mask)

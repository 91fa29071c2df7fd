"""``sphere-kmeans-demo``: cluster a Galactic region into K patches and draw them.

The region is a Planck GAL mask read from an ``.npz`` file (``--mask``, or the
``COMPSEP_SHARED_DATA`` folder's ``masks/GAL_PlanckMasks_64.npz``) resampled to
``--nside``; without a file it is the |b| cut with the same sky fraction.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import healpy as hp
import numpy as np

from ._kmeans import kmeans
from ._labels import labels_to_map
from ._regions import pixel_neighbours, pixel_vectors

_FSKY = {"GAL020": 0.2048, "GAL040": 0.4028, "GAL060": 0.6008}


def galactic_region(name: str, nside: int, mask_file: str | os.PathLike | None) -> tuple:
    """Return ``(mask, source)``: a GAL mask from ``mask_file`` or a |b| cut of equal f_sky."""
    if name not in _FSKY:
        raise ValueError(f"region must be one of {sorted(_FSKY)}, got {name!r}")
    if mask_file is None and os.environ.get("COMPSEP_SHARED_DATA"):
        candidate = Path(os.environ["COMPSEP_SHARED_DATA"]) / "masks" / "GAL_PlanckMasks_64.npz"
        mask_file = candidate if candidate.exists() else None
    if mask_file is not None:
        with np.load(mask_file) as f:
            if name not in f:
                raise ValueError(f"mask file {mask_file} has no array {name!r}: {list(f)}")
            m = f[name].astype(np.float64)
        return hp.ud_grade(m, nside) > 0.5, str(mask_file)
    z = np.abs(hp.pix2vec(nside, np.arange(12 * nside**2))[2])
    return z >= np.quantile(z, 1 - _FSKY[name]), f"|b| cut, f_sky={_FSKY[name]}"


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point (see ``--help``)."""
    parser = argparse.ArgumentParser(prog="sphere-kmeans-demo", description=__doc__)
    parser.add_argument("--out", default="sphere_kmeans_demo", help="output folder")
    parser.add_argument("--nside", type=int, default=64)
    parser.add_argument("--region", default="GAL020", choices=sorted(_FSKY))
    parser.add_argument("--mask", default=None, help="npz file with GAL020/GAL040/GAL060 arrays")
    parser.add_argument("-k", "--n-clusters", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mask, source = galactic_region(args.region, args.nside, args.mask)
    indices, vectors = pixel_vectors(args.nside, mask)
    neighbours = pixel_neighbours(args.nside, indices)
    t0 = time.perf_counter()
    result = kmeans(vectors, args.n_clusters, seed=args.seed, neighbours=neighbours)
    result.labels.block_until_ready()
    elapsed = time.perf_counter() - t0
    labels = np.asarray(result.labels)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    # Shuffle label colours so that adjacent patches differ.
    perm = np.random.default_rng(0).permutation(args.n_clusters)
    hp.mollview(
        labels_to_map(perm[labels], indices, args.nside),
        title=f"{args.region}: {args.n_clusters} spherical K-means patches (nside {args.nside})",
        cmap="tab20",
        cbar=False,
    )
    hp.graticule(dpar=30, dmer=60, alpha=0.3)
    png = out / f"patches_{args.region}_K{args.n_clusters}.png"
    plt.savefig(png, dpi=110)
    plt.close("all")
    summary = {
        "region": args.region,
        "mask_source": source,
        "nside": args.nside,
        "n_pixels": int(indices.size),
        "n_clusters": args.n_clusters,
        "inertia": float(result.inertia),
        "n_iter": int(result.n_iter),
        "converged": bool(result.converged),
        "seconds_including_compilation": elapsed,
        "png": str(png),
    }
    tmp = out / "summary.json.tmp"
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(out / "summary.json")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()

"""Spherical K-means on GAL020 at nside 64 vs scikit-learn KMeans, side by side in one run.

For K in {10, 100, 500, 2000}: compile time, steady time (median of repeats) and
inertia of sphere_kmeans.kmeans (with and without the neighbour-graph assignment),
and the time and inertia of sklearn.cluster.KMeans (k-means++, n_init=1) on the same
unit vectors. Inertia is given in both objectives: squared chord distance to the
normalised means (spherical K-means) and to the Euclidean means (scikit-learn's).
Prints a table and writes JSON to results/kmeans_<device>.json (or --out).

    python bench_kmeans.py [--mask GAL_PlanckMasks_64.npz] [--repeats 3] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import numpy as np
from sphere_kmeans import kmeans, pixel_neighbours, pixel_vectors

HERE = Path(__file__).parent


def _default_mask() -> Path | None:
    root = Path(os.environ.get("COMPSEP_SHARED_DATA", HERE.parents[2].parent / "shared" / "data"))
    path = root / "masks" / "GAL_PlanckMasks_64.npz"
    return path if path.exists() else None


def _inertias(vec, labels):
    k = labels.max() + 1
    sums = np.zeros((k, 3))
    np.add.at(sums, labels, vec)
    unit = sums / np.linalg.norm(sums, axis=1, keepdims=True)
    mean = sums / np.bincount(labels, minlength=k)[:, None]
    return float(np.sum((vec - unit[labels]) ** 2)), float(np.sum((vec - mean[labels]) ** 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mask", type=Path, default=_default_mask())
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 100, 500, 2000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--no-sklearn", action="store_true")
    args = parser.parse_args()

    import healpy as hp

    if args.mask is not None:
        mask = np.load(args.mask)["GAL020"].astype(bool)
        source = "Planck GAL020 (nside 64)"
    else:
        z = np.abs(hp.pix2vec(64, np.arange(12 * 64**2))[2])
        mask = z >= np.quantile(z, 1 - 0.2048)
        source = "|b| cut, f_sky 0.2048"
    idx, vec = pixel_vectors(64, mask)
    nb = pixel_neighbours(64, idx)
    device = jax.devices()[0]
    tag = device.platform if device.platform != "gpu" else "gpu"
    rows = []
    for k in args.ks:
        row = {"K": k, "n_pixels": int(vec.shape[0])}
        for mode, nbr in (("neighbours", nb), ("exact", None)):
            t0 = time.perf_counter()
            res = kmeans(vec, k, seed=0, neighbours=nbr)
            res.labels.block_until_ready()
            first = time.perf_counter() - t0
            times = []
            for r in range(args.repeats):
                t0 = time.perf_counter()
                res = kmeans(vec, k, seed=r + 1, neighbours=nbr)
                res.labels.block_until_ready()
                times.append(time.perf_counter() - t0)
            steady = statistics.median(times)
            chord, euclid = _inertias(vec, np.asarray(res.labels))
            row[mode] = {
                "compile_s": first - steady,
                "steady_s": steady,
                "steady_all_s": times,
                "inertia_chord": chord,
                "inertia_euclid": euclid,
                "n_iter": int(res.n_iter),
                "converged": bool(res.converged),
            }
        if not args.no_sklearn:
            from sklearn.cluster import KMeans

            times, sk = [], None
            for r in range(args.repeats):
                t0 = time.perf_counter()
                sk = KMeans(k, n_init=1, random_state=r + 1).fit(vec)
                times.append(time.perf_counter() - t0)
            chord, _ = _inertias(vec, sk.labels_)
            row["sklearn"] = {
                "steady_s": statistics.median(times),
                "steady_all_s": times,
                "inertia_chord": chord,
                "inertia_euclid": float(sk.inertia_),
                "n_iter": int(sk.n_iter_),
            }
            for mode in ("neighbours", "exact"):
                row[mode]["speedup_vs_sklearn"] = row["sklearn"]["steady_s"] / row[mode]["steady_s"]
                row[mode]["inertia_ratio_vs_sklearn"] = (
                    row[mode]["inertia_euclid"] / row["sklearn"]["inertia_euclid"]
                )
        rows.append(row)
        print(json.dumps(row), flush=True)

    meta = {
        "benchmark": "sphere_kmeans.kmeans vs sklearn.cluster.KMeans, GAL020 nside 64",
        "region": source,
        "device": str(device),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"kmeans_{tag}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    tmp.replace(path)
    print(
        f"\n{'K':>5} {'mode':>10} {'compile s':>10} {'steady s':>9} {'sklearn s':>9} "
        f"{'speedup':>8} {'inertia/sk':>10}"
    )
    for row in rows:
        for mode in ("neighbours", "exact"):
            m = row[mode]
            sk = row.get("sklearn", {})
            print(
                f"{row['K']:>5} {mode:>10} {m['compile_s']:>10.2f} {m['steady_s']:>9.3f} "
                f"{sk.get('steady_s', float('nan')):>9.3f} "
                f"{m.get('speedup_vs_sklearn', float('nan')):>8.2f} "
                f"{m.get('inertia_ratio_vs_sklearn', float('nan')):>10.4f}"
            )
    print(f"saved {path}")


if __name__ == "__main__":
    main()

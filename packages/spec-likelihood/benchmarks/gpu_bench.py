"""GPU benchmark: batched bounded fits of the spectral likelihood over noise realisations.

Problem (issue 7, ANCHORS.md): nside 64, GAL020 region (10,068 pixels), spherical K-means
patch layouts (K_beta_d, K_T_d, K_beta_s), a synthetic sky whose spectral parameters are
constant per patch, 15 LiteBIRD PTEP bands, homogeneous white noise, ``--n-real`` noise
realisations fitted in one vmapped, jitted call (aggregated likelihood + projected Newton).
Every fit is checked against a tight-tolerance float64 reference fit of the same data
(|dparam| <= 1e-3). Reports fits/s, iterations and likelihood evaluations per fit, compile
time, peak device memory, and the scaling with nside (32/64/128, |b| cut of the same f_sky)
and with K.

Runs unchanged on CPU (``--small``: nside 16 / 32, fewer realisations) and on a CUDA machine
(healpy not needed: pixel vectors are computed here; K-means from sphere_kmeans when it
imports, else a seeded spherical k-means++ / Lloyd in numpy).

    PYTHONPATH=packages/spec-likelihood/src:packages/sphere-kmeans/src \\
        python packages/spec-likelihood/benchmarks/gpu_bench.py --out DIR --mask GAL_PlanckMasks_64.npz
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from spec_likelihood import (  # noqa: E402
    CMB,
    Dust,
    SpectralLikelihood,
    Synchrotron,
    fit_likelihood,
    litebird_ptep,
    mixing_matrix,
    white_noise_sigma,
)

F_SKY_GAL020 = 0.2048


def pix2vec_ring(nside: int, pix: np.ndarray) -> np.ndarray:
    """HEALPix RING pixel centres as unit vectors [n, 3] (numpy; no healpy needed)."""
    pix = np.asarray(pix, dtype=np.int64)
    npix = 12 * nside * nside
    ncap = 2 * nside * (nside - 1)
    z = np.empty(pix.shape)
    phi = np.empty(pix.shape)
    north = pix < ncap
    south = pix >= npix - ncap
    belt = ~north & ~south
    p = pix[north]
    iring = ((1 + np.sqrt(1 + 2 * p)) // 2).astype(np.int64)
    iring = np.where(2 * iring * (iring - 1) > p, iring - 1, iring)
    iphi = p + 1 - 2 * iring * (iring - 1)
    z[north] = 1 - iring**2 * 4.0 / npix
    phi[north] = (iphi - 0.5) * (np.pi / 2) / iring
    ip = pix[belt] - ncap
    tmp = ip // (4 * nside)
    iring = tmp + nside
    iphi = ip - 4 * nside * tmp + 1
    fodd = np.where((iring + nside) & 1, 1.0, 0.5)
    z[belt] = (2 * nside - iring) * 2.0 / (3.0 * nside)
    phi[belt] = (iphi - fodd) * np.pi / (2.0 * nside)
    ip = npix - pix[south]
    iring = ((1 + np.sqrt(2 * ip - 1)) // 2).astype(np.int64)
    iring = np.where(2 * iring * (iring - 1) >= ip, iring - 1, iring)
    iphi = 4 * iring + 1 - (ip - 2 * iring * (iring - 1))
    z[south] = -1 + iring**2 * 4.0 / npix
    phi[south] = (iphi - 0.5) * (np.pi / 2) / iring
    st = np.sqrt(np.clip(1 - z * z, 0.0, None))
    return np.stack([st * np.cos(phi), st * np.sin(phi), z], axis=-1)


def region(nside: int, mask_path: str | None) -> tuple[np.ndarray, str]:
    """RING indices of the region: GAL020 from the mask file at nside 64, else a |b| cut."""
    if mask_path and nside == 64 and Path(mask_path).exists():
        mask = np.load(mask_path)["GAL020"].astype(bool)
        return np.flatnonzero(mask), "GAL020"
    vec = pix2vec_ring(nside, np.arange(12 * nside * nside))
    # |b| >= b0 with f_sky = 1 - sin(b0) = 0.2048: the high-latitude cap pair of GAL020's size
    keep = np.abs(vec[:, 2]) >= 1.0 - F_SKY_GAL020
    return np.flatnonzero(keep), f"|b|cut(f_sky={F_SKY_GAL020})"


def kmeans_numpy(vec: np.ndarray, k: int, seed: int, n_iter: int = 60) -> np.ndarray:
    """Seeded spherical k-means (k-means++ init, Lloyd on cosine similarity), labels 0..k-1."""
    rng = np.random.default_rng(seed)
    n = vec.shape[0]
    centres = [vec[rng.integers(n)]]
    d2 = np.full(n, np.inf)
    for _ in range(1, k):
        d2 = np.minimum(d2, np.sum((vec - centres[-1]) ** 2, axis=1))
        centres.append(vec[rng.choice(n, p=d2 / d2.sum())])
    c = np.array(centres)
    labels = np.zeros(n, np.int64)
    for _ in range(n_iter):
        new = np.argmax(vec @ c.T, axis=1)
        if np.array_equal(new, labels) and _ > 0:
            break
        labels = new
        sums = np.zeros_like(c)
        np.add.at(sums, labels, vec)
        norm = np.linalg.norm(sums, axis=1)
        empty = norm == 0
        c = np.where(empty[:, None], c, sums / np.where(empty, 1.0, norm)[:, None])
    _, labels = np.unique(labels, return_inverse=True)
    return labels.reshape(-1)


def patch_labels(vec: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, str]:
    try:
        import sphere_kmeans

        res = sphere_kmeans.kmeans(jnp.asarray(vec), k, seed=seed)
        labels = sphere_kmeans.relabel_contiguous(np.asarray(res.labels))
        return labels, "sphere_kmeans.kmeans"
    except ImportError:
        return kmeans_numpy(vec, k, seed), "numpy kmeans++/Lloyd"


def simulate(nside, pix, labels, n_real, seed):
    """Synthetic sky with per-patch spectral parameters, plus white-noise realisations."""
    rng = np.random.default_rng(seed)
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    inst = litebird_ptep()
    freqs = np.asarray(inst.frequencies)
    truth = {
        "beta_d": 1.54 + 0.1 * rng.standard_normal(labels["beta_d"].max() + 1),
        "T_d": 20.0 + 2.0 * rng.standard_normal(labels["T_d"].max() + 1),
        "beta_s": -3.0 + 0.1 * rng.standard_normal(labels["beta_s"].max() + 1),
    }
    a = np.asarray(mixing_matrix(comps, freqs, {k: v[labels[k]] for k, v in truth.items()}))
    n = pix.size
    # Q/U amplitudes [uK_CMB]: CMB ~0.5 uK; dust (150 GHz) and synchrotron (20 GHz) ~ few-10 uK
    amp = rng.standard_normal((3, 2, n)) * np.array([0.5, 5.0, 10.0])[:, None, None]
    signal = np.einsum("pfc,csp->fsp", a, amp)
    sigma = np.asarray(white_noise_sigma(inst, nside))
    noise = rng.standard_normal((n_real, freqs.size, 2, n)) * sigma[None, :, None, None]
    return comps, freqs, sigma, signal[None] + noise, truth


def run_config(args, nside, ks, seed=0, method="auto", hessian="hybrid"):
    pix, region_name = region(nside, args.mask)
    vec = pix2vec_ring(nside, pix)
    t0 = time.perf_counter()
    labels, kmeans_impl = {}, None
    for i, (name, k) in enumerate(zip(("beta_d", "T_d", "beta_s"), ks, strict=False)):
        labels[name], kmeans_impl = patch_labels(vec, k, seed + i)
    t_kmeans = time.perf_counter() - t0
    comps, freqs, sigma, data, _ = simulate(nside, pix, labels, args.n_real, seed)
    lik = SpectralLikelihood.create(comps, freqs, 1.0 / sigma**2, pix.size, labels)

    def make(h):
        return jax.jit(
            jax.vmap(
                lambda d, g, r, m: fit_likelihood(
                    lik, d, gtol=g, rtol=r, max_iter=m, method=method, hessian=h
                ),
                in_axes=(0, None, None, None),
            )
        )

    batched = make(hessian)
    d = jax.device_put(jnp.asarray(data))
    tol = (1e-6, 1e-15, 200)
    t0 = time.perf_counter()
    jax.block_until_ready(batched(d, *tol))
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = jax.block_until_ready(batched(d, *tol))
        times.append(time.perf_counter() - t0)
    t_fit = min(times)
    # reference: the lower optimum of exact-Hessian and hybrid Newton at tight tolerances (the
    # exact method alone sometimes stops at a spurious optimum with a patch on its bound)
    ref_e = jax.block_until_ready(make("exact")(d, 1e-9, 1e-18, 1000))
    ref_h = jax.block_until_ready(make("hybrid")(d, 1e-9, 1e-18, 1000))
    pick_h = np.asarray(ref_h.nll) < np.asarray(ref_e.nll)
    ref = jax.tree.map(
        lambda a, b: np.where(pick_h.reshape((-1,) + (1,) * (np.ndim(a) - 1)), b, a),
        ref_e,
        ref_h,
    )
    n_exact_ref_worse = int(np.sum(np.asarray(ref_e.nll) - np.asarray(ref_h.nll) > 1e-6))
    x = np.asarray(lik.layout.flatten(res.params))
    x_ref = np.asarray(lik.layout.flatten(ref.params))
    err = np.max(np.abs(x - x_ref), axis=1)
    converged = np.asarray(res.converged)
    ok = converged & (err <= 1e-3)
    mem = jax.devices()[0].memory_stats() or {}
    out = {
        "nside": nside,
        "region": region_name,
        "n_pix": int(pix.size),
        "K": list(ks),
        "n_params": lik.layout.n_params,
        "n_tuples": lik.layout.n_tuples,
        "method": method,
        "hessian": hessian,
        "kmeans": kmeans_impl,
        "kmeans_s": t_kmeans,
        "n_real": args.n_real,
        "fit_s": t_fit,
        "fit_s_all": times,
        "compile_s": max(t_first - t_fit, 0.0),
        "fits_per_s": args.n_real / t_fit,
        "converged_fits_per_s": int(ok.sum()) / t_fit,
        "n_converged": int(converged.sum()),
        "n_within_1e-3_of_ref": int(ok.sum()),
        "max_param_err_vs_ref": float(err.max()),
        "ref_converged": int(np.asarray(ref.converged).sum()),
        "n_exact_reference_at_worse_optimum": n_exact_ref_worse,
        "n_iter_mean": float(np.mean(res.n_iter)),
        "n_iter_max": int(np.max(res.n_iter)),
        "n_evals_mean": float(np.mean(res.n_evals)),
        "n_evals_max": int(np.max(res.n_evals)),
        "status_counts": {
            str(s): int(c) for s, c in zip(*np.unique(res.status, return_counts=True), strict=False)
        },
        "nll_minus_ref_max": float(np.max(np.asarray(res.nll) - np.asarray(ref.nll))),
        "nll_minus_ref_min": float(np.min(np.asarray(res.nll) - np.asarray(ref.nll))),
        # fits off by > 1e-3 from the reference: their -log L difference (equal depth ->
        # a flat or degenerate direction, not a failed fit)
        "nll_minus_ref_of_mismatches": (np.asarray(res.nll) - np.asarray(ref.nll))[
            err > 1e-3
        ].tolist(),
        # device peak since the process started (configurations run in the order listed)
        "peak_bytes_in_use": mem.get("peak_bytes_in_use"),
    }
    return out


def run_layout_batch(args, nside, ks, n_layouts, seed=0):
    """Many layouts (K-means seeds) x realisations in one call: the campaign's throughput.

    Layouts are padded to one shape (spec-likelihood ``k_max``/``t_max``) and passed as data,
    so the fit compiles once and vmaps over layouts and noise realisations.
    """
    pix, region_name = region(nside, args.mask)
    vec = pix2vec_ring(nside, pix)
    layouts = []
    for j in range(n_layouts):
        lab = {}
        for i, (name, k) in enumerate(zip(("beta_d", "T_d", "beta_s"), ks, strict=False)):
            lab[name] = patch_labels(vec, k, seed + 100 * j + i)[0]
        layouts.append(lab)
    comps, freqs, sigma, data, _ = simulate(nside, pix, layouts[0], args.n_real, seed)
    n_tup = []
    for lab in layouts:
        key = np.stack([lab[k] for k in ("beta_d", "T_d", "beta_s")], 1)
        n_tup.append(np.unique(key, axis=0).shape[0])
    t_max = 1 << (max(n_tup) - 1).bit_length()
    template = SpectralLikelihood.create(
        comps,
        freqs,
        1.0 / sigma**2,
        pix.size,
        layouts[0],
        k_max=dict(zip(("beta_d", "T_d", "beta_s"), ks, strict=True)),
        t_max=t_max,
    )
    arrays = [template.layout_arrays(lab) for lab in layouts]
    stacked = jax.tree.map(lambda *v: jnp.asarray(np.stack(v)), *arrays)

    def one(arr, dd):
        lik = template.with_layout_arrays(arr)
        return jax.vmap(lambda x: fit_likelihood(lik, x))(dd)

    fn = jax.jit(jax.vmap(one, in_axes=(0, None)))
    d = jax.device_put(jnp.asarray(data))
    t0 = time.perf_counter()
    jax.block_until_ready(fn(stacked, d))
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        res = jax.block_until_ready(fn(stacked, d))
        times.append(time.perf_counter() - t0)
    t_fit = min(times)
    n_fits = n_layouts * args.n_real
    conv = np.asarray(res.converged)
    return {
        "nside": nside,
        "region": region_name,
        "n_pix": int(pix.size),
        "K": list(ks),
        "n_layouts": n_layouts,
        "t_max": t_max,
        "n_tuples_range": [min(n_tup), max(n_tup)],
        "n_real": args.n_real,
        "n_fits": n_fits,
        "fit_s": t_fit,
        "compile_s": max(t_first - t_fit, 0.0),
        "fits_per_s": n_fits / t_fit,
        "converged_fraction": float(conv.mean()),
        "n_iter_mean": float(np.mean(res.n_iter)),
        "n_iter_max": int(np.max(res.n_iter)),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output folder for the JSON")
    parser.add_argument("--mask", default=None, help="GAL_PlanckMasks_64.npz (GAL020 region)")
    parser.add_argument("--small", action="store_true", help="CPU-sized run")
    parser.add_argument("--n-real", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-pixel", action="store_true", help="skip the per-pixel form run")
    parser.add_argument(
        "--quick", action="store_true", help="only the two main layouts (no K / nside scans)"
    )
    parser.add_argument(
        "--n-layouts", type=int, default=16, help="layouts per call in the layouts-as-data rows"
    )
    args = parser.parse_args(argv)
    if args.small:
        args.n_real = args.n_real or 10
        main_nside, layouts = 32, [(100, 15, 5), (300, 30, 10)]
        nside_scan, k_scan = [16], []
        args.repeats = min(args.repeats, 2)
    else:
        args.n_real = args.n_real or 100
        main_nside, layouts = 64, [(100, 15, 5), (1000, 50, 20)]
        nside_scan, k_scan = [32, 128], [(300, 20, 20), (2000, 80, 80)]
    if args.quick:
        nside_scan, k_scan = [], []
    rows = []
    for ks in layouts:
        rows.append(run_config(args, main_nside, ks))
        print(json.dumps(rows[-1]), flush=True)
    for ks in layouts:  # side by side: the exact-Hessian Newton method
        rows.append(run_config(args, main_nside, ks, hessian="exact"))
        print(json.dumps(rows[-1]), flush=True)
    batch_rows = []
    for ks in layouts:
        batch_rows.append(run_layout_batch(args, main_nside, ks, args.n_layouts))
        print(json.dumps(batch_rows[-1]), flush=True)
    if not args.no_pixel:
        rows.append(run_config(args, main_nside, layouts[0], method="pixel"))
        print(json.dumps(rows[-1]), flush=True)
    for ks in k_scan:
        rows.append(run_config(args, main_nside, ks))
        print(json.dumps(rows[-1]), flush=True)
    for ns in nside_scan:
        rows.append(run_config(args, ns, layouts[0]))
        print(json.dumps(rows[-1]), flush=True)

    dev = jax.devices()[0]
    result = {
        "benchmark": "spec-likelihood batched bounded fits (aggregated likelihood, projected Newton)",
        "device": f"{dev.platform}:{getattr(dev, 'device_kind', '')}",
        "jax": jax.__version__,
        "python": platform.python_version(),
        "small": args.small,
        "rows": rows,
        "layout_batches": batch_rows,
        "anchors_fits_per_s_naive_optax_lbfgs_h200": {"(100,15,5)": 224, "(1000,50,20)": 50},
        "targets_fits_per_s": {"(100,15,5)": 2000, "(1000,50,20)": 500},
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "gpu_bench_small" if args.small else "gpu_bench"
    kind = dev.platform + ("_" + dev.device_kind.replace(" ", "_") if dev.platform == "gpu" else "")
    path = out / f"{name}_{kind}.json"
    path.write_text(json.dumps(result, indent=2))
    header = (
        f"{'nside':>5} {'region':>22} {'npix':>6} {'K':>15} {'tuples':>6} {'method':>10} "
        f"{'hessian':>12} {'fits/s':>9} {'conv/s':>9} {'ok':>7} {'iter':>6} {'evals':>6} "
        f"{'compile':>8} "
        f"{'peakMB':>8} {'maxerr':>9}"
    )
    print(f"\ndevice {result['device']}, {args.n_real} realisations per call -> {path}")
    print(header)
    for r in rows:
        peak = r["peak_bytes_in_use"]
        print(
            f"{r['nside']:>5} {r['region']:>22} {r['n_pix']:>6} {tuple(r['K'])!s:>15} "
            f"{r['n_tuples']:>6} {r['method']:>10} {r['hessian']:>12} {r['fits_per_s']:>9.1f} "
            f"{r['converged_fits_per_s']:>9.1f} {r['n_within_1e-3_of_ref']:>3}/{r['n_real']:<3} "
            f"{r['n_iter_mean']:>6.1f} {r['n_evals_mean']:>6.1f} {r['compile_s']:>8.2f} "
            f"{(peak / 2**20 if peak else math.nan):>8.1f} {r['max_param_err_vs_ref']:>9.2e}"
        )
    print("\nlayouts as data (padded, one compilation, vmapped over layouts x realisations)")
    for r in batch_rows:
        print(
            f"K={tuple(r['K'])!s:>15} layouts={r['n_layouts']:>3} fits={r['n_fits']:>5} "
            f"fits/s={r['fits_per_s']:>9.1f} converged={r['converged_fraction']:.3f} "
            f"iter={r['n_iter_mean']:.1f}/{r['n_iter_max']} compile={r['compile_s']:.1f}s"
        )


if __name__ == "__main__":
    main()

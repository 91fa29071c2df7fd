"""Benchmark: spectra + r for 100 realisations at nside 64 on CPU, CAMB cold vs cached.

For each estimator (the paper's anafast / f_sky on the binary GAL040 mask, and MASTER on the
C2-apodised mask) we time: set-up (coupling matrix), spectra of 100 CMB + noise Q/U maps, and
the r fit of the 100 BB spectra (first call incl. JIT compilation, then a warm call), and we
report the mean and scatter of r-hat and sigma(r) for input r = 0.01. CAMB templates are timed
cold (fresh cache folder) and cached.

    python benchmarks/bench_spectra_r.py [--out DIR] [--n-sims 100] [--nside 64]

Writes ``DIR/bench_spectra_r_<machine>.json`` (default DIR: benchmarks/results) and prints
a table last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import healpy as hp
import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from bb_residuals import (  # noqa: E402
    Bins,
    MasterEstimator,
    NaiveEstimator,
    apodize_mask,
    camb_templates,
    fisher_sigma_r,
    fit_r,
    latitude_mask,
)

SHARED = Path(
    os.environ.get(
        "COMPSEP_SHARED_DATA", Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
    )
)


def gal040(nside: int) -> tuple[np.ndarray, str]:
    path = SHARED / "masks" / "GAL_PlanckMasks_64.npz"
    if path.exists():
        with np.load(path) as masks:
            full = masks["GAL040"].astype(np.float64)
        return (hp.ud_grade(full, nside) > 0.5).astype(np.float64), "GAL040"
    return latitude_mask(nside, 36.87), "|b|>36.9deg"


def skies(ee, bb, nside, n, sigma_pix, seed):
    rng = np.random.default_rng(seed)
    lmax = 3 * nside - 1
    ell, m = hp.Alm.getlm(lmax)
    out = np.empty((n, 2, hp.nside2npix(nside)))
    zero = np.zeros(ell.size, dtype=complex)
    for i in range(n):
        alms = []
        for cl in (ee, bb):
            re, im = rng.standard_normal((2, ell.size))
            alms.append(np.sqrt(cl[ell]) * np.where(m == 0, re, (re + 1j * im) / np.sqrt(2)))
        out[i] = hp.alm2map([zero, *alms], nside, lmax=lmax, pol=True)[1:]
    return out + sigma_pix * rng.standard_normal(out.shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--n-sims", type=int, default=100)
    parser.add_argument("--nside", type=int, default=64)
    parser.add_argument("--camb-lmax", type=int, default=300)
    args = parser.parse_args()
    nside, n = args.nside, args.n_sims
    rows = []

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        templates = camb_templates(max(args.camb_lmax, 3 * nside - 1), cache_dir=cache)
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        camb_templates(max(args.camb_lmax, 3 * nside - 1), cache_dir=cache)
        t_warm = time.perf_counter() - t0
    rows.append(("CAMB templates cold (s)", t_cold))
    rows.append(("CAMB templates cached (s)", t_warm))

    r_true, sigma_pix = 0.01, 0.1
    lmax_fit = 2 * nside
    ee = templates.lensed_ee[: 3 * nside]
    tensor, lens = templates.tensor_bb[: 3 * nside], templates.lensed_bb[: 3 * nside]
    t0 = time.perf_counter()
    qu = skies(ee, r_true * tensor + lens, nside, n, sigma_pix, seed=0)
    rows.append((f"simulate {n} skies (s)", time.perf_counter() - t0))
    noise = np.full(3 * nside, sigma_pix**2 * hp.nside2pixarea(nside))
    binary, mask_name = gal040(nside)
    results = {
        "nside": nside,
        "n_sims": n,
        "r_true": r_true,
        "mask": mask_name,
        "camb_cold_s": t_cold,
        "camb_cached_s": t_warm,
        "estimators": {},
    }

    for name in ("naive", "master", "master_l30"):
        t0 = time.perf_counter()
        if name == "naive":
            est = NaiveEstimator(binary)
        else:
            bins = Bins.linear(2, 3 * nside - 1, 6)
            est = MasterEstimator(apodize_mask(binary, 10.0, "C2"), bins)
        t_setup = time.perf_counter() - t0
        t0 = time.perf_counter()
        bb = est(qu)[:, 1]
        t_spec = time.perf_counter() - t0
        if name == "naive":
            kw = {"f_sky": est.f_sky, "ell_range": (2, lmax_fit)}
            model = (tensor, lens, noise)
        else:
            # E->B leakage variance makes low-ell MASTER bandpowers noisy (even negative);
            # "master_l30" drops ell < 30.
            kw = {
                "f_sky": est.f_sky,
                "ell": est.ell,
                "n_modes": est.bins.n_modes,
                "ell_range": (30 if name == "master_l30" else 2, lmax_fit),
            }
            model = tuple(est.bins.bin_cl(a) for a in (tensor, lens, noise))
        t0 = time.perf_counter()
        fit = fit_r(bb, *model, **kw)
        t_fit_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        fit = fit_r(bb, *model, **kw)
        t_fit_warm = time.perf_counter() - t0
        sigma_f = fisher_sigma_r(r_true, *model, **kw)
        results["estimators"][name] = {
            "setup_s": t_setup,
            "spectra_s": t_spec,
            "fit_r_first_call_s": t_fit_cold,
            "fit_r_warm_s": t_fit_warm,
            "r_hat_mean": float(fit.r_hat.mean()),
            "r_hat_std": float(fit.r_hat.std()),
            "sigma_r_median": float(np.nanmedian(fit.sigma_r)),
            "fisher_sigma_r_fsky": sigma_f,
            "r_ul95_median": float(np.median(fit.r_ul95)),
            "n_status_nonzero": int(np.count_nonzero(fit.status)),
        }
        rows += [
            (f"{name}: set-up (s)", t_setup),
            (f"{name}: spectra of {n} maps (s)", t_spec),
            (f"{name}: fit_r first call incl. JIT (s)", t_fit_cold),
            (f"{name}: fit_r warm (s)", t_fit_warm),
            (f"{name}: mean r_hat (input {r_true})", float(fit.r_hat.mean())),
            (f"{name}: std r_hat / Fisher(f_sky)", float(fit.r_hat.std()) / sigma_f),
        ]

    machine = f"{platform.machine()}-{os.cpu_count()}cpu"
    results.update(machine=machine, jax=jax.__version__, backend=jax.default_backend())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_spectra_r_{machine}.json"
    path.write_text(json.dumps(results, indent=2))
    width = max(len(k) for k, _ in rows)
    print(f"bench_spectra_r  nside={nside}  n_sims={n}  mask={mask_name}  -> {path}")
    for key, value in rows:
        print(f"{key:<{width}}  {value:12.6g}")


if __name__ == "__main__":
    main()

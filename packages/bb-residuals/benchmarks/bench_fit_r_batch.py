"""Benchmark: the jitted, vmapped r likelihood fit on many realisations (CPU or GPU).

Spectra are drawn as C_model chi^2_nu / nu (nu = f_sky (2l+1)) from smooth analytic
stand-ins for the tensor and lensing BB templates (timing does not depend on their shape),
so the script needs only JAX and numpy: it runs unchanged on a GPU machine without healpy
or camb. For each batch size it records the first call (JIT compilation included), the
median of warm calls, the throughput and the bias / scatter of r-hat against the Fisher
forecast (input r = 0.003).

    PYTHONPATH=packages/bb-residuals/src python packages/bb-residuals/benchmarks/bench_fit_r_batch.py --out DIR

Writes ``DIR/bench_fit_r_batch_<backend>.json`` (default DIR: benchmarks/results).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)

from bb_residuals import fisher_sigma_r, fit_r  # noqa: E402


def toy_templates(lmax: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tensor BB (r = 1) and lensing BB shapes with realistic amplitudes, white noise."""
    ell = np.arange(lmax + 1, dtype=np.float64)
    safe = np.maximum(ell, 1.0)
    to_cl = 2 * np.pi / (safe * (safe + 1))
    tensor = to_cl * 0.025 * (1 + (safe / 80.0) ** 2) ** -1.5 * (1 + 3 * np.exp(-safe / 4))
    lens = to_cl * 0.065 * safe / 1000.0 * (1 + safe / 1000.0) ** -1
    noise = np.full(lmax + 1, 1e-6)
    for a in (tensor, lens):
        a[:2] = 0.0
    return tensor, lens, noise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--lmax", type=int, default=128)
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    backend = jax.default_backend()
    sizes = args.sizes or ([1_000, 10_000, 100_000] if backend == "gpu" else [256, 2_048])
    r_true, f_sky = 0.003, 0.5
    tensor, lens, noise = toy_templates(args.lmax)
    ell = np.arange(args.lmax + 1)
    nu = f_sky * (2 * ell + 1.0)
    model = r_true * tensor + lens + noise
    sigma_f = fisher_sigma_r(r_true, tensor, lens, noise, f_sky=f_sky)
    rng = np.random.default_rng(0)
    rows, records = [], []
    for n in sizes:
        obs = model * rng.chisquare(np.maximum(nu, 1e-3), size=(n, ell.size)) / np.maximum(nu, 1)
        obs[:, :2] = 0.0
        t0 = time.perf_counter()
        fit = fit_r(obs, tensor, lens, noise, f_sky=f_sky)
        first = time.perf_counter() - t0
        warm = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            fit = fit_r(obs, tensor, lens, noise, f_sky=f_sky)
            warm.append(time.perf_counter() - t0)
        record = {
            "n_realisations": n,
            "lmax": args.lmax,
            "first_call_s": first,
            "warm_median_s": float(np.median(warm)),
            "fits_per_s": n / float(np.median(warm)),
            "bias_over_error": float((fit.r_hat.mean() - r_true) / (fit.r_hat.std() / np.sqrt(n))),
            "std_over_fisher": float(fit.r_hat.std() / sigma_f),
            "n_status_nonzero": int(np.count_nonzero(fit.status)),
        }
        records.append(record)
        rows.append(record)
    device = str(jax.devices()[0])
    result = {"backend": backend, "device": device, "jax": jax.__version__, "runs": records}
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench_fit_r_batch_{backend}.json"
    path.write_text(json.dumps(result, indent=2))
    print(f"bench_fit_r_batch  backend={backend}  device={device}  -> {path}")
    print(
        f"{'n':>8} {'first (s)':>10} {'warm (s)':>10} {'fits/s':>12} {'bias/err':>9} {'std/F':>7}"
    )
    for r in rows:
        print(
            f"{r['n_realisations']:>8} {r['first_call_s']:>10.3f} {r['warm_median_s']:>10.4f} "
            f"{r['fits_per_s']:>12.0f} {r['bias_over_error']:>9.2f} {r['std_over_fisher']:>7.3f}"
        )


if __name__ == "__main__":
    main()

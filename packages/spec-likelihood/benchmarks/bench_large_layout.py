"""CPU, side by side: dense vs term-by-term (sparse) Schur complement on a large layout.

The Newton step eliminates the largest parameter block (beta_d) and solves the Schur
system of the others. The dense form builds ``C^T diag(w) C`` from the ``[K_e, R]``
coupling ``C`` (``K_e R^2`` work and memory per damping and realisation); the sparse form
(used above ``K_e R > 2^17``) sums ``w_e c_t1 c_t2^T`` over pairs of terms sharing one
beta_d patch, never forming ``C``. Near-per-pixel layouts (the paper's K_bd up to 5000 in
regions of ~5000 pixels) are where it matters. This script fits the same synthetic
problem both ways (layout (3500, 80, 80) and (250, 5, 5) on 5000 pixels, padded to the
larger, 2 noise realisations vmapped), reports steady-state seconds per call, iterations
and the largest -log L difference, and saves JSON.

    python packages/spec-likelihood/benchmarks/bench_large_layout.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
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
    _optimize,
    fit_likelihood,
    litebird_ptep,
    mixing_matrix,
    white_noise_sigma,
)

N_PIX = 5000
K_MAX = {"beta_d": 3500, "T_d": 80, "beta_s": 80}


def _labels(k_bd: int, k_td: int, k_bs: int) -> dict[str, np.ndarray]:
    # contiguous patches along the pixel index, offset from each other so that T_d and
    # beta_s borders cut beta_d patches (about K_bd + K_Td + K_bs label tuples, as K-means
    # layouts of a region have)
    pix = np.arange(N_PIX)
    return {
        "beta_d": pix * k_bd // N_PIX,
        "T_d": ((pix + N_PIX // (3 * k_td)) % N_PIX) * k_td // N_PIX,
        "beta_s": ((pix + N_PIX // (2 * k_bs)) % N_PIX) * k_bs // N_PIX,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--n-real", type=int, default=2)
    args = parser.parse_args()

    inst = litebird_ptep()
    freqs = np.asarray(inst.frequencies)
    sigma = np.asarray(white_noise_sigma(inst, 64))
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    rng = np.random.default_rng(1)
    truth = {
        "beta_d": 1.54 + 0.05 * rng.normal(size=N_PIX),
        "T_d": 20.0 + 1.0 * rng.normal(size=N_PIX),
        "beta_s": -3.0 + 0.05 * rng.normal(size=N_PIX),
    }
    a = np.asarray(mixing_matrix(comps, freqs, truth))
    amp = rng.normal(size=(3, 2, N_PIX)) * np.array([0.5, 5.0, 3.0])[:, None, None]
    signal = np.einsum("pfc,csp->fsp", a, amp)
    data = jnp.asarray(
        signal[None] + rng.normal(size=(args.n_real, *signal.shape)) * sigma[:, None, None]
    )

    layouts = {"(250, 5, 5)": _labels(250, 5, 5), "(3500, 80, 80)": _labels(3500, 80, 80)}
    template = SpectralLikelihood.create(
        comps, freqs, 1.0 / sigma**2, N_PIX, layouts["(3500, 80, 80)"], k_max=K_MAX,
        t_max=4096,
    )  # fmt: skip
    results: dict[str, dict] = {}
    for mode, threshold in (("dense", 1 << 62), ("sparse", -1)):
        _optimize._DENSE_SCHUR_MAX = threshold

        @jax.jit
        def fit(arrays, d):
            lik = template.with_layout_arrays(arrays)
            return jax.vmap(lambda x: fit_likelihood(lik, x))(d)

        for name, labels in layouts.items():
            arrays = template.layout_arrays(labels)
            t0 = time.perf_counter()
            jax.block_until_ready(fit(arrays, data))
            compile_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            res = jax.block_until_ready(fit(arrays, data))
            run_s = time.perf_counter() - t0
            results[f"{mode} {name}"] = {
                "run_s": run_s,
                "first_call_s": compile_s,
                "n_iter": np.asarray(res.n_iter).tolist(),
                "nll": np.asarray(res.nll).tolist(),
                "converged": bool(np.all(res.converged)),
            }
            print(f"{mode:>6} {name:>15}: {run_s:7.3f} s, iterations {res.n_iter}", flush=True)
    summary = {}
    for name in layouts:
        d, s = results[f"dense {name}"], results[f"sparse {name}"]
        summary[name] = {
            "dense_over_sparse": d["run_s"] / s["run_s"],
            "max_abs_nll_diff": float(np.max(np.abs(np.subtract(d["nll"], s["nll"])))),
        }
        print(f"{name:>15}: sparse {summary[name]['dense_over_sparse']:.2f}x faster, "
              f"|d nll| <= {summary[name]['max_abs_nll_diff']:.2e}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "device": str(jax.devices()[0]),
        "n_pix": N_PIX,
        "n_real": args.n_real,
        "results": results,
        "summary": summary,
    }
    path = args.out / f"bench_large_layout_{jax.default_backend()}.json"
    path.write_text(json.dumps(payload, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

"""CPU, side by side: spec-likelihood's fit vs scipy L-BFGS-B on the same numpy likelihood.

The fgbuster oracle problem (../shared/data/oracles/fgbuster_ns16_seed1234.npz: nside 16,
15 LiteBIRD bands, CMB + dust + synchrotron), with the one-patch layout and the
multi-resolution layout (nsides 4, 2, 1 -> 192 + 48 + 12 parameters), physical box bounds.

The scipy baseline minimises the aggregated spectral likelihood written in numpy
(``-1/2 sum_t tr[(A^T N^-1 A)^-1 A^T S_t A]``) with its analytic gradient
(``-sum (S A M^-1 - N A M^-1 B M^-1) . dA``) and the same numpy SEDs (modified blackbody,
power law, K_CMB), L-BFGS-B with ftol 1e-15 / gtol 1e-10, starting from the same point.
Both are timed to their optimum (steady state for JAX: compile time reported separately);
the table compares the optima with each other and with fgbuster's.

    python packages/spec-likelihood/benchmarks/bench_cpu_oracle.py [--out DIR]
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

import healpy as hp  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import scipy.optimize  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from spec_likelihood import CMB, Dust, SpectralLikelihood, Synchrotron, fit_likelihood  # noqa: E402

H_OVER_K = 6.62607015e-34 / 1.380649e-23 * 1e9  # K / GHz
T_CMB = 2.7255
NAMES = ("beta_d", "T_d", "beta_s")


def shared_data() -> Path:
    env = os.environ.get("COMPSEP_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[3] / ".." / "shared" / "data"


def parent_labels(nside: int, nside_out: int) -> np.ndarray:
    """Multi-resolution labels: the nside_out RING pixel (ud_grade parent) of each pixel."""
    theta, phi = hp.pix2ang(nside, np.arange(12 * nside**2))
    return hp.ang2pix(nside_out, theta, phi)


# ---- numpy likelihood (independent of the package's JAX code) ----------------------------


def _krj_to_kcmb(nu):
    x = H_OVER_K * nu / T_CMB
    return np.expm1(x) ** 2 / (x**2 * np.exp(x))


def numpy_mixing(nu, beta_d, t_d, beta_s):
    """A [T, F, 3] and dA/dtheta [T, F, 3, 3] for per-tuple parameters (K_CMB units)."""
    nu = nu[None, :]
    bd, td, bs = beta_d[:, None], t_d[:, None], beta_s[:, None]
    x, x0 = H_OVER_K * nu / td, H_OVER_K * 150.0 / td
    dust = (nu / 150.0) ** (bd + 1) * np.expm1(x0) / np.expm1(x)
    dust = dust * _krj_to_kcmb(nu) / _krj_to_kcmb(np.array(150.0))
    sync = (nu / 20.0) ** bs * _krj_to_kcmb(nu) / _krj_to_kcmb(np.array(20.0))
    a = np.stack([np.ones_like(dust), dust, sync], axis=-1)
    da = np.zeros((*a.shape, 3))
    da[..., 1, 0] = dust * np.log(nu / 150.0)
    dlog_dt = (x * np.exp(x) / np.expm1(x) - x0 * np.exp(x0) / np.expm1(x0)) / td
    da[..., 1, 1] = dust * dlog_dt
    da[..., 2, 2] = sync * np.log(nu / 20.0)
    return a, da


class NumpyLikelihood:
    def __init__(self, nu, ninv, data, labels):
        self.nu, self.ninv = nu, ninv
        key = np.stack([labels[n] for n in NAMES], axis=1)
        self.tuples, inv = np.unique(key, axis=0, return_inverse=True)
        inv = inv.reshape(-1)
        nd = data * ninv[:, None, None]
        self.stats = np.zeros((self.tuples.shape[0], nu.size, nu.size))
        np.add.at(self.stats, inv, np.einsum("fsp,gsp->pfg", nd, nd))
        self.k = [int(labels[n].max()) + 1 for n in NAMES]
        self.off = np.concatenate([[0], np.cumsum(self.k)[:-1]])
        self.index = self.tuples + self.off

    def __call__(self, x):
        th = x[self.index]
        a, da = numpy_mixing(self.nu, th[:, 0], th[:, 1], th[:, 2])
        na = self.ninv[None, :, None] * a
        m = np.einsum("tfc,tfk->tck", a, na)
        minv = np.linalg.inv(m)
        sa = np.einsum("tfg,tgc->tfc", self.stats, a)
        b = np.einsum("tfc,tfk->tck", a, sa)
        f = -0.5 * np.einsum("tck,tck->", minv, b)
        g_a = sa @ minv - na @ minv @ b @ minv  # [T, F, C]
        g_t = -np.einsum("tfc,tfcm->tm", g_a, da)
        grad = np.zeros(x.size)
        np.add.at(grad, self.index, g_t)
        return f, grad


def run_case(name, o, labels, ninv, repeats):
    nu, data = o["freqs"], o["data_uK_CMB"]
    comps = [CMB(), Dust(nu0=150.0), Synchrotron(nu0=20.0)]
    lik = SpectralLikelihood.create(comps, nu, ninv, data.shape[-1], labels)
    npl = NumpyLikelihood(
        nu, ninv, data, {n: labels.get(n, np.zeros(data.shape[-1], int)) for n in NAMES}
    )
    x0 = lik.init
    bounds = list(zip(lik.lower, lik.upper, strict=False))

    jfit = jax.jit(lambda d: fit_likelihood(lik, d))
    d = jnp.asarray(data)
    t0 = time.perf_counter()
    jax.block_until_ready(jfit(d))
    t_first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = jax.block_until_ready(jfit(d))
        times.append(time.perf_counter() - t0)
    ours_x = np.asarray(lik.layout.flatten(res.params))

    t0 = time.perf_counter()
    sp = scipy.optimize.minimize(
        npl,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"ftol": 1e-15, "gtol": 1e-10, "maxiter": 20000, "maxfun": 40000},
    )
    t_scipy = time.perf_counter() - t0
    f_ours_np = npl(ours_x)[0]
    ref_fun = float(o["basic_fun"] if name == "one_patch" else o["multires_fun"])
    return {
        "case": name,
        "n_params": lik.layout.n_params,
        "n_tuples": lik.layout.n_tuples,
        "ours_s": min(times),
        "ours_compile_s": max(t_first - min(times), 0.0),
        "ours_nll": float(res.nll),
        "ours_nll_numpy": float(f_ours_np),
        "ours_status": int(res.status),
        "ours_n_iter": int(res.n_iter),
        "ours_n_evals": int(res.n_evals),
        "scipy_s": t_scipy,
        "scipy_nll": float(sp.fun),
        "scipy_nit": int(sp.nit),
        "scipy_nfev": int(sp.nfev),
        "scipy_message": str(sp.message),
        "fgbuster_nll": ref_fun,
        "max_rel_param_diff_ours_vs_scipy": float(np.max(np.abs(ours_x - sp.x) / np.abs(sp.x))),
        "nll_ours_minus_scipy": float(f_ours_np - sp.fun),
        "nll_ours_minus_fgbuster": float(res.nll) - ref_fun,
        "speedup_vs_scipy": t_scipy / min(times),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    path = shared_data() / "oracles" / "fgbuster_ns16_seed1234.npz"
    if not path.exists():
        print(f"skipped: oracle file not found at {path} (set COMPSEP_SHARED_DATA)")
        return
    o = dict(np.load(path))
    nside = int(o["nside"])
    pix_arcmin = np.sqrt(4 * np.pi / (12 * nside**2)) * 180 * 60 / np.pi
    ninv = (pix_arcmin / o["depth_p"]) ** 2
    parents = {
        n: parent_labels(nside, int(ns)) for n, ns in zip(NAMES, o["multires_nsides"], strict=False)
    }
    rows = [
        run_case("one_patch", o, {}, ninv, args.repeats),
        run_case("multires_4_2_1", o, parents, ninv, args.repeats),
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "spec-likelihood fit vs scipy L-BFGS-B (numpy likelihood), oracle",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "rows": rows,
    }
    file = out / f"bench_cpu_oracle_{platform.machine()}.json"
    file.write_text(json.dumps(result, indent=2))
    print(
        f"{'case':>16} {'params':>6} {'ours s':>8} {'compile':>8} {'evals':>6} "
        f"{'scipy s':>8} {'nfev':>6} {'speedup':>8} {'nll ours-scipy':>15} {'ours-fgbuster':>14}"
    )
    for r in rows:
        print(
            f"{r['case']:>16} {r['n_params']:>6} {r['ours_s']:>8.3f} {r['ours_compile_s']:>8.2f} "
            f"{r['ours_n_evals']:>6} {r['scipy_s']:>8.3f} {r['scipy_nfev']:>6} "
            f"{r['speedup_vs_scipy']:>8.1f} {r['nll_ours_minus_scipy']:>15.4g} "
            f"{r['nll_ours_minus_fgbuster']:>14.4g}"
        )
    print(f"-> {file}")


if __name__ == "__main__":
    main()

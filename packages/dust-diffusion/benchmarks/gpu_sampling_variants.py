"""GPU micro-benchmark of the reverse-SDE sampling step: reference vs fast network path.

Loads a trained state file (``--state``, e.g. ``.gpu/dd/state256.npz``) or randomly
initialises the default 256 x 256 architecture (channels 32,64,128), and times, for
``--batch`` maps at ``--size``^2, Euler-Maruyama steps of the prior sampler:

* ``ref_float32`` / ``ref_bfloat16``: the previous per-step path: the flax module merged
  in every step (``nnx.merge(graphdef, params)(z, t, phi)``) and the complex-FFT noise;
* ``fast_float32`` / ``fast_bfloat16``: ``Trainer.noise_fn`` (the fast network of
  ``dust_diffusion._fast_unet``, weights prepared once outside the scan) in
  ``reverse_sde_sample`` (real-FFT noise);

each as ms/step over ``--steps`` steps of one compiled ``lax.scan`` (a warm-up call of
the same executable first, then ``--reps`` timed calls, block_until_ready; the median is
reported). The reference variants start from the same z and key as the fast ones: the
relative difference of z after the timed steps is reported (bf16 vs fp32 tolerance),
and so are one network evaluation's differences to the reference float32 module.
Then one full sampling, ``--full-steps`` (1000) steps of ``--batch`` maps with the fast
bfloat16 path (compile and wall seconds), as ``Trainer.generate`` runs it.

``--profile`` adds a per-kernel breakdown of one call of each variant (jax.profiler,
parsed in-process), ``--hlo`` the op counts of each compiled program (and saves the
optimised HLO texts, zipped, under --out). Needs only jax, flax, optax, numpy and this
package's ``src`` (inserted on sys.path by the script). About 2-3 minutes on one H200.

    PYTHONPATH=packages/dust-diffusion/src python packages/dust-diffusion/benchmarks/\\
gpu_sampling_variants.py --state .gpu/dd/state256.npz --out $OUT/variants --hlo
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[0] / "src"))
sys.path.insert(0, str(HERE))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
from _hlo_counts import hlo_op_counts  # noqa: E402
from dust_diffusion import (  # noqa: E402
    CMBGrid,
    TrainConfig,
    Trainer,
    covariance_eigenvalues,
    load_state,
    load_state_config,
    reverse_sde_sample,
)
from dust_diffusion._fast_unet import fast_noise_fn  # noqa: E402
from flax import nnx  # noqa: E402

PHI = (70.0, 0.0321)
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f} s] {msg}", flush=True)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", required=True, help="folder for variants.json (and hlo.zip)")
    p.add_argument("--state", default=None, help="state file; default: random 256 weights")
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=50, help="timed steps per call")
    p.add_argument("--reps", type=int, default=2, help="timed calls per variant")
    p.add_argument("--full-steps", type=int, default=1000, help="0: no full sampling")
    p.add_argument(
        "--variants",
        default="fast_bfloat16,fast_float32,ref_bfloat16,ref_float32",
        help="comma list of {ref,fast,fastconcat}_{float32,bfloat16}",
    )
    p.add_argument("--profile", action="store_true", help="per-kernel times of one call")
    p.add_argument("--hlo", action="store_true", help="op counts + zipped optimised HLO")
    p.add_argument("--tiny", action="store_true", help="CPU smoke settings")
    a = p.parse_args()
    if a.tiny:
        a.size, a.batch, a.steps, a.reps, a.full_steps = 32, 2, 3, 1, 5
    return a


def old_fourier_filter(maps, filt):
    """The previous noise colouring: complex 2-D FFTs of the real maps."""
    return jnp.real(jnp.fft.ifft2(jnp.fft.fft2(maps) * filt)).astype(maps.dtype)


def ref_sampler(trainer, params, precision, phi, key, z, sq, t_start, t_end, n_steps):
    """The previous step: module merged per call, complex-FFT noise (as in v0.2.0)."""
    graphdef = trainer.graphdef_for(precision)
    schedule = trainer.schedule
    ts = jnp.linspace(t_start, t_end, n_steps + 1).astype(z.dtype)
    batch = z.shape[0]

    def step(z, inp):
        t, t_next, k = inp
        h = t - t_next
        b = schedule.beta(t)
        model = nnx.merge(graphdef, params)
        m = model(z, jnp.full((batch,), t, z.dtype), jnp.broadcast_to(phi, (batch, 2)))
        drift = 0.5 * z - m.astype(z.dtype) / jnp.sqrt(1 - schedule.alpha(t))
        xi = old_fourier_filter(jax.random.normal(k, z.shape, z.dtype), sq)
        return z + h * b * drift + jnp.sqrt(b * h) * xi, None

    keys = jax.random.split(key, n_steps)
    z, _ = jax.lax.scan(step, z, (ts[:-1], ts[1:], keys))
    return z


def fast_sampler(trainer, params, precision, phi, key, z, sq, t_start, t_end, n_steps):
    fn = trainer.noise_fn(params, phi, precision)
    return reverse_sde_sample(key, fn, z, t_start, sq, trainer.schedule, n_steps, t_end)


def fastconcat_sampler(trainer, params, precision, phi, key, z, sq, t_start, t_end, n_steps):
    """The fast network with materialised circular padding (pad_mode='concat')."""
    dtype = jnp.bfloat16 if precision == "bfloat16" else None
    fn = fast_noise_fn(params, trainer.config.groups, phi, dtype, pad_mode="concat")
    return reverse_sde_sample(key, fn, z, t_start, sq, trainer.schedule, n_steps, t_end)


def _category(name: str) -> str:
    n = name.lower()
    if "xmma" in n or "cudnn" in n or "conv" in n or "cutlass" in n or "gemm" in n:
        return "convolution"
    for key in ("concatenate", "reduce", "dynamic_update", "fft", "transpose", "copy"):
        if key in n:
            return key
    if "fusion" in n:
        return "other fusion"
    return "other"


def profile_call(fn, args, n_steps):
    """Per-kernel device time of one call (ms per step), from a jax.profiler trace."""
    from jax.profiler import ProfileData

    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d):
            jax.block_until_ready(fn(*args))
        files = list(Path(d).rglob("*.xplane.pb"))
        data = ProfileData.from_file(str(files[0]))
    per: dict[str, list[float]] = {}
    for plane in data.planes:
        if not plane.name.startswith("/device:GPU"):
            continue
        for line in plane.lines:
            if "stream" not in line.name.lower() or "memcpy" in line.name.lower():
                continue
            for e in line.events:
                entry = per.setdefault(e.name, [0, 0.0])
                entry[0] += 1
                entry[1] += e.duration_ns / 1e6
    rows = sorted(per.items(), key=lambda kv: -kv[1][1])
    total = sum(v[1] for _, v in rows)
    cats: dict[str, list[float]] = {}
    for k, v in rows:
        c = cats.setdefault(_category(k), [0, 0.0])
        c[0] += v[0] / n_steps
        c[1] += v[1] / n_steps
    return {
        "categories_ms_per_step": {k: {"kernels": v[0], "ms": v[1]} for k, v in cats.items()},
        "device_ms_per_step": total / n_steps,
        "kernels_per_step": sum(v[0] for _, v in rows) / n_steps,
        "top": [
            {"kernel": k[:160], "calls_per_step": v[0] / n_steps, "ms_per_step": v[1] / n_steps}
            for k, v in rows[:40]
        ],
    }


def main() -> None:
    a = parse()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    res: dict = {"args": vars(a), "device": str(jax.devices()[0]), "jax": jax.__version__}
    dump = lambda: (out / "variants.json").write_text(json.dumps(res, indent=1, default=str))
    log(f"device {res['device']}, jax {jax.__version__}")

    config = load_state_config(a.state) if a.state else TrainConfig(size=a.size)
    if a.tiny:
        config = TrainConfig(size=a.size, channels=(8, 16, 16), emb_dim=16, groups=4)
    grid = CMBGrid.load()
    lam = covariance_eigenvalues(
        grid.ell, np.exp(grid.interpolate(np.asarray(PHI))), a.size, config.pixel_arcmin
    ).astype(jnp.float32)
    maps = np.zeros((1, config.size, config.size), np.float32)
    # the sampler's Sigma: the CMB at PHI whatever phi (timing only needs one)
    trainer = Trainer(config, maps, lambda phi: jnp.broadcast_to(lam, (phi.shape[0], *lam.shape)))
    if a.state and not a.tiny:
        params = load_state(a.state, trainer).ema
    else:
        params = trainer.init_state().ema
    res["model"] = {"state": a.state, "channels": config.channels, "groups": config.groups}
    sq = jnp.sqrt(lam)
    phi = jnp.asarray(PHI, jnp.float32)
    z0 = jax.random.normal(jax.random.key(1), (a.batch, a.size, a.size), jnp.float32)
    z0 = jnp.real(jnp.fft.ifft2(jnp.fft.fft2(z0) * sq)).astype(jnp.float32)
    key = jax.random.key(2)
    dt = 1.0 / max(a.full_steps, 1000)
    t_end = 1.0 - a.steps * dt

    # one network evaluation vs the float32 module (t = 0.5)
    t_half = jnp.full((a.batch,), 0.5, jnp.float32)
    phis = jnp.broadcast_to(phi, (a.batch, 2))
    net_ref32 = jax.jit(lambda p, z: trainer.model(p, "float32")(z, t_half, phis))
    m_ref = net_ref32(params, z0)
    errs = {}
    for prec in ("float32", "bfloat16"):
        f_fast = jax.jit(lambda p, z, prec=prec: trainer.noise_fn(p, phi, prec)(z, t_half))
        f_ref = jax.jit(lambda p, z, prec=prec: trainer.model(p, prec)(z, t_half, phis))
        nrm = jnp.linalg.norm(m_ref)
        errs[f"fast_{prec}_vs_ref_float32"] = float(
            jnp.linalg.norm(f_fast(params, z0) - m_ref) / nrm
        )
        if prec == "bfloat16":
            errs["ref_bfloat16_vs_ref_float32"] = float(
                jnp.linalg.norm(f_ref(params, z0).astype(jnp.float32) - m_ref) / nrm
            )
    res["network_rel_err"] = errs
    log(f"network relative differences (t=0.5): {errs}")
    dump()

    samplers = {"ref": ref_sampler, "fast": fast_sampler, "fastconcat": fastconcat_sampler}
    if a.profile:  # the first trace of a process may come back without device events
        with tempfile.TemporaryDirectory() as d, jax.profiler.trace(d):
            jax.block_until_ready(jnp.ones(8) + 1)
    res["variants"] = {}
    finals = {}
    hlo_texts = {}
    for name in a.variants.split(","):
        kind, prec = name.split("_")

        def run(params, key, z, kind=kind, prec=prec):
            return samplers[kind](trainer, params, prec, phi, key, z, sq, 1.0, t_end, a.steps)

        t = time.perf_counter()
        compiled = jax.jit(run).lower(params, key, z0).compile()
        tc = time.perf_counter() - t
        text = compiled.as_text()
        entry: dict = {"compile_seconds": tc}
        if a.hlo:
            entry["hlo"] = hlo_op_counts(text)
            hlo_texts[name] = text
        t = time.perf_counter()
        z = jax.block_until_ready(compiled(params, key, z0))
        entry["warmup_seconds"] = time.perf_counter() - t
        times = []
        for _ in range(a.reps):
            t = time.perf_counter()
            z = jax.block_until_ready(compiled(params, key, z0))
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        entry |= {
            "steps": a.steps,
            "seconds": times,
            "ms_per_step": 1e3 * med / a.steps,
            "ms_per_step_min": 1e3 * min(times) / a.steps,
            "projected_1000_steps_seconds": med / a.steps * 1000,
            "finite": bool(jnp.isfinite(z).all()),
        }
        finals[name] = z
        if a.profile:
            try:
                entry["profile"] = profile_call(compiled, (params, key, z0), a.steps)
            except Exception as e:  # the timings must not be lost
                entry["profile"] = {"error": repr(e)}
        res["variants"][name] = entry
        log(
            f"{name:14s}: {entry['ms_per_step']:7.2f} ms/step (min {entry['ms_per_step_min']:.2f}),"
            f" compile {tc:.1f} s" + (f", {entry['hlo']['kernels_total']} kernels" if a.hlo else "")
        )
        dump()
    diffs = {}
    for prec in ("float32", "bfloat16"):
        f, r = finals.get(f"fast_{prec}"), finals.get(f"ref_{prec}")
        if f is not None and r is not None:
            diffs[f"fast_vs_ref_{prec}"] = float(jnp.linalg.norm(f - r) / jnp.linalg.norm(r))
    if "fast_bfloat16" in finals and "ref_float32" in finals:
        r = finals["ref_float32"]
        diffs["fast_bfloat16_vs_ref_float32"] = float(
            jnp.linalg.norm(finals["fast_bfloat16"] - r) / jnp.linalg.norm(r)
        )
    if "ref_bfloat16" in finals and "ref_float32" in finals:
        r = finals["ref_float32"]
        diffs["ref_bfloat16_vs_ref_float32"] = float(
            jnp.linalg.norm(finals["ref_bfloat16"] - r) / jnp.linalg.norm(r)
        )
    res["z_after_steps_rel_diff"] = diffs
    log(f"z after {a.steps} steps, relative differences: {diffs}")
    dump()

    if a.full_steps > 0:
        # the full sampling as Trainer.generate runs it (prior draw + 1000 steps, bf16)
        def gen(params, key):
            return trainer.generate(params, key, a.batch, PHI, a.full_steps, precision="bfloat16")

        t = time.perf_counter()
        compiled = jax.jit(gen).lower(params, jax.random.key(0)).compile()
        tc = time.perf_counter() - t
        t = time.perf_counter()
        x = jax.block_until_ready(compiled(params, jax.random.key(0)))
        ts = time.perf_counter() - t
        res["full_fast_bfloat16"] = {
            "n_maps": a.batch,
            "steps": a.full_steps,
            "compile_seconds": tc,
            "sample_seconds": ts,
            "ms_per_step": 1e3 * ts / a.full_steps,
            "finite": bool(jnp.isfinite(x).all()),
            "pixel_mean": float(x.mean()),
            "pixel_std": float(x.std()),
        }
        log(f"full fast bf16: {a.batch} maps x {a.full_steps} steps: {ts:.1f} s (+{tc:.1f} s)")
    res["total_seconds"] = time.perf_counter() - T0
    dump()
    if hlo_texts:
        with zipfile.ZipFile(out / "hlo.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            for name, text in hlo_texts.items():
                zf.writestr(f"{name}.hlo.txt", text)
    _table(res)


def _table(res: dict) -> None:
    print("\n=== sampling step variants ===")
    print(f"device {res['device']}, model {res['model']}")
    for name, e in res.get("variants", {}).items():
        k = f", {e['hlo']['kernels_total']} kernels" if "hlo" in e else ""
        print(
            f"{name:14s} {e['ms_per_step']:7.2f} ms/step -> {e['projected_1000_steps_seconds']:5.1f}"
            f" s / 1000 steps (compile {e['compile_seconds']:.1f} s{k})"
        )
        if "profile" in e and "top" in e["profile"]:
            pr = e["profile"]
            print(
                f"   profile: {pr['device_ms_per_step']:.2f} device ms/step, "
                f"{pr['kernels_per_step']:.0f} kernels/step; by kind: "
                + ", ".join(
                    f"{k} {v['ms']:.2f} ms ({v['kernels']:.0f})"
                    for k, v in pr["categories_ms_per_step"].items()
                )
            )
            for row in pr["top"][:12]:
                print(
                    f"     {row['ms_per_step']:6.3f} ms x{row['calls_per_step']:4.1f} "
                    f"{row['kernel'][:90]}"
                )
    print(f"network rel err: {res.get('network_rel_err')}")
    print(f"z after steps rel diff: {res.get('z_after_steps_rel_diff')}")
    if "full_fast_bfloat16" in res:
        f = res["full_fast_bfloat16"]
        print(
            f"full fast bf16: {f['n_maps']} maps x {f['steps']} steps {f['sample_seconds']:.1f} s"
            f" (+{f['compile_seconds']:.1f} s compile); target < 60 s"
        )
    print(f"total {res.get('total_seconds', 0):.0f} s")


if __name__ == "__main__":
    main()

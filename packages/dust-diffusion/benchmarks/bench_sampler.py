"""CPU benchmark: Euler-Maruyama posterior sampling (exact Gaussian score) and UNet-driven runs
(float32 and bfloat16 networks side by side).

Prints a table and saves ``results/bench_sampler_<machine>.json``.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from dust_diffusion import (
    LinearSchedule,
    TrainConfig,
    Trainer,
    gaussian_field,
    gaussian_prior_noise_fn,
    power_law_eigenvalues,
    sample_posterior,
    wiener_posterior,
)


def timed(fn, *args):
    out = fn(*args)
    jax.block_until_ready(out)
    t = time.perf_counter()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, time.perf_counter() - t


def main() -> None:
    rows = []
    s = LinearSchedule()
    for n, n_samples, steps in [(32, 64, 200), (64, 32, 200)]:
        lam = jnp.asarray(power_law_eigenvalues(n, 1.0), jnp.float32)
        p = jnp.asarray(power_law_eigenvalues(n, 3.0), jnp.float32)
        y = gaussian_field(jax.random.key(0), p) + 0.6 * gaussian_field(jax.random.key(1), lam)
        fn = gaussian_prior_noise_fn(p, lam, s)
        run = jax.jit(
            lambda k, y=y, fn=fn, lam=lam, n_samples=n_samples, steps=steps: sample_posterior(
                k, fn, y, 0.6, lam, s, n_samples, steps
            )
        )
        (dust, _), dt = timed(run, jax.random.key(2))
        mean, _ = wiener_posterior(y, p, lam, 0.6)
        err = float(jnp.sqrt(jnp.mean((dust.mean(0) - mean) ** 2)) / jnp.std(mean))
        rows.append(
            {
                "case": "exact-score posterior",
                "n": n,
                "samples": n_samples,
                "steps": steps,
                "seconds": dt,
                "rel_rms_mean_vs_wiener": err,
            }
        )
    n = 32
    config = TrainConfig(size=n, channels=(16, 32, 32), emb_dim=32, batch_size=16)
    lam = jnp.asarray(power_law_eigenvalues(n, 1.0), jnp.float32)
    maps = np.asarray(gaussian_field(jax.random.key(0), lam, (64,)))
    trainer = Trainer(config, maps, lambda phi: jnp.broadcast_to(lam, (phi.shape[0], n, n)))
    jax.block_until_ready(trainer.train_steps(trainer.init_state(), 10))  # compile + warm up
    t = time.perf_counter()
    state, _ = trainer.train_steps(trainer.init_state(), 10)
    jax.block_until_ready(state.params)
    rows.append(
        {
            "case": "UNet train steps (batch 16)",
            "n": n,
            "samples": 16,
            "steps": 10,
            "seconds": time.perf_counter() - t,
        }
    )
    gens = {}
    for precision in ("float32", "bfloat16"):
        (gens[precision], dt) = timed(
            lambda k, p=precision: trainer.generate(state.ema, k, 8, n_steps=50, precision=p),
            jax.random.key(3),
        )
        rows.append(
            {
                "case": f"UNet generation {precision}",
                "n": n,
                "samples": 8,
                "steps": 50,
                "seconds": dt,
                "ms_per_step": 1e3 * dt / 50,
            }
        )
    rows[-1]["rel_diff_vs_float32"] = float(
        jnp.linalg.norm(gens["bfloat16"] - gens["float32"]) / jnp.linalg.norm(gens["float32"])
    )
    # the default UNet (32, 64, 128) at 64 x 64: per-step cost of the two precisions
    n = 64
    config = TrainConfig(size=n)
    lam = jnp.asarray(power_law_eigenvalues(n, 1.0), jnp.float32)
    big = Trainer(config, np.zeros((1, n, n), np.float32), lambda phi: lam[None])
    params = big.init_state().params
    for precision in ("float32", "bfloat16"):
        _, dt = timed(
            lambda k, p=precision: big.generate(params, k, 16, n_steps=10, precision=p),
            jax.random.key(4),
        )
        rows.append(
            {
                "case": f"default UNet generation {precision}",
                "n": n,
                "samples": 16,
                "steps": 10,
                "seconds": dt,
                "ms_per_step": 1e3 * dt / 10,
            }
        )
    print(f"{'case':36s} {'n':>4s} {'samples':>8s} {'steps':>6s} {'seconds':>9s} {'ms/step':>8s}")
    for r in rows:
        ms = f"{r['ms_per_step']:8.1f}" if "ms_per_step" in r else " " * 8
        print(
            f"{r['case']:36s} {r['n']:4d} {r['samples']:8d} {r['steps']:6d} "
            f"{r['seconds']:9.3f} {ms}"
        )
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    path = out / f"bench_sampler_{platform.node() or 'machine'}.json"
    path.write_text(
        json.dumps(
            {
                "machine": platform.node(),
                "cpu": platform.processor(),
                "jax": jax.__version__,
                "rows": rows,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

"""CPU benchmark: Euler-Maruyama posterior sampling (exact Gaussian score) and a UNet-driven run.

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
    state = trainer.init_state()
    trainer.train_steps(state, 10)
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
    _, dt = timed(lambda k: trainer.generate(state.ema, k, 8, n_steps=50), jax.random.key(3))
    rows.append({"case": "UNet generation", "n": n, "samples": 8, "steps": 50, "seconds": dt})
    print(f"{'case':32s} {'n':>4s} {'samples':>8s} {'steps':>6s} {'seconds':>9s}")
    for r in rows:
        print(f"{r['case']:32s} {r['n']:4d} {r['samples']:8d} {r['steps']:6d} {r['seconds']:9.3f}")
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

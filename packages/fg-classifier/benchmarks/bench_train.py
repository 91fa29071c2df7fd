"""CPU benchmark: simulation, training and chi^2-baseline throughput at small sizes.

Prints a table and writes ``results/bench_train_<machine>.json``. The full-size run with the
paper's accuracies is ``gpu_train.py`` (GPU).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import fg_classifier as fc
import jax
from spec_likelihood import farsian2020, white_noise_sigma

HERE = Path(__file__).resolve().parent


def main() -> None:
    jax.config.update("jax_enable_x64", True)
    inst = farsian2020()
    sky = fc.load_templates(HERE / "data" / "synthetic_sky_ns16.npz")
    rows = []

    t0 = time.perf_counter()
    ts = fc.simulate_training_set(sky, inst, "four", n_maps=2, seed=0)
    jax.block_until_ready(ts.data)
    dt = time.perf_counter() - t0
    rows.append(
        ("simulate four-class set (incl. compile)", ts.data.shape[0], dt, ts.data.shape[0] / dt)
    )

    for task, cfg in (
        ("curvature", fc.TrainConfig(batch_size=256, max_epochs=3)),
        ("four", fc.TrainConfig(batch_size=256, max_epochs=3)),
    ):
        data = fc.simulate_training_set(sky, inst, task, n_maps=1, seed=1)
        spec = fc.ClassifierSpec.for_instrument(task, inst)
        res = fc.train(fc.Classifier.create(spec), data.data, data.labels, cfg)
        n_seen = 0.8 * data.data.shape[0] * res.epochs_run
        rows.append(
            (
                f"train paper {task} net, 3 epochs (incl. compile)",
                int(n_seen),
                res.train_seconds,
                n_seen / res.train_seconds,
            )
        )

    test = fc.simulate_test_maps(fc.synthetic_templates(4, seed=0), inst, "curvature", noise=True)
    sigma = white_noise_sigma(inst, 4)
    t0 = time.perf_counter()
    chi = fc.chi2_model_comparison(test.maps[0], inst.frequencies, sigma)
    jax.block_until_ready(chi.choice)
    dt = time.perf_counter() - t0
    rows.append(("chi^2 per-pixel fits, 2 models, nside 4 (incl. compile)", 192, dt, 192 / dt))

    print(f"{'step':58s} {'items':>9s} {'seconds':>9s} {'items/s':>10s}")
    for name, n, sec, rate in rows:
        print(f"{name:58s} {n:9d} {sec:9.2f} {rate:10.1f}")
    out = HERE / "results" / f"bench_train_{platform.node() or 'machine'}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "machine": platform.node(),
                "device": str(jax.devices()[0]),
                "rows": [
                    {"step": n, "items": i, "seconds": s, "per_second": r} for n, i, s, r in rows
                ],
                "chi2_accuracy_noisy_nside4": fc.accuracy(chi.choice, test.labels),
            },
            indent=1,
        )
    )
    print(f"-> {out}")


if __name__ == "__main__":
    main()

"""Full training of the Farsian et al. 2020 classifiers on a GPU: Tables 2 and 3 and chi^2.

Run (JAX with CUDA; no healpy or pysm3 needed: the built-in synthetic sky is read from
``benchmarks/data/synthetic_sky_ns{64,16}.npz``)::

    PYTHONPATH=packages/fg-classifier/src:packages/spec-likelihood/src \\
        python packages/fg-classifier/benchmarks/gpu_train.py --out DIR

``--tiny`` runs the same protocol at toy sizes (CPU, a few minutes). Protocol per task
(curvature, ame, four), scaled from the paper (section 4) to a ~4 minute budget:

1. noiseless training set: nside-64 templates, 2 maps per model, each pixel used
   ``--oversample`` times (16: the vector count of nside 256) -> the paper network
   (min-max inputs, Adadelta lr 1.0) -> Table 2 (train / test accuracy);
2. noisy nside-16 test maps -> Table 3 column 1 (noiseless training);
3. retraining from the noiseless network on the same high-resolution set with one noise
   realisation at that resolution -> Table 3 column 2;
4. retraining from the noiseless network on 100 noisy nside-16 maps per model -> column 3;
5. the modern variant (signal-to-noise + asinh features, AdamW, GELU, no dropout):
   noiseless training, then retraining on the 100 noisy nside-16 maps;
6. chi^2 baseline (section 5) on the noisy curvature test maps (float64).

Results go to ``DIR/gpu_train.json`` (accuracies beside the paper's, training times) and a
summary table is printed last.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import replace
from pathlib import Path

import fg_classifier as fc
import jax
import numpy as np
from spec_likelihood import farsian2020, white_noise_sigma

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"


def _templates(nside: int):
    path = DATA / f"synthetic_sky_ns{nside}.npz"
    if path.is_file():
        return fc.load_templates(path)
    return fc.synthetic_templates(nside, seed=0)


def _eval(clf, test):
    return fc.evaluate_maps(clf, test).accuracy


def _train_acc(result):
    return result.history["accuracy"][result.best_epoch - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny", action="store_true", help="toy sizes, CPU check")
    parser.add_argument("--tasks", default="curvature,ame,four")
    parser.add_argument("--oversample", type=int, default=16)
    parser.add_argument(
        "--seconds",
        type=float,
        default=16.0,
        help="base training budget [s] of a noiseless training (x1.4 curvature, x0.6 ame; "
        "retrainings: half; modern variant: 0.8 and 0.4)",
    )
    parser.add_argument("--test-realisations", type=int, default=4)
    parser.add_argument("--chi2-pixels", type=int, default=3072)
    parser.add_argument("--modern-features", default="snr_log", choices=["snr", "snr_log"])
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    inst = farsian2020()
    if args.tiny:
        high, low, oversample, n_noisy_maps, n_real = 8, 8, 1, 4, 1
        paper_cfg = fc.TrainConfig(batch_size=64, max_epochs=2, patience=5)
        modern_cfg = fc.TrainConfig(
            optimizer="adamw", learning_rate=2e-3, batch_size=64, max_epochs=2, patience=5
        )
        seconds, chi2_pixels = None, 48
    else:
        high, low, oversample, n_noisy_maps = 64, 16, args.oversample, 100
        n_real = args.test_realisations
        paper_cfg = fc.TrainConfig(batch_size=1024, max_epochs=1000, patience=20)
        modern_cfg = fc.TrainConfig(
            optimizer="adamw", learning_rate=2e-3, batch_size=1024, max_epochs=1000, patience=20
        )
        seconds, chi2_pixels = args.seconds, args.chi2_pixels
    t_high = _templates(high) if not args.tiny else fc.synthetic_templates(high, seed=0)
    t_low = _templates(low) if not args.tiny else t_high
    high_equiv = int(high * np.sqrt(oversample))

    weights = {"curvature": 1.4, "ame": 0.6, "four": 1.0}

    def fit(clf, data, labels, cfg, task, factor, checkpoint_dir=None):
        """Train within ``seconds * weight(task) * factor``: one calibration epoch, then as
        many epochs as the rest of the budget holds (the AdamW cosine schedule spans them)."""
        if seconds is None:
            return fc.train(clf, data, labels, cfg, checkpoint_dir=checkpoint_dir)
        limit = seconds * weights.get(task, 1.0) * factor
        first = fc.train(clf, data, labels, replace(cfg, max_epochs=1))
        left = limit - first.train_seconds
        epochs = max(1, int(left / first.train_seconds * 1.5))
        second = fc.train(
            first.classifier,
            data,
            labels,
            replace(cfg, max_epochs=epochs, max_seconds=max(left, 1.0)),
            checkpoint_dir=checkpoint_dir,
        )
        history = {k: first.history[k] + second.history[k] for k in first.history}
        return second._replace(
            history=history,
            best_epoch=second.best_epoch + 1,
            epochs_run=second.epochs_run + 1,
            train_seconds=first.train_seconds + second.train_seconds,
        )

    report: dict = {
        "device": str(jax.devices()[0]),
        "platform": platform.platform(),
        "jax": jax.__version__,
        "sky": t_high.source,
        "nside_train_equivalent": high_equiv,
        "nside_test": low,
        "oversample": oversample,
        "noisy_maps_per_model": n_noisy_maps,
        "test_realisations": n_real,
        "paper_table2": fc.PAPER_TABLE2,
        "paper_table3": fc.PAPER_TABLE3,
        "paper_chi2": fc.PAPER_CHI2_ACCURACY,
        "tasks": {},
    }
    table2: dict = {}
    table3: dict = {}
    side_by_side: dict | None = None
    for task in args.tasks.split(","):
        r: dict = {}
        t0 = time.perf_counter()
        clean = fc.simulate_training_set(
            t_high, inst, task, n_maps=2, oversample=oversample, seed=10
        )
        noisy_high = fc.simulate_training_set(
            t_high, inst, task, n_maps=2, oversample=oversample, noise_nside=high_equiv, seed=11
        )
        noisy_low = fc.simulate_training_set(
            t_low, inst, task, n_maps=n_noisy_maps, noise_nside=low, seed=12
        )
        test_clean = fc.simulate_test_maps(t_low, inst, task, n_real=n_real, seed=20)
        test_noisy = fc.simulate_test_maps(t_low, inst, task, n_real=n_real, noise=True, seed=21)
        jax.block_until_ready(noisy_low.data)
        r["simulation_seconds"] = time.perf_counter() - t0
        r["n_train_noiseless"] = int(clean.data.shape[0])
        r["n_train_noisy_nside16"] = int(noisy_low.data.shape[0])

        spec = fc.ClassifierSpec.for_instrument(task, inst, "minmax")
        res = fit(
            fc.Classifier.create(spec, seed=0),
            clean.data,
            clean.labels,
            paper_cfg,
            task,
            1.0,
            checkpoint_dir=out / f"{task}_paper_noiseless",
        )
        r["paper_noiseless"] = {
            "train_accuracy": _train_acc(res),
            "val_accuracy": res.history["val_accuracy"][res.best_epoch - 1],
            "test_accuracy": _eval(res.classifier, test_clean),
            "noisy_test_accuracy": _eval(res.classifier, test_noisy),
            "epochs": res.epochs_run,
            "train_seconds": res.train_seconds,
        }
        re_high = fit(res.classifier, noisy_high.data, noisy_high.labels, paper_cfg, task, 0.5)
        r["paper_retrained_high_nside"] = {
            "noisy_test_accuracy": _eval(re_high.classifier, test_noisy),
            "epochs": re_high.epochs_run,
            "train_seconds": re_high.train_seconds,
        }
        re_low = fit(
            res.classifier,
            noisy_low.data,
            noisy_low.labels,
            paper_cfg,
            task,
            0.5,
            checkpoint_dir=out / f"{task}_paper_nside16",
        )
        ev = fc.evaluate_maps(re_low.classifier, test_noisy)
        r["paper_retrained_nside16"] = {
            "noisy_test_accuracy": ev.accuracy,
            "confusion": ev.confusion.tolist(),
            "epochs": re_low.epochs_run,
            "train_seconds": re_low.train_seconds,
        }
        mspec = fc.ClassifierSpec.for_instrument(
            task,
            inst,
            args.modern_features,
            hidden=(256, 256, 128, 64),
            activation="gelu",
            dropout=0.0,
        )
        mres = fit(
            fc.Classifier.create(mspec, seed=0), clean.data, clean.labels, modern_cfg, task, 0.8
        )
        mre = fit(
            mres.classifier,
            noisy_low.data,
            noisy_low.labels,
            modern_cfg,
            task,
            0.4,
            checkpoint_dir=out / f"{task}_modern_nside16",
        )
        mev = fc.evaluate_maps(mre.classifier, test_noisy)
        r["modern"] = {
            "train_accuracy": _train_acc(mres),
            "test_accuracy": _eval(mres.classifier, test_clean),
            "noisy_test_accuracy_noiseless_training": _eval(mres.classifier, test_noisy),
            "noisy_test_accuracy_retrained_nside16": mev.accuracy,
            "confusion": mev.confusion.tolist(),
            "train_seconds": mres.train_seconds + mre.train_seconds,
        }
        if not args.tiny or task == args.tasks.split(",")[0]:
            p_true = np.take_along_axis(ev.probabilities[0], test_noisy.labels[:, None], 1)[:, 0]
            try:
                fc.plot_probability_map(
                    out / f"{task}_probability_map.png",
                    p_true,
                    ev.predicted[0] == test_noisy.labels,
                    title=task,
                )
            except ImportError:  # healpy absent on the GPU machine: maps stay in the JSON
                np.save(out / f"{task}_probability_true.npy", p_true)
        if task == "curvature":
            side_by_side = {
                "test_clean": test_clean,
                "test_noisy": test_noisy,
                "paper_retrained_nside16": ev.predicted[0],
                "modern_retrained_nside16": mev.predicted[0],
            }
        r["task_seconds"] = time.perf_counter() - t0
        report["tasks"][task] = r
        table2[task] = {
            "train": r["paper_noiseless"]["train_accuracy"],
            "test": r["paper_noiseless"]["test_accuracy"],
        }
        table3[task] = {
            "noiseless_training": r["paper_noiseless"]["noisy_test_accuracy"],
            "retrained_high_nside": r["paper_retrained_high_nside"]["noisy_test_accuracy"],
            "retrained_nside16": r["paper_retrained_nside16"]["noisy_test_accuracy"],
            "modern_noiseless_test": r["modern"]["test_accuracy"],
            "modern_retrained_nside16": r["modern"]["noisy_test_accuracy_retrained_nside16"],
        }
        (out / "gpu_train.json").write_text(json.dumps(report, indent=1))
        print(f"[{task}] done in {r['task_seconds']:.1f} s", flush=True)

    # chi^2 baseline (section 5), float64, on the first realisation of the same curvature
    # test maps as the networks
    jax.config.update("jax_enable_x64", True)
    if side_by_side is None:
        side_by_side = {
            "test_clean": fc.simulate_test_maps(t_low, inst, "curvature", n_real=1, seed=20),
            "test_noisy": fc.simulate_test_maps(
                t_low, inst, "curvature", n_real=1, noise=True, seed=21
            ),
        }
    pix = np.arange(min(chi2_pixels, t_low.npix))
    sigma = white_noise_sigma(inst, low)
    report["chi2"] = {"pixels": int(pix.size), "paper_accuracy": fc.PAPER_CHI2_ACCURACY}
    for name in ("test_noisy", "test_clean"):
        maps = side_by_side[name]
        t0 = time.perf_counter()
        chi = fc.chi2_model_comparison(
            np.asarray(maps.maps[0], dtype=np.float64)[..., pix], inst.frequencies, sigma
        )
        report["chi2"][name] = {
            "accuracy": fc.accuracy(chi.choice, maps.labels[pix]),
            "converged": bool(chi.converged),
            "seconds": time.perf_counter() - t0,
        }
    for name in ("paper_retrained_nside16", "modern_retrained_nside16"):
        if name in side_by_side:
            labels = side_by_side["test_noisy"].labels[pix]
            report["chi2"][f"network_{name}_same_pixels"] = fc.accuracy(
                side_by_side[name][pix], labels
            )
    chi_acc = report["chi2"]["test_noisy"]["accuracy"]
    report["total_seconds"] = time.perf_counter() - t_start
    report["table2_markdown"] = fc.format_table2(table2)
    report["table3_markdown"] = fc.format_table3(table3)
    (out / "gpu_train.json").write_text(json.dumps(report, indent=1))

    print(f"device {report['device']}, total {report['total_seconds']:.1f} s")
    print("Table 2 (noiseless), paper network:")
    print(report["table2_markdown"])
    print("Table 3 (noisy nside-16 test maps):")
    print(report["table3_markdown"])
    times = {t: round(v["task_seconds"], 1) for t, v in report["tasks"].items()}
    print(
        f"chi^2 model choice (curvature, noisy): {100 * chi_acc:.1f}% (paper ~73%); "
        f"noiseless {100 * report['chi2']['test_clean']['accuracy']:.1f}%; networks on the same "
        f"pixels: {[round(v, 3) for k, v in report['chi2'].items() if k.startswith('network')]}; "
        f"task seconds {times}"
    )


if __name__ == "__main__":
    main()

"""Full training of the Farsian et al. 2020 classifiers on a GPU: Tables 2 and 3 and chi^2.

Run (JAX with CUDA; no healpy or pysm3 needed: the built-in synthetic sky is read from
``benchmarks/data/synthetic_sky_ns{64,16}.npz``)::

    PYTHONPATH=packages/fg-classifier/src:packages/spec-likelihood/src \\
        python packages/fg-classifier/benchmarks/gpu_train.py --out DIR

``--tiny`` runs the same protocol (without the min-max run) for the two binary tasks on
nside-16 templates with an 80 s training budget (CPU check, < 3 minutes).
Protocol per task (curvature, ame, four), scaled from the paper (section 4):

1. noiseless training set: nside-64 templates, 2 maps per model, each pixel used
   ``--oversample`` times (16: the vector count of nside 256) -> the paper network
   (architecture, dropout 0.5, Adadelta lr 1.0 rho 0.95 eps 1e-7) on the default ``snr``
   inputs, batches of 1024 (``--batch-size``; Adadelta's progress is per step and a step costs
   the same for any small batch on a GPU, see ``fg_classifier._train``) -> Table 2;
2. noisy nside-16 test maps -> Table 3 column 1 (noiseless training);
3. retraining from the noiseless network on the same high-resolution set with one noise
   realisation at that resolution -> Table 3 column 2;
4. retraining from the noiseless network on 100 noisy nside-16 maps per model -> column 3;
5. the paper's exact recipe (min-max inputs) with the same budget as step 1, to document that
   it stays at chance on these simulations (``--skip-minmax`` drops it);
6. the modern variant (signal-to-noise + asinh features, AdamW, GELU, no dropout):
   noiseless training, then retraining on the 100 noisy nside-16 maps;
7. chi^2 baseline (section 5) on the noisy curvature test maps (float64);
8. the near-Bayes-optimal curvature choice (``fc.curvature_bayes_choice``) on the same noisy
   maps: the information ceiling that any per-pixel classifier faces there.

Independence: training sets and test maps use different seeds (beta_s, modulation and noise
draws) and the test maps' CMB realisation is held out of the training CMB pool.

Each training has a wall-time budget, a share of ``--budget`` seconds (curvature 0.33, ame
0.27, four 0.40 of the total, renormalised over ``--tasks``; within a task: paper noiseless
0.30, its two retrainings 0.10 and 0.17, min-max 0.13, modern 0.20 + 0.10), checked every
``steps_per_epoch`` mini-batches. The default budget (300 s of training) keeps a run on one
H200 under ~6 minutes including compilation, simulation, the chi^2 fits and the Bayes
reference (~30 s on CPU). Results go to
``DIR/gpu_train.json`` (accuracies beside the paper's, steps and seconds); progress lines are
printed as the run goes and a summary table last.
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
TASK_SHARE = {"curvature": 0.33, "ame": 0.27, "four": 0.40}
STAGE_SHARE = {
    "paper": 0.30,
    "paper_high": 0.10,
    "paper_nside16": 0.17,
    "minmax": 0.13,
    "modern": 0.20,
    "modern_nside16": 0.10,
}


def _templates(nside: int):
    path = DATA / f"synthetic_sky_ns{nside}.npz"
    if path.is_file():
        return fc.load_templates(path)
    return fc.synthetic_templates(nside, seed=0)


def _eval(clf, test):
    return fc.evaluate_maps(clf, test).accuracy


def _best(result, key):
    return result.history[key][result.best_epoch - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tiny", action="store_true", help="nside-16 CPU check (~2 min)")
    parser.add_argument("--tasks", default=None, help="default curvature,ame,four (tiny: 2)")
    parser.add_argument("--oversample", type=int, default=16)
    parser.add_argument("--budget", type=float, default=None, help="training seconds, all tasks")
    parser.add_argument("--steps-per-epoch", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None, help="paper recipe batch")
    parser.add_argument("--test-realisations", type=int, default=4)
    parser.add_argument("--chi2-pixels", type=int, default=3072)
    parser.add_argument("--modern-features", default="snr_log", choices=["snr", "snr_log"])
    parser.add_argument("--skip-minmax", action="store_true", help="skip the min-max run")
    parser.add_argument("--verbose", action="store_true", help="one line per epoch")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()

    inst = farsian2020()
    if args.tiny:
        high, low, oversample, n_noisy_maps, n_real = 16, 16, 4, 20, 1
        budget = 80.0 if args.budget is None else args.budget
        steps_per_epoch = args.steps_per_epoch or 500
        chi2_pixels, modern_batch, paper_batch = 96, 256, args.batch_size or 256
    else:
        high, low, oversample, n_noisy_maps = 64, 16, args.oversample, 100
        n_real = args.test_realisations
        budget = 300.0 if args.budget is None else args.budget
        steps_per_epoch = args.steps_per_epoch or 2000
        chi2_pixels, modern_batch, paper_batch = args.chi2_pixels, 1024, args.batch_size or 1024
    # the paper recipe: Adadelta lr 1.0 (rho 0.95, eps 1e-7); early stopping with a long
    # patience (Adadelta's validation loss is noisy), the wall-time budget ends training
    paper_cfg = fc.TrainConfig(
        batch_size=paper_batch, max_epochs=100000, patience=25, steps_per_epoch=steps_per_epoch
    )
    modern_cfg = fc.TrainConfig(
        optimizer="adamw",
        learning_rate=2e-3,
        batch_size=modern_batch,
        max_epochs=1000,
        patience=20,
        steps_per_epoch=steps_per_epoch,
    )
    t_high = _templates(high)
    t_low = _templates(low)
    high_equiv = int(high * np.sqrt(oversample))

    def fit(clf, data, labels, cfg, seconds, label, checkpoint_dir=None):
        """Train within ``seconds``. Adadelta: one run cut by the budget. AdamW: one
        calibration epoch, then as many epochs as the rest of the budget holds (the cosine
        schedule spans them). No checkpoints in the tiny run (orbax writes take seconds)."""
        t0 = time.perf_counter()
        checkpoint_dir = None if args.tiny else checkpoint_dir
        if cfg.optimizer == "adadelta":
            res = fc.train(
                clf,
                data,
                labels,
                replace(cfg, max_seconds=seconds),
                checkpoint_dir=checkpoint_dir,
                verbose=args.verbose,
            )
        else:
            first = fc.train(clf, data, labels, replace(cfg, max_epochs=1))
            left = seconds - first.train_seconds
            per_epoch = first.train_seconds if first.train_seconds > 0 else 1.0
            epochs = max(1, int(left / per_epoch * 1.5))
            second = fc.train(
                first.classifier,
                data,
                labels,
                replace(cfg, max_epochs=epochs, max_seconds=max(left, 1.0)),
                checkpoint_dir=checkpoint_dir,
                verbose=args.verbose,
            )
            history = {k: first.history[k] + second.history[k] for k in first.history}
            res = second._replace(
                history=history,
                best_epoch=second.best_epoch + 1,
                epochs_run=second.epochs_run + 1,
                train_seconds=first.train_seconds + second.train_seconds,
            )
        n_tr = round((1 - cfg.val_fraction) * data.shape[0])
        steps = res.epochs_run * min(n_tr // cfg.batch_size, cfg.steps_per_epoch or 10**12)
        print(
            f"  {label:34s} {res.epochs_run:4d} epochs {steps:8d} steps "
            f"{time.perf_counter() - t0:6.1f} s  best val acc {_best(res, 'val_accuracy'):.4f}",
            flush=True,
        )
        return res, steps

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
        "training_budget_seconds": budget,
        "paper_recipe": {
            "features": "snr",
            "batch_size": paper_cfg.batch_size,
            "steps_per_epoch": steps_per_epoch,
            "optimizer": "adadelta lr 1.0 rho 0.95 eps 1e-7",
            "dropout": 0.5,
        },
        "paper_table2": fc.PAPER_TABLE2,
        "paper_table3": fc.PAPER_TABLE3,
        "paper_chi2": fc.PAPER_CHI2_ACCURACY,
        "tasks": {},
    }
    table2: dict = {}
    table3: dict = {}
    side_by_side: dict | None = None
    tasks = (args.tasks or ("curvature,ame" if args.tiny else "curvature,ame,four")).split(",")
    weights = {t: TASK_SHARE.get(t, 1.0 / len(tasks)) for t in tasks}
    for task in tasks:
        r: dict = {}
        t0 = time.perf_counter()
        share = budget * weights[task] / sum(weights.values())
        sec = {k: share * v for k, v in STAGE_SHARE.items()}
        if args.skip_minmax or args.tiny:
            sec["paper"] += sec.pop("minmax")
        print(f"[{task}] simulating ...", flush=True)
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
        print(
            f"[{task}] {r['n_train_noiseless']} noiseless, {r['n_train_noisy_nside16']} noisy "
            f"nside-16 vectors in {r['simulation_seconds']:.1f} s; budget {share:.0f} s",
            flush=True,
        )

        spec = fc.ClassifierSpec.for_instrument(task, inst)  # paper network, snr inputs
        res, steps = fit(
            fc.Classifier.create(spec, seed=0),
            clean.data,
            clean.labels,
            paper_cfg,
            sec["paper"],
            "paper noiseless",
            checkpoint_dir=out / f"{task}_paper_noiseless",
        )
        r["paper_noiseless"] = {
            "train_accuracy": _best(res, "accuracy"),
            "val_accuracy": _best(res, "val_accuracy"),
            "test_accuracy": _eval(res.classifier, test_clean),
            "noisy_test_accuracy": _eval(res.classifier, test_noisy),
            "epochs": res.epochs_run,
            "steps": steps,
            "train_seconds": res.train_seconds,
        }
        re_high, steps = fit(
            res.classifier,
            noisy_high.data,
            noisy_high.labels,
            paper_cfg,
            sec["paper_high"],
            f"paper retrain 1 noise nside {high_equiv}",
        )
        r["paper_retrained_high_nside"] = {
            "noisy_test_accuracy": _eval(re_high.classifier, test_noisy),
            "epochs": re_high.epochs_run,
            "steps": steps,
            "train_seconds": re_high.train_seconds,
        }
        re_low, steps = fit(
            res.classifier,
            noisy_low.data,
            noisy_low.labels,
            paper_cfg,
            sec["paper_nside16"],
            f"paper retrain {n_noisy_maps} noise nside {low}",
            checkpoint_dir=out / f"{task}_paper_nside16",
        )
        ev = fc.evaluate_maps(re_low.classifier, test_noisy)
        r["paper_retrained_nside16"] = {
            "noisy_test_accuracy": ev.accuracy,
            "confusion": ev.confusion.tolist(),
            "epochs": re_low.epochs_run,
            "steps": steps,
            "train_seconds": re_low.train_seconds,
        }
        if "minmax" in sec:
            mm_spec = fc.ClassifierSpec.for_instrument(task, inst, "minmax")
            mm, steps = fit(
                fc.Classifier.create(mm_spec, seed=0),
                clean.data,
                clean.labels,
                paper_cfg,
                sec["minmax"],
                "paper exact (min-max) noiseless",
            )
            r["paper_minmax_noiseless"] = {
                "train_accuracy": _best(mm, "accuracy"),
                "test_accuracy": _eval(mm.classifier, test_clean),
                "epochs": mm.epochs_run,
                "steps": steps,
                "train_seconds": mm.train_seconds,
            }
        mspec = fc.ClassifierSpec.for_instrument(
            task,
            inst,
            args.modern_features,
            hidden=(256, 256, 128, 64),
            activation="gelu",
            dropout=0.0,
        )
        mres, _ = fit(
            fc.Classifier.create(mspec, seed=0),
            clean.data,
            clean.labels,
            modern_cfg,
            sec["modern"],
            "modern noiseless",
        )
        mre, _ = fit(
            mres.classifier,
            noisy_low.data,
            noisy_low.labels,
            modern_cfg,
            sec["modern_nside16"],
            f"modern retrain {n_noisy_maps} noise nside {low}",
            checkpoint_dir=out / f"{task}_modern_nside16",
        )
        mev = fc.evaluate_maps(mre.classifier, test_noisy)
        r["modern"] = {
            "train_accuracy": _best(mres, "accuracy"),
            "test_accuracy": _eval(mres.classifier, test_clean),
            "noisy_test_accuracy_noiseless_training": _eval(mres.classifier, test_noisy),
            "noisy_test_accuracy_retrained_nside16": mev.accuracy,
            "confusion": mev.confusion.tolist(),
            "train_seconds": mres.train_seconds + mre.train_seconds,
        }
        if not args.tiny or task == tasks[0]:
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
        if "paper_minmax_noiseless" in r:
            table2[task]["test_minmax"] = r["paper_minmax_noiseless"]["test_accuracy"]
        (out / "gpu_train.json").write_text(json.dumps(report, indent=1))
        print(
            f"[{task}] done in {r['task_seconds']:.1f} s: paper test "
            f"{r['paper_noiseless']['test_accuracy']:.3f}, noisy "
            f"{r['paper_noiseless']['noisy_test_accuracy']:.3f} / "
            f"{r['paper_retrained_high_nside']['noisy_test_accuracy']:.3f} / "
            f"{r['paper_retrained_nside16']['noisy_test_accuracy']:.3f}; modern "
            f"{r['modern']['test_accuracy']:.3f} / "
            f"{r['modern']['noisy_test_accuracy_retrained_nside16']:.3f}",
            flush=True,
        )

    # chi^2 baseline (section 5), float64, on the first realisation of the same curvature
    # test maps as the networks
    print("chi^2 baseline ...", flush=True)
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
    # near-Bayes-optimal reference (fg_classifier._bayes): the information ceiling of the
    # noisy curvature test maps, all realisations, and on the chi^2 pixels
    t0 = time.perf_counter()
    noisy = side_by_side["test_noisy"]
    maps = np.asarray(noisy.maps, dtype=np.float64)
    bayes_acc = [
        fc.accuracy(
            fc.curvature_bayes_choice(maps[r], inst.frequencies, np.asarray(sigma)).choice,
            noisy.labels,
        )
        for r in range(maps.shape[0])
    ]
    report["bayes_curvature"] = {
        "accuracy": float(np.mean(bayes_acc)),
        "per_realisation": bayes_acc,
        "chi2_pixels_accuracy": fc.accuracy(
            fc.curvature_bayes_choice(maps[0][..., pix], inst.frequencies, sigma).choice,
            noisy.labels[pix],
        ),
        "seconds": time.perf_counter() - t0,
        "note": "marginal-likelihood choice (flat amplitudes, beta_s prior N(-3, 0.2)): an "
        "upper reference for per-pixel classifiers on these noisy maps",
    }
    chi_acc = report["chi2"]["test_noisy"]["accuracy"]
    report["total_seconds"] = time.perf_counter() - t_start
    report["table2_markdown"] = fc.format_table2(table2)
    report["table3_markdown"] = fc.format_table3(table3)
    (out / "gpu_train.json").write_text(json.dumps(report, indent=1))

    print(f"device {report['device']}, total {report['total_seconds']:.1f} s")
    print("Table 2 (noiseless), paper network (snr inputs; test_minmax: the paper's inputs):")
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
    print(
        "near-Bayes-optimal curvature choice on the same noisy maps (information ceiling): "
        f"{100 * report['bayes_curvature']['accuracy']:.1f}% (chi^2 pixels: "
        f"{100 * report['bayes_curvature']['chi2_pixels_accuracy']:.1f}%)"
    )


if __name__ == "__main__":
    main()

"""Command line ``fg-classify simulate|train|evaluate|predict`` working in a run folder.

A run folder holds ``config.json`` (the simulation settings), ``training_set.npz``,
``test_maps.npz``, ``checkpoint/`` (orbax weights + metadata), ``history.json``,
``evaluation.json`` (accuracy, confusion matrix) and ``probability_map.png``. ``predict``
classifies any ``[freq, 2, pix]`` uK_CMB frequency maps and writes the model-label map.

Example::

    fg-classify simulate --out runs/c1 --task curvature --nside 16 --oversample 4
    fg-classify train --run runs/c1 --epochs 50
    fg-classify evaluate --run runs/c1
    fg-classify predict --checkpoint runs/c1/checkpoint --maps runs/c1/test_maps.npz \\
        --out runs/c1/labels.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

__all__ = ["main"]


def _templates(args: argparse.Namespace):
    from ._sky import load_templates, pysm_templates, synthetic_templates

    if args.templates is not None:
        templates = load_templates(args.templates)
        if templates.nside != args.nside:
            raise ValueError(
                f"--templates holds nside {templates.nside}, but --nside is {args.nside}"
            )
        return templates
    sky = args.sky
    if sky == "auto":
        sky = "pysm" if args.pysm_data or os.environ.get("PYSM_LOCAL_DATA") else "synthetic"
    if sky == "pysm":
        return pysm_templates(args.nside, seed=args.seed, local_data=args.pysm_data)
    return synthetic_templates(args.nside, seed=args.seed)


def _simulate(args: argparse.Namespace) -> None:
    import jax
    from spec_likelihood import farsian2020

    from ._simulate import SimulationConfig, simulate_test_maps, simulate_training_set

    jax.config.update("jax_enable_x64", True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    inst = farsian2020()
    templates = _templates(args)
    config = SimulationConfig(ame_emissivity=args.ame_emissivity)
    train = simulate_training_set(
        templates,
        inst,
        args.task,
        n_maps=args.n_maps,
        oversample=args.oversample,
        noise_nside=args.noise_nside,
        config=config,
        seed=args.seed,
    )
    np.savez_compressed(
        out / "training_set.npz",
        data=np.asarray(train.data, np.float32),
        labels=np.asarray(train.labels),
        models=np.asarray(train.models),
    )
    test = simulate_test_maps(
        templates,
        inst,
        args.task,
        n_real=args.test_realisations,
        noise=args.test_noise,
        config=config,
        seed=args.seed + 1000,
    )
    np.savez_compressed(
        out / "test_maps.npz",
        maps=np.asarray(test.maps, np.float32),
        labels=test.labels,
        models=test.models,
    )
    (out / "config.json").write_text(json.dumps(vars(args), indent=1, default=str))
    print(f"training vectors {train.data.shape[0]}, test maps {tuple(test.maps.shape)} -> {out}")


def _train(args: argparse.Namespace) -> None:
    from spec_likelihood import farsian2020

    from ._checkpoint import load_classifier
    from ._models import Classifier, ClassifierSpec
    from ._train import TrainConfig, train

    run = Path(args.run)
    data_file = run / "training_set.npz"
    if not data_file.is_file():
        raise ValueError(f"--run {str(run)!r} has no training_set.npz; run `fg-classify simulate`")
    config = json.loads((run / "config.json").read_text())
    with np.load(data_file) as f:
        data, labels = f["data"], f["labels"]
    if args.init is not None:
        clf = load_classifier(args.init)
        if clf.spec.task != config["task"]:
            raise ValueError(
                f"--init classifier is for task {clf.spec.task!r}, run is {config['task']!r}"
            )
    else:
        spec = ClassifierSpec.for_instrument(config["task"], farsian2020(), args.features)
        clf = Classifier.create(spec, seed=args.seed)
    tc = TrainConfig(
        optimizer=args.optimizer,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_epochs=args.epochs,
        steps_per_epoch=args.steps_per_epoch,
        max_seconds=args.max_seconds,
        patience=args.patience,
        seed=args.seed,
    )
    checkpoint = Path(args.checkpoint) if args.checkpoint else run / "checkpoint"
    result = train(clf, data, labels, tc, checkpoint_dir=checkpoint, verbose=args.verbose)
    summary = {
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "train_seconds": result.train_seconds,
        "history": result.history,
    }
    (run / "history.json").write_text(json.dumps(summary, indent=1))
    print(
        f"best epoch {result.best_epoch}/{result.epochs_run}: val_accuracy "
        f"{result.history['val_accuracy'][result.best_epoch - 1]:.4f} -> {checkpoint}"
    )


def _evaluate(args: argparse.Namespace) -> None:
    from ._checkpoint import load_classifier
    from ._evaluate import evaluate_maps, plot_probability_map
    from ._simulate import TestMaps

    run = Path(args.run)
    clf = load_classifier(args.checkpoint or run / "checkpoint")
    test_file = run / "test_maps.npz"
    if not test_file.is_file():
        raise ValueError(f"--run {str(run)!r} has no test_maps.npz; run `fg-classify simulate`")
    with np.load(test_file) as f:
        test = TestMaps(f["maps"], f["labels"], f["models"], np.zeros((f["maps"].shape[0], 0)))
    ev = evaluate_maps(clf, test)
    out = {
        "task": clf.spec.task,
        "classes": list(clf.spec.class_names),
        "accuracy": ev.accuracy,
        "accuracies": ev.accuracies,
        "confusion": ev.confusion.tolist(),
    }
    (run / "evaluation.json").write_text(json.dumps(out, indent=1))
    p_true = np.take_along_axis(ev.probabilities[0], test.labels[:, None], axis=1)[:, 0]
    plot_probability_map(
        run / "probability_map.png", p_true, ev.predicted[0] == test.labels, title=clf.spec.task
    )
    print(f"accuracy {ev.accuracy:.4f}; confusion (rows true, columns predicted):")
    print(ev.confusion)


def _predict(args: argparse.Namespace) -> None:
    from ._checkpoint import load_classifier
    from ._labels import model_label_map

    clf = load_classifier(args.checkpoint)
    path = Path(args.maps)
    if not path.is_file():
        raise ValueError(f"--maps {str(path)!r} is not a file (an .npz holding 'maps')")
    with np.load(path) as f:
        if "maps" not in f:
            raise ValueError(f"--maps {str(path)!r} must hold an array 'maps' [freq, 2, pix]")
        maps = f["maps"]
    if maps.ndim == 4:
        maps = maps[args.realisation]
    labels, proba = clf.predict_maps(maps)
    layout = model_label_map(np.asarray(labels), clf.spec.class_names)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        out,
        model_labels=layout.model_labels,
        patch_labels=layout.patch_labels,
        patch_models=np.array(layout.patch_models),
        class_names=np.array(clf.spec.class_names),
        probabilities=np.asarray(proba, np.float32),
    )
    counts = np.bincount(layout.model_labels, minlength=clf.spec.n_classes)
    print(", ".join(f"{n}: {c}" for n, c in zip(clf.spec.class_names, counts, strict=True)))
    print(f"-> {out}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fg-classify", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="simulate a training set and test maps into a run folder")
    sim.add_argument("--out", required=True, help="run folder")
    sim.add_argument("--task", default="curvature", choices=["curvature", "ame", "four"])
    sim.add_argument("--nside", type=int, default=16, help="template and test-map nside")
    sim.add_argument("--oversample", type=int, default=1, help="uses of each pixel per map")
    sim.add_argument("--n-maps", type=int, default=2, help="training maps per model")
    sim.add_argument("--noise-nside", type=int, default=None, help="training noise level")
    sim.add_argument("--test-noise", action="store_true", help="add noise to the test maps")
    sim.add_argument("--test-realisations", type=int, default=1)
    sim.add_argument(
        "--sky",
        default="auto",
        choices=["auto", "synthetic", "pysm"],
        help="auto: PySM when --pysm-data or PYSM_LOCAL_DATA is given, else synthetic",
    )
    sim.add_argument("--pysm-data", default=None, help="PYSM_LOCAL_DATA folder")
    sim.add_argument("--templates", default=None, help="templates .npz (save_templates)")
    sim.add_argument("--ame-emissivity", default=None, help="SpDust2 emissivity table")
    sim.add_argument("--seed", type=int, default=0)

    tr = sub.add_parser("train", help="train (or retrain with --init) on the run's training set")
    tr.add_argument("--run", required=True)
    tr.add_argument(
        "--features",
        default="snr",
        choices=["snr", "minmax", "snr_log"],
        help="network inputs (minmax: the paper's, does not learn on these simulations)",
    )
    tr.add_argument("--optimizer", default="adadelta", choices=["adadelta", "adamw"])
    tr.add_argument("--learning-rate", type=float, default=1.0)
    tr.add_argument("--batch-size", type=int, default=256)
    tr.add_argument("--steps-per-epoch", type=int, default=None, help="batches per epoch cap")
    tr.add_argument("--max-seconds", type=float, default=None, help="training time budget")
    tr.add_argument("--epochs", type=int, default=100)
    tr.add_argument("--patience", type=int, default=10)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--init", default=None, help="checkpoint to retrain from (section 4.3)")
    tr.add_argument("--checkpoint", default=None, help="output folder (default RUN/checkpoint)")
    tr.add_argument("--verbose", action="store_true")

    ev = sub.add_parser("evaluate", help="accuracy, confusion matrix and map of the test maps")
    ev.add_argument("--run", required=True)
    ev.add_argument("--checkpoint", default=None)

    pr = sub.add_parser("predict", help="model-label map of frequency maps [freq, 2, pix]")
    pr.add_argument("--checkpoint", required=True)
    pr.add_argument("--maps", required=True, help=".npz with 'maps' [freq, 2, pix] uK_CMB")
    pr.add_argument("--realisation", type=int, default=0, help="index if maps is 4-D")
    pr.add_argument("--out", required=True, help="output .npz")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``fg-classify``; returns the exit status."""
    args = _parser().parse_args(argv)
    handlers = {"simulate": _simulate, "train": _train, "evaluate": _evaluate, "predict": _predict}
    try:
        handlers[args.command](args)
    except (ValueError, FileNotFoundError) as err:
        print(f"fg-classify {args.command}: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""Evaluation: accuracy, confusion matrices, probability maps, the paper's Tables 2 and 3.

Accuracy is the fraction of pixels whose most probable class is the true one (section 4.1.1 of
farsian2020). The probability maps follow Figs 4, 5, 7 and 8: left, the probability the
network gives to the true model of each pixel; right, correct (black) and wrong (white)
pixels.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Float, Int

from ._models import Classifier
from ._simulate import TestMaps

__all__ = [
    "PAPER_CHI2_ACCURACY",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "Evaluation",
    "accuracy",
    "confusion_matrix",
    "evaluate_maps",
    "format_table2",
    "format_table3",
    "plot_probability_map",
]

PAPER_TABLE2: dict[str, dict[str, float]] = {
    "curvature": {"train": 0.99, "test": 0.98},
    "ame": {"train": 0.93, "test": 0.97},
    "four": {"train": 0.87, "test": 0.93},
}
"""Farsian et al. 2020 Table 2: noiseless training and test accuracy."""

PAPER_TABLE3: dict[str, dict[str, float]] = {
    "curvature": {
        "noiseless_training": 0.82,
        "retrained_high_nside": 0.95,
        "retrained_nside16": 0.97,
    },
    "ame": {"noiseless_training": 0.78, "retrained_high_nside": 0.92, "retrained_nside16": 0.94},
    "four": {"noiseless_training": 0.68, "retrained_high_nside": 0.90, "retrained_nside16": 0.93},
}
"""Farsian et al. 2020 Table 3: accuracy on noisy test maps for the three training schemes."""

PAPER_CHI2_ACCURACY = 0.73
"""Farsian et al. 2020 section 5: accuracy of the reduced-chi^2 choice (curvature task)."""

_TASK_TITLES = {
    "curvature": "Pure power law & Curvature",
    "ame": "AME & Pure power law",
    "four": "AME & Pure power law & Curvature",
}


def accuracy(predicted: Int[ArrayLike, " n"], true: Int[ArrayLike, " n"]) -> float:
    """Fraction of equal entries."""
    p, t = np.asarray(predicted), np.asarray(true)
    if p.shape != t.shape or p.size == 0:
        raise ValueError(
            f"predicted and true must be non-empty and of one shape: {p.shape}, {t.shape}"
        )
    return float(np.mean(p == t))


def confusion_matrix(
    predicted: Int[ArrayLike, " n"], true: Int[ArrayLike, " n"], n_classes: int
) -> Int[np.ndarray, "true pred"]:
    """Counts ``C[i, j]`` of vectors of true class i predicted as j."""
    p, t = np.asarray(predicted).ravel(), np.asarray(true).ravel()
    if p.shape != t.shape:
        raise ValueError(f"predicted and true must have one shape: {p.shape}, {t.shape}")
    if p.size and (min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= n_classes):
        raise ValueError(f"classes must lie in 0..{n_classes - 1}")
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (t, p), 1)
    return out


class Evaluation(NamedTuple):
    """A classifier's performance on test maps.

    Attributes:
        accuracy: mean accuracy over all realisations and pixels.
        accuracies: accuracy per realisation.
        confusion: confusion matrix summed over realisations ``[true, pred]``.
        predicted: predicted class per realisation and pixel.
        probabilities: class probabilities ``[real, pix, n_classes]``.
    """

    accuracy: float
    accuracies: list[float]
    confusion: Int[np.ndarray, "true pred"]
    predicted: Int[np.ndarray, "real pix"]
    probabilities: Float[np.ndarray, "real pix cls"]


def evaluate_maps(classifier: Classifier, test: TestMaps) -> Evaluation:
    """Classify every realisation of the test maps and score against the true layout."""
    preds, probas, accs = [], [], []
    for maps in test.maps:
        pred, proba = classifier.predict_maps(maps)
        preds.append(np.asarray(pred))
        probas.append(np.asarray(proba))
        accs.append(accuracy(pred, test.labels))
    predicted = np.stack(preds)
    conf = confusion_matrix(
        predicted, np.broadcast_to(test.labels, predicted.shape), classifier.spec.n_classes
    )
    return Evaluation(float(np.mean(accs)), accs, conf, predicted, np.stack(probas))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}%"


def format_table2(results: dict[str, dict[str, float]]) -> str:
    """Markdown Table 2 (noiseless) with the paper's values beside ours.

    Args:
        results: task -> ``{"train": accuracy, "test": accuracy}`` (either may be missing;
            extra keys, e.g. the min-max inputs' test accuracy, get their own column).
    """
    extra = sorted({k for r in results.values() for k in r} - {"train", "test"})
    head = "| Sky models | train (ours) | train (paper) | test (ours) | test (paper) |"
    head += "".join(f" {k} (ours) |" for k in extra)
    lines = [head, "|---" * (5 + len(extra)) + "|"]
    for task, ours in results.items():
        paper = PAPER_TABLE2[task]
        cells = (
            f"| {_TASK_TITLES[task]} | {_pct(ours.get('train'))} | {_pct(paper['train'])} | "
            f"{_pct(ours.get('test'))} | {_pct(paper['test'])} |"
        )
        lines.append(cells + "".join(f" {_pct(ours.get(k))} |" for k in extra))
    return "\n".join(lines)


def format_table3(results: dict[str, dict[str, float]]) -> str:
    """Markdown Table 3 (noisy test maps) with the paper's values beside ours.

    Args:
        results: task -> ``{"noiseless_training", "retrained_high_nside",
            "retrained_nside16"}`` accuracies (any may be missing; extra keys, e.g. a modern
            variant, get their own column).
    """
    base = ("noiseless_training", "retrained_high_nside", "retrained_nside16")
    extra = sorted({k for r in results.values() for k in r} - set(base))
    head = "| Sky models | " + " | ".join(f"{k} (ours) | {k} (paper)" for k in base)
    head += "".join(f" | {k} (ours)" for k in extra) + " |"
    lines = [head, "|---" * (1 + 2 * len(base) + len(extra)) + "|"]
    for task, ours in results.items():
        paper = PAPER_TABLE3[task]
        cells = [f"{_pct(ours.get(k))} | {_pct(paper[k])}" for k in base]
        cells += [_pct(ours.get(k)) for k in extra]
        lines.append(f"| {_TASK_TITLES[task]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_probability_map(
    path: str | Path,
    probability_true: Float[ArrayLike, " pix"],
    correct: ArrayLike,
    title: str = "",
) -> Path:
    """Mollweide PNG as Figs 4, 5, 7, 8: probability of the true model; correct/wrong pixels.

    Args:
        path: output PNG.
        probability_true: probability given to the true model per pixel (RING).
        correct: boolean per pixel.
        title: figure title.

    Returns:
        The path written.
    """
    import healpy as hp
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = plt.figure(figsize=(12, 4))
    with warnings.catch_warnings():
        # healpy's mollview calls Colormap.set_over, which matplotlib >= 3.10 flags as pending
        # deprecation; not ours to fix, and harmless
        warnings.simplefilter("ignore", PendingDeprecationWarning)
        hp.mollview(
            np.asarray(probability_true, dtype=float),
            fig=fig.number,
            sub=(1, 2, 1),
            min=0.0,
            max=1.0,
            cmap="viridis",
            title=f"{title} P(true model)",
        )
        hp.mollview(
            np.asarray(correct, dtype=float),
            fig=fig.number,
            sub=(1, 2, 2),
            min=0.0,
            max=1.0,
            cmap="gray_r",
            cbar=False,
            title="wrong pixels (white)",
        )
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

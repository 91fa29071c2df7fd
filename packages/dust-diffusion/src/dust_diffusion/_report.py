"""Comparison of summary statistics between sets of maps, written as JSON + PNG (Figs 2, C.2).

Power spectra and Minkowski functionals of ``samples`` (generated or posterior maps)
are compared with those of ``reference`` maps (training data, or the single true map of
a separation). Minkowski functionals are evaluated on maps shifted and scaled by the
reference's global mean and standard deviation, so amplitude errors show up. A bin
"agrees" when the reference mean lies within two standard deviations of the samples
(for a single reference map: the posterior spread, as in Fig. 2).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ._evaluation import minkowski_functionals, nearest_training_neighbour, power_spectrum

THRESHOLDS = np.linspace(-2.5, 3.5, 25)


def summary_statistics(
    maps: np.ndarray, reference_mean: float, reference_std: float
) -> dict[str, np.ndarray]:
    """Per-map power spectrum and Minkowski functionals, ``{name: (n_maps, bins)}``."""
    maps = np.asarray(maps, np.float64)
    k, ps = power_spectrum(maps)
    a, p, e = minkowski_functionals((maps - reference_mean) / reference_std, THRESHOLDS)
    return {
        "k": k,
        "power_spectrum": np.asarray(ps),
        "area": np.asarray(a),
        "perimeter": np.asarray(p),
        "euler": np.asarray(e),
    }


STAT_NAMES = ("power_spectrum", "area", "perimeter", "euler")


def agreement(samples: dict, reference: dict, n_sigma: float = 2.0) -> dict[str, float]:
    """Fraction of bins where the reference mean is within n_sigma sample std of the sample mean."""
    out = {}
    for name in STAT_NAMES:
        s, r = samples[name], reference[name]
        if name == "power_spectrum":
            s, r = np.log(s), np.log(r)
        mu, sd = s.mean(0), s.std(0)
        rm = r.mean(0)
        rs = r.std(0) if r.shape[0] > 1 else 0.0
        ok = np.abs(mu - rm) <= n_sigma * np.sqrt(sd**2 + rs**2) + 1e-12
        out[name] = float(ok.mean())
    return out


def compare_statistics(
    samples: np.ndarray,
    reference: np.ndarray,
    out_dir: Path | None,
    training: np.ndarray | None = None,
    name: str = "comparison",
    extra: dict[str, np.ndarray] | None = None,
) -> dict:
    """Compare statistics of ``samples`` with ``reference``; write ``name``.json and ``name``.png.

    Args:
        samples: ``(n, size, size)`` maps.
        reference: ``(m, size, size)`` maps (m = 1 for the truth of a separation).
        out_dir: output folder (None: write nothing, only return the result).
        training: optional training maps for the nearest-neighbour check (App. B.5).
        name: file stem.
        extra: optional further sets of maps (e.g. the observed mixture) to plot.

    Returns:
        The JSON content (means and standard deviations per statistic and bin, and a
        ``summary`` with the agreement fractions).
    """
    samples = np.asarray(samples)
    reference = np.asarray(reference)
    if reference.ndim == 2:
        reference = reference[None]
    m, s = float(reference.mean()), float(reference.std())
    st_s = summary_statistics(samples, m, s)
    st_r = summary_statistics(reference, m, s)
    result: dict = {"k": st_s["k"].tolist(), "thresholds": THRESHOLDS.tolist()}
    for label, st in (("samples", st_s), ("reference", st_r)):
        result[label] = {
            n: {"mean": st[n].mean(0).tolist(), "std": st[n].std(0).tolist()} for n in STAT_NAMES
        }
    summary: dict = {"agreement_2sigma": agreement(st_s, st_r), "n_samples": len(samples)}
    ps_rel = st_s["power_spectrum"].mean(0) / st_r["power_spectrum"].mean(0) - 1
    summary["power_spectrum_max_abs_rel_error"] = float(np.max(np.abs(ps_rel)))
    if training is not None:
        idx, dist = nearest_training_neighbour(samples, np.asarray(training))
        _t_idx, t_dist = (
            nearest_training_neighbour(np.asarray(training[:32]), np.asarray(training[32:]))
            if len(training) > 40
            else (None, None)
        )
        summary["nearest_training_distance"] = {
            "min": float(dist.min()),
            "median": float(np.median(dist)),
            "training_to_training_median": None if t_dist is None else float(np.median(t_dist)),
        }
        result["nearest_training_index"] = idx.tolist()
    result["summary"] = summary
    if out_dir is None:
        return result
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix=".json.tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(result, f)
    os.replace(tmp, out_dir / f"{name}.json")
    _plot(st_s, st_r, out_dir / f"{name}.png", extra, m, s)
    return result


def _plot(st_s, st_r, path: Path, extra, m, s) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(16, 3.6))
    sets = [("samples", st_s, "C0"), ("reference", st_r, "k")]
    if extra:
        for i, (label, maps) in enumerate(extra.items()):
            sets.append((label, summary_statistics(maps, m, s), f"C{i + 1}"))
    for ax, name in zip(axes, STAT_NAMES, strict=True):
        for label, st, c in sets:
            x = st["k"] if name == "power_spectrum" else THRESHOLDS
            mu, sd = st[name].mean(0), st[name].std(0)
            ax.plot(x, mu, color=c, label=label)
            ax.fill_between(x, mu - sd, mu + sd, color=c, alpha=0.25)
        if name == "power_spectrum":
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("k [DFT units]")
        else:
            ax.set_xlabel("threshold [reference std]")
        ax.set_title(name)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)

"""Saving and loading classifiers: orbax for the weights, JSON for the metadata.

A checkpoint folder holds ``metadata.json`` (the :class:`ClassifierSpec`, whether the input
standardisation was fitted, the package version, the optional training history) and
``state/`` (an orbax ``StandardCheckpointer`` tree of the network's parameters and
standardisation statistics, as a pure dict of arrays).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import orbax.checkpoint as ocp
from flax import nnx

from ._models import Classifier, ClassifierSpec, FeatureStat

__all__ = ["load_classifier", "save_classifier"]

_FORMAT = 1


def save_classifier(
    path: str | Path, classifier: Classifier, *, history: dict | None = None
) -> Path:
    """Write a classifier checkpoint folder (replaced if it exists).

    Args:
        path: checkpoint folder.
        classifier: the classifier.
        history: optional training history stored in the metadata.

    Returns:
        The absolute folder path.
    """
    from . import __version__

    path = Path(path).resolve()
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    state = nnx.to_pure_dict(nnx.state(classifier.model, nnx.Any(nnx.Param, FeatureStat)))
    checkpointer = ocp.StandardCheckpointer()
    checkpointer.save(path / "state", state)
    checkpointer.wait_until_finished()
    checkpointer.close()
    meta = {
        "format": _FORMAT,
        "fg_classifier_version": __version__,
        "spec": classifier.spec.to_dict(),
        "scaling_fitted": classifier.scaling_fitted,
        "history": history,
    }
    (path / "metadata.json").write_text(json.dumps(meta, indent=1))
    return path


def load_classifier(path: str | Path) -> Classifier:
    """Read a checkpoint folder written by :func:`save_classifier` (or by ``train``).

    Raises:
        FileNotFoundError: no checkpoint at ``path`` (names the missing file and how to make
            one).
        ValueError: an unknown checkpoint format.
    """
    path = Path(path).resolve()
    meta_file = path / "metadata.json"
    if not meta_file.is_file() or not (path / "state").is_dir():
        raise FileNotFoundError(
            f"no classifier checkpoint at {str(path)!r} (expected metadata.json and state/); "
            "train one with `fg-classify train` or fg_classifier.train(..., checkpoint_dir=...)"
        )
    meta = json.loads(meta_file.read_text())
    if meta.get("format") != _FORMAT:
        raise ValueError(
            f"checkpoint {str(path)!r} has format {meta.get('format')}, need {_FORMAT}"
        )
    clf = Classifier.create(ClassifierSpec.from_dict(meta["spec"]), seed=0)
    target = nnx.state(clf.model, nnx.Any(nnx.Param, FeatureStat))
    checkpointer = ocp.StandardCheckpointer()
    restored = checkpointer.restore(path / "state")
    checkpointer.close()
    nnx.replace_by_pure_dict(target, restored)
    nnx.update(clf.model, target)
    clf.scaling_fitted = bool(meta["scaling_fitted"])
    clf.model.eval()
    return clf

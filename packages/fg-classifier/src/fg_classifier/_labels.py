"""Model-label maps as patch layouts for the component separation.

The pipeline's patch layouts hold labels 0..K-1 with every label used (DESIGN.md). A predicted
class map may miss some classes (e.g. no AME anywhere), so :func:`model_label_map` also
returns the contiguous relabelling and, per patch, the model it stands for.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from jaxtyping import ArrayLike, Int

__all__ = ["ModelLayout", "model_label_map"]


class ModelLayout(NamedTuple):
    """A model-label map and its patch-layout form.

    Attributes:
        model_labels: class index per pixel (into ``class_names``), ``[pix]``.
        patch_labels: contiguous labels 0..K-1 (every label used), ``[pix]``.
        patch_models: model name of each patch label, length K.
    """

    model_labels: Int[np.ndarray, " pix"]
    patch_labels: Int[np.ndarray, " pix"]
    patch_models: tuple[str, ...]


def model_label_map(labels: Int[ArrayLike, " pix"], class_names: tuple[str, ...]) -> ModelLayout:
    """Patch layout of a predicted class map.

    Args:
        labels: predicted class per pixel (0..len(class_names)-1).
        class_names: model name of each class.

    Returns:
        :class:`ModelLayout`; patches are ordered by class index.

    Raises:
        ValueError: labels outside the classes, or not 1-D.

    Example:
        >>> model_label_map([2, 2, 0], ("power_law", "curved", "power_law_ame")).patch_labels
        array([1, 1, 0], dtype=int32)
    """
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D class map, got shape {lab.shape}")
    if lab.min() < 0 or lab.max() >= len(class_names):
        raise ValueError(f"labels must lie in 0..{len(class_names) - 1} (one per class name)")
    used, patch = np.unique(lab, return_inverse=True)
    return ModelLayout(
        lab.astype(np.int32),
        patch.astype(np.int32),
        tuple(class_names[int(u)] for u in used),
    )

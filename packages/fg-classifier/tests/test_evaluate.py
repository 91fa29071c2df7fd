import json

import numpy as np
import pytest
from fg_classifier import (
    PAPER_TABLE2,
    accuracy,
    confusion_matrix,
    format_table2,
    format_table3,
    model_label_map,
    plot_probability_map,
)


def test_accuracy_and_confusion():
    true = np.array([0, 0, 1, 1, 2, 3, 3])
    pred = np.array([0, 1, 1, 1, 2, 0, 3])
    assert accuracy(pred, true) == pytest.approx(5 / 7)
    conf = confusion_matrix(pred, true, 4)
    ref = np.zeros((4, 4), int)
    for t, p in zip(true, pred, strict=True):
        ref[t, p] += 1
    np.testing.assert_array_equal(conf, ref)
    assert conf.trace() == 5
    with pytest.raises(ValueError, match="classes must lie"):
        confusion_matrix(pred, true, 3)
    with pytest.raises(ValueError, match="one shape"):
        accuracy(pred[:3], true)


def test_tables_hold_paper_values():
    t2 = format_table2({"curvature": {"train": 0.991, "test": 0.975}})
    assert (
        "99.1%" in t2 and "97.5%" in t2 and f"{100 * PAPER_TABLE2['curvature']['test']:.1f}%" in t2
    )
    t3 = format_table3(
        {"four": {"noiseless_training": 0.5, "retrained_nside16": 0.9, "modern": 0.95}}
    )
    assert "68.0%" in t3 and "93.0%" in t3 and "95.0%" in t3 and "modern (ours)" in t3
    json.dumps({"t2": t2, "t3": t3})


def test_probability_map_png(tmp_path):
    npix = 12 * 8**2
    rng = np.random.default_rng(0)
    path = plot_probability_map(
        tmp_path / "m.png", rng.uniform(size=npix), rng.uniform(size=npix) > 0.1
    )
    assert path.is_file() and path.read_bytes()[:4] == b"\x89PNG"


def test_model_label_map_is_a_patch_layout():
    layout = model_label_map(
        np.array([3, 3, 1, 3]), ("power_law", "curved", "power_law_ame", "curved_ame")
    )
    np.testing.assert_array_equal(layout.patch_labels, [1, 1, 0, 1])
    assert layout.patch_models == ("curved", "curved_ame")
    np.testing.assert_array_equal(layout.model_labels, [3, 3, 1, 3])
    with pytest.raises(ValueError, match="labels must lie"):
        model_label_map(np.array([0, 5]), ("a", "b"))

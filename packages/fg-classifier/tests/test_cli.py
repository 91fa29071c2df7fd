import json

import numpy as np
from fg_classifier._cli import main


def test_cli_simulate_train_evaluate_predict(tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(run),
                "--task",
                "ame",
                "--nside",
                "4",
                "--n-maps",
                "2",
                "--test-noise",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    assert (run / "training_set.npz").is_file() and (run / "test_maps.npz").is_file()
    assert main(["train", "--run", str(run), "--epochs", "2", "--batch-size", "32"]) == 0
    assert (run / "checkpoint" / "metadata.json").is_file()
    history = json.loads((run / "history.json").read_text())
    assert len(history["history"]["val_loss"]) == history["epochs_run"]
    assert (
        main(
            [
                "train",
                "--run",
                str(run),
                "--epochs",
                "1",
                "--batch-size",
                "32",
                "--init",
                str(run / "checkpoint"),
                "--checkpoint",
                str(run / "retrained"),
            ]
        )
        == 0
    )
    assert main(["evaluate", "--run", str(run), "--checkpoint", str(run / "retrained")]) == 0
    ev = json.loads((run / "evaluation.json").read_text())
    assert ev["classes"] == ["power_law", "power_law_ame"] and 0.0 <= ev["accuracy"] <= 1.0
    assert np.sum(ev["confusion"]) == 12 * 4**2
    assert (run / "probability_map.png").is_file()
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(run / "checkpoint"),
                "--maps",
                str(run / "test_maps.npz"),
                "--out",
                str(run / "labels.npz"),
            ]
        )
        == 0
    )
    with np.load(run / "labels.npz") as f:
        assert f["model_labels"].shape == (192,)
        assert f["patch_labels"].max() == len(f["patch_models"]) - 1
        np.testing.assert_allclose(f["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_cli_errors(tmp_path, capsys):
    assert main(["evaluate", "--run", str(tmp_path)]) == 2
    assert "no classifier checkpoint" in capsys.readouterr().err
    assert main(["train", "--run", str(tmp_path)]) == 2
    assert "fg-classify simulate" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", other=np.zeros(3))
    assert (
        main(
            [
                "predict",
                "--checkpoint",
                str(tmp_path),
                "--maps",
                str(tmp_path / "bad.npz"),
                "--out",
                str(tmp_path / "o.npz"),
            ]
        )
        == 2
    )


def test_cli_simulate_from_pysm_data(tmp_path, pysm_dirs):
    local, _ = pysm_dirs
    run = tmp_path / "pysm"
    assert (
        main(
            [
                "simulate",
                "--out",
                str(run),
                "--task",
                "curvature",
                "--nside",
                "4",
                "--n-maps",
                "1",
                "--pysm-data",
                str(local),
            ]
        )
        == 0
    )
    config = json.loads((run / "config.json").read_text())
    assert config["pysm_data"] == str(local)
    with np.load(run / "training_set.npz") as f:
        assert f["data"].shape == (2 * 192, 2, 17)

"""The dust-diffusion command line end to end on tiny settings (writes run folders)."""

import json

import numpy as np
from dust_diffusion import latest_checkpoint_step, load_config
from dust_diffusion._cli import main


def test_cli_make_data_train_sample_separate_evaluate(tmp_path):
    data = tmp_path / "data"
    main(["make-data", "--out", str(data), "--n-maps", "8", "--size", "16", "--seed", "3"])
    maps = np.load(data / "dust_maps.npy")
    assert maps.shape == (8, 16, 16)
    run = tmp_path / "run"
    train = ["train", "--data", str(data / "dust_maps.npy"), "--run", str(run), "--size", "16"]
    train += ["--channels", "8,8,8", "--batch-size", "4", "--checkpoint-every", "2"]
    main([*train, "--steps", "2"])
    state = tmp_path / "carry" / "state.npz"
    main([*train, "--steps", "4", "--save-state", str(state), "--ema-dtype", "bfloat16"])
    lines = (run / "losses.csv").read_text().splitlines()
    assert [int(line.split(",")[0]) for line in lines] == [2, 4]
    # a new run folder continues from the portable state (here already at its 4 steps)
    run2 = tmp_path / "run2"
    resume = ["train", "--data", str(data / "dust_maps.npy"), "--run", str(run2)]
    main([*resume, "--resume", str(state.parent), "--steps", "4", "--precision", "bfloat16"])
    assert latest_checkpoint_step(run2 / "checkpoints") == 4
    assert load_config(run2 / "checkpoints").precision == "bfloat16"
    # sampling straight from the state file
    sample = ["sample", "--run", str(state), "--n", "3", "--steps", "4", "--method", "ode"]
    main([*sample, "--precision", "bfloat16"])
    assert np.load(state.parent / "samples" / "samples.npy").shape == (3, 16, 16)
    np.save(tmp_path / "y.npy", maps[0])
    sep = ["separate", "--run", str(run), "--y", str(tmp_path / "y.npy"), "--sigma", "0.6"]
    main([*sep, "--n-samples", "2", "--steps", "4"])
    dust = np.load(run / "separation" / "dust_samples.npy")
    cmb = np.load(run / "separation" / "cmb_samples.npy")
    np.testing.assert_allclose(dust + cmb, np.broadcast_to(maps[0], dust.shape), atol=1e-5)
    out = tmp_path / "eval"
    ref = str(data / "dust_maps.npy")
    samples = str(state.parent / "samples" / "samples.npy")
    main(
        ["evaluate", "--samples", samples, "--reference", ref, "--training", ref, "--out", str(out)]
    )
    summary = json.loads((out / "comparison.json").read_text())["summary"]
    assert set(summary["agreement_2sigma"]) == {"power_spectrum", "area", "perimeter", "euler"}
    assert (out / "comparison.png").exists()

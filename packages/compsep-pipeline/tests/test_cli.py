"""The compsep command line: config show/validate and simulate (run/resume: integration tests)."""

from __future__ import annotations

import numpy as np
from compsep_pipeline import SkyMaps, config_from_toml, default_config
from compsep_pipeline._cli import app
from typer.testing import CliRunner

runner = CliRunner()


def test_config_show_prints_the_default():
    res = runner.invoke(app, ["config", "show"])
    assert res.exit_code == 0, res.output
    assert config_from_toml(res.output) == default_config()


def test_config_validate(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text("[grid]\nK_bd = [2, 4]\n")
    res = runner.invoke(app, ["config", "validate", str(good)])
    assert res.exit_code == 0, res.output
    assert "valid" in res.output and "8 configurations" in res.output
    bad = tmp_path / "bad.toml"
    bad.write_text("[grid]\nK_bd = [0]\n")
    res = runner.invoke(app, ["config", "validate", str(bad)])
    assert res.exit_code == 2
    assert "[grid] K_bd patch counts must be >= 1" in res.output


def test_simulate_writes_a_sky(tmp_path):
    out = tmp_path / "sky.npz"
    res = runner.invoke(app, ["simulate", "--out", str(out), "--nside", "8", "--seed", "5"])
    assert res.exit_code == 0, res.output
    sky = SkyMaps.load(out)
    assert sky.nside == 8 and sky.source == "synthetic" and sky.signal.shape == (15, 2, 768)
    assert np.all(np.isfinite(sky.signal))
    res = runner.invoke(app, ["simulate", "--out", str(out), "--nside", "12"])
    assert res.exit_code == 2 and "[sky] nside must be a power of two" in res.output


def test_resume_and_report_refuse_non_run_folders(tmp_path):
    res = runner.invoke(app, ["resume", str(tmp_path)])
    assert res.exit_code == 2 and "not a run folder" in res.output
    res = runner.invoke(app, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "not a finished run folder" in res.output

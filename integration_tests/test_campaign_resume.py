"""A campaign killed in the middle of its grid and resumed gives the uninterrupted result."""

from __future__ import annotations

import subprocess
import sys
import time

import compsep_pipeline as cp
import numpy as np
import pandas as pd

TIMING = ["compile_s", "run_s", "patch_s"]

SLOW_RUN = """
import sys
import time

from compsep_pipeline import _campaign
from compsep_pipeline._cli import main

fit = _campaign.RegionFitter.fit


def slow_fit(self, *args, **kwargs):
    out = fit(self, *args, **kwargs)
    time.sleep(3.0)
    return out


_campaign.RegionFitter.fit = slow_fit
sys.argv[0] = "compsep"
main()
"""


def _config():
    return cp.default_config().replace(
        name="resume",
        sky={"nside": 8, "seed": 3},
        noise={"n_realisations": 3},
        regions={"names": ["GAL040"]},
        grid={"K_bd": [1, 2, 4], "K_Td": [1], "K_bs": [1]},
        comparison={"methods": ["kmeans"], "multires": {}},
    )


def _grid(rundir):
    df = pd.read_parquet(rundir / "grid_results.parquet").drop(columns=TIMING)
    return df.sort_values(["region", "config_index"]).reset_index(drop=True)


def test_resume_after_kill_gives_identical_results(tmp_path):
    cfg = _config()
    reference = cp.run_campaign(cfg, tmp_path / "ref", progress=False)

    rundir = tmp_path / "killed"
    rundir.mkdir()
    (rundir / "config.toml").write_text(cfg.to_toml())
    # The real `compsep run`, with a pause after each grid batch's fits: the K-means of the
    # whole grid come first and the fits of this tiny grid take milliseconds, so without
    # it the three batches land between two polls. The pause changes no result.
    (tmp_path / "slow_run.py").write_text(SLOW_RUN)
    cmd = [
        sys.executable,
        str(tmp_path / "slow_run.py"),
        "run",
        str(rundir / "config.toml"),
        "--out",
        str(rundir),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((rundir / "grid").rglob("*.parquet"))) >= 1:
                break
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    n_done = len(list((rundir / "grid").rglob("*.parquet")))
    assert 1 <= n_done < 3, "the kill must land inside the grid"
    assert not (rundir / "grid_results.parquet").exists()

    res = subprocess.run(
        [sys.executable, "-m", "compsep_pipeline", "resume", str(rundir), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr
    pd.testing.assert_frame_equal(_grid(rundir), _grid(tmp_path / "ref"))
    r_killed = pd.read_csv(rundir / "r.csv")
    pd.testing.assert_frame_equal(r_killed, reference.r)
    a = np.load(rundir / "compare" / "GAL040__kmeans.npz")
    b = np.load(tmp_path / "ref" / "compare" / "GAL040__kmeans.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key])

    # a second resume recomputes nothing: the compare files are untouched
    before = {p: p.stat().st_mtime_ns for p in (rundir / "compare").iterdir()}
    cp.resume_campaign(rundir, progress=False)
    assert {p: p.stat().st_mtime_ns for p in (rundir / "compare").iterdir()} == before

"""A campaign split into region parts run at once (one per GPU / node) gives the one-run result.

Also checks the held-out evaluation (``[noise] held_out``): the compared layouts are fitted on
realisations independent of those the grid selected on.
"""

from __future__ import annotations

import subprocess
import sys

import compsep_pipeline as cp
import numpy as np
import pandas as pd
import pytest

TIMING = ["compile_s", "run_s", "patch_s"]
REGIONS = ["GAL020", "GAL060-GAL020"]


def _config():
    return cp.default_config().replace(
        name="parts",
        sky={"nside": 8, "seed": 5},
        noise={"n_realisations": 3, "held_out": True},
        regions={"names": REGIONS},
        grid={"K_bd": [1, 3], "K_Td": [1], "K_bs": [1]},
        comparison={"methods": ["kmeans", "single"], "multires": {}},
    )


def _grid(rundir):
    df = pd.read_parquet(rundir / "grid_results.parquet").drop(columns=TIMING)
    return df.sort_values(["region", "config_index"]).reset_index(drop=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return cp.run_campaign(_config(), tmp_path_factory.mktemp("ref"), progress=False)


def test_concurrent_region_parts_then_resume_equal_one_run(tmp_path, reference):
    cfg = _config()

    rundir = tmp_path / "parts"
    rundir.mkdir()
    cfg_file = tmp_path / "campaign.toml"
    cfg_file.write_text(cfg.to_toml())
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "compsep_pipeline",
                "run",
                str(cfg_file),
                "--out",
                str(rundir),
                "--quiet",
                "--regions",
                name,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in REGIONS
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "part done" in out
    assert not (rundir / "report.md").exists(), "a part must not write the report"
    assert sorted(p.stem for p in (rundir / "parts").glob("*.json")) == sorted(
        n.replace("-", "_minus_") for n in REGIONS
    )

    result = cp.resume_campaign(rundir, progress=False)
    pd.testing.assert_frame_equal(_grid(rundir), _grid(reference.rundir))
    pd.testing.assert_frame_equal(result.r, reference.r)
    for path in (reference.rundir / "compare").iterdir():
        a, b = np.load(path), np.load(rundir / "compare" / path.name)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key])
    assert "concurrent part(s)" in result.report.read_text()


def test_held_out_comparison_uses_fresh_noise(reference):
    cfg, result = _config(), reference
    sky = cp.SkyMaps.load(result.rundir / "sky.npz")
    mask = cp.build_regions(cfg, sky)["GAL020"]
    inst = cp.build_instrument(cfg)
    selection = cp.region_problem(cfg, sky, inst, "GAL020", mask)
    held = cp.region_problem(cfg, sky, inst, "GAL020", mask, held_out=True)
    saved = np.load(result.rundir / "compare" / "GAL020__kmeans.npz")
    layout = {k: saved[f"labels_{k}"] for k in ("beta_d", "T_d", "beta_s")}
    assert tuple(int(v.max()) + 1 for v in layout.values()) == result.selection["GAL020"]
    on_held = cp.fit_layout(held, layout, cfg)
    on_selection = cp.fit_layout(selection, layout, cfg)
    np.testing.assert_allclose(saved["cmb"], on_held.cmb, rtol=0, atol=1e-9)
    # independent noise: the reconstructions differ by about the noise level
    assert np.abs(saved["cmb"] - on_selection.cmb).max() > 1e-3

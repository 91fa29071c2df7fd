"""End to end: the demo command clusters a region and writes its PNG and summary."""

import json
import subprocess
import sys

import numpy as np
from PIL import Image


def test_demo_writes_png_and_summary(tmp_path):
    out = tmp_path / "demo"
    cmd = [
        sys.executable,
        "-m",
        "sphere_kmeans._demo",
        "--out",
        str(out),
        "--nside",
        "16",
        "-k",
        "12",
    ]
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=600)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_clusters"] == 12 and summary["converged"]
    assert summary["n_pixels"] > 12
    img = np.asarray(Image.open(summary["png"]))
    # a real picture: many distinct colours (one per patch plus background)
    assert img.ndim == 3 and len(np.unique(img.reshape(-1, img.shape[-1]), axis=0)) > 12

"""The README example runs as written and finds the expected optimum structure."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(code) == 1
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code[0], str(README), "exec"), namespace)
    results = namespace["results"]
    assert len(results) == len(namespace["space"]) == 110
    assert (results["status"] == "ok").all()
    # The smooth fields favour more patches, up to the noise floor: never K = 1 everywhere.
    best = results.loc[results["residual_mean"].idxmin()]
    assert best["K_bd"] > 1 and best["K_bs"] > 1
    assert (tmp_path / "runs" / "patch_grid" / "space.json").exists()
    assert "110 configurations, 0 failed" in capsys.readouterr().out

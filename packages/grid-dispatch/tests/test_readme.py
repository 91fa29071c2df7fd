"""The README examples run as written and find the expected optimum structure."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _examples() -> list[str]:
    code = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(code) == 2
    return code


def _run(code: str) -> dict:
    namespace: dict = {}
    exec(compile(code, str(README), "exec"), namespace)
    return namespace


def test_readme_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace = _run(_examples()[0])
    results = namespace["results"]
    assert len(results) == len(namespace["space"]) == 110
    assert (results["status"] == "ok").all()
    # The smooth fields favour more patches, up to the noise floor: never K = 1 everywhere.
    best = results.loc[results["residual_mean"].idxmin()]
    assert best["K_bd"] > 1 and best["K_bs"] > 1
    assert (tmp_path / "runs" / "patch_grid" / "space.json").exists()
    assert "110 configurations, 0 failed" in capsys.readouterr().out


def test_readme_batched_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layouts = _run(_examples()[1])["layouts"]
    assert len(layouts) == 16 and (layouts["status"] == "ok").all()
    # Contiguous patches follow the smooth signal; strided ones only fit its mean (~1/2).
    contiguous = layouts[layouts["layout"] == "contiguous"].set_index("K")["residual_mean"]
    strided = layouts[layouts["layout"] == "strided"]["residual_mean"]
    assert contiguous.idxmin() in (32, 64, 128) and contiguous.min() < 0.05
    assert (strided > 0.45).all()

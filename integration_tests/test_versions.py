"""Every workspace package reports the version its pyproject.toml declares."""

import importlib
import tomllib
from pathlib import Path

import pytest

PACKAGES = sorted(p for p in (Path(__file__).parents[1] / "packages").iterdir() if p.is_dir())


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_dunder_version_matches_pyproject(package):
    declared = tomllib.loads((package / "pyproject.toml").read_text())["project"]["version"]
    module = importlib.import_module(package.name.replace("-", "_"))
    assert module.__version__ == declared

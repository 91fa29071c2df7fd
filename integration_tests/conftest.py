"""End-to-end tests of the composed packages: small campaigns through compsep-pipeline."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _template_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    # CAMB templates (bb-residuals) are computed once per test session, not in the home folder.
    monkeypatch.setenv("BB_RESIDUALS_CACHE", str(tmp_path_factory.getbasetemp() / "camb-cache"))

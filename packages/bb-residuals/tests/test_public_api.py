"""Smoke test of the public API: every exported name exists and the version is set."""

from __future__ import annotations

import bb_residuals


def test_all_names_exported():
    for name in bb_residuals.__all__:
        assert hasattr(bb_residuals, name), name
    assert bb_residuals.__version__ == "0.1.0"
    assert bb_residuals.SPECTRA == ("EE", "BB", "EB")

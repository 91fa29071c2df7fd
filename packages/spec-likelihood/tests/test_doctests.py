"""The docstring examples of the units, instrument, SED and noise modules run as written."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["_units", "_instrument", "_sed", "_noise"])
def test_docstring_examples(module):
    mod = importlib.import_module(f"spec_likelihood.{module}")
    result = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0

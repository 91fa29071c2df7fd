"""Instrument presets against the published tables, CSV reading and validation."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from spec_likelihood import (
    Instrument,
    farsian2020,
    litebird_ptep,
    litebird_ptep_channel_names,
    litebird_ptep_channels,
    quijote_mfi,
)


def _table(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_preset_sizes():
    assert litebird_ptep().n_freq == 15
    assert litebird_ptep_channels().n_freq == 22
    assert len(litebird_ptep_channel_names()) == 22
    np.testing.assert_array_equal(quijote_mfi().frequencies, [11.0, 13.0])
    assert farsian2020().n_freq == 17


@pytest.mark.parametrize(
    ("preset", "table"),
    [
        (litebird_ptep, "instruments/litebird_ptep_15band.csv"),
        (litebird_ptep_channels, "instruments/litebird_ptep_22ch.csv"),
        (farsian2020, "instruments/farsian2020_table1.csv"),
    ],
)
def test_presets_equal_shared_tables(data_file, preset, table):
    path = data_file(table)
    inst, read = preset(), Instrument.from_csv(path)
    np.testing.assert_array_equal(inst.frequencies, read.frequencies)
    np.testing.assert_array_equal(inst.depth_p, read.depth_p)
    np.testing.assert_array_equal(inst.fwhm, read.fwhm)
    if read.bandpasses is None:
        assert inst.bandpasses is None
    else:
        np.testing.assert_array_equal(inst.bandpasses, read.bandpasses)


def test_channel_names_follow_table(data_file):
    rows = _table(data_file("instruments/litebird_ptep_22ch.csv"))
    assert litebird_ptep_channel_names() == tuple(r["channel"] for r in rows)


def test_quijote_rows_of_farsian_table(data_file):
    rows = [
        r
        for r in _table(data_file("instruments/farsian2020_table1.csv"))
        if r["experiment"] == "QUIJOTE"
    ]
    q = quijote_mfi()
    np.testing.assert_array_equal(q.depth_p, [float(r["depth_p_uk_arcmin"]) for r in rows])
    np.testing.assert_array_equal(q.fwhm, [float(r["fwhm_arcmin"]) for r in rows])


def test_15_bands_are_inverse_variance_combined_channels():
    """1/depth^2 of a band = sum of 1/depth_i^2 of its channels (PTEP); beams: the largest."""
    ch, bands = litebird_ptep_channels(), litebird_ptep()
    for k, nu in enumerate(bands.frequencies):
        sel = ch.frequencies == nu
        combined = np.sum(ch.depth_p[sel] ** -2.0) ** -0.5
        # The 15-band table is rounded to 0.01 uK arcmin.
        assert bands.depth_p[k] == pytest.approx(combined, abs=0.006)
        assert bands.fwhm[k] == ch.fwhm[sel].max()


def test_from_csv_round_trip(tmp_path):
    path = tmp_path / "inst.csv"
    path.write_text("freq_ghz,depth_p_uk_arcmin,fwhm_arcmin,note\n30,10,60,a\n90,5,20,b\n")
    inst = Instrument.from_csv(path)
    np.testing.assert_array_equal(inst.frequencies, [30.0, 90.0])
    np.testing.assert_array_equal(inst.depth_p, [10.0, 5.0])
    assert inst.bandpasses is None and inst.name == "inst"
    np.testing.assert_allclose(inst.fwhm_rad, np.radians([1.0, 1.0 / 3.0]))


def test_value_equality_and_hash():
    assert litebird_ptep() == litebird_ptep()
    assert hash(litebird_ptep()) == hash(litebird_ptep())
    assert litebird_ptep() != litebird_ptep_channels()
    a = Instrument([30.0], [1.0], [10.0])
    assert a != Instrument([30.0], [1.0], [10.0], bandpasses=[3.0])


def test_arrays_are_read_only():
    inst = litebird_ptep()
    with pytest.raises(ValueError, match="read-only"):
        inst.depth_p[0] = 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"frequencies": [30.0, 40.0], "depth_p": [1.0], "fwhm": [1.0, 1.0]},
            "depth_p has 1 values",
        ),
        ({"frequencies": [30.0], "depth_p": [-1.0], "fwhm": [1.0]}, "depth_p must hold positive"),
        ({"frequencies": [[30.0]], "depth_p": [1.0], "fwhm": [1.0]}, "frequencies must be a 1-D"),
        ({"frequencies": [], "depth_p": [], "fwhm": []}, "at least one band"),
        ({"frequencies": [30.0], "depth_p": [1.0], "fwhm": [np.nan]}, "fwhm must hold positive"),
        (
            {"frequencies": [30.0], "depth_p": [1.0], "fwhm": [1.0], "bandpasses": [70.0]},
            "bandpasses",
        ),
    ],
)
def test_instrument_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Instrument(**kwargs)


def test_from_csv_errors(tmp_path):
    with pytest.raises(ValueError, match="is not a file"):
        Instrument.from_csv(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("freq,depth\n30,1\n")
    with pytest.raises(ValueError, match="must have a header with columns"):
        Instrument.from_csv(bad)
    text = tmp_path / "text.csv"
    text.write_text("freq_ghz,depth_p_uk_arcmin,fwhm_arcmin\n30,one,2\n")
    with pytest.raises(ValueError, match="non-numeric"):
        Instrument.from_csv(text)

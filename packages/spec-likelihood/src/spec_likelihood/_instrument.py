"""Instrument descriptions (band centres, polarisation depths, beams) and table presets.

Preset values are facts copied from the published tables (kept in code, not read at run time):

* LiteBIRD PTEP (arXiv:2202.02773, Table 13, via litebird-sim's IMO): 22 channels, and the
  15 bands obtained by combining same-frequency channels by inverse variance
  (``1/depth^2 = sum 1/depth_i^2``, the larger beam kept), identical to the tables of
  fgbuster/cmbdb and furax-cs.
* QUIJOTE MFI 11 and 13 GHz and the 17-band LiteBIRD + QUIJOTE table of Farsian et al. 2020
  (Table 1 of farsian2020_nn_foreground_recognition.md).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from jaxtyping import ArrayLike, Float

__all__ = [
    "Instrument",
    "farsian2020",
    "litebird_ptep",
    "litebird_ptep_channel_names",
    "litebird_ptep_channels",
    "quijote_mfi",
]


def _vector(values: ArrayLike | None, name: str, n: int | None) -> np.ndarray | None:
    if values is None:
        return None
    arr = np.array(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array (one value per band), got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(
            f"{name} has {arr.shape[0]} values but frequencies has {n}; give one per band"
        )
    if not np.all(np.isfinite(arr)) or not np.all(arr > 0):
        raise ValueError(f"{name} must hold positive finite values")
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False)
class Instrument:
    """A multi-band CMB instrument.

    Attributes:
        frequencies: band centres [GHz], shape ``[freq]``.
        depth_p: polarisation noise depth per band [uK_CMB arcmin], shape ``[freq]``.
        fwhm: Gaussian beam full width at half maximum [arcmin], shape ``[freq]``.
        bandpasses: optional top-hat band full widths [GHz], shape ``[freq]``; ``None`` means
            delta-function bands at ``frequencies``.
        name: a label.

    Raises:
        ValueError: arrays of different lengths, non-positive or non-finite values, or top-hat
            bands reaching 0 GHz.

    Example:
        >>> from spec_likelihood import litebird_ptep
        >>> inst = litebird_ptep()
        >>> inst.n_freq, float(inst.frequencies[0]), float(inst.depth_p[0])
        (15, 40.0, 37.42)
    """

    frequencies: Float[np.ndarray, " freq"]
    depth_p: Float[np.ndarray, " freq"]
    fwhm: Float[np.ndarray, " freq"]
    bandpasses: Float[np.ndarray, " freq"] | None = None
    name: str = "instrument"

    def __post_init__(self) -> None:
        freqs = _vector(self.frequencies, "frequencies", None)
        n = freqs.shape[0]
        if n == 0:
            raise ValueError("frequencies must hold at least one band")
        object.__setattr__(self, "frequencies", freqs)
        object.__setattr__(self, "depth_p", _vector(self.depth_p, "depth_p", n))
        object.__setattr__(self, "fwhm", _vector(self.fwhm, "fwhm", n))
        bands = _vector(self.bandpasses, "bandpasses", n)
        if bands is not None and not np.all(freqs - 0.5 * bands > 0):
            raise ValueError("bandpasses (top-hat full widths, GHz) must be < 2 * frequencies")
        object.__setattr__(self, "bandpasses", bands)

    def _key(self) -> tuple:
        bands = None if self.bandpasses is None else self.bandpasses.tobytes()
        arrays = (self.frequencies, self.depth_p, self.fwhm)
        return (self.name, *(a.tobytes() for a in arrays), bands)

    def __eq__(self, other: object) -> bool:
        # Value equality (arrays compared exactly), so equal instruments hash alike and can be
        # static arguments of jitted functions without recompiling.
        return isinstance(other, Instrument) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def n_freq(self) -> int:
        """Number of bands."""
        return int(self.frequencies.shape[0])

    @property
    def fwhm_rad(self) -> Float[np.ndarray, " freq"]:
        """Beam FWHM in radians."""
        return np.deg2rad(self.fwhm / 60.0)

    @classmethod
    def from_csv(cls, path: str | Path, name: str | None = None) -> Instrument:
        """Read an instrument table.

        Columns (header names): ``freq_ghz``, ``depth_p_uk_arcmin``, ``fwhm_arcmin`` and,
        optionally, ``bandwidth_ghz`` (top-hat full width). Other columns are ignored.

        Args:
            path: CSV file with a header row.
            name: label (default: the file stem).

        Raises:
            ValueError: missing file or required column, unreadable numbers.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"path={str(path)!r} is not a file")
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        required = ("freq_ghz", "depth_p_uk_arcmin", "fwhm_arcmin")
        if not rows or any(col not in rows[0] for col in required):
            raise ValueError(f"{str(path)!r} must have a header with columns {required}")
        try:
            columns = {
                col: [float(row[col]) for row in rows]
                for col in (*required, "bandwidth_ghz")
                if col in rows[0]
            }
        except (TypeError, ValueError) as err:
            raise ValueError(f"{str(path)!r}: non-numeric value ({err})") from err
        return cls(
            frequencies=columns["freq_ghz"],
            depth_p=columns["depth_p_uk_arcmin"],
            fwhm=columns["fwhm_arcmin"],
            bandpasses=columns.get("bandwidth_ghz"),
            name=name or path.stem,
        )


# LiteBIRD PTEP, 15 bands: freq [GHz], bandwidth [GHz], fwhm [arcmin], depth_p [uK arcmin].
_LITEBIRD_15 = (
    (40.0, 12.0, 70.5, 37.42),
    (50.0, 15.0, 58.5, 33.46),
    (60.0, 14.0, 51.1, 21.31),
    (68.0, 16.0, 47.1, 16.87),
    (78.0, 18.0, 43.8, 12.07),
    (89.0, 20.0, 41.5, 11.3),
    (100.0, 23.0, 37.8, 6.56),
    (119.0, 36.0, 33.6, 4.58),
    (140.0, 42.0, 30.8, 4.79),
    (166.0, 50.0, 28.9, 5.57),
    (195.0, 59.0, 28.6, 5.85),
    (235.0, 71.0, 24.7, 10.79),
    (280.0, 84.0, 22.5, 13.8),
    (337.0, 101.0, 20.9, 21.95),
    (402.0, 92.0, 17.9, 47.45),
)

# LiteBIRD PTEP, 22 channels (LFT L1-L4, MFT M1-M2, HFT H1-H3):
# channel, freq [GHz], bandwidth [GHz], fwhm [arcmin], depth_p [uK arcmin].
_LITEBIRD_22 = (
    ("L1-040", 40.0, 12.0, 70.5, 37.4222),
    ("L2-050", 50.0, 15.0, 58.5, 33.463),
    ("L1-060", 60.0, 14.0, 51.1, 21.3114),
    ("L3-068", 68.0, 16.0, 41.6, 19.9113),
    ("L2-068", 68.0, 18.0, 47.1, 31.7686),
    ("L4-078", 78.0, 18.0, 36.9, 15.5517),
    ("L1-078", 78.0, 18.0, 43.8, 19.1339),
    ("L3-089", 89.0, 20.0, 33.0, 12.2853),
    ("L2-089", 89.0, 20.0, 41.5, 28.7769),
    ("L4-100", 100.0, 23.0, 30.2, 10.3439),
    ("L3-119", 119.0, 36.0, 26.3, 7.6863),
    ("L4-140", 140.0, 42.0, 23.7, 7.2453),
    ("M1-100", 100.0, 23.0, 37.8, 8.4768),
    ("M2-119", 119.0, 36.0, 33.6, 5.6978),
    ("M1-140", 140.0, 42.0, 30.8, 6.3842),
    ("M2-166", 166.0, 50.0, 28.9, 5.5667),
    ("M1-195", 195.0, 59.0, 28.0, 7.0474),
    ("H1-195", 195.0, 59.0, 28.6, 10.4962),
    ("H2-235", 235.0, 71.0, 24.7, 10.7942),
    ("H1-280", 280.0, 84.0, 22.5, 13.8029),
    ("H2-337", 337.0, 101.0, 20.9, 21.9461),
    ("H3-402", 402.0, 92.0, 17.9, 47.4495),
)

# Farsian et al. 2020, Table 1: experiment, freq [GHz], depth_p [uK arcmin], fwhm [arcmin].
_FARSIAN_17 = (
    ("QUIJOTE", 11.0, 840.0, 55.2),
    ("QUIJOTE", 13.0, 840.0, 55.2),
    ("LiteBIRD", 40.0, 36.1, 69.2),
    ("LiteBIRD", 50.0, 19.6, 56.9),
    ("LiteBIRD", 60.0, 20.2, 49.0),
    ("LiteBIRD", 68.0, 11.3, 40.8),
    ("LiteBIRD", 78.0, 10.3, 36.1),
    ("LiteBIRD", 89.0, 8.4, 32.3),
    ("LiteBIRD", 100.0, 7.0, 27.7),
    ("LiteBIRD", 119.0, 5.8, 23.7),
    ("LiteBIRD", 140.0, 4.7, 20.7),
    ("LiteBIRD", 166.0, 7.0, 24.2),
    ("LiteBIRD", 195.0, 5.8, 21.7),
    ("LiteBIRD", 235.0, 8.0, 19.6),
    ("LiteBIRD", 280.0, 9.1, 13.2),
    ("LiteBIRD", 337.0, 11.4, 11.2),
    ("LiteBIRD", 402.0, 19.6, 9.7),
)


def litebird_ptep() -> Instrument:
    """LiteBIRD PTEP, 15 frequency bands (same-frequency channels inverse-variance combined).

    Top-hat bandwidths are the PTEP fractional bandwidths times the band centre.
    """
    freq, width, fwhm, depth = (list(col) for col in zip(*_LITEBIRD_15, strict=True))
    return Instrument(freq, depth, fwhm, bandpasses=width, name="LiteBIRD PTEP (15 bands)")


def litebird_ptep_channels() -> Instrument:
    """LiteBIRD PTEP, 22 channels in LFT/MFT/HFT order (several share a band centre).

    The channel names are in :func:`litebird_ptep_channel_names` order: ``L1-040``,
    ``L2-050``, ... ``H3-402``.
    """
    _, freq, width, fwhm, depth = (list(col) for col in zip(*_LITEBIRD_22, strict=True))
    return Instrument(freq, depth, fwhm, bandpasses=width, name="LiteBIRD PTEP (22 channels)")


def litebird_ptep_channel_names() -> tuple[str, ...]:
    """Names of the 22 LiteBIRD PTEP channels, in the order of :func:`litebird_ptep_channels`."""
    return tuple(row[0] for row in _LITEBIRD_22)


def quijote_mfi() -> Instrument:
    """QUIJOTE MFI at 11 and 13 GHz (Farsian et al. 2020, Table 1): 840 uK arcmin, 55.2'."""
    rows = _FARSIAN_17[:2]
    _, freq, depth, fwhm = (list(col) for col in zip(*rows, strict=True))
    return Instrument(freq, depth, fwhm, name="QUIJOTE MFI (11, 13 GHz)")


def farsian2020() -> Instrument:
    """The 17-band QUIJOTE (11, 13 GHz) + LiteBIRD table of Farsian et al. 2020, Table 1."""
    _, freq, depth, fwhm = (list(col) for col in zip(*_FARSIAN_17, strict=True))
    return Instrument(freq, depth, fwhm, name="Farsian et al. 2020 (QUIJOTE + LiteBIRD)")

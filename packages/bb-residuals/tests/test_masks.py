"""Apodisation tapers and latitude masks."""

from __future__ import annotations

import healpy as hp
import numpy as np
import pytest
from bb_residuals import apodize_mask, f_sky, f_sky_moments, latitude_mask


def _cap_mask(nside, radius_deg):
    """Observed disc of ``radius_deg`` around the north pole: distance to the edge is known."""
    theta, _ = hp.pix2ang(nside, np.arange(hp.nside2npix(nside)))
    return (np.degrees(theta) < radius_deg).astype(float), np.degrees(theta)


@pytest.mark.parametrize("kind", ["C1", "C2"])
def test_c1_c2_follow_their_formula(kind):
    nside, radius, apo = 32, 60.0, 10.0
    mask, theta = _cap_mask(nside, radius)
    w = apodize_mask(mask, apo, kind)
    assert np.all(w[mask == 0] == 0)
    assert np.all(w[theta < radius - apo - 3] == 1)
    # Pixels inside the taper: distance to the nearest unobserved pixel centre is
    # (radius - theta) up to half a pixel; compare with the analytic taper there.
    inside = (theta > radius - apo + 2) & (theta < radius - 2) & (mask > 0)
    dist = np.radians(radius - theta[inside])
    pix = np.radians(hp.nside2resol(nside, arcmin=True) / 60.0)
    lo, hi = dist - pix, dist + pix

    def taper(d):
        x = np.sqrt((1 - np.cos(d)) / (1 - np.cos(np.radians(apo))))
        f = (
            x - np.sin(2 * np.pi * x) / (2 * np.pi)
            if kind == "C1"
            else 0.5 * (1 - np.cos(np.pi * x))
        )
        return np.where(x < 1, f, 1.0)

    assert np.all((w[inside] >= taper(lo) - 1e-12) & (w[inside] <= taper(hi) + 1e-12))


def test_gaussian_apodisation_is_smooth_and_inside_mask():
    mask, theta = _cap_mask(32, 70.0)
    w = apodize_mask(mask, 8.0, "gaussian")
    assert np.all(w[mask == 0] == 0)
    assert np.all((w >= 0) & (w <= 1))
    assert np.all(w[theta < 30] > 0.98)  # harmonic smoothing rings at the percent level
    ring = (theta > 60) & (theta < 69)
    assert 0 < w[ring].mean() < 0.9


def test_latitude_mask_fsky_and_moments():
    mask = latitude_mask(32, 36.87)
    assert f_sky(mask) == pytest.approx(0.4, abs=0.01)
    w2, eff = f_sky_moments(mask)
    assert w2 == pytest.approx(f_sky(mask)) and eff == pytest.approx(f_sky(mask))
    smooth = latitude_mask(32, 36.87, smooth_deg=5.0)
    w2, eff = f_sky_moments(smooth)
    assert w2 < eff < f_sky(mask)


def test_mask_errors():
    mask = latitude_mask(8, 20.0)
    with pytest.raises(ValueError, match="kind"):
        apodize_mask(mask, 5.0, "C3")
    with pytest.raises(ValueError, match="aposize_deg"):
        apodize_mask(mask, 0.0)
    with pytest.raises(ValueError, match="empty"):
        apodize_mask(np.zeros_like(mask), 5.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        f_sky(2 * mask)
    with pytest.raises(ValueError, match="too large"):
        apodize_mask(latitude_mask(8, 80.0), 20.0, "gaussian")

"""From a configuration to the objects of a run: instrument, sky, masks and regions."""

from __future__ import annotations

import numpy as np
import spec_likelihood as sl

from ._config import CampaignConfig
from ._regions import (
    default_mask_fractions,
    dust_intensity,
    load_masks,
    region_mask,
    threshold_masks,
)
from ._sky import SkyMaps, simulate_pysm, simulate_synthetic, synthetic_amplitudes


def build_instrument(cfg: CampaignConfig) -> sl.Instrument:
    """The instrument of ``[instrument]`` (a CSV table wins over the preset)."""
    if cfg.instrument.file:
        return sl.Instrument.from_csv(cfg.instrument.file)
    presets = {
        "litebird_ptep": sl.litebird_ptep,
        "litebird_ptep_channels": sl.litebird_ptep_channels,
    }
    return presets[cfg.instrument.preset]()


def _mask_names(cfg: CampaignConfig) -> list[str]:
    names = list(cfg.regions.names)
    if cfg.sky.source == "validation":
        names.append(cfg.sky.validation_region)
    return names


def build_masks(cfg: CampaignConfig, dust_qu: np.ndarray | None) -> dict[str, np.ndarray]:
    """Named full-sky masks at the run's nside.

    From ``[regions] mask_file`` when set, otherwise thresholds of the smoothed dust
    polarised intensity ``dust_qu`` at the fractions named by the regions (GAL040 -> 40%).
    """
    nside = cfg.sky.nside
    if cfg.regions.mask_file:
        return load_masks(cfg.regions.mask_file, nside)
    if dust_qu is None:
        raise ValueError("built-in masks need the sky's dust map; give [regions] mask_file")
    return threshold_masks(dust_intensity(dust_qu), default_mask_fractions(_mask_names(cfg)))


def build_sky(cfg: CampaignConfig) -> SkyMaps:
    """Simulate (or read) the sky of ``[sky]`` at the instrument's frequencies."""
    sky_cfg = cfg.sky
    inst = build_instrument(cfg)
    freqs = inst.frequencies
    cls_file = sky_cfg.cls_file or None
    if sky_cfg.source == "file":
        sky = SkyMaps.load(sky_cfg.file)
        if sky.nside != sky_cfg.nside:
            raise ValueError(
                f"[sky] file has nside {sky.nside} but [sky] nside = {sky_cfg.nside}; "
                "make them equal"
            )
        if sky.frequencies.shape != freqs.shape or not np.allclose(sky.frequencies, freqs):
            raise ValueError(
                "[sky] file was simulated at other frequencies than [instrument]; "
                "re-run compsep simulate with this config"
            )
        return sky
    if sky_cfg.source == "pysm":
        widths = None
        if sky_cfg.bandpass == "tophat":
            widths = (
                inst.bandpasses
                if inst.bandpasses is not None
                else sky_cfg.bandwidth_fraction * freqs
            )
        return simulate_pysm(
            sky_cfg.nside,
            freqs,
            sky_cfg.preset,
            bandwidths=None if widths is None else list(np.asarray(widths, dtype=float)),
            beam_fwhm_arcmin=sky_cfg.beam_fwhm_arcmin,
        )
    kwargs = {
        "seed": sky_cfg.seed,
        "r": sky_cfg.r,
        "a_lens": sky_cfg.A_lens,
        "galaxy": sky_cfg.galaxy,
        "beam_fwhm_arcmin": sky_cfg.beam_fwhm_arcmin,
        "cls_file": cls_file,
    }
    if sky_cfg.source == "synthetic":
        return simulate_synthetic(sky_cfg.nside, freqs, **kwargs)
    # validation: the true patches live in a region, whose built-in mask derives from the
    # dust amplitude; the amplitudes depend only on the seed, so draw them first.
    dust = None
    if not cfg.regions.mask_file:
        rng_amp = np.random.default_rng(np.random.SeedSequence(sky_cfg.seed).spawn(3)[0])
        dust, _ = synthetic_amplitudes(sky_cfg.nside, sky_cfg.galaxy, rng_amp)
    masks = build_masks(cfg, dust)
    mask = region_mask(sky_cfg.validation_region, masks, sky_cfg.nside)
    return simulate_synthetic(
        sky_cfg.nside,
        freqs,
        validation_mask=mask,
        validation_counts=sky_cfg.true_counts,
        kmeans_seed=cfg.grid.kmeans_seed,
        **kwargs,
    )


def build_regions(cfg: CampaignConfig, sky: SkyMaps) -> dict[str, np.ndarray]:
    """``{region name: boolean full-sky mask}`` of ``[regions] names``."""
    masks = build_masks(cfg, sky.dust)
    return {name: region_mask(name, masks, cfg.sky.nside) for name in cfg.regions.names}

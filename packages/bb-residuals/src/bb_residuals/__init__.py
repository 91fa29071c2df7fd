"""bb-residuals: B-mode spectra on masked skies, CAMB templates, residual spectra and r.

Implements section IV of kabalan2025 (Clustered component separation): the D_ell convention,
systematic / statistical / total residual spectra, the BB model and the r likelihood, plus a
mode-coupling-corrected (MASTER) alternative to the paper's anafast / f_sky estimator.
"""

from ._coupling import coupling_kernels as coupling_kernels
from ._coupling import wigner_d_22 as wigner_d_22
from ._estimators import MasterEstimator as MasterEstimator
from ._estimators import NaiveEstimator as NaiveEstimator
from ._likelihood import STATUS_INTERVAL_NOT_BRACKETED as STATUS_INTERVAL_NOT_BRACKETED
from ._likelihood import STATUS_MIN_AT_GRID_EDGE as STATUS_MIN_AT_GRID_EDGE
from ._likelihood import STATUS_NONPOSITIVE_CURVATURE as STATUS_NONPOSITIVE_CURVATURE
from ._likelihood import STATUS_NONPOSITIVE_OBSERVED as STATUS_NONPOSITIVE_OBSERVED
from ._likelihood import STATUS_OK as STATUS_OK
from ._likelihood import STATUS_POSTERIOR_TRUNCATED as STATUS_POSTERIOR_TRUNCATED
from ._likelihood import RFit as RFit
from ._likelihood import fisher_sigma_r as fisher_sigma_r
from ._likelihood import fit_r as fit_r
from ._likelihood import r_likelihood_curve as r_likelihood_curve
from ._likelihood import r_neg2_log_likelihood as r_neg2_log_likelihood
from ._masks import apodize_mask as apodize_mask
from ._masks import f_sky as f_sky
from ._masks import f_sky_moments as f_sky_moments
from ._masks import latitude_mask as latitude_mask
from ._pixwin import pixel_window as pixel_window
from ._plots import plot_r_likelihoods as plot_r_likelihoods
from ._plots import plot_residual_spectra as plot_residual_spectra
from ._residuals import ResidualSpectra as ResidualSpectra
from ._residuals import residual_spectra as residual_spectra
from ._residuals import residual_spectra_from_cls as residual_spectra_from_cls
from ._spectra import SPECTRA as SPECTRA
from ._spectra import Bins as Bins
from ._spectra import cl_to_dl as cl_to_dl
from ._spectra import dl_factor as dl_factor
from ._spectra import dl_to_cl as dl_to_cl
from ._templates import BBTemplates as BBTemplates
from ._templates import CosmologyParams as CosmologyParams
from ._templates import camb_templates as camb_templates
from ._templates import default_cache_dir as default_cache_dir
from ._templates import read_templates as read_templates
from ._templates import template_cache_key as template_cache_key

__version__ = "0.1.0"

__all__ = [
    "SPECTRA",
    "STATUS_INTERVAL_NOT_BRACKETED",
    "STATUS_MIN_AT_GRID_EDGE",
    "STATUS_NONPOSITIVE_CURVATURE",
    "STATUS_NONPOSITIVE_OBSERVED",
    "STATUS_OK",
    "STATUS_POSTERIOR_TRUNCATED",
    "BBTemplates",
    "Bins",
    "CosmologyParams",
    "MasterEstimator",
    "NaiveEstimator",
    "RFit",
    "ResidualSpectra",
    "apodize_mask",
    "camb_templates",
    "cl_to_dl",
    "coupling_kernels",
    "default_cache_dir",
    "dl_factor",
    "dl_to_cl",
    "f_sky",
    "f_sky_moments",
    "fisher_sigma_r",
    "fit_r",
    "latitude_mask",
    "pixel_window",
    "plot_r_likelihoods",
    "plot_residual_spectra",
    "r_likelihood_curve",
    "r_neg2_log_likelihood",
    "read_templates",
    "residual_spectra",
    "residual_spectra_from_cls",
    "template_cache_key",
    "wigner_d_22",
]

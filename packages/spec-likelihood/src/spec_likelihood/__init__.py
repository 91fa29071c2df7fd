"""spec-likelihood: units, instruments, SEDs, noise, spectral likelihood and patch fits (JAX)."""

from ._components import ComponentMaps as ComponentMaps
from ._components import cmb_variance as cmb_variance
from ._components import component_maps as component_maps
from ._components import component_maps_likelihood as component_maps_likelihood
from ._components import parameter_covariance as parameter_covariance
from ._components import parameter_errors as parameter_errors
from ._fit import FitResult as FitResult
from ._fit import fit as fit
from ._fit import fit_likelihood as fit_likelihood
from ._fit import fit_likelihood_batch as fit_likelihood_batch
from ._instrument import Instrument as Instrument
from ._instrument import farsian2020 as farsian2020
from ._instrument import litebird_ptep as litebird_ptep
from ._instrument import litebird_ptep_channel_names as litebird_ptep_channel_names
from ._instrument import litebird_ptep_channels as litebird_ptep_channels
from ._instrument import quijote_mfi as quijote_mfi
from ._likelihood import HessianKind as HessianKind
from ._likelihood import LayoutArrays as LayoutArrays
from ._likelihood import PatchLayout as PatchLayout
from ._likelihood import SpectralLikelihood as SpectralLikelihood
from ._likelihood import negative_log_likelihood as negative_log_likelihood
from ._likelihood import patch_layout as patch_layout
from ._likelihood import quadratic_term_vgh as quadratic_term_vgh
from ._noise import inhomogeneous_noise_variance as inhomogeneous_noise_variance
from ._noise import noise_realisations as noise_realisations
from ._noise import pixel_size_arcmin as pixel_size_arcmin
from ._noise import white_noise_sigma as white_noise_sigma
from ._optimize import FitStatus as FitStatus
from ._optimize import minimize_partially_separable as minimize_partially_separable
from ._sed import AME as AME
from ._sed import CMB as CMB
from ._sed import PARAMETERS as PARAMETERS
from ._sed import Component as Component
from ._sed import Dust as Dust
from ._sed import ParameterSpec as ParameterSpec
from ._sed import Synchrotron as Synchrotron
from ._sed import mixing_matrix as mixing_matrix
from ._sed import parameter_specs as parameter_specs
from ._units import T_CMB as T_CMB
from ._units import K_CMB_to_K_RJ as K_CMB_to_K_RJ
from ._units import K_CMB_to_MJysr as K_CMB_to_MJysr
from ._units import K_RJ_to_K_CMB as K_RJ_to_K_CMB
from ._units import K_RJ_to_MJysr as K_RJ_to_MJysr
from ._units import unit_conversion as unit_conversion

__version__ = "0.3.1"

__all__ = [
    "AME",
    "CMB",
    "PARAMETERS",
    "T_CMB",
    "Component",
    "ComponentMaps",
    "Dust",
    "FitResult",
    "FitStatus",
    "HessianKind",
    "Instrument",
    "K_CMB_to_K_RJ",
    "K_CMB_to_MJysr",
    "K_RJ_to_K_CMB",
    "K_RJ_to_MJysr",
    "LayoutArrays",
    "ParameterSpec",
    "PatchLayout",
    "SpectralLikelihood",
    "Synchrotron",
    "cmb_variance",
    "component_maps",
    "component_maps_likelihood",
    "farsian2020",
    "fit",
    "fit_likelihood",
    "fit_likelihood_batch",
    "inhomogeneous_noise_variance",
    "litebird_ptep",
    "litebird_ptep_channel_names",
    "litebird_ptep_channels",
    "minimize_partially_separable",
    "mixing_matrix",
    "negative_log_likelihood",
    "noise_realisations",
    "parameter_covariance",
    "parameter_errors",
    "parameter_specs",
    "patch_layout",
    "pixel_size_arcmin",
    "quadratic_term_vgh",
    "quijote_mfi",
    "unit_conversion",
    "white_noise_sigma",
]

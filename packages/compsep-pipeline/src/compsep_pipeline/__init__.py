"""compsep-pipeline: end-to-end clustered parametric component separation campaigns.

Sky simulation (built-in synthetic Galaxy, validation sky, PySM 3), Galactic masks and
regions, the (K_bd, K_Td, K_bs) grid search over spherical K-means patch layouts,
comparison with the multi-resolution and single-patch layouts, residual B-mode spectra,
the tensor-to-scalar ratio, run folders and reports; CLI ``compsep``.
"""

from ._campaign import LayoutFit as LayoutFit
from ._campaign import RegionFitter as RegionFitter
from ._campaign import RegionProblem as RegionProblem
from ._campaign import auto_batch as auto_batch
from ._campaign import components as components
from ._campaign import enable_compilation_cache as enable_compilation_cache
from ._campaign import fit_layout as fit_layout
from ._campaign import grid_space as grid_space
from ._campaign import layout_metrics as layout_metrics
from ._campaign import region_problem as region_problem
from ._campaign import run_region_grid as run_region_grid
from ._campaign import select_best as select_best
from ._campaign import spatial_cmb_variance as spatial_cmb_variance
from ._campaign import warm_start as warm_start
from ._cmb import cmb_polarization_spectra as cmb_polarization_spectra
from ._cmb import cmb_templates as cmb_templates
from ._compare import MethodSpectra as MethodSpectra
from ._compare import StitchedMaps as StitchedMaps
from ._compare import foreground_systematic as foreground_systematic
from ._compare import method_spectra as method_spectra
from ._compare import r_table as r_table
from ._compare import stitch as stitch
from ._config import CampaignConfig as CampaignConfig
from ._config import ComparisonConfig as ComparisonConfig
from ._config import FitConfig as FitConfig
from ._config import GridConfig as GridConfig
from ._config import InstrumentConfig as InstrumentConfig
from ._config import NoiseConfig as NoiseConfig
from ._config import RegionsConfig as RegionsConfig
from ._config import SkyConfig as SkyConfig
from ._config import config_from_dict as config_from_dict
from ._config import config_from_toml as config_from_toml
from ._config import default_config as default_config
from ._config import load_config as load_config
from ._patches import PTEP_MULTIRES as PTEP_MULTIRES
from ._patches import KMeansPatcher as KMeansPatcher
from ._patches import multires_layout as multires_layout
from ._patches import single_patch_layout as single_patch_layout
from ._regions import dust_intensity as dust_intensity
from ._regions import load_masks as load_masks
from ._regions import region_mask as region_mask
from ._regions import resample_mask as resample_mask
from ._regions import threshold_masks as threshold_masks
from ._report import write_report as write_report
from ._run import CampaignResult as CampaignResult
from ._run import resume_campaign as resume_campaign
from ._run import run_campaign as run_campaign
from ._run import run_regions as run_regions
from ._setup import build_instrument as build_instrument
from ._setup import build_masks as build_masks
from ._setup import build_regions as build_regions
from ._setup import build_sky as build_sky
from ._sky import GalaxyModel as GalaxyModel
from ._sky import SkyMaps as SkyMaps
from ._sky import simulate_pysm as simulate_pysm
from ._sky import simulate_synthetic as simulate_synthetic

__version__ = "0.3.4"

__all__ = [
    "PTEP_MULTIRES",
    "CampaignConfig",
    "CampaignResult",
    "ComparisonConfig",
    "FitConfig",
    "GalaxyModel",
    "GridConfig",
    "InstrumentConfig",
    "KMeansPatcher",
    "LayoutFit",
    "MethodSpectra",
    "NoiseConfig",
    "RegionFitter",
    "RegionProblem",
    "RegionsConfig",
    "SkyConfig",
    "SkyMaps",
    "StitchedMaps",
    "__version__",
    "auto_batch",
    "build_instrument",
    "build_masks",
    "build_regions",
    "build_sky",
    "cmb_polarization_spectra",
    "cmb_templates",
    "components",
    "config_from_dict",
    "config_from_toml",
    "default_config",
    "dust_intensity",
    "enable_compilation_cache",
    "fit_layout",
    "foreground_systematic",
    "grid_space",
    "layout_metrics",
    "load_config",
    "load_masks",
    "method_spectra",
    "multires_layout",
    "r_table",
    "region_mask",
    "region_problem",
    "resample_mask",
    "resume_campaign",
    "run_campaign",
    "run_region_grid",
    "run_regions",
    "select_best",
    "simulate_pysm",
    "simulate_synthetic",
    "single_patch_layout",
    "spatial_cmb_variance",
    "stitch",
    "threshold_masks",
    "warm_start",
    "write_report",
]

"""Diffusion-model dust prior for dust/CMB separation on flat periodic patches.

Heurtel-Depeiges et al. 2023: a score-based diffusion model whose forward noise
is the CMB itself, so that posterior sampling of dust given dust + CMB is the
reverse SDE started at t*.
"""

from ._cosmology import (
    FIDUCIAL_PHI as FIDUCIAL_PHI,
)
from ._cosmology import (
    PRIOR_HIGH as PRIOR_HIGH,
)
from ._cosmology import (
    PRIOR_LOW as PRIOR_LOW,
)
from ._cosmology import (
    ClEmulator as ClEmulator,
)
from ._cosmology import (
    CMBGrid as CMBGrid,
)
from ._cosmology import (
    CMBSpectra as CMBSpectra,
)
from ._cosmology import (
    camb_cl as camb_cl,
)
from ._cosmology import (
    make_cmb_grid as make_cmb_grid,
)
from ._cosmology import (
    sample_phi as sample_phi,
)
from ._cosmology import (
    train_emulator as train_emulator,
)
from ._data import (
    augment as augment,
)
from ._data import (
    block_downsample as block_downsample,
)
from ._data import (
    dihedral as dihedral,
)
from ._data import (
    filament_map as filament_map,
)
from ._data import (
    load_maps as load_maps,
)
from ._data import (
    lognormal_map as lognormal_map,
)
from ._data import (
    periodic_crop as periodic_crop,
)
from ._data import (
    procedural_dust_maps as procedural_dust_maps,
)
from ._data import (
    standardise as standardise,
)
from ._evaluation import (
    gaussian_minkowski_functionals as gaussian_minkowski_functionals,
)
from ._evaluation import (
    minkowski_functionals as minkowski_functionals,
)
from ._evaluation import (
    nearest_training_neighbour as nearest_training_neighbour,
)
from ._evaluation import (
    periodic_distances as periodic_distances,
)
from ._evaluation import (
    power_spectrum as power_spectrum,
)
from ._evaluation import (
    spectral_moments as spectral_moments,
)
from ._flatsky import (
    apply_fourier_filter as apply_fourier_filter,
)
from ._flatsky import (
    covariance_eigenvalues as covariance_eigenvalues,
)
from ._flatsky import (
    fourier_ell as fourier_ell,
)
from ._flatsky import (
    gaussian_field as gaussian_field,
)
from ._flatsky import (
    power_law_eigenvalues as power_law_eigenvalues,
)
from ._report import compare_statistics as compare_statistics
from ._sde import (
    LinearSchedule as LinearSchedule,
)
from ._sde import (
    diffuse as diffuse,
)
from ._sde import (
    forward_euler_maruyama as forward_euler_maruyama,
)
from ._sde import (
    forward_marginal_variance as forward_marginal_variance,
)
from ._sde import (
    gaussian_prior_noise_fn as gaussian_prior_noise_fn,
)
from ._sde import (
    posterior_start as posterior_start,
)
from ._sde import (
    probability_flow_sample as probability_flow_sample,
)
from ._sde import (
    reverse_sde_sample as reverse_sde_sample,
)
from ._sde import (
    sample_posterior as sample_posterior,
)
from ._sde import (
    sample_prior as sample_prior,
)
from ._sde import (
    wiener_posterior as wiener_posterior,
)
from ._training import (
    TrainConfig as TrainConfig,
)
from ._training import (
    Trainer as Trainer,
)
from ._training import (
    TrainState as TrainState,
)
from ._training import (
    inverse_sqrt_schedule as inverse_sqrt_schedule,
)
from ._training import (
    latest_checkpoint_step as latest_checkpoint_step,
)
from ._training import (
    load_config as load_config,
)
from ._training import (
    load_state as load_state,
)
from ._training import (
    load_state_config as load_state_config,
)
from ._training import (
    resolve_precision as resolve_precision,
)
from ._training import (
    restore_checkpoint as restore_checkpoint,
)
from ._training import (
    run_training as run_training,
)
from ._training import (
    save_checkpoint as save_checkpoint,
)
from ._training import (
    save_state as save_state,
)
from ._training import (
    state_file_path as state_file_path,
)
from ._unet import UNet as UNet

__all__ = [
    "FIDUCIAL_PHI",
    "PRIOR_HIGH",
    "PRIOR_LOW",
    "CMBGrid",
    "CMBSpectra",
    "ClEmulator",
    "LinearSchedule",
    "TrainConfig",
    "TrainState",
    "Trainer",
    "UNet",
    "apply_fourier_filter",
    "augment",
    "block_downsample",
    "camb_cl",
    "compare_statistics",
    "covariance_eigenvalues",
    "diffuse",
    "dihedral",
    "filament_map",
    "forward_euler_maruyama",
    "forward_marginal_variance",
    "fourier_ell",
    "gaussian_field",
    "gaussian_minkowski_functionals",
    "gaussian_prior_noise_fn",
    "inverse_sqrt_schedule",
    "latest_checkpoint_step",
    "load_config",
    "load_maps",
    "load_state",
    "load_state_config",
    "lognormal_map",
    "make_cmb_grid",
    "minkowski_functionals",
    "nearest_training_neighbour",
    "periodic_crop",
    "periodic_distances",
    "posterior_start",
    "power_law_eigenvalues",
    "power_spectrum",
    "probability_flow_sample",
    "procedural_dust_maps",
    "resolve_precision",
    "restore_checkpoint",
    "reverse_sde_sample",
    "run_training",
    "sample_phi",
    "sample_posterior",
    "sample_prior",
    "save_checkpoint",
    "save_state",
    "spectral_moments",
    "standardise",
    "state_file_path",
    "train_emulator",
    "wiener_posterior",
]

__version__ = "0.3.1"

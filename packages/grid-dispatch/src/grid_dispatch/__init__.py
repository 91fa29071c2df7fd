"""grid-dispatch: distributed, resumable evaluation of jitted objectives over discrete grids."""

from ._adaptive import AdaptiveResult as AdaptiveResult
from ._adaptive import optuna_search as optuna_search
from ._evaluate import BatchResult as BatchResult
from ._evaluate import Evaluator as Evaluator
from ._evaluate import reduce_over_seeds as reduce_over_seeds
from ._partition import JaxDistributedBackend as JaxDistributedBackend
from ._partition import MPIBackend as MPIBackend
from ._partition import SingleProcess as SingleProcess
from ._partition import StaticPartition as StaticPartition
from ._partition import chunk_bounds as chunk_bounds
from ._partition import resolve_backend as resolve_backend
from ._partition import slurm_array_backend as slurm_array_backend
from ._results import best_per_group as best_per_group
from ._results import load_results as load_results
from ._results import mean_over as mean_over
from ._results import output_columns as output_columns
from ._results import to_xarray as to_xarray
from ._results import top_k as top_k
from ._run import RunSummary as RunSummary
from ._run import run_grid as run_grid
from ._space import SearchSpace as SearchSpace
from ._space import config_hash as config_hash
from ._store import ScanReport as ScanReport
from ._store import scan_results as scan_results

__version__ = "0.2.0"

__all__ = [
    "AdaptiveResult",
    "BatchResult",
    "Evaluator",
    "JaxDistributedBackend",
    "MPIBackend",
    "RunSummary",
    "ScanReport",
    "SearchSpace",
    "SingleProcess",
    "StaticPartition",
    "__version__",
    "best_per_group",
    "chunk_bounds",
    "config_hash",
    "load_results",
    "mean_over",
    "optuna_search",
    "output_columns",
    "reduce_over_seeds",
    "resolve_backend",
    "run_grid",
    "scan_results",
    "slurm_array_backend",
    "to_xarray",
    "top_k",
]

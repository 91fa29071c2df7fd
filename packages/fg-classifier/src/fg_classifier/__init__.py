"""fg-classifier: per-pixel neural recognition of the polarised foreground model.

Reproduces Farsian et al. 2020 (``../shared/papers/farsian2020_nn_foreground_recognition.md``)
with JAX and flax nnx: simulations over 17 QUIJOTE + LiteBIRD bands, the binary and
four-class networks, training with Adadelta, noisy retraining, evaluation against the paper's
Tables 2 and 3, and the chi^2 model-comparison baseline of section 5.
"""

from ._bayes import CurvatureBayes as CurvatureBayes
from ._bayes import curvature_bayes_choice as curvature_bayes_choice
from ._checkpoint import load_classifier as load_classifier
from ._checkpoint import save_classifier as save_classifier
from ._chi2 import Chi2Comparison as Chi2Comparison
from ._chi2 import chi2_model_comparison as chi2_model_comparison
from ._chi2 import pixel_chi2 as pixel_chi2
from ._evaluate import PAPER_CHI2_ACCURACY as PAPER_CHI2_ACCURACY
from ._evaluate import PAPER_TABLE2 as PAPER_TABLE2
from ._evaluate import PAPER_TABLE3 as PAPER_TABLE3
from ._evaluate import Evaluation as Evaluation
from ._evaluate import accuracy as accuracy
from ._evaluate import confusion_matrix as confusion_matrix
from ._evaluate import evaluate_maps as evaluate_maps
from ._evaluate import format_table2 as format_table2
from ._evaluate import format_table3 as format_table3
from ._evaluate import plot_probability_map as plot_probability_map
from ._features import FEATURES as FEATURES
from ._features import check_minmax as check_minmax
from ._features import make_features as make_features
from ._features import minmax_normalise as minmax_normalise
from ._labels import ModelLayout as ModelLayout
from ._labels import model_label_map as model_label_map
from ._models import MLP as MLP
from ._models import Classifier as Classifier
from ._models import ClassifierSpec as ClassifierSpec
from ._simulate import MODELS as MODELS
from ._simulate import TASKS as TASKS
from ._simulate import SimulationConfig as SimulationConfig
from ._simulate import TestMaps as TestMaps
from ._simulate import TrainingSet as TrainingSet
from ._simulate import maps_to_vectors as maps_to_vectors
from ._simulate import region_layout as region_layout
from ._simulate import simulate_test_maps as simulate_test_maps
from ._simulate import simulate_training_set as simulate_training_set
from ._simulate import simulate_vectors as simulate_vectors
from ._simulate import task_models as task_models
from ._sky import SkyTemplates as SkyTemplates
from ._sky import load_templates as load_templates
from ._sky import pixel_lonlat as pixel_lonlat
from ._sky import pysm_templates as pysm_templates
from ._sky import save_templates as save_templates
from ._sky import synthetic_templates as synthetic_templates
from ._train import TrainConfig as TrainConfig
from ._train import TrainResult as TrainResult
from ._train import make_optimizer as make_optimizer
from ._train import train as train

__version__ = "0.3.0"

__all__ = [
    "FEATURES",
    "MLP",
    "MODELS",
    "PAPER_CHI2_ACCURACY",
    "PAPER_TABLE2",
    "PAPER_TABLE3",
    "TASKS",
    "Chi2Comparison",
    "Classifier",
    "ClassifierSpec",
    "CurvatureBayes",
    "Evaluation",
    "ModelLayout",
    "SimulationConfig",
    "SkyTemplates",
    "TestMaps",
    "TrainConfig",
    "TrainResult",
    "TrainingSet",
    "accuracy",
    "check_minmax",
    "chi2_model_comparison",
    "confusion_matrix",
    "curvature_bayes_choice",
    "evaluate_maps",
    "format_table2",
    "format_table3",
    "load_classifier",
    "load_templates",
    "make_features",
    "make_optimizer",
    "maps_to_vectors",
    "minmax_normalise",
    "model_label_map",
    "pixel_chi2",
    "pixel_lonlat",
    "plot_probability_map",
    "pysm_templates",
    "region_layout",
    "save_classifier",
    "save_templates",
    "simulate_test_maps",
    "simulate_training_set",
    "simulate_vectors",
    "synthetic_templates",
    "task_models",
    "train",
]

"""One trainer for every task: configs, registries of tasks, models, loss terms and callbacks, the potential task
(OC20-style losses and metrics), the n-body, normals, QM9, tensor regression, Hamiltonian dynamics and image
classification tasks, and the trainer with EMA, schedules, exact resume and data parallelism."""

from . import _callbacks, _loss_terms  # noqa: F401  (register the built-in loss terms and callbacks)
from ._config import TrainConfig, build_config, load_config
from ._hamiltonian_task import HamiltonianData, HamiltonianTask
from ._image_task import ImageClassificationTask, ImageData
from ._losses import LossConfig, MetricAccumulator, compute_loss
from ._nbody_task import NBodyData, NBodyTask
from ._normals_task import NormalsData, NormalsTask
from ._plots import learning_curves, parity_plots, relaxation_curves
from ._potential_task import PotentialData, PotentialOptions, PotentialTask
from ._qm9_task import QM9Data, QM9Property, QM9Task
from ._registry import CALLBACKS, LOSS_TERMS, MODELS, TASKS, Registry
from ._task import Callback, LossOptions, LossTerm, ModelOptions, Symmetry, Task
from ._tensor_regression_task import TensorRegressionData, TensorRegressionTask
from ._trainer import Trainer, evaluate

__all__ = ["CALLBACKS", "Callback", "HamiltonianData", "HamiltonianTask", "ImageClassificationTask", "ImageData",
           "LOSS_TERMS", "LossConfig", "LossOptions", "LossTerm", "MODELS", "MetricAccumulator", "ModelOptions",
           "NBodyData", "NBodyTask", "NormalsData", "NormalsTask", "PotentialData", "PotentialOptions", "PotentialTask",
           "QM9Data", "QM9Property", "QM9Task", "Registry", "Symmetry", "TASKS", "Task", "TensorRegressionData",
           "TensorRegressionTask", "TrainConfig", "Trainer", "build_config", "compute_loss", "evaluate",
           "learning_curves", "load_config", "parity_plots", "relaxation_curves"]

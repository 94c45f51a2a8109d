"""Training interatomic potentials: configs, losses and OC20-style metrics, the trainer with exact resume."""

from ._config import TrainConfig, load_config
from ._losses import LossConfig, MetricAccumulator, compute_loss
from ._plots import learning_curves, parity_plots, relaxation_curves
from ._trainer import Trainer

__all__ = ["LossConfig", "MetricAccumulator", "TrainConfig", "Trainer", "compute_loss", "learning_curves",
           "load_config", "parity_plots", "relaxation_curves"]

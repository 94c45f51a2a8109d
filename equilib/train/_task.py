"""What a task owns, what a model and its options look like to the trainer, and the base classes of loss terms and
callbacks.

A task (registered in ``TASKS``) owns its datasets, how frames become batches, the loss, the metrics, the figures
and the symmetry its models should respect; the trainer owns everything else (the loop, optimizer, schedules, EMA,
checkpoints, resume, data parallelism, logging). A model (registered in ``MODELS``) is a builder
``build(options, task) -> torch.nn.Module`` with an ``Options`` dataclass; the task hands it what the data says
(species, statistics, sizes).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from ._registry import MODELS


@dataclass
class ModelOptions:
    """Base of every model's options: ``name`` is the registered model."""

    name: str = ""


@dataclass
class LossOptions:
    """Base of every task's loss options: ``terms`` are the extra registered loss terms."""

    terms: list = field(default_factory=list)  # [{name: ..., weight: ..., options...}]


@dataclass
class Symmetry:
    """How a model should transform: ``fn(*inputs)`` with representations (see :mod:`equilib.groups`)."""

    fn: Any
    group: Any
    inputs: tuple
    in_reps: tuple
    out_reps: tuple


class Task:
    """Datasets, batches, loss, metrics and figures of one kind of problem. Subclasses set ``Data``, ``Loss`` (a
    :class:`LossOptions` subclass), ``default_model`` and ``primary_metric``, and implement the methods below."""

    Data: ClassVar[type]
    Loss: ClassVar[type]
    default_model: ClassVar[str]
    primary_metric: ClassVar[str]  # a validation metric, lower is better (plateau schedule)
    curve_metrics: ClassVar[tuple[str, ...]] = ()  # validation metrics drawn in learning_curves.png

    def __init__(self, config) -> None:
        self.config = config

    # data
    train: Any  # a map-style dataset of frames
    val: dict  # split name -> map-style dataset

    def collate(self, frames: list):
        """One batch from a list of frames."""
        raise NotImplementedError

    def augment(self, batch, step: int):
        """The training batch of ``step`` as the model sees it (default: unchanged); a function of the step only, so
        that resumed runs augment the same way."""
        return batch

    def batch_size(self, batch) -> int:
        """The number of examples in ``batch`` (for throughput)."""
        raise NotImplementedError

    # model
    def build_model(self) -> torch.nn.Module:
        """The model ``config.model`` names, built by its registered builder with this task's data."""
        return MODELS.get(self.config.model.name, "model.name").build(self.config.model, self)

    def save_model(self, model: torch.nn.Module, path) -> None:
        """Write the trained model to ``path`` (atomically)."""
        raise NotImplementedError

    # training and evaluation
    def predict(self, model, batch):
        """The model's prediction on ``batch`` (what ``loss`` and the metrics read)."""
        raise NotImplementedError

    def loss(self, prediction, batch, count_reducer=None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``batch`` and its parts as floats; in data parallel runs ``count_reducer`` maps local element
        counts to global ones, so that the ranks' losses add up to the loss of the global batch."""
        raise NotImplementedError

    def metrics(self):
        """A fresh accumulator: ``update(prediction, batch)``, ``all_reduce()`` over ranks, ``compute() -> dict``."""
        raise NotImplementedError

    def figures(self, accumulator, split: str, out_dir) -> list:
        """Figures of one split's last evaluation (e.g. parity plots); default none."""
        return []

    def symmetry(self, model, batch) -> Symmetry:
        """The model on ``batch`` as a function of tensors, the group it should respect and how each tensor
        transforms (used by the equivariance loss term and callback)."""
        raise NotImplementedError


class LossTerm(torch.nn.Module):
    """An extra loss term, ``weight * value(model, batch)``. State to be resumed goes in buffers or
    ``get_extra_state``."""

    @dataclass
    class Options:
        weight: float = 1.0

    def __init__(self, options, task: Task) -> None:
        super().__init__()
        self.options, self.task = options, task

    def value(self, model, batch) -> torch.Tensor:
        raise NotImplementedError


class Callback:
    """Runs every ``every`` steps and at the end of training; returns metrics to log (``name/key``)."""

    @dataclass
    class Options:
        every: int = 100

    def __init__(self, options, task: Task) -> None:
        self.options, self.task = options, task

    def __call__(self, trainer) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

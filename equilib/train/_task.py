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
    """Base of every model's options.

    Attributes:
        name: The registered model (``model.name`` in a config).
    """

    name: str = ""


@dataclass
class LossOptions:
    """Base of every task's loss options.

    Attributes:
        terms: Extra registered loss terms, ``[{name: ..., weight: ..., options...}]``.
    """

    terms: list = field(default_factory=list)  # [{name: ..., weight: ..., options...}]


@dataclass
class Symmetry:
    """How a model should transform: ``fn(*inputs)`` with representations (see :mod:`equilib.groups`).

    Attributes:
        fn: The model on a batch as a function of tensors.
        group: The :class:`~equilib.groups.Group` it should respect.
        inputs: The tensors ``fn`` is called with.
        in_reps: One representation per input.
        out_reps: One representation per output of ``fn``.
    """

    fn: Any
    group: Any
    inputs: tuple
    in_reps: tuple
    out_reps: tuple


class Task:
    """Datasets, batches, loss, metrics and figures of one kind of problem.

    Subclasses set ``Data`` (the data options dataclass), ``Loss`` (a :class:`LossOptions` subclass),
    ``default_model``, ``primary_metric`` (a validation metric, lower is better) and ``curve_metrics``, build
    ``train`` and ``val`` (split name -> map-style dataset) in ``__init__``, and implement the methods below.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig`.
    """

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
        """One batch from a list of frames.

        Args:
            frames: Frames of ``train`` or of a validation split.

        Returns:
            The batch (with a ``to(device)`` method).
        """
        raise NotImplementedError

    def augment(self, batch, step: int):
        """The training batch of ``step`` as the model sees it (default: unchanged).

        A function of the batch and the step only, so that resumed runs augment the same way.

        Args:
            batch: A training batch.
            step: The optimizer step it is used at.

        Returns:
            The batch to train on.
        """
        return batch

    def augmentation_generator(self, step: int) -> torch.Generator:
        """The generator an augmentation draws from at ``step``: seeded from ``trainer.seed`` and the step alone, so
        that a resumed run draws the same elements.

        Args:
            step: The optimizer step.

        Returns:
            A fresh CPU ``torch.Generator``.
        """
        return torch.Generator().manual_seed(self.config.trainer.seed * 1_000_003 + step)

    def batch_size(self, batch) -> int:
        """The number of examples in ``batch`` (for throughput).

        Args:
            batch: A batch made by :meth:`collate`.

        Returns:
            The number of examples.
        """
        raise NotImplementedError

    # model
    def build_model(self) -> torch.nn.Module:
        """The model ``config.model`` names, built by its registered builder with this task's data.

        Returns:
            The ``torch.nn.Module``.

        Raises:
            ValueError: If the model is not registered or does not fit the task.
        """
        return MODELS.get(self.config.model.name, "model.name").build(self.config.model, self)

    def save_model(self, model: torch.nn.Module, path) -> None:
        """Write the trained model to ``path`` (atomically).

        Args:
            model: The model (the trainer passes its EMA copy).
            path: The file to write.
        """
        raise NotImplementedError

    # training and evaluation
    def predict(self, model, batch):
        """The model's prediction on ``batch`` (what :meth:`loss` and the metrics read).

        Args:
            model: The model.
            batch: A batch made by :meth:`collate` (on the model's device).

        Returns:
            ``{name: tensor}``.
        """
        raise NotImplementedError

    def loss(self, prediction, batch, count_reducer=None) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of ``batch`` and its parts.

        Args:
            prediction: What :meth:`predict` returned.
            batch: A batch made by :meth:`collate` (on the model's device).
            count_reducer: In data-parallel runs, maps local element counts ``{part: count}`` to global ones, so
                that the ranks' losses add up to the loss of the global batch; None in a single process.

        Returns:
            ``(loss, parts)``: the differentiable 0-d loss and ``{part: float}`` local means for logging.
        """
        raise NotImplementedError

    def metrics(self):
        """A fresh metric accumulator.

        Returns:
            An object with ``update(prediction, batch)``, ``all_reduce()`` (over ranks) and ``compute() -> dict``.
        """
        raise NotImplementedError

    def figures(self, accumulator, split: str, out_dir) -> list:
        """Figures of one split's last evaluation (e.g. parity plots); default none.

        Args:
            accumulator: The split's accumulator from :meth:`metrics`.
            split: The split's name.
            out_dir: The run directory (a ``pathlib.Path``).

        Returns:
            The paths of the written figures.
        """
        return []

    def symmetry(self, model, batch) -> Symmetry:
        """The model on ``batch`` as a function of tensors, the group it should respect and how each tensor transforms.

        Used by the ``equivariance`` loss term and the ``equivariance_error`` callback.

        Args:
            model: The model.
            batch: A batch made by :meth:`collate` (on the model's device).

        Returns:
            The :class:`Symmetry`.
        """
        raise NotImplementedError


def mean_loss(values: torch.Tensor, part: str, name: str, count_reducer=None) -> tuple[torch.Tensor, dict[str, float]]:
    """The mean of ``values`` over the elements of the global batch, as :meth:`Task.loss` returns it.

    Args:
        values: The loss of each element of the local batch.
        part: The name the element count goes by in ``count_reducer``.
        name: The name of the logged local mean.
        count_reducer: Maps local element counts to global ones in data-parallel runs (see :meth:`Task.loss`);
            None in a single process.

    Returns:
        ``(sum of values / global count, {name: local mean})``.
    """
    count = values.numel()
    total = count_reducer({part: count})[part] if count_reducer is not None else count
    summed = values.sum()
    return summed / total, {name: float(summed.detach()) / count}


class SummedMetrics:
    """A metric accumulator of sums and element counts per key, reduced over ranks: subclasses add each batch's sums
    in ``update`` and turn them into metrics in ``compute`` (see :meth:`Task.metrics`).

    Args:
        keys: Keys that start at zero (every rank then reduces them, even one that saw no batch).
    """

    def __init__(self, keys: tuple[str, ...] = ()) -> None:
        self.sums: dict[str, float] = dict.fromkeys(keys, 0.0)
        self.counts: dict[str, int] = dict.fromkeys(keys, 0)

    def _add(self, key: str, value: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0) + count

    def _means(self) -> dict[str, float]:
        return {key: total / max(self.counts[key], 1) for key, total in self.sums.items()}

    def all_reduce(self) -> None:
        """Sum the accumulated totals and counts over the ranks of a process group (no-op in a single process)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        keys = sorted(self.sums)
        values = torch.tensor([[self.sums[k], self.counts[k]] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        for k, (total, count) in zip(keys, values.tolist()):
            self.sums[k], self.counts[k] = total, int(count)


class SquaredError(SummedMetrics):
    """Sum of squared errors of one predicted tensor and their count, reduced over ranks; ``compute()`` gives
    ``{"mse": ...}``.

    Args:
        key: The prediction's key.
        target: The batch's field that holds the target.
    """

    def __init__(self, key: str, target: str) -> None:
        super().__init__(("mse",))
        self.key, self.target = key, target

    @torch.no_grad()
    def update(self, prediction: dict, batch) -> None:
        diff = prediction[self.key].double() - getattr(batch, self.target).double()
        self._add("mse", float(diff.pow(2).sum()), diff.numel())

    def compute(self) -> dict[str, float]:
        return self._means()


class LossTerm(torch.nn.Module):
    """An extra loss term, ``weight * value(model, batch)``, added to the task's loss on every training step.

    State to be resumed goes in buffers or ``get_extra_state`` (saved in checkpoints).

    Args:
        options: The term's ``Options`` dataclass (with ``weight``).
        task: The run's :class:`Task`.
    """

    @dataclass
    class Options:
        """Options of a loss term; subclasses extend them.

        Attributes:
            weight: Weight of the term in the loss.
        """

        weight: float = 1.0

    def __init__(self, options, task: Task) -> None:
        super().__init__()
        self.options, self.task = options, task

    def value(self, model, batch) -> torch.Tensor:
        """The term's value on a training batch (before ``weight``).

        Args:
            model: The model being trained.
            batch: The training batch (on the model's device).

        Returns:
            A differentiable 0-d tensor.
        """
        raise NotImplementedError

    def logs(self) -> dict[str, float]:
        """Extra values to log after :meth:`value` (as ``loss_<name>_<key>``); none by default.

        Returns:
            Key -> value.
        """
        return {}


class Callback:
    """Runs every ``every`` steps and at the end of training; ``callback(trainer)`` returns metrics to log.

    The values are logged as ``<name>/<key>`` in ``metrics.csv`` and TensorBoard.

    Args:
        options: The callback's ``Options`` dataclass (with ``every``).
        task: The run's :class:`Task`.
    """

    @dataclass
    class Options:
        """Options of a callback; subclasses extend them.

        Attributes:
            every: Steps between runs (and at the end of training).
        """

        every: int = 100

    def __init__(self, options, task: Task) -> None:
        self.options, self.task = options, task

    def __call__(self, trainer) -> dict[str, float]:
        raise NotImplementedError

    def state_dict(self) -> dict:
        """State to save in checkpoints (default none).

        Returns:
            A dictionary for :meth:`load_state_dict`.
        """
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what :meth:`state_dict` returned (default: nothing to restore).

        Args:
            state: The saved dictionary.
        """
        pass

"""The loss a curvature operator differentiates: a closure of the model and one batch, and the exact loss over many.

A loss is either a plain callable ``loss(model, batch) -> 0-d tensor`` or :func:`task_loss` of an equilib task (any
object with ``predict(model, batch)`` and ``loss(prediction, batch, count_reducer=None) -> (loss, parts)``; this
package does not import :mod:`equilib.train`). :class:`DataLoss` splits the loss over all batches -- of every rank
under ``torch.distributed`` -- into one term per batch, so that the terms add up to it (curvature notes, 4.2):

- a task's loss is the loss of the union of the batches: a first pass records each batch's element counts per loss
  part (structures for energies, atoms or force components for forces), and every batch's loss is then divided by
  the totals over all batches (the task's ``count_reducer``, as in data-parallel training), not averaged per batch;
- a plain callable's batch losses are averaged with per-batch ``weights`` (default equal): ``sum_b w_b L_b / sum_b
  w_b``. Weights proportional to the batch sizes make a per-sample mean loss the mean over all samples.

:func:`loss_mode` is how the model is evaluated: in training mode, with dropout and normalisation layers in evaluation
mode.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
import torch.distributed as dist
from e3nn.nn import BatchNorm as E3nnBatchNorm

from ..utils import all_samples

# Layers whose training mode draws random numbers or couples (and updates statistics of) the samples of a batch.
RANDOM_OR_COUPLED = (torch.nn.modules.dropout._DropoutNd, torch.nn.modules.batchnorm._NormBase, E3nnBatchNorm)


class TaskLoss:
    """An equilib task's training loss as a closure: ``task.loss(task.predict(model, batch), batch)``.

    Batches with a ``to`` method are moved to the operator's device first (tasks expect batches there).

    Args:
        task: An object with ``predict(model, batch)`` and ``loss(prediction, batch, count_reducer=None)``
            returning ``(loss, parts)`` (an :class:`equilib.train.Task`); ``count_reducer`` maps the batch's element
            counts ``{part: count}`` to those its loss is divided by.

    Raises:
        TypeError: If ``task`` lacks a callable ``predict`` or ``loss``.

    Examples:
        >>> import torch
        >>> class Task:  # a mean squared error over the elements of all batches
        ...     def predict(self, model, batch):
        ...         return model(batch[0])
        ...     def loss(self, prediction, batch, count_reducer=None):
        ...         count = prediction.numel()
        ...         total = count_reducer({"y": count})["y"] if count_reducer else count
        ...         return (prediction - batch[1]).pow(2).sum() / total, {}
        >>> loss = task_loss(Task())
        >>> model = torch.nn.Linear(1, 1, bias=False).double()
        >>> _ = torch.nn.init.ones_(model.weight)
        >>> batch = (torch.tensor([[1.0], [2.0]], dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64))
        >>> float(loss(model, batch).detach()), loss.counts(model, batch)
        (2.5, {'y': 2})
    """

    def __init__(self, task) -> None:
        for name in ("predict", "loss"):
            if not callable(getattr(task, name, None)):
                raise TypeError(f"task: expected an object with predict(model, batch) and loss(prediction, batch, "
                                f"count_reducer=None), got {type(task).__name__} without {name}")
        self.task = task

    def outputs(self, model: torch.nn.Module, batch):
        """The task's prediction (what its loss reads).

        Args:
            model: The model.
            batch: A batch on the model's device.

        Returns:
            What ``task.predict`` returns (``{name: tensor}``).
        """
        return self.task.predict(model, batch)

    def loss_of_outputs(self, outputs, batch, count_reducer=None) -> torch.Tensor:
        """The task's loss of a prediction.

        Args:
            outputs: What :meth:`outputs` returned.
            batch: The batch.
            count_reducer: Maps the batch's element counts to the counts the loss is divided by; None: its own.

        Returns:
            The 0-d loss.
        """
        return self.task.loss(outputs, batch, count_reducer=count_reducer)[0]

    def __call__(self, model: torch.nn.Module, batch, count_reducer=None) -> torch.Tensor:
        return self.loss_of_outputs(self.outputs(model, batch), batch, count_reducer)

    def counts(self, model: torch.nn.Module, batch) -> dict[str, int]:
        """The element count of each loss part in ``batch`` (what the task's loss hands its ``count_reducer``).

        Args:
            model: The model.
            batch: A batch on the model's device.

        Returns:
            ``{part: count}`` (empty if the loss never calls ``count_reducer``).
        """
        recorded: dict[str, int] = {}

        def record(counts):
            recorded.update({part: int(n) for part, n in counts.items()})
            return counts

        with torch.enable_grad():  # potentials differentiate the energy for forces
            self(model, batch, count_reducer=record)
        return recorded


def task_loss(task) -> TaskLoss:
    """An equilib task's training loss (predict, then loss) for the curvature operators.

    Over several batches the operators use the loss of their union: energies weighted per structure and forces per
    atom over all batches, not per batch (see the module's notes).

    Args:
        task: An object with ``predict(model, batch)`` and ``loss(prediction, batch, count_reducer=None)``.

    Returns:
        The :class:`TaskLoss`.

    Examples:
        >>> class Task:
        ...     def predict(self, model, batch): return model(batch)
        ...     def loss(self, prediction, batch, count_reducer=None): return prediction.sum(), {}
        >>> type(task_loss(Task())).__name__
        'TaskLoss'
    """
    return TaskLoss(task)


@contextlib.contextmanager
def loss_mode(model: torch.nn.Module) -> Iterator[None]:
    """Evaluate ``model``'s training loss deterministically: the model in training mode (equilib potentials keep the
    graph of their forces only in training mode, and a force loss needs it), but dropout and normalisation layers in
    evaluation mode (no random masks; running statistics, which are not updated), and modules that sample in
    training (:class:`equilib.utils.SamplingModule`: stochastic frame averaging) over all their samples, as at
    evaluation (:func:`equilib.utils.all_samples`). Every module's mode and flag is restored on exit.

    Args:
        model: The model.

    Yields:
        Nothing; the model is in that mode inside the ``with`` block.

    Examples:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5)).eval()
        >>> with loss_mode(model):
        ...     model.training, model[1].training
        (True, False)
        >>> model.training
        False
    """
    modes = [(module, module.training) for module in model.modules()]
    try:
        model.train()
        for module in model.modules():
            if isinstance(module, RANDOM_OR_COUPLED):
                module.eval()
        with all_samples(model):
            yield
    finally:
        for module, training in modes:
            module.training = training


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over the ranks of the default process group, in place (unchanged in a single process).

    Args:
        tensor: The local tensor.

    Returns:
        ``tensor``, now the sum over ranks.
    """
    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def batches_of(data) -> list | object:
    """The batches in ``data``: a list, or a re-iterable loader (an iterable without a ``to`` method, such as a
    ``DataLoader``); anything else (a tensor, a tuple, a dict, a graph batch) is one batch.

    Args:
        data: One batch or a sequence of batches.

    Returns:
        A list or a re-iterable of batches.

    Raises:
        ValueError: If ``data`` is a one-shot iterator (a generator), which the operators cannot re-read.
    """
    if isinstance(data, list):
        return data
    if isinstance(data, (torch.Tensor, tuple, dict, str)) or hasattr(data, "to") or not hasattr(data, "__iter__"):
        return [data]
    if iter(data) is data:
        raise ValueError(f"data: expected one batch, a list of batches or a re-iterable loader, got a one-shot "
                         f"iterator ({type(data).__name__}); pass list(...) of it")
    return data


class BatchTerm:
    """One batch's term of the loss over all batches: ``loss(outputs(model))``.

    Args:
        outputs: ``outputs(model)``: what the loss of this batch reads (a 0-d loss, a tensor or a dict of tensors).
        loss: ``loss(outputs) -> 0-d tensor``: the batch's weighted share of the total loss.
    """

    def __init__(self, outputs: Callable, loss: Callable) -> None:
        self.outputs, self.loss = outputs, loss

    def __call__(self, model: torch.nn.Module) -> torch.Tensor:
        return self.loss(self.outputs(model))


class DataLoss:
    """The loss over all batches (of all ranks) as one term per local batch; the terms add up to it.

    Args:
        model: The model (a task's element counts are recorded with it at construction).
        loss: A plain ``loss(model, batch) -> 0-d tensor``, a ``loss_of_outputs(outputs, batch) -> 0-d tensor``
            when ``outputs`` is given, or a :class:`TaskLoss`.
        data: One batch, a list of batches or a re-iterable loader that yields the same batches on every pass
            (see :func:`batches_of`); under ``torch.distributed`` each rank's own shard.
        weights: Plain losses only: one non-negative weight per (local) batch; None: equal weights.
        outputs: ``outputs(model, batch)`` for a Gauss-Newton split of a plain loss of outputs; None otherwise.
        device: Where task batches are moved (with their ``to`` method).

    Attributes:
        num_batches: The number of batches over all ranks.

    Raises:
        TypeError: If ``loss`` or ``outputs`` is not callable.
        ValueError: If there is no batch, ``weights`` are given with a task loss, do not match the batches or are
            negative, not finite or all zero, ``outputs`` is given with a task loss, a task loss over several batches
            never calls its ``count_reducer``, or ``data`` is a one-shot iterator.
    """

    def __init__(self, model: torch.nn.Module, loss, data, weights=None, outputs: Callable | None = None,
                 device=None) -> None:
        if not callable(loss):
            raise TypeError(f"loss: expected a callable or task_loss(task), got {type(loss).__name__}")
        if outputs is not None and not callable(outputs):
            raise TypeError(f"outputs: expected a callable outputs(model, batch), got {type(outputs).__name__}")
        self.loss, self.outputs, self.device = loss, outputs, device
        self.batches = batches_of(data)
        self.task = isinstance(loss, TaskLoss)
        if self.task and weights is not None:
            raise ValueError("weights: a task's loss weights the elements of all batches itself (per structure, per "
                             "atom); pass weights only with a plain loss callable")
        if self.task and outputs is not None:
            raise ValueError("outputs: a task_loss(task) reads the task's predictions; pass outputs=None")
        if self.task:
            self._count(model)
        else:
            self._weigh(weights)
        if self.num_batches == 0:
            raise ValueError("data: expected at least one batch, got none")

    def _count(self, model: torch.nn.Module) -> None:
        """The element counts of every part over all batches and ranks (the task's ``count_reducer`` totals)."""
        totals: dict[str, int] = {}
        local = 0
        with loss_mode(model):
            for batch in self.batches:
                for part, n in self.loss.counts(model, self._moved(batch)).items():
                    totals[part] = totals.get(part, 0) + n
                local += 1
        self.num_batches, self.totals = local, totals
        called = bool(totals)
        if dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (totals, local))
            self.totals = {}
            for rank_totals, _ in gathered:
                for part, n in rank_totals.items():
                    self.totals[part] = self.totals.get(part, 0) + n
            self.num_batches = sum(n for _, n in gathered)
            called = bool(self.totals)
        if self.num_batches > 1 and not called:
            raise ValueError("loss: the task's loss never calls its count_reducer, so its batches cannot be weighted "
                             "as one loss over all of them; pass a single batch or a plain loss callable with weights")

    def _weigh(self, weights) -> None:
        """Each local batch's weight divided by the sum of the weights over all batches and ranks."""
        local = len(self.batches) if hasattr(self.batches, "__len__") else sum(1 for _ in self.batches)
        values = [1.0] * local if weights is None else [float(w) for w in weights]
        if len(values) != local:
            raise ValueError(f"weights: expected one weight per batch ({local}), got {len(values)}")
        if any(not (math.isfinite(w) and w >= 0) for w in values):
            raise ValueError(f"weights: expected finite non-negative numbers, got {values}")
        total, count = sum(values), local
        if dist.is_available() and dist.is_initialized():
            gathered: list = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, (total, local))
            total, count = sum(t for t, _ in gathered), sum(n for _, n in gathered)
        self.num_batches = count
        if count and total <= 0:
            raise ValueError("weights: expected at least one positive weight")
        self.scales = [w / total for w in values] if count else []

    def _moved(self, batch):
        return batch.to(self.device) if self.device is not None and hasattr(batch, "to") else batch

    def terms(self) -> Iterator[BatchTerm]:
        """One term per local batch, in order.

        Yields:
            :class:`BatchTerm` of each batch; their values add up (over all ranks) to the loss over all batches.
        """
        if self.task:
            def reducer(counts):
                return {part: self.totals[part] for part in counts}

            for batch in self.batches:
                batch = self._moved(batch)
                yield BatchTerm(lambda model, b=batch: self.loss.outputs(model, b),
                                lambda out, b=batch: _scalar(self.loss.loss_of_outputs(out, b, reducer)))
            return
        for batch, scale in zip(self.batches, self.scales):
            if self.outputs is None:
                yield BatchTerm(lambda model, b=batch: self.loss(model, b), lambda out, s=scale: s * _scalar(out))
            else:
                yield BatchTerm(lambda model, b=batch: self.outputs(model, b),
                                lambda out, b=batch, s=scale: s * _scalar(self.loss(out, b)))


def _scalar(value) -> torch.Tensor:
    if not isinstance(value, torch.Tensor) or value.dim() != 0:
        got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"loss: expected a 0-d tensor, got {got}")
    return value

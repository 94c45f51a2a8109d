"""Callbacks, registered by name (``callbacks`` in a config): run every N steps and at the end of training, their
values logged in ``metrics.csv`` and TensorBoard as ``<name>/<key>``.

``equivariance_error``: the relative equivariance error of the EMA model under the task's group on the first
``batches`` batches of a validation split, worst over ``samples`` elements drawn from a fixed seed (the same elements
every time, so the curve shows the model, not the draw). ``curvature`` (its own module): the training loss's sharpness,
trace and stability ratios on a fixed curvature batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..groups import equivariance_error
from . import _curvature_callback  # noqa: F401  (registers the curvature callback)
from ._registry import CALLBACKS
from ._task import Callback


@CALLBACKS.register("equivariance_error")
class EquivarianceErrorCallback(Callback):
    """The EMA model's equivariance error on validation batches, logged as ``equivariance_error/<split>``.

    Args:
        options: The :class:`Options`.
        task: The run's task (its ``symmetry`` gives the function, group and representations).
    """

    @dataclass
    class Options:
        """Options of the ``equivariance_error`` callback.

        Attributes:
            every: Steps between runs (and at the end of training).
            split: Validation split to measure on (None: the first).
            batches: How many of its batches (the largest error is logged).
            samples: Group elements per batch (the worst is kept).
            seed: Seed of the elements: the same ones every time, so the curve shows the model, not the draw.

        Raises:
            ValueError: If ``every``, ``batches`` or ``samples`` is not a positive int.
        """

        every: int = 100
        split: str | None = None  # default: the first validation split
        batches: int = 1
        samples: int = 4
        seed: int = 0

        def __post_init__(self) -> None:
            for name in ("every", "batches", "samples"):
                value = getattr(self, name)
                if not isinstance(value, int) or value < 1:
                    raise ValueError(f"callbacks: equivariance_error: {name}: expected a positive int, got {value!r}")

    def __call__(self, trainer) -> dict[str, float]:
        split = self.options.split or next(iter(trainer.task.val))
        if split not in trainer.task.val:
            raise ValueError(f"callbacks: equivariance_error: split: unknown split {split!r}; known: "
                             f"{', '.join(trainer.task.val)}")
        model = trainer.ema.module.eval()
        errors = []
        for k, batch in enumerate(trainer.eval_batches(split)):
            if k == self.options.batches:
                break
            s = self.task.symmetry(model, batch)
            generator = torch.Generator().manual_seed(self.options.seed + k)
            errors.append(float(equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps,
                                                   samples=self.options.samples, generator=generator).detach()))
        return {split: max(errors)}

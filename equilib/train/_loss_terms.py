"""Extra loss terms, registered by name (``loss.terms`` in a config).

``equivariance``: the mean relative equivariance error of the model on the training batch under the task's group
(:func:`equilib.groups.equivariance_error`), on ``samples`` elements drawn from the term's own generator (its state is
saved in checkpoints, so a resumed run draws the same elements). As a penalty it makes a model softly equivariant
(the soft-equivariance regularisers of the later issues build on it).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..groups import equivariance_error
from ._registry import LOSS_TERMS
from ._task import LossTerm


@LOSS_TERMS.register("equivariance")
class EquivarianceTerm(LossTerm):
    """``weight * mean_g ||f(g.x) - g.f(x)|| / ||f(x)||`` on each training batch, logged as ``loss_equivariance``.

    Args:
        options: The :class:`Options`.
        task: The run's task (its ``symmetry`` gives the function, group and representations).
    """

    @dataclass
    class Options:
        """Options of the ``equivariance`` loss term.

        Attributes:
            weight: Weight of the term in the loss.
            samples: Group elements drawn per step.
            seed: Seed of the term's own generator (its state is checkpointed, so a resumed run draws the same
                elements).

        Raises:
            ValueError: If ``samples`` is not a positive int.
        """

        weight: float = 1.0
        samples: int = 2
        seed: int = 0

        def __post_init__(self) -> None:
            if not isinstance(self.samples, int) or self.samples < 1:
                raise ValueError(f"loss.terms: equivariance: samples: expected a positive int, got {self.samples!r}")

    def __init__(self, options, task) -> None:
        super().__init__(options, task)
        self.generator = torch.Generator().manual_seed(options.seed)

    def value(self, model, batch) -> torch.Tensor:
        """The mean relative equivariance error of ``model`` on ``batch`` under the task's group.

        Args:
            model: The model being trained.
            batch: The training batch.

        Returns:
            A differentiable 0-d tensor.
        """
        s = self.task.symmetry(model, batch)
        return equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, samples=self.options.samples,
                                  generator=self.generator, reduction="mean")

    def get_extra_state(self):
        return self.generator.get_state()

    def set_extra_state(self, state) -> None:
        self.generator.set_state(state)

"""Extra loss terms, registered by name (``loss.terms`` in a config).

``equivariance``: the mean relative equivariance error of the model on the training batch under the task's group
(:func:`equilib.groups.equivariance_error`), on ``samples`` elements drawn from the term's own generator (its state is
saved in checkpoints, so a resumed run draws the same elements). As a penalty it makes a model softly equivariant
(the soft-equivariance regularisers of the later issues build on it).

``hessian_alignment``: the spread of the loss gradients and Hessian diagonals across the domains of the training
batch (:func:`equilib.curvature.hessian_alignment`; Hemati et al., ICCV 2023), for the potential task, whose structures
are grouped by their slab's metal or by a per-structure attribute of the batch; its probes are seeded by the term's
step count (checkpointed), so a resumed run draws the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..curvature._alignment import hessian_alignment, metal_domains
from ..curvature._loss import task_loss
from ..groups import equivariance_error
from ._potential_task import PotentialTask
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


@LOSS_TERMS.register("hessian_alignment")
class HessianAlignmentTerm(LossTerm):
    """``weight * (gradient_weight * G + hessian_weight * D)`` on each training batch, logged as
    ``loss_hessian_alignment``: ``G`` and ``D`` are the spreads over the batch's domains of the task loss's gradients
    and Hessian diagonals (Hutchinson's estimates); see :func:`equilib.curvature.hessian_alignment`.

    Args:
        options: The :class:`Options`.
        task: The run's task: the potential task.

    Raises:
        ValueError: If ``task`` is not the potential task.
    """

    @dataclass
    class Options:
        """Options of the ``hessian_alignment`` loss term.

        Attributes:
            weight: Weight of the term in the loss.
            gradient_weight: Weight of the gradients' spread (Hemati et al.'s ``beta``).
            hessian_weight: Weight of the Hessian diagonals' spread (their ``alpha``); 0 skips the Hessian.
            probes: Rademacher probes of the Hessian diagonals per step, shared by the domains; None: the exact
                diagonals (one product per parameter entry: small ``params`` only).
            domains: How the batch's structures are grouped: ``metal`` (the most frequent element other than H, C,
                N and O, the slab's metal) or the name of a per-structure integer attribute of the batch.
            params: Regular expression of the parameters aligned (matched at the start of their names, e.g.
                ``readout``); None: all trainable ones.
            normalize: Divide each spread by the domains' mean squared norm (detached), so each part lies in
                [0, 1] whatever the loss's scale (see :func:`~equilib.curvature.hessian_alignment`).
            seed: Seed of the probes, combined with the term's step count (checkpointed).

        Raises:
            ValueError: If a weight is negative or not finite, ``probes`` is neither None nor a positive int,
                ``domains`` is not a non-empty string, ``normalize`` is not a bool, or ``seed`` is not an int in
                ``[0, 2**31)``.
        """

        weight: float = 1.0
        gradient_weight: float = 1.0
        hessian_weight: float = 1.0
        probes: int | None = 10
        domains: str = "metal"
        params: str | None = None
        normalize: bool = False
        seed: int = 0

        def __post_init__(self) -> None:
            where = "loss.terms: hessian_alignment"
            if not isinstance(self.normalize, bool):
                raise ValueError(f"{where}: normalize: expected true or false, got {self.normalize!r}")
            for name in ("gradient_weight", "hessian_weight"):
                value = getattr(self, name)
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
                    raise ValueError(f"{where}: {name}: expected a finite number >= 0, got {value!r}")
            if self.probes is not None and (isinstance(self.probes, bool) or not isinstance(self.probes, int)
                                            or self.probes < 1):
                raise ValueError(f"{where}: probes: expected a positive int or null (exact), got {self.probes!r}")
            if not isinstance(self.domains, str) or not self.domains:
                raise ValueError(f"{where}: domains: expected 'metal' or a batch attribute's name, got "
                                 f"{self.domains!r}")
            if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**31:
                raise ValueError(f"{where}: seed: expected an int in [0, 2**31), got {self.seed!r}")

    def __init__(self, options, task) -> None:
        super().__init__(options, task)
        if not isinstance(task, PotentialTask):
            raise ValueError(f"loss.terms: hessian_alignment needs the potential task (its batches of structures are "
                             f"split into domains), not {type(task).__name__}")
        self.loss = task_loss(task)
        self.register_buffer("steps", torch.zeros((), dtype=torch.int64))

    def value(self, model, batch) -> torch.Tensor:
        """The alignment penalty of ``model`` on ``batch``, with this step's probes.

        Args:
            model: The model being trained.
            batch: The training batch.

        Returns:
            A differentiable 0-d tensor.
        """
        generator = torch.Generator().manual_seed(self.options.seed * 2**32 + int(self.steps))
        self.steps += 1
        o = self.options
        return hessian_alignment(model, self.loss, batch, self.domains, params=o.params,
                                 gradient_weight=o.gradient_weight, hessian_weight=o.hessian_weight, probes=o.probes,
                                 generator=generator, normalize=o.normalize).penalty

    def domains(self, batch) -> torch.Tensor:
        """The domain of each structure of ``batch``.

        Args:
            batch: A batch of structures.

        Returns:
            ``(structures,)`` integer labels.

        Raises:
            ValueError: If the batch has no such per-structure attribute (or no atomic numbers, for ``metal``).
        """
        if self.options.domains == "metal":
            return metal_domains(batch)
        labels = getattr(batch, self.options.domains, None)
        structures = getattr(batch, "num_graphs", None)
        if not isinstance(labels, torch.Tensor) or labels.shape != (structures,):
            got = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
            raise ValueError(f"loss.terms: hessian_alignment: domains: the batch has no per-structure attribute "
                             f"{self.options.domains!r} (expected a tensor of shape ({structures},), got {got})")
        return labels

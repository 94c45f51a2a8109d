"""Extra loss terms, registered by name (``loss.terms`` in a config).

``equivariance``: the mean relative equivariance error of the model on the training batch under the task's group
(:func:`equilib.groups.equivariance_error`), on ``samples`` elements drawn from the term's own generator (its state is
saved in checkpoints, so a resumed run draws the same elements). As a penalty it makes a model softly equivariant
(the soft-equivariance regularisers of the later issues build on it).

``soft_equivariance``: one regulariser per candidate group (:mod:`equilib.soft`), ``sum_j lambda_j R_j``, with
``R_j`` PER's projection penalty of models that have one (``method: projection``, Kim et al. ICML 2023) or the
sampled equivariance error under group ``j`` of any model (``method: sampled``), and the strengths ``lambda_j`` tuned
by :class:`equilib.soft.StrengthTuner`; every ``R_j`` and ``lambda_j`` is logged at each step.

``rpp_prior``: the Gaussian priors of a residual-pathway model's equivariant and free parameters (Finzi et al.
NeurIPS 2021).

``hessian_alignment``: the spread of the loss gradients and Hessian diagonals across the domains of the training
batch (:func:`equilib.curvature.hessian_alignment`; Hemati et al., ICCV 2023), for the potential task, whose structures
are grouped by their slab's metal or by a per-structure attribute of the batch; its probes are seeded by the term's
step count (checkpointed), so a resumed run draws the same ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..curvature._alignment import hessian_alignment, metal_domains
from ..curvature._loss import task_loss
from ..groups import equivariance_error
from ..soft import StrengthTuner, group_named
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


@LOSS_TERMS.register("soft_equivariance")
class SoftEquivarianceTerm(LossTerm):
    """``weight * sum_j lambda_j R_j`` over the candidate groups, logged as ``loss_soft_equivariance`` with
    ``loss_soft_equivariance_R_<group>`` and ``loss_soft_equivariance_lambda_<group>`` per group.

    Args:
        options: The :class:`Options`.
        task: The run's task (its ``symmetry`` gives the function and representations of ``method: sampled``).
    """

    @dataclass
    class Options:
        """Options of the ``soft_equivariance`` loss term.

        Attributes:
            weight: Weight of the term in the loss.
            groups: The candidate groups by name (``"O3"``, ``"O2z"``, ...; see :func:`equilib.soft.group_named`).
            strengths: Initial strength of each group (a zero strength stays zero: PER starts O(3) at 0 on inertia).
            method: ``"projection"`` (PER: the model's ``penalties(groups)``) or ``"sampled"`` (the mean relative
                equivariance error of any model over ``samples`` elements per group and step).
            samples: Group elements per group and step (``sampled``).
            seed: Seed of the term's generator (``sampled``; checkpointed).
            rule: Strength tuning: ``"fixed"``, ``"per"`` (one rescaling at step ``start``) or ``"continuous"``.
            start: The rescaling step (``per``) or the first tuned step (``continuous``).
            power: The exponent of the rule.
            window: Steps averaged before PER's rescaling, or the moving averages' time constant.

        Raises:
            ValueError: If a group name is unknown, ``strengths`` does not give one value per group, ``method`` is
                unknown, a group of ``method: projection`` is not linear (translations) or ``samples`` is not a
                positive int (the tuner checks the rest).
        """

        weight: float = 1.0
        groups: list = field(default_factory=lambda: ["O3"])
        strengths: list | None = None
        method: str = "projection"
        samples: int = 1
        seed: int = 0
        rule: str = "fixed"
        start: int = 1000
        power: float = 2.0
        window: int = 50

        def __post_init__(self) -> None:
            for name in self.groups:
                group = group_named(name)
                if self.method == "projection" and group.parts != ("linear",):
                    raise ValueError(f"loss.terms: soft_equivariance: groups: {name!r} is not a linear group, so "
                                     "method 'projection' cannot penalise it; use method 'sampled'")
            if self.strengths is not None and len(self.strengths) != len(self.groups):
                raise ValueError(f"loss.terms: soft_equivariance: strengths: expected one per group "
                                 f"({len(self.groups)}), got {len(self.strengths)}")
            if self.method not in ("projection", "sampled"):
                raise ValueError(f"loss.terms: soft_equivariance: method: expected 'projection' or 'sampled', got "
                                 f"{self.method!r}")
            if not isinstance(self.samples, int) or self.samples < 1:
                raise ValueError(f"loss.terms: soft_equivariance: samples: expected a positive int, got "
                                 f"{self.samples!r}")

    def __init__(self, options, task) -> None:
        super().__init__(options, task)
        self.groups = [group_named(name) for name in options.groups]
        strengths = options.strengths if options.strengths is not None else [1.0] * len(options.groups)
        self.tuner = StrengthTuner(list(options.groups), list(strengths), options.rule, options.start, options.power,
                                   options.window)
        self.generator = torch.Generator().manual_seed(options.seed)
        self._logged: dict[str, float] = {}

    def penalties(self, model, batch) -> dict[str, torch.Tensor]:
        """``R_j`` of each candidate group on ``batch``.

        Args:
            model: The model being trained.
            batch: The training batch.

        Returns:
            Group name -> differentiable 0-d tensor.

        Raises:
            TypeError: With ``method: projection``, if the model has no ``penalties(groups)``.
        """
        if self.options.method == "projection":
            if not callable(getattr(model, "penalties", None)):
                raise TypeError(f"loss.terms: soft_equivariance: method 'projection' needs a model with "
                                f"penalties(groups) (e.g. soft_mlp), got {type(model).__name__}; use method 'sampled'")
            values = model.penalties(self.groups)
            return {name: values[repr(group)] for name, group in zip(self.options.groups, self.groups, strict=True)}
        s = self.task.symmetry(model, batch)
        return {name: equivariance_error(s.fn, group, s.inputs, s.in_reps, s.out_reps, samples=self.options.samples,
                                         generator=self.generator, reduction="mean")
                for name, group in zip(self.options.groups, self.groups, strict=True)}

    def value(self, model, batch) -> torch.Tensor:
        """``sum_j lambda_j R_j`` with the strengths after this step's tuning.

        Args:
            model: The model being trained.
            batch: The training batch.

        Returns:
            A differentiable 0-d tensor.
        """
        values = self.penalties(model, batch)
        self.tuner.update({name: float(v.detach()) for name, v in values.items()})
        strengths = self.tuner.strengths
        self._logged = {**{f"R_{n}": float(v.detach()) for n, v in values.items()},
                        **{f"lambda_{n}": strengths[n] for n in values}}
        return sum(strengths[name] * v for name, v in values.items())

    def logs(self) -> dict[str, float]:
        return dict(self._logged)

    def get_extra_state(self):
        return {"tuner": self.tuner.state_dict(), "generator": self.generator.get_state()}

    def set_extra_state(self, state) -> None:
        self.tuner.load_state_dict(state["tuner"])
        self.generator.set_state(state["generator"])


@LOSS_TERMS.register("rpp_prior")
class RPPPriorTerm(LossTerm):
    """RPP's Gaussian priors on the two pathways of an ``rpp`` model (Finzi et al. 2021):
    ``equivariant * sum ||theta||^2 + free * sum ||theta_free||^2``, the free pathway's much stronger so that it is
    used only where the data needs it; logged as ``loss_rpp_prior``.

    Args:
        options: The :class:`Options`.
        task: The run's task.
    """

    @dataclass
    class Options:
        """Options of the ``rpp_prior`` loss term.

        Attributes:
            weight: Weight of the term in the loss.
            equivariant: Strength of the prior on the equivariant pathway's parameters.
            free: Strength of the prior on the free pathway's parameters.

        Raises:
            ValueError: If a strength is negative.
        """

        weight: float = 1.0
        equivariant: float = 1.0e-5
        free: float = 1.0

        def __post_init__(self) -> None:
            if not (self.equivariant >= 0 and self.free >= 0):
                raise ValueError(f"loss.terms: rpp_prior: expected non-negative strengths, got equivariant "
                                 f"{self.equivariant!r}, free {self.free!r}")

    def value(self, model, batch) -> torch.Tensor:
        """The prior's negative log density (up to a constant).

        Args:
            model: The model being trained (with ``rpp_prior()``, e.g. ``soft_mlp`` in mode ``rpp``).
            batch: The training batch.

        Returns:
            A differentiable 0-d tensor.

        Raises:
            TypeError: If the model has no ``rpp_prior()``.
        """
        if not callable(getattr(model, "rpp_prior", None)):
            raise TypeError(f"loss.terms: rpp_prior: needs a model with rpp_prior() (soft_mlp in mode 'rpp'), got "
                            f"{type(model).__name__}")
        equivariant, free = model.rpp_prior()
        return self.options.equivariant * equivariant + self.options.free * free

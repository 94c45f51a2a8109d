"""Regression between sums of Cartesian tensors with approximate, mixed symmetries: the synthetic tasks of PER (Kim
et al. ICML 2023; modified inertia, ...) and EMLP (Finzi et al. ICML 2021; inertia), as written by
``python -m datasets.soft``. Loss and metric the mean squared error over outputs; models take the flat input tensors
and return the flat output tensors (``soft_mlp``: :class:`equilib.soft.SoftEquivariantMLP`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..groups import CartesianTensors, Concat, Positions, Representation
from ..soft import SoftEquivariantMLP, group_named
from ._batches import Frames
from ._registry import MODELS, TASKS
from ._task import LossOptions, ModelOptions, SquaredError, Symmetry, mean_loss
from ._tensor_task import TensorBatch, TensorPairs, TensorTask, data_dtype, read_npz


@dataclass
class TensorRegressionData:
    """The ``data`` section of the tensor regression task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.soft``.
        train: The split of the file used for training.
        val: Validation splits, ``{name in logs: split in file}`` (splits the file lacks are skipped, e.g. ``ood``).
        max_train: The first training examples kept (None: all).
        batch_size: Examples per training batch.
        eval_batch_size: Examples per evaluation batch.
        dtype: ``"float32"`` or ``"float64"`` for data and model.
    """

    path: str = "datasets/soft/data/modified_inertia_axis2_noise0.3.npz"
    train: str = "train"
    val: dict = field(default_factory=lambda: {"valid": "valid", "test": "test", "ood": "ood"})
    max_train: int | None = None
    batch_size: int = 500
    eval_batch_size: int = 1000
    dtype: str = "float32"


@dataclass
class TensorRegressionLoss(LossOptions):
    """The ``loss`` section: the loss is the MSE of the output tensors.

    Attributes:
        terms: Extra registered loss terms (``soft_equivariance``, ``equivariance``, ...).
    """


@dataclass
class TensorRegressionBatch(TensorBatch):
    """A batch of examples.

    Attributes:
        x: ``(batch, in_dim)`` inputs.
        y: ``(batch, out_dim)`` targets.
    """

    x: torch.Tensor
    y: torch.Tensor


@dataclass
class SoftMLPOptions(ModelOptions):
    """The ``model`` section of ``soft_mlp`` (:class:`equilib.soft.SoftEquivariantMLP`).

    Attributes:
        name: The registered model, ``"soft_mlp"``.
        hidden: Hidden tensors, one term per rank in increasing order (e.g. ``"32x0+16x1+8x2"``).
        num_layers: Hidden layers.
        mode: ``"free"`` (PER's soft model), ``"exact"`` or ``"rpp"``.
        group: The group of ``"exact"`` and ``"rpp"`` (``"O3"``, ``"O2z"``, ...).
        input_scale: The network sees ``input_scale * x`` (inputs of order 1 keep its products of order 1).
        centre: The network sees the rank-1 inputs minus their mean (exactly translation-invariant on position
            data; see :class:`equilib.soft.SoftEquivariantMLP`).
    """

    hidden: str = "32x0+16x1+8x2"
    num_layers: int = 2
    mode: str = "free"
    group: str | None = None
    input_scale: float = 1.0
    centre: bool = False


def soft_mlp(options: SoftMLPOptions, in_rep: CartesianTensors, out_rep, task) -> SoftEquivariantMLP:
    """The :class:`equilib.soft.SoftEquivariantMLP` of ``options`` from ``in_rep`` to ``out_rep``, in the task's
    dtype.

    Args:
        options: The model section (:class:`SoftMLPOptions` or an extension).
        in_rep: The input tensors.
        out_rep: The output tensors (a representation or its spec).
        task: The run's task (its ``data.dtype``).

    Returns:
        The network.

    Raises:
        ValueError: If ``options.group`` is not a linear group (translations are ``centre``'s).
    """
    group = group_named(options.group) if options.group is not None else None
    if group is not None and group.parts != ("linear",):
        raise ValueError(f"model.group: {options.group!r} is not a linear group; for exact invariance under "
                         "translations of positions set model.centre: true (with a linear group or none)")
    return SoftEquivariantMLP(in_rep, out_rep, options.hidden, options.num_layers, options.mode, group,
                              dim=in_rep.dim, input_scale=options.input_scale, centre=options.centre,
                              dtype=data_dtype(task))


def as_positions(rep: CartesianTensors) -> Representation:
    """``rep`` with its rank-1 copies read as positions, which translations move (the rest as in ``rep``).

    Args:
        rep: The tensors.

    Returns:
        A :class:`~equilib.groups.Concat` of ``rep``'s terms, each rank-1 copy a
        :class:`~equilib.groups.Positions`.
    """
    parts = []
    for mult, rank in rep.terms:
        parts += [Positions(rep.dim)] * mult if rank == 1 else [CartesianTensors(f"{mult}x{rank}", rep.dim)]
    return Concat(*parts)


@MODELS.register("soft_mlp")
class SoftMLPModel:
    """:class:`equilib.soft.SoftEquivariantMLP` between the task's input and output tensors."""

    Options = SoftMLPOptions

    @staticmethod
    def build(options, task):
        return soft_mlp(options, task.in_rep, task.out_rep, task)


@TASKS.register("tensor_regression")
class TensorRegressionTask(TensorTask):
    """Flat input tensors to flat output tensors (``in_rep`` and ``out_rep`` from the file); MSE loss and metric.

    Attributes:
        in_rep: The inputs' :class:`~equilib.groups.CartesianTensors`.
        out_rep: The outputs'.
        true_symmetry: The group the targets are exactly equivariant under, as the file names it (``"O2z"``) or None.
        positions: Whether the file's rank-1 inputs are positions (its ``positions`` flag): then translations move
            them in :meth:`symmetry` (and so in ``method: sampled`` regularisers and equivariance errors).

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` a :class:`TensorRegressionData`).

    Raises:
        FileNotFoundError: If ``data.path`` does not exist.
        ValueError: If ``data.dtype`` is unknown or the file lacks the training split or a key.
    """

    Data = TensorRegressionData
    Loss = TensorRegressionLoss
    Batch = TensorRegressionBatch
    default_model = "soft_mlp"
    primary_metric = "mse"
    curve_metrics = ("mse",)

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data
        arrays = read_npz(d.path, "datasets.soft", ("in_rep", "out_rep", f"{d.train}_x", f"{d.train}_y"))
        dim = int(arrays["space_dim"]) if "space_dim" in arrays else 3
        self.in_rep = CartesianTensors(str(arrays["in_rep"]), dim)
        self.out_rep = CartesianTensors(str(arrays["out_rep"]), dim)
        symmetry = str(arrays["true_symmetry"]) if "true_symmetry" in arrays else "none"
        self.true_symmetry = None if symmetry == "none" else symmetry
        self.positions = bool(arrays["positions"]) if "positions" in arrays else False
        self._symmetry_in_rep = as_positions(self.in_rep) if self.positions else self.in_rep
        dtype = data_dtype(self)

        def split(name: str, limit=None) -> Frames:
            x = torch.as_tensor(arrays[f"{name}_x"], dtype=dtype)
            y = torch.as_tensor(arrays[f"{name}_y"], dtype=dtype)
            if x.shape[1:] != self.in_rep.shape or y.shape[1:] != self.out_rep.shape:
                raise ValueError(f"data.path: {name}_x / {name}_y have shapes {tuple(x.shape)} / {tuple(y.shape)}, "
                                 f"expected (N, {self.in_rep.shape[0]}) / (N, {self.out_rep.shape[0]})")
            return Frames(TensorPairs(x, y), cache=False, limit=limit)

        self.train = split(d.train, d.max_train)
        self.val = {name: split(s) for name, s in d.val.items() if f"{s}_x" in arrays}

    def predict(self, model, batch: TensorRegressionBatch) -> dict:
        return {"y": model(batch.x)}

    def loss(self, prediction, batch: TensorRegressionBatch, count_reducer=None):
        return mean_loss((prediction["y"] - batch.y).pow(2), "y", "mse", count_reducer)

    def metrics(self) -> SquaredError:
        return SquaredError("y", "y")

    def symmetry(self, model, batch: TensorRegressionBatch) -> Symmetry:
        """The model under the targets' true symmetry (O(3) when the file names none).

        Args:
            model: The model.
            batch: A :class:`TensorRegressionBatch`.

        Returns:
            The :class:`~equilib.train.Symmetry`.
        """
        group = group_named(self.true_symmetry or "O3")
        return Symmetry(model, group, (batch.x,), (self._symmetry_in_rep,), (self.out_rep,))

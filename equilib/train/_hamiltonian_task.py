"""Trajectory forecasting of Hamiltonian systems whose symmetry is only partly kept: EMLP's double spring pendulum
(O(2) about z) and RPP's windy one (``python -m datasets.broken_dynamics``). From a state ``z0 = (q1, q2, p1, p2)``
predict the states at the file's times; loss and metric the mean squared error over times and coordinates. The model
``hamiltonian_mlp`` is a :class:`equilib.nn.HamiltonianFlow` of a :class:`equilib.soft.SoftEquivariantMLP` energy
(Finzi et al. 2021)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..groups import CartesianTensors, Scalars
from ..nn import HamiltonianFlow
from ..soft import group_named
from ._batches import Frames
from ._registry import MODELS, TASKS
from ._task import SquaredError, Symmetry, mean_loss
from ._tensor_regression_task import SoftMLPOptions, TensorRegressionData, TensorRegressionLoss, soft_mlp
from ._tensor_task import TensorBatch, TensorPairs, TensorTask, data_dtype, read_npz


@dataclass
class HamiltonianData(TensorRegressionData):
    """The ``data`` section of the Hamiltonian dynamics task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.broken_dynamics``.
        train: The split of the file used for training.
        val: Validation splits, ``{name in logs: split in file}``.
        max_train: The first training trajectories kept (None: all).
        batch_size: Trajectories per training batch.
        eval_batch_size: Trajectories per evaluation batch.
        dtype: ``"float32"`` or ``"float64"`` for data and model.
    """

    path: str = "datasets/broken_dynamics/data/double_spring_pendulum.npz"
    val: dict = field(default_factory=lambda: {"valid": "valid", "test": "test"})
    batch_size: int = 100
    eval_batch_size: int = 500


@dataclass
class HamiltonianBatch(TensorBatch):
    """A batch of trajectories.

    Attributes:
        z0: ``(batch, state)`` initial states.
        target: ``(batch, T, state)`` states at the file's times.
    """

    z0: torch.Tensor
    target: torch.Tensor


@dataclass
class HamiltonianMLPOptions(SoftMLPOptions):
    """The ``model`` section of ``hamiltonian_mlp``: a :class:`equilib.soft.SoftEquivariantMLP` energy of the state,
    integrated by :class:`equilib.nn.HamiltonianFlow`.

    Attributes:
        name: The registered model, ``"hamiltonian_mlp"``.
        hidden: Hidden tensors of the energy network.
        num_layers: Hidden layers of the energy network.
        mode: ``"free"``, ``"exact"`` or ``"rpp"``.
        group: The group of ``"exact"`` and ``"rpp"``.
        input_scale: The energy network sees ``input_scale * z`` (states of order 1 keep its products of order 1).
        centre: Subtract the mean of the state's rank-1 copies (all of them, momenta included: meant for
            position-only inputs).
        substeps: RK4 steps per interval between output times.
    """

    substeps: int = 2


@MODELS.register("hamiltonian_mlp")
class HamiltonianMLPModel:
    """A Hamiltonian flow of a soft-equivariant energy network."""

    Options = HamiltonianMLPOptions

    @staticmethod
    def build(options, task):
        energy = soft_mlp(options, task.state_rep, "1x0", task)
        with torch.no_grad():  # H = 0 at the start: a random energy's flow can diverge within the first interval
            energy.readout.weight.zero_()
        return HamiltonianFlow(energy, options.substeps)


@TASKS.register("hamiltonian")
class HamiltonianTask(TensorTask):
    """Trajectories from initial states; MSE loss and metric.

    Attributes:
        state_rep: The state's :class:`~equilib.groups.CartesianTensors` (``"4x1"``: q1, q2, p1, p2).
        ts: ``(T,)`` the times of the predicted states (shared by every trajectory).
        true_symmetry: The group the dynamics keep, as the file names it (``"O2z"``), or None.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` a :class:`HamiltonianData`).

    Raises:
        FileNotFoundError: If ``data.path`` does not exist.
        ValueError: If the file lacks a split or key, or its splits have different times.
    """

    Data = HamiltonianData
    Loss = TensorRegressionLoss
    Batch = HamiltonianBatch
    default_model = "hamiltonian_mlp"
    primary_metric = "mse"
    curve_metrics = ("mse",)

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data
        splits = [d.train, *d.val.values()]
        required = ["state_rep"] + [f"{s}_{part}" for s in splits for part in ("z0", "ts", "zs")]
        arrays = read_npz(d.path, "datasets.broken_dynamics", required)
        self.state_rep = CartesianTensors(str(arrays["state_rep"]))
        symmetry = str(arrays["true_symmetry"]) if "true_symmetry" in arrays else "none"
        self.true_symmetry = None if symmetry == "none" else symmetry
        dtype = data_dtype(self)
        self.ts = torch.as_tensor(arrays[f"{d.train}_ts"], dtype=dtype)
        for s in splits:
            if not np.array_equal(arrays[f"{s}_ts"], arrays[f"{d.train}_ts"]):
                raise ValueError(f"data.path: the times of split {s!r} differ from the training split's")

        def split(name: str, limit=None) -> Frames:
            z0 = torch.as_tensor(arrays[f"{name}_z0"], dtype=dtype)
            zs = torch.as_tensor(arrays[f"{name}_zs"], dtype=dtype)
            return Frames(TensorPairs(z0, zs), cache=False, limit=limit)

        self.train = split(d.train, d.max_train)
        self.val = {name: split(s) for name, s in d.val.items()}

    def predict(self, model, batch: HamiltonianBatch) -> dict:
        return {"states": model(batch.z0, self.ts.to(batch.z0.device))}

    def loss(self, prediction, batch: HamiltonianBatch, count_reducer=None):
        return mean_loss((prediction["states"] - batch.target).pow(2), "states", "mse", count_reducer)

    def metrics(self) -> SquaredError:
        return SquaredError("states", "target")

    def symmetry(self, model, batch: HamiltonianBatch) -> Symmetry:
        """The flow under the dynamics' true symmetry (O(3) when the file names none): the group acts on every
        position and momentum of the initial and predicted states alike.

        Args:
            model: The model.
            batch: A :class:`HamiltonianBatch`.

        Returns:
            The :class:`~equilib.train.Symmetry` (``model(z0, ts)``, the times invariant).
        """
        group = group_named(self.true_symmetry or "O3")
        return Symmetry(model, group, (batch.z0, self.ts.to(batch.z0.device)), (self.state_rep, Scalars()),
                        (self.state_rep,))

"""The n-body dynamics task of EGNN (Satorras et al. 2021) and Frame Averaging (Puny et al. 2022): from the
positions, velocities and charges of 5 charged particles, predict their positions 1000 integrator steps later; loss
and metric the mean squared error over particles and coordinates. Models take ``(positions, velocities, charges)``
and must be E(3) x S_n equivariant; ``data.augment`` applies a random E(3) element to each training batch (for
models that are not)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from ..data import NBodyDataset
from ..frames import FrameAveraged, FrameAveragedDynamicsGNN
from ..groups import E3, OnSet, Permutations, Positions, Scalars, Vectors
from ..nn import EquivariantDynamicsNet, PlainDynamicsGNN
from ._batches import Frames
from ._registry import MODELS, TASKS
from ._task import LossOptions, ModelOptions, SquaredError, Symmetry, mean_loss
from ._tensor_task import TensorBatch, TensorTask, data_dtype

NBODY_INPUTS = (OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))  # positions, velocities, charges


@dataclass
class NBodyData:
    """The ``data`` section of the n-body task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.nbody``.
        train: The split of the file used for training.
        val: Validation splits, ``{name in logs: split in file}``.
        max_train: The first training simulations kept (EGNN's ``nbody_small`` keeps 3000; None: all).
        max_val: The first simulations of each validation split (quick runs; None: all).
        input_frame: Saved frame the inputs (positions, velocities) come from.
        target_frame: Saved frame of the target positions.
        batch_size: Systems per training batch.
        eval_batch_size: Systems per evaluation batch.
        augment: Apply a random E(3) element (Haar O(3), N(0, 1) translation) to each training batch, drawn from
            (seed, step).
        dtype: ``"float32"`` or ``"float64"`` for data and model.
    """

    path: str = "datasets/nbody/data/charged5_small.npz"
    train: str = "train"
    val: dict = field(default_factory=lambda: {"valid": "valid", "test": "test"})  # name in logs -> split in file
    max_train: int | None = 3000  # EGNN's nbody_small keeps the first 3000 training simulations
    max_val: int | None = None  # the first simulations of each validation split (quick runs)
    input_frame: int = 30
    target_frame: int = 40
    batch_size: int = 100
    eval_batch_size: int = 1000
    augment: bool = False  # a random E(3) element (O(3) Haar, translation N(0, 1)) per training batch
    dtype: str = "float32"


@dataclass
class NBodyLoss(LossOptions):
    """The ``loss`` section of the n-body task: the loss is the MSE of the positions.

    Attributes:
        terms: Extra registered loss terms, ``[{name: ..., weight: ..., options...}]``.
    """


@dataclass
class NBodyBatch(TensorBatch):
    """A batch of n-body examples; ``to(device)`` moves every tensor.

    Attributes:
        positions: (batch, points, 3) input positions.
        velocities: (batch, points, 3) input velocities.
        charges: (batch, points) charges.
        target: (batch, points, 3) target positions.
    """

    positions: torch.Tensor
    velocities: torch.Tensor
    charges: torch.Tensor
    target: torch.Tensor


@dataclass
class EquivariantDynamicsOptions(ModelOptions):
    """The ``model`` section of ``equivariant_dynamics`` (:class:`equilib.nn.EquivariantDynamicsNet`).

    Attributes:
        name: The registered model, ``"equivariant_dynamics"``.
        backend: Tensor-product backend: ``cg``, ``grid``, ``gaunt`` or ``cp``.
        channels: Channels per irrep.
        lmax: Largest degree of the hidden features and edge spherical harmonics.
        num_layers: Number of interaction blocks.
        num_radial: Number of Gaussian radial basis functions of the distance.
        radial_hidden: Width of the radial network.
        max_radius: The Gaussians' centres span [0, max_radius], each ``max_radius / num_radial`` wide.
        tp_options: Options passed to the backend.
        scalar_messages: Message weights also see both ends' layer-normalised invariant features (readout starts at
            zero).
        coordinate_updates: EGNN-style: every layer moves the points and the next one sees the moved geometry.
    """

    backend: str = "grid"
    channels: int = 32
    lmax: int = 2
    num_layers: int = 4
    num_radial: int = 16
    radial_hidden: int = 64
    max_radius: float = 10.0
    tp_options: dict = field(default_factory=dict)
    scalar_messages: bool = False
    coordinate_updates: bool = False


@dataclass
class PlainGNNOptions(ModelOptions):
    """The ``model`` section of ``plain_gnn`` (:class:`equilib.nn.PlainDynamicsGNN`).

    Attributes:
        name: The registered model, ``"plain_gnn"``.
        hidden: Width of the node and edge networks.
        num_layers: Number of message-passing layers.
        distances: Edges also see the squared distance of the input positions (as in EGNN's and FA-GNN's edges).
        dropout: Dropout probability after each hidden activation in training (0: none).
    """

    hidden: int = 64
    num_layers: int = 4
    distances: bool = False
    dropout: float = 0.0


@dataclass
class FrameAveragedGNNOptions(PlainGNNOptions):
    """The ``model`` section of ``frame_averaged_gnn``: :class:`equilib.nn.PlainDynamicsGNN` wrapped in
    :class:`equilib.frames.FrameAveraged` (Puny et al. 2022).

    Attributes:
        name: The registered model, ``"frame_averaged_gnn"``.
        hidden: Width of the node and edge networks.
        num_layers: Number of message-passing layers.
        distances: Edges also see the squared distance of the input positions.
        dropout: Dropout probability after each hidden activation in training (0: none).
        group: The frames' group: ``"E3"`` (8 frames) or ``"SE3"`` (4 proper frames).
        stochastic: One random frame per system in each training step (all frames at evaluation).
        on_degenerate: What a degenerate PCA spectrum does: ``"expand"`` (exact tie-break frames, see
            :func:`equilib.frames.frame_set`), ``"warn"``, ``"raise"`` or ``"ignore"``.
    """

    group: str = "E3"
    stochastic: bool = False
    on_degenerate: str = "expand"


@dataclass
class FAGNNOptions(ModelOptions):
    """The ``model`` section of ``fa_gnn``: FA-GNN as in Puny et al. 2022
    (:class:`equilib.frames.FrameAveragedDynamicsGNN`: frame averaging and re-framing of the latent vectors at every
    layer).

    Attributes:
        name: The registered model, ``"fa_gnn"``.
        hidden: Width of the node and edge networks (``hidden / 3`` latent vectors per point; a multiple of 3).
        num_layers: Number of message-passing layers.
        group: ``"E3"`` (8 frames) or ``"SE3"`` (4 proper frames).
        stochastic: One random frame per system at every layer in training (all frames at evaluation).
        on_degenerate: What a degenerate spectrum does: ``"expand"``, ``"warn"``, ``"raise"`` or ``"ignore"``.
        centre_latent: Centre each system's latent vectors before re-framing them (as the paper's code does).
        dropout: Dropout probability after each hidden activation in training (0: none).
    """

    hidden: int = 60
    num_layers: int = 4
    group: str = "E3"
    stochastic: bool = False
    on_degenerate: str = "expand"
    centre_latent: bool = False
    dropout: float = 0.0


@MODELS.register("equivariant_dynamics")
class EquivariantDynamicsModel:
    """:class:`equilib.nn.EquivariantDynamicsNet` (any tensor-product backend)."""

    Options = EquivariantDynamicsOptions

    @staticmethod
    def build(options, task):
        kwargs = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name != "name"}
        return EquivariantDynamicsNet(**kwargs, dtype=data_dtype(task))


@MODELS.register("plain_gnn")
class PlainGNNModel:
    """:class:`equilib.nn.PlainDynamicsGNN`, the non-equivariant baseline."""

    Options = PlainGNNOptions

    @staticmethod
    def build(options, task):
        return PlainDynamicsGNN(hidden=options.hidden, num_layers=options.num_layers, distances=options.distances,
                                dropout=options.dropout, dtype=data_dtype(task))


@MODELS.register("frame_averaged_gnn")
class FrameAveragedGNNModel:
    """:class:`equilib.nn.PlainDynamicsGNN` averaged over the PCA frames of each system's positions (exactly
    E(3)-equivariant; stochastic frames in training draw from torch's global generator, which checkpoints keep)."""

    Options = FrameAveragedGNNOptions

    @staticmethod
    def build(options, task):
        backbone = PlainDynamicsGNN(hidden=options.hidden, num_layers=options.num_layers, distances=options.distances,
                                    dropout=options.dropout, dtype=data_dtype(task))
        return FrameAveraged(backbone, NBODY_INPUTS, OnSet(Positions()), group=options.group,
                             stochastic=options.stochastic, on_degenerate=options.on_degenerate)


@MODELS.register("fa_gnn")
class FAGNNModel:
    """FA-GNN (Puny et al. 2022): :class:`equilib.frames.FrameAveragedDynamicsGNN`, exactly E(3)-equivariant (stochastic
    frames in training draw from torch's global generator, which checkpoints keep)."""

    Options = FAGNNOptions

    @staticmethod
    def build(options, task):
        return FrameAveragedDynamicsGNN(hidden=options.hidden, num_layers=options.num_layers, group=options.group,
                                        stochastic=options.stochastic, on_degenerate=options.on_degenerate,
                                        centre_latent=options.centre_latent, dropout=options.dropout,
                                        dtype=data_dtype(task))


@TASKS.register("nbody")
class NBodyTask(TensorTask):
    """Positions after 1000 integrator steps of a charged 5-body system; MSE loss and metric.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` an :class:`NBodyData`).

    Raises:
        ValueError: If ``data.dtype`` is unknown, or the file lacks a split or frame.
        FileNotFoundError: If ``data.path`` does not exist.
    """

    Data = NBodyData
    Loss = NBodyLoss
    Batch = NBodyBatch
    default_model = "equivariant_dynamics"
    primary_metric = "mse"
    curve_metrics = ("mse",)

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data

        def split(name: str, limit=None) -> Frames:
            dataset = NBodyDataset(d.path, name, input_frame=d.input_frame, target_frame=d.target_frame,
                                   limit=limit, dtype=data_dtype(self))
            return Frames(dataset, cache=False)  # already tensors in memory

        self.train = split(d.train, d.max_train)
        self.val = {name: split(file_split, d.max_val) for name, file_split in d.val.items()}

    def augment(self, batch: NBodyBatch, step: int) -> NBodyBatch:
        if not self.config.data.augment:
            return batch
        generator = self.augmentation_generator(step)
        g = E3().sample(1, generator=generator, dtype=batch.positions.dtype)
        moved = [rep.act(g, t.unsqueeze(0)).squeeze(0) for rep, t in
                 ((Positions(), batch.positions), (Vectors(), batch.velocities), (Positions(), batch.target))]
        return NBodyBatch(moved[0], moved[1], batch.charges, moved[2])

    def predict(self, model, batch: NBodyBatch) -> dict:
        return {"positions": model(batch.positions, batch.velocities, batch.charges)}

    def loss(self, prediction, batch: NBodyBatch, count_reducer=None):
        return mean_loss((prediction["positions"] - batch.target).pow(2), "positions", "mse", count_reducer)

    def metrics(self) -> SquaredError:
        return SquaredError("positions", "target")

    def symmetry(self, model, batch: NBodyBatch) -> Symmetry:
        """The model under E(3) x S_n.

        Positions and velocities rotate (positions translate), charges follow their particles, predicted positions move
        like positions.

        Args:
            model: The model.
            batch: An :class:`NBodyBatch`.

        Returns:
            The :class:`~equilib.train.Symmetry` under ``E3() * Permutations(points)``.
        """
        points = batch.positions.shape[-2]
        return Symmetry(model, E3() * Permutations(points), (batch.positions, batch.velocities, batch.charges),
                        NBODY_INPUTS, (OnSet(Positions()),))

"""The interatomic-potential task: OC20-style S2EF frames (energies, forces, stress) and its potentials.

Frames come from any format :class:`equilib.data.AtomicDataset` reads, with neighbor lists made on access (in the
loader workers when streamed); the loss and metrics are OC20's S2EF ones (``equilib.train._losses``); the models are
:class:`equilib.nn.EquivariantPotential` (``equivariant_potential``, the default), the plain Cartesian
:class:`equilib.nn.PlainPotential` (``plain_potential``, not rotation-invariant) and its frame average
:class:`equilib.frames.FrameAveragedPotential` (``frame_averaged_potential``, Puny et al. 2022), each normalised by the
training data's statistics (E0s, mean neighbors, force RMS); energies should be invariant and forces equivariant
under E(3).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch_geometric.data import Batch

from ..data import AtomicDataset, force_rms, mean_neighbors, per_element_energies
from ..frames import TOLERANCE, FrameAveragedPotential
from ..frames._potential import check_frame_options
from ..groups import E3, Positions, Scalars, Vectors
from ..nn import EquivariantPotential, PlainPotential, PlainPotentialConfig, PotentialConfig
from ._batches import Frames
from ._losses import LossConfig, MetricAccumulator, compute_loss
from ._plots import parity_plots
from ._registry import MODELS, TASKS
from ._task import ModelOptions, Symmetry, Task


@dataclass
class PotentialData:
    """The ``data`` section of the potential task.

    Attributes:
        train: Training frames: an OC20 LMDB, an ASE-LMDB (``*.aselmdb``), a directory of either, or any file
            ``ase.io`` reads.
        val: Validation splits, ``{name: path}``; each is evaluated and logged as ``<name>/<metric>``.
        cutoff: Neighbor-list cutoff in Angstrom (also the model's cutoff).
        batch_size: Structures per training batch (global, split over data-parallel ranks).
        eval_batch_size: Structures per evaluation batch.
        cache: Keep processed frames in memory; False streams them from disk for every batch.
        workers: When streaming, DataLoader processes that read frames and make neighbor lists (0: in the training
            process).
        max_train_frames: Use only the first frames of ``train`` (None: all).
    """

    train: str = "datasets/oc20_emt/data/s2ef_train.lmdb"
    val: dict = field(default_factory=lambda: {"val_id": "datasets/oc20_emt/data/s2ef_val_id.lmdb"})
    cutoff: float = 5.0
    batch_size: int = 8
    eval_batch_size: int = 16
    cache: bool = True  # keep processed frames in memory (small datasets); false: stream them from disk
    workers: int = 0  # DataLoader processes that read frames and make neighbor lists when streaming
    max_train_frames: int | None = None


@dataclass
class PotentialOptions(ModelOptions):
    """The ``model`` section of ``equivariant_potential`` (see :class:`equilib.nn.PotentialConfig`).

    Attributes:
        name: The registered model, ``"equivariant_potential"``.
        backend: Tensor-product backend of the interaction blocks: ``cg``, ``grid``, ``gaunt`` or ``cp``.
        channels: Channels per irrep of the hidden features.
        lmax: Largest degree of the hidden features and edge spherical harmonics.
        num_layers: Number of interaction blocks.
        num_radial: Number of Bessel radial basis functions.
        radial_hidden: Width of the radial MLP that makes the per-edge weights.
        tp_options: Options passed to the backend (e.g. ``{transform: dense}`` for ``grid``).
        dtype: ``"float32"`` or ``"float64"``.
        species: Atomic numbers the model knows (None: the elements of the training and validation data).
    """

    backend: str = "grid"
    channels: int = 32
    lmax: int = 2
    num_layers: int = 2
    num_radial: int = 8
    radial_hidden: int = 32
    tp_options: dict = field(default_factory=dict)
    dtype: str = "float32"
    species: list | None = None  # default: the elements of the training and validation data


@MODELS.register("equivariant_potential")
class PotentialModel:
    """Builds :class:`EquivariantPotential` from its options and the potential task's data statistics."""

    Options = PotentialOptions

    @staticmethod
    def build(options: PotentialOptions, task: PotentialTask) -> EquivariantPotential:
        """The model, normalised by the training data: E0s, mean neighbors, force RMS as the energy scale.

        Args:
            options: The :class:`PotentialOptions`.
            task: The :class:`PotentialTask` (its datasets are read once for the statistics).

        Returns:
            The :class:`~equilib.nn.EquivariantPotential`.

        Raises:
            ValueError: If ``task`` is not a :class:`PotentialTask`.
        """
        config = PotentialConfig(
            **_normalisation(options, task, "equivariant_potential"), channels=options.channels, lmax=options.lmax,
            num_layers=options.num_layers, num_radial=options.num_radial, radial_hidden=options.radial_hidden,
            backend=options.backend, tp_options=options.tp_options, dtype=options.dtype)
        return EquivariantPotential(config)


def _normalisation(options, task, name: str) -> dict:
    """Species, cutoff and the training data's statistics (E0s, mean neighbors, force RMS as the energy scale)."""
    if not isinstance(task, PotentialTask):
        raise ValueError(f"model.name: '{name}' needs the potential task, not {type(task).__name__}")
    frames = [task.train, *task.val.values()]
    species = options.species or sorted({int(z) for f in frames for k in range(len(f))
                                         for z in f[k].atomic_numbers})
    return {"species": species, "cutoff": task.config.data.cutoff, "avg_num_neighbors": mean_neighbors(task.train),
            "e0s": per_element_energies(task.train, elements=species), "scale": force_rms(task.train), "shift": 0.0}


@dataclass
class PlainPotentialOptions(ModelOptions):
    """The ``model`` section of ``plain_potential`` (see :class:`equilib.nn.PlainPotentialConfig`).

    Attributes:
        name: The registered model, ``"plain_potential"``.
        channels: Width of the node features and of every MLP.
        num_layers: Number of message-passing layers.
        num_radial: Number of Bessel radial basis functions.
        dtype: ``"float32"`` or ``"float64"``.
        species: Atomic numbers the model knows (None: the elements of the training and validation data).
    """

    channels: int = 32
    num_layers: int = 2
    num_radial: int = 8
    dtype: str = "float32"
    species: list | None = None


@dataclass
class FrameAveragedPotentialOptions(PlainPotentialOptions):
    """The ``model`` section of ``frame_averaged_potential``: ``plain_potential`` averaged over PCA frames (see
    :class:`equilib.frames.FrameAveragedPotential`).

    Attributes:
        name: The registered model, ``"frame_averaged_potential"``.
        channels: Width of the node features and of every MLP.
        num_layers: Number of message-passing layers.
        num_radial: Number of Bessel radial basis functions.
        dtype: ``"float32"`` or ``"float64"``.
        species: Atomic numbers the model knows (None: the elements of the training and validation data).
        frames: ``global`` (PCA frames of each structure's atoms: exact under E(3), not under re-wrapping atoms
            into the cell) or ``local`` (of each atom's neighbourhood: also invariant to periodic images).
        group: ``E3`` (8 frames) or ``SE3`` (4 proper frames; ``O3``, ``SO3`` are the same for edge vectors).
        stochastic: One random frame per structure (global) or atom (local) in each training step, drawn from
            torch's global generator (which checkpoints keep); all frames at evaluation.
        tolerance: Relative eigenvalue gap below which a PCA spectrum is degenerate.
        on_degenerate: What a degenerate spectrum does: ``expand`` (exact tie-break frames), ``warn``, ``raise`` or
            ``ignore``.
    """

    frames: str = "global"
    group: str = "E3"
    stochastic: bool = False
    tolerance: float = TOLERANCE
    on_degenerate: str = "expand"


def _plain_potential(options: PlainPotentialOptions, task, name: str) -> PlainPotential:
    return PlainPotential(PlainPotentialConfig(
        **_normalisation(options, task, name), channels=options.channels, num_layers=options.num_layers,
        num_radial=options.num_radial, dtype=options.dtype))


@MODELS.register("plain_potential")
class PlainPotentialModel:
    """Builds :class:`equilib.nn.PlainPotential` (not rotation-invariant) normalised by the training data."""

    Options = PlainPotentialOptions

    @staticmethod
    def build(options: PlainPotentialOptions, task: PotentialTask) -> PlainPotential:
        """The model, normalised by the training data: E0s, mean neighbors, force RMS as the energy scale.

        Args:
            options: The :class:`PlainPotentialOptions`.
            task: The :class:`PotentialTask`.

        Returns:
            The :class:`~equilib.nn.PlainPotential`.

        Raises:
            ValueError: If ``task`` is not a :class:`PotentialTask`.
        """
        return _plain_potential(options, task, "plain_potential")


@MODELS.register("frame_averaged_potential")
class FrameAveragedPotentialModel:
    """Builds :class:`equilib.frames.FrameAveragedPotential` around a normalised :class:`equilib.nn.PlainPotential`."""

    Options = FrameAveragedPotentialOptions

    @staticmethod
    def build(options: FrameAveragedPotentialOptions, task: PotentialTask) -> FrameAveragedPotential:
        """The frame-averaged model; its backbone is normalised by the training data.

        Args:
            options: The :class:`FrameAveragedPotentialOptions`.
            task: The :class:`PotentialTask`.

        Returns:
            The :class:`~equilib.frames.FrameAveragedPotential`.

        Raises:
            ValueError: If ``task`` is not a :class:`PotentialTask`, or a frame option is unknown.
        """
        check_frame_options(options.frames, options.group, options.stochastic, options.tolerance,
                            options.on_degenerate)  # before the statistics are computed
        backbone = _plain_potential(options, task, "frame_averaged_potential")
        return FrameAveragedPotential(backbone, frames=options.frames, group=options.group,
                                      stochastic=options.stochastic, tolerance=options.tolerance,
                                      on_degenerate=options.on_degenerate)


@TASKS.register("potential")
class PotentialTask(Task):
    """Energies and forces (and stress) of atomic structures; OC20 S2EF loss and metrics.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` a :class:`PotentialData`, ``loss`` a
            :class:`~equilib.train.LossConfig`).

    Raises:
        FileNotFoundError: If a dataset path does not exist.
        ValueError: If a dataset cannot be read.
    """

    Data = PotentialData
    Loss = LossConfig
    default_model = "equivariant_potential"
    primary_metric = "forces_mae"
    curve_metrics = ("forces_mae", "energy_per_atom_mae")

    def __init__(self, config) -> None:
        super().__init__(config)
        data = config.data
        self.train = Frames(AtomicDataset(data.train, cutoff=data.cutoff), data.cache, data.max_train_frames)
        self.val = {name: Frames(AtomicDataset(path, cutoff=data.cutoff), data.cache)
                    for name, path in data.val.items()}

    def collate(self, frames):
        return Batch.from_data_list(frames)

    def batch_size(self, batch) -> int:
        return int(batch.num_graphs)

    def save_model(self, model, path) -> None:
        model.save(path)

    def predict(self, model, batch) -> dict:
        return model(batch, compute_forces=True, compute_stress=self.config.loss.stress_weight > 0)

    def loss(self, prediction, batch, count_reducer=None):
        return compute_loss(self.config.loss, prediction, batch, count_reducer=count_reducer)

    def metrics(self) -> MetricAccumulator:
        return MetricAccumulator(free_only=self.config.loss.forces_free_only)

    def figures(self, accumulator, split, out_dir):
        return [parity_plots(accumulator.pairs, out_dir / f"parity_{split}.png", title=split)]

    def symmetry(self, model, batch) -> Symmetry:
        """Energies and forces as functions of the positions and cells of ``batch``.

        Its neighbor lists stay valid under isometries: E(3)-invariant energies, equivariant forces.

        Args:
            model: The potential.
            batch: A batch of structures.

        Returns:
            The :class:`~equilib.train.Symmetry` under :class:`~equilib.groups.E3`.
        """
        def energy_and_forces(pos, cell):
            moved = batch.clone()
            moved.pos, moved.cell = pos, cell
            out = model(moved, compute_forces=True)
            return out["energy"], out["forces"]

        dtype = model.dtype
        inputs = (batch.pos.to(dtype), batch.cell.to(dtype).reshape(-1, 3, 3))
        return Symmetry(energy_and_forces, E3(), inputs, (Positions(), Vectors()), (Scalars(), Vectors()))

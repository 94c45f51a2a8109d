"""The QM9 property task (Ramakrishnan et al. 2014; the benchmark of SchNet, Cormorant, EGNN and PaiNN): one
scalar property of each molecule (the HOMO-LUMO gap, U0, the dipole moment's magnitude, ...) from its atoms and
equilibrium positions, as a radius graph without a cell.

The models are the interatomic potentials' networks (:class:`equilib.nn.EquivariantPotential`, and the plain and
frame-averaged potentials); forces are never computed. Their atomic outputs are pooled into the property in
normalised units: summed for extensive properties (U0, U, H, G, ZPVE, Cv, alpha, R2), averaged over the atoms for
intensive ones, and for the dipole moment read as latent atomic charges ``q_i`` (made neutral) whose dipole
``|sum_i q_i r_i|`` is the prediction (SchNet's and PaiNN's charge model, without PaiNN's atomic dipoles).
:class:`QM9Property` holds the network and the normalisation fitted on the training molecules: for the sums a
per-element linear baseline ``sum_i E0[Z_i]`` (least squares on the element counts, as the E0s of a potential) and
the root mean square of the residual as the scale; for the means the mean and the standard deviation; for the
dipole the root mean square. Energies are reported in meV (the file holds Hartree),
the other properties in the file's units. The loss is the L1 error in normalised units; the metrics are the MAE and
RMSE in the reported units. Predictions are E(3)-invariant (the equivariant and frame-averaged networks exactly,
the plain one not).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass, field

import numpy as np
import torch
from torch_geometric.data import Batch, Data

from .. import __version__
from ..data import MAX_ATOMIC_NUMBER, AtomicData, QM9Dataset, batch_index, mean_neighbors, per_element_energies
from ..frames import FrameAveragedPotential
from ..groups import E3, O3, Positions, Scalars
from ..nn import (
    EquivariantPotential,
    InteratomicPotential,
    PlainPotential,
    PlainPotentialConfig,
    PotentialConfig,
)
from ..utils import atomic_save, scatter_mean, scatter_sum
from ._batches import Frames
from ._losses import MetricAccumulator
from ._registry import TASKS
from ._task import LossOptions, Symmetry, Task

HARTREE_MEV = 27211.386245988  # meV per Hartree (CODATA 2018), the unit papers report QM9 energies in
EXTENSIVE = ("U0", "U", "H", "G", "zpve", "Cv", "alpha", "r2")  # roughly additive over atoms
POOLINGS = ("auto", "sum", "mean", "dipole")
NORMALISATIONS = ("auto", "linear", "mean", "scale")
AUTO_NORMALISATION = {"sum": "linear", "mean": "mean", "dipole": "scale"}
# the nn class each registered model name of the potentials builds, and its config class
NETWORKS = {"equivariant_potential": (EquivariantPotential, PotentialConfig),
            "plain_potential": (PlainPotential, PlainPotentialConfig),
            "frame_averaged_potential": (FrameAveragedPotential, PlainPotentialConfig)}


@dataclass
class QM9Data:
    """The ``data`` section of the QM9 task.

    Attributes:
        path: The ``.npz`` written by ``python -m datasets.qm9`` (or the shipped ``datasets/qm9/small/qm9_small.npz``).
        target: The property, one of the file's ``target_names`` (``gap``, ``U0``, ``mu``, ``homo``, ...).
        cutoff: Radius of the molecular graph in Angstrom (also the model's cutoff). 3 A: at 5 A the equivariant
            potential's features grow about 25-fold per layer on QM9 at initialisation (atomic outputs of std ~500).
        val: Validation splits, ``{name in logs: split in file}`` (``train``, ``valid`` or ``test``).
        max_train: Train on this many molecules of the training split, a seeded random subset (nested: the first
            1,000 of ``subset_seed``'s order are among its first 4,000); None: all.
        max_val: Evaluate this many molecules of each validation split, a seeded random subset; None: all.
        subset_seed: Seed of the order the subsets are taken from.
        pooling: How the atomic outputs make the property: ``"sum"``, ``"mean"``, ``"dipole"`` (``|sum_i q_i
            r_i|`` of the outputs as neutral latent charges) or ``"auto"`` (sum for U0, U, H, G, zpve, Cv, alpha,
            r2; dipole for mu; mean for the others).
        normalisation: ``"linear"`` (per-element least-squares baseline and the residual's root mean square),
            ``"mean"`` (mean and standard deviation), ``"scale"`` (root mean square, no shift) or ``"auto"``
            (linear for sum, mean for mean, scale for dipole pooling).
        augment: Rotate each training molecule by a random O(3) element drawn from (seed, step) (for models that
            are not invariant).
        batch_size: Molecules per training batch.
        eval_batch_size: Molecules per evaluation batch.
    """

    path: str = "datasets/qm9/data/qm9.npz"
    target: str = "gap"
    cutoff: float = 3.0
    val: dict = field(default_factory=lambda: {"valid": "valid"})  # name in logs -> split in file
    max_train: int | None = None
    max_val: int | None = None
    subset_seed: int = 0
    pooling: str = "auto"
    normalisation: str = "auto"
    augment: bool = False
    batch_size: int = 32
    eval_batch_size: int = 64


@dataclass
class QM9Loss(LossOptions):
    """The ``loss`` section of the QM9 task: the loss is the L1 error of the property in normalised units.

    Attributes:
        terms: Extra registered loss terms, ``[{name: ..., weight: ..., options...}]``.
    """


@dataclass
class QM9Normalisation:
    """How the network's pooled output ``y`` becomes the property: ``scale * y + shift + sum_i e0s[Z_i]``.

    Attributes:
        target: The property's name in the QM9 file.
        unit: Its reported unit (``meV`` for the energies).
        pooling: ``"sum"``, ``"mean"`` or ``"dipole"`` of the atomic outputs.
        e0s: ``{Z: value}`` per-element baseline (empty for the mean normalisation).
        shift: Constant baseline (the training mean for the mean normalisation).
        scale: Scale of the normalised output (positive).
    """

    target: str
    unit: str
    pooling: str
    e0s: dict
    shift: float
    scale: float


class QM9Property(torch.nn.Module):
    """A potential's network read as a molecular property: pooled atomic outputs, scaled and shifted.

    Args:
        network: An :class:`~equilib.nn.InteratomicPotential` without its own normalisation (its e0s, shift 0,
            scale 1 as built by the task); its dtype is the model's.
        normalisation: The :class:`QM9Normalisation` fitted on the training molecules.
    """

    def __init__(self, network: InteratomicPotential, normalisation: QM9Normalisation) -> None:
        super().__init__()
        self.network = network
        self.normalisation = normalisation
        table = torch.zeros(MAX_ATOMIC_NUMBER + 1, dtype=torch.float64)
        for z, value in normalisation.e0s.items():
            table[int(z)] = value
        self.register_buffer("e0_table", table)  # float64 whatever the network's dtype

    @property
    def dtype(self) -> torch.dtype:
        """The network's dtype."""
        return self.network.dtype

    def _apply(self, fn, recurse: bool = True):
        """``torch.nn.Module._apply``, but the baseline table stays float64 (a float32 model predicts U0, about
        1e7 meV, as a float32 deviation from a float64 baseline)."""
        table = self.e0_table
        super()._apply(fn, recurse)
        self.e0_table = table.to(self.e0_table.device)
        return self

    def forward(self, data) -> dict[str, torch.Tensor]:
        """The property of each molecule of ``data``.

        Args:
            data: An :class:`~equilib.data.AtomicData` or a ``Batch`` with neighbor lists.

        Returns:
            ``{"normalised": (graphs,) in the network's dtype, "property": (graphs,) float64 in the reported unit}``.
        """
        out = self.network(data, compute_forces=False)
        pooled, batch, n = out["energy"], batch_index(data), self.normalisation
        if n.pooling == "mean":
            pooled = pooled / data.natoms.to(pooled.dtype)
        elif n.pooling == "dipole":
            pooled = dipole_norm(out["energies"], data.pos.to(pooled.dtype), batch, pooled.shape[0])
        baseline = scatter_sum(self.e0_table.index_select(0, data.atomic_numbers), batch, dim=0,
                               dim_size=pooled.shape[0])
        return {"normalised": pooled, "property": n.scale * pooled.double() + n.shift + baseline}

    def save(self, path) -> None:
        """Write one file with the network (kind, config, weights), the normalisation and the package version.

        Args:
            path: The file to write (atomically).
        """
        atomic_save({"equilib_version": __version__, "kind": "QM9Property",
                     "normalisation": dataclasses.asdict(self.normalisation),
                     "network": {"kind": type(self.network).__name__,
                                 "config": dataclasses.asdict(self.network.config),
                                 "state_dict": self.network.state_dict()}}, path)

    @classmethod
    def load(cls, path, map_location="cpu") -> QM9Property:
        """A model saved by :meth:`save`.

        Args:
            path: The file.
            map_location: Device to load onto.

        Returns:
            The :class:`QM9Property`.

        Raises:
            ValueError: If the file is not a QM9 property model.
        """
        blob = torch.load(path, map_location=map_location, weights_only=True)
        if not isinstance(blob, dict) or blob.get("kind") != "QM9Property":
            raise ValueError(f"{path}: not a QM9 property model file (no 'kind': 'QM9Property')")
        classes = {network.__name__: network for network, _ in NETWORKS.values()}
        network = classes[blob["network"]["kind"]].from_config(blob["network"]["config"])
        network.load_state_dict(blob["network"]["state_dict"])
        return cls(network, QM9Normalisation(**blob["normalisation"])).to(map_location)


def dipole_norm(charges: torch.Tensor, pos: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """``|sum_i q_i r_i|`` per graph, the charges first made neutral (their mean over the graph subtracted), so that
    the value does not depend on the origin: E(3)-invariant for invariant charges.

    Args:
        charges: ``(atoms,)`` charges.
        pos: ``(atoms, 3)`` positions.
        batch: ``(atoms,)`` graph of each atom.
        num_graphs: Number of graphs.

    Returns:
        ``(graphs,)`` dipole magnitudes in charge x length (smooth at zero: ``sqrt(|.|^2 + tiny)``).
    """
    neutral = charges - scatter_mean(charges, batch, dim=0, dim_size=num_graphs).index_select(0, batch)
    moment = scatter_sum(neutral.unsqueeze(-1) * pos, batch, dim=0, dim_size=num_graphs)
    return (moment.pow(2).sum(-1) + torch.finfo(moment.dtype).tiny).sqrt()


class PropertyError(MetricAccumulator):
    """Absolute and squared errors of the property in its reported unit, summed over batches (and ranks, with the
    potential task's reduction); ``compute()`` gives ``{"mae": ..., "rmse": ...}``."""

    @torch.no_grad()
    def update(self, prediction: dict, batch) -> None:
        """Add the errors of one batch.

        Args:
            prediction: ``property`` (graphs,) in the reported unit.
            batch: The batch, with ``y`` (graphs,) in the same unit.
        """
        error = prediction["property"].double() - batch.y.double()
        self._add("mae", float(error.abs().sum()), error.numel())
        self._add("mse", float(error.pow(2).sum()), error.numel())

    def compute(self) -> dict[str, float]:
        """The metrics of everything accumulated.

        Returns:
            ``mae`` and ``rmse`` in the property's unit.
        """
        mean = {key: self.sums[key] / max(self.counts[key], 1) for key in self.sums}
        return {"mae": mean.get("mae", 0.0), "rmse": mean.get("mse", 0.0) ** 0.5}


def _subset(reader: QM9Dataset, limit: int | None, seed: int) -> QM9Dataset:
    """The first ``limit`` molecules of ``reader`` in a seeded random order (all of them, in file order, for None)."""
    if limit is None or limit >= len(reader):
        return reader
    view = copy.copy(reader)
    view.rows = np.sort(reader.rows[np.random.default_rng(seed).permutation(len(reader))[:limit]])
    return view


def _frames(reader: QM9Dataset, values: np.ndarray, cutoff: float) -> list[AtomicData]:
    """One graph per molecule: atomic numbers, positions, a radius graph of ``cutoff`` without a cell, the property
    ``y`` (float64, in the reported unit)."""
    frames = []
    for k in range(len(reader)):
        molecule = reader[k]
        n = len(molecule["atomic_numbers"])
        data = AtomicData(pos=molecule["positions"], cell=torch.zeros(1, 3, 3, dtype=molecule["positions"].dtype),
                          pbc=torch.zeros(1, 3, dtype=torch.bool), atomic_numbers=molecule["atomic_numbers"],
                          natoms=torch.tensor([n]), y=torch.tensor([values[k]], dtype=torch.float64))
        frames.append(data.with_neighbors(cutoff))
    return frames


def _choice(value: str, known: tuple, where: str) -> str:
    if value not in known:
        raise ValueError(f"{where}: expected one of {known}, got {value!r}")
    return value


@TASKS.register("qm9")
class QM9Task(Task):
    """One QM9 property per molecule; L1 loss in normalised units, MAE and RMSE in the property's unit.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data`` a :class:`QM9Data`).

    Raises:
        FileNotFoundError: If ``data.path`` does not exist.
        ValueError: If ``data.target`` is not a property of the file, a split, ``pooling`` or ``normalisation`` is
            unknown, or ``max_train`` is below 1.
    """

    Data = QM9Data
    Loss = QM9Loss
    default_model = "equivariant_potential"
    primary_metric = "mae"
    curve_metrics = ("mae",)

    def __init__(self, config) -> None:
        super().__init__(config)
        d = config.data
        qm9 = QM9Dataset(d.path, dtype=torch.float64)
        if d.target not in qm9.target_names:
            raise ValueError(f"data.target: expected one of {qm9.target_names}, got {d.target!r}")
        if d.max_train is not None and d.max_train < 1:
            raise ValueError(f"data.max_train: expected a positive int or None, got {d.max_train!r}")
        pooling = _choice(d.pooling, POOLINGS, "data.pooling")
        if pooling == "auto":
            pooling = "sum" if d.target in EXTENSIVE else "dipole" if d.target == "mu" else "mean"
        normalisation = _choice(d.normalisation, NORMALISATIONS, "data.normalisation")
        if normalisation == "auto":
            normalisation = AUTO_NORMALISATION[pooling]
        unit = qm9.units[qm9.target_names.index(d.target)]
        self.factor, self.unit = (HARTREE_MEV, "meV") if unit == "Ha" else (1.0, unit)
        self.species = sorted(int(z) for z in np.unique(qm9.data["atomic_numbers"]))

        def frames(split: str, limit: int | None) -> Frames:
            reader = _subset(qm9.split(split), limit, d.subset_seed)
            return Frames(_frames(reader, reader.target(d.target) * self.factor, d.cutoff), cache=True)

        self.train = frames("train", d.max_train)
        self.val = {name: frames(_choice(split, ("train", "valid", "test"), f"data.val.{name}"), d.max_val)
                    for name, split in d.val.items()}
        self.normalisation = self._fit(normalisation, pooling)

    def _fit(self, kind: str, pooling: str) -> QM9Normalisation:
        """The normalisation fitted on the training molecules."""
        y = np.array([float(f.y) for f in self.train.frames])
        e0s, shift = {}, float(y.mean())
        if kind == "linear":
            e0s = per_element_energies([Data(atomic_numbers=f.atomic_numbers, energy=f.y) for f in self.train.frames])
            counts = np.stack([np.bincount(f.atomic_numbers.numpy(), minlength=MAX_ATOMIC_NUMBER + 1)
                               for f in self.train.frames])
            residual = y - counts[:, list(e0s)] @ np.array(list(e0s.values()))
            shift, scale = 0.0, float(np.sqrt(np.mean(residual ** 2)))
        elif kind == "mean":
            scale = float(y.std())
        else:
            shift, scale = 0.0, float(np.sqrt(np.mean(y ** 2)))
        if not scale > 0:  # one training molecule, or a constant property
            scale = 1.0
        return QM9Normalisation(self.config.data.target, self.unit, pooling, e0s, shift, scale)

    def build_model(self) -> QM9Property:
        """The network ``model.name`` names, built here from its registered options without a normalisation of its
        own, inside a :class:`QM9Property` with the task's.

        Returns:
            The :class:`QM9Property`.

        Raises:
            ValueError: If the model is not one of the potentials' networks, or has an option this task cannot pass
                on.
        """
        options = self.config.model
        if options.name not in NETWORKS:
            raise ValueError(f"model.name: the qm9 task takes {', '.join(NETWORKS)}; got {options.name!r}")
        network_class, config_class = NETWORKS[options.name]
        given = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.name != "name"}
        fixed = {"species": given.pop("species", None) or self.species, "cutoff": self.config.data.cutoff,
                 "avg_num_neighbors": mean_neighbors(self.train), "e0s": {}, "scale": 1.0, "shift": 0.0}
        names = {f.name for f in dataclasses.fields(config_class)}
        config = config_class(**{k: v for k, v in given.items() if k in names}, **fixed)
        rest = {k: v for k, v in given.items() if k not in names}
        if network_class is FrameAveragedPotential:
            wrapper = set(inspect.signature(FrameAveragedPotential).parameters) - {"backbone", "generator"}
            frame_options = {k: rest.pop(k) for k in list(rest) if k in wrapper}
            network = FrameAveragedPotential(PlainPotential(config), **frame_options)
        else:
            network = network_class(config)
        if rest:
            raise ValueError(f"model: the qm9 task cannot pass on {', '.join(sorted(rest))} to {options.name}")
        return QM9Property(network, self.normalisation)

    def collate(self, frames) -> Batch:
        return Batch.from_data_list(frames)

    def batch_size(self, batch) -> int:
        return int(batch.num_graphs)

    def augment(self, batch, step: int):
        if not self.config.data.augment:
            return batch
        generator = torch.Generator().manual_seed(self.config.trainer.seed * 1_000_003 + step)
        rotations = O3().sample(int(batch.num_graphs), generator=generator, dtype=batch.pos.dtype).linear
        moved = batch.clone()
        moved.pos = torch.einsum("nij,nj->ni", rotations.index_select(0, batch_index(batch)), batch.pos)
        return moved

    def save_model(self, model: QM9Property, path) -> None:
        model.save(path)

    def predict(self, model, batch) -> dict:
        return model(batch)

    def loss(self, prediction, batch, count_reducer=None):
        error = (prediction["property"] - batch.y).abs() / self.normalisation.scale
        count = error.numel()
        total = count_reducer({"property": count})["property"] if count_reducer is not None else count
        summed = error.sum()
        return summed / total, {"l1": float(summed.detach()) / count}

    def metrics(self) -> PropertyError:
        return PropertyError()

    def symmetry(self, model, batch) -> Symmetry:
        """The normalised prediction as a function of the positions: E(3)-invariant.

        Args:
            model: A :class:`QM9Property`.
            batch: A batch of molecules.

        Returns:
            The :class:`~equilib.train.Symmetry` under :class:`~equilib.groups.E3`.
        """
        def normalised(pos):
            moved = batch.clone()
            moved.pos = pos
            return model(moved)["normalised"]

        return Symmetry(normalised, E3(), (batch.pos.to(model.dtype),), (Positions(),), (Scalars(),))

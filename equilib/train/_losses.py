"""Training losses and evaluation metrics for energies, forces and stress (OC20 S2EF conventions).

Metrics follow the OC20 S2EF evaluation (Chanussot et al. 2021): energy MAE, force MAE, force cosine similarity,
and EFwT, the fraction of structures whose energy is within 0.02 eV and every force component within 0.03 eV/A.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import batch_index, require_labels
from ._task import LossOptions, SummedMetrics

KINDS = ("mse", "mae", "huber")
EFWT_ENERGY = 0.02  # eV: energy within this and ...
EFWT_FORCE = 0.03  # eV/A: ... every force component within this counts as a hit (OC20's EFwT)


@dataclass
class LossConfig(LossOptions):
    """The ``loss`` section of the potential task: weights and form of the loss; unknown keys are errors.

    Attributes:
        terms: Extra registered loss terms, ``[{name: ..., weight: ..., options...}]``.
        energy_weight: Weight of the energy term.
        forces_weight: Weight of the force term.
        stress_weight: Weight of the stress term (stress is computed only when it is positive).
        energy_per_atom: Compare energies per atom (E / N) instead of total energies.
        forces_free_only: Forces of free (non-fixed) atoms only, as OC20; also applies to the force metrics.
        kind: ``"mse"``, ``"mae"`` or ``"huber"`` for every term.
        huber_delta: The Huber loss's threshold.

    Raises:
        ValueError: If ``kind`` is unknown or a weight or ``huber_delta`` is negative.
    """

    energy_weight: float = 1.0
    forces_weight: float = 10.0
    stress_weight: float = 0.0
    energy_per_atom: bool = True  # compare E / N instead of E
    forces_free_only: bool = True  # OC20 trains on the free (non-fixed) atoms only
    kind: str = "mse"
    huber_delta: float = 0.01

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"loss.kind: expected one of {KINDS}, got {self.kind!r}")
        for name in ("energy_weight", "forces_weight", "stress_weight", "huber_delta"):
            if getattr(self, name) < 0:
                raise ValueError(f"loss.{name}: expected a non-negative number, got {getattr(self, name)}")


def _elementwise(kind: str, diff: torch.Tensor, delta: float) -> torch.Tensor:
    if kind == "mse":
        return diff.pow(2)
    if kind == "mae":
        return diff.abs()
    return torch.nn.functional.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=delta)


def compute_loss(config: LossConfig, prediction: dict, batch, count_reducer=None) -> tuple[torch.Tensor, dict]:
    """The weighted loss of a batch and its parts.

    Each part is a sum over its elements (energies, force components of free atoms, stress components) divided by
    the number of elements, times its weight.

    Args:
        config: The :class:`LossConfig`.
        prediction: The model's output: ``energy`` (graphs,), ``forces`` (atoms, 3), ``stress`` (graphs, 3, 3) as
            needed.
        batch: The labelled batch (``energy``, ``forces``, ``stress``, ``natoms``, ``fixed``).
        count_reducer: In data-parallel training, maps the local counts to the global ones, so that the per-rank
            losses add up to the global mean; None in a single process.

    Returns:
        ``(loss, parts)``: the 0-d weighted loss and ``{part: float}`` local unweighted means, for logging.

    Raises:
        ValueError: If a label with a positive weight is missing.

    Examples:
        >>> import torch
        >>> from ase import Atoms
        >>> from torch_geometric.data import Batch
        >>> from equilib.data import AtomicData
        >>> from equilib.train import LossConfig, compute_loss
        >>> atoms = Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.7]])
        >>> atoms.info["energy"], atoms.arrays["forces"] = -1.0, [[0, 0, 1.0], [0, 0, -1.0]]
        >>> batch = Batch.from_data_list([AtomicData.from_ase(atoms)])
        >>> prediction = {"energy": torch.tensor([-1.2], dtype=torch.float64),
        ...               "forces": torch.zeros(2, 3, dtype=torch.float64)}
        >>> loss, parts = compute_loss(LossConfig(), prediction, batch)  # 1 * 0.1^2 + 10 * 2 / 6
        >>> round(float(loss), 6), {name: round(value, 6) for name, value in parts.items()}
        (3.343333, {'energy': 0.01, 'forces': 0.333333})
    """
    needed = [name for name, w in (("energy", config.energy_weight), ("forces", config.forces_weight),
                                   ("stress", config.stress_weight)) if w > 0]
    require_labels(batch, needed, _source(batch))
    terms = {}
    if config.energy_weight > 0:
        diff = prediction["energy"] - batch.energy.to(prediction["energy"].dtype)
        if config.energy_per_atom:
            diff = diff / batch.natoms.to(diff.dtype)
        terms["energy"] = (config.energy_weight, diff)
    if config.forces_weight > 0:
        diff = prediction["forces"] - batch.forces.to(prediction["forces"].dtype)
        if config.forces_free_only and "fixed" in batch:
            diff = diff[~batch.fixed]
        terms["forces"] = (config.forces_weight, diff)
    if config.stress_weight > 0:
        diff = prediction["stress"] - batch.stress.to(prediction["stress"].dtype).reshape(-1, 3, 3)
        terms["stress"] = (config.stress_weight, diff)
    counts = {name: diff.numel() for name, (_, diff) in terms.items()}
    global_counts = count_reducer(counts) if count_reducer is not None else counts
    total = prediction["energy"].new_zeros(())
    parts = {}
    for name, (weight, diff) in terms.items():
        summed = _elementwise(config.kind, diff, config.huber_delta).sum()
        total = total + weight * summed / max(global_counts[name], 1)
        parts[name] = float(summed.detach()) / max(counts[name], 1)
    return total, parts


def _source(batch) -> str:
    sid = getattr(batch, "sid", None)
    return f"batch with sid {sid.tolist()}" if sid is not None else "batch"


class MetricAccumulator(SummedMetrics):
    """Sums over batches, then OC20-style S2EF metrics.

    ``pairs`` keeps ``(reference, prediction)`` tensors of energies and forces for parity plots.

    Args:
        free_only: Force metrics over free atoms only (when the batch has ``fixed``).
    """

    def __init__(self, free_only: bool = True) -> None:
        super().__init__()
        self.free_only = free_only
        self.pairs: dict[str, list] = {"energy": [], "forces": []}

    @torch.no_grad()
    def update(self, prediction: dict, batch) -> None:
        """Add the errors of one batch.

        Args:
            prediction: ``energy`` (graphs,), ``forces`` (atoms, 3) and optionally ``stress`` (graphs, 3, 3).
            batch: The labelled batch.
        """
        graphs = prediction["energy"].shape[0]
        e_pred, e_true = prediction["energy"].double(), batch.energy.double()
        natoms = batch.natoms.double()
        self._add("energy_mae", float((e_pred - e_true).abs().sum()), graphs)
        self._add("energy_per_atom_mae", float(((e_pred - e_true) / natoms).abs().sum()), graphs)
        self.pairs["energy"].append((e_true.cpu(), e_pred.cpu()))
        f_pred, f_true = prediction["forces"].double(), batch.forces.double()
        if self.free_only and "fixed" in batch:
            mask = ~batch.fixed
        else:
            mask = torch.ones_like(batch.atomic_numbers, dtype=torch.bool)
        diff = (f_pred - f_true)[mask]
        self._add("forces_mae", float(diff.abs().sum()), diff.numel())
        self._add("forces_mse", float(diff.pow(2).sum()), diff.numel())
        self._add("forces_zero_mae", float(f_true[mask].abs().sum()), diff.numel())
        cosine = torch.nn.functional.cosine_similarity(f_pred[mask], f_true[mask], dim=1)
        self._add("forces_cosine", float(cosine.sum()), int(mask.sum()))
        self.pairs["forces"].append((f_true[mask].cpu(), f_pred[mask].cpu()))
        graph_of_atom = batch_index(batch)
        worst = torch.zeros(graphs, dtype=torch.float64, device=f_pred.device)
        per_atom_max = (f_pred - f_true).abs().amax(dim=1) * mask
        worst = worst.scatter_reduce(0, graph_of_atom, per_atom_max, reduce="amax", include_self=True)
        within = ((e_pred - e_true).abs() < EFWT_ENERGY) & (worst < EFWT_FORCE)
        self._add("efwt", float(within.sum()), graphs)
        if "stress" in prediction and "stress" in batch:
            s_diff = prediction["stress"].double() - batch.stress.double().reshape(-1, 3, 3)
            self._add("stress_mae", float(s_diff.abs().sum()), s_diff.numel())

    def compute(self) -> dict[str, float]:
        """The metrics of everything accumulated.

        Returns:
            ``energy_mae`` (eV), ``energy_per_atom_mae`` (eV/atom), ``forces_mae`` and ``forces_rmse`` (eV/A),
            ``forces_cosine``, ``efwt`` (fraction), ``forces_zero_mae`` (the MAE of predicting zero forces) and, when
            stress was given, ``stress_mae`` (eV/A^3).
        """
        out = {}
        for key, total in self.sums.items():
            value = total / max(self.counts[key], 1)
            if key == "forces_mse":
                out["forces_rmse"] = value**0.5
            else:
                out[key] = value
        return out

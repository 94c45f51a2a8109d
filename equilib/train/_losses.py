"""Training losses and evaluation metrics for energies, forces and stress (OC20 S2EF conventions).

Metrics follow the OC20 S2EF evaluation (Chanussot et al. 2021): energy MAE, force MAE, force cosine similarity,
and EFwT, the fraction of structures whose energy is within 0.02 eV and every force component within 0.03 eV/A.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..data import batch_index, require_labels
from ._task import LossOptions

KINDS = ("mse", "mae", "huber")
EFWT_ENERGY = 0.02  # eV: energy within this and ...
EFWT_FORCE = 0.03  # eV/A: ... every force component within this counts as a hit (OC20's EFwT)


@dataclass
class LossConfig(LossOptions):
    """Weights and form of the potential's loss; unknown keys in a config are errors (see
    ``equilib.train.load_config``)."""

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
    """The weighted loss of a batch and its parts (local means, as floats, for logging).

    Each part is a sum over its elements divided by the number of elements; ``count_reducer`` (data parallel
    training) maps the local counts to the global ones, so that the per-rank losses add up to the global mean.
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


class MetricAccumulator:
    """Sums over batches, then OC20-style metrics; free atoms only when ``free_only`` (and ``fixed`` is known)."""

    def __init__(self, free_only: bool = True) -> None:
        self.free_only = free_only
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.pairs: dict[str, list] = {"energy": [], "forces": []}

    def _add(self, key: str, value: float, count: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value
        self.counts[key] = self.counts.get(key, 0) + count

    @torch.no_grad()
    def update(self, prediction: dict, batch) -> None:
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

    def all_reduce(self) -> None:
        """Sum the accumulated totals and counts over the ranks of a process group (data parallel evaluation)."""
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        keys = sorted(self.sums)
        values = torch.tensor([[self.sums[k], self.counts[k]] for k in keys], dtype=torch.float64)
        dist.all_reduce(values)
        for k, (total, count) in zip(keys, values.tolist()):
            self.sums[k], self.counts[k] = total, int(count)

    def compute(self) -> dict[str, float]:
        """Energy MAE (eV and eV/atom), force MAE/RMSE (eV/A), force cosine, EFwT, zero-force MAE, stress MAE."""
        out = {}
        for key, total in self.sums.items():
            value = total / max(self.counts[key], 1)
            if key == "forces_mse":
                out["forces_rmse"] = value**0.5
            else:
                out[key] = value
        return out

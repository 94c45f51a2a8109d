"""Dataset statistics for normalising a potential, as MACE and NequIP compute them.

Per-element reference energies (E0s) by least squares of the total energies on the element counts; the mean
number of neighbors per atom (the normaliser of message sums); the root mean square of the force components (the
energy scale). Every function iterates the dataset once and takes any sequence of :class:`AtomicData`.
"""

from __future__ import annotations

import numpy as np
import torch

from ._atomic_data import MAX_ATOMIC_NUMBER


def require_labels(data, names, source: str = "data") -> None:
    """Raise a ValueError naming ``source`` and the missing label when ``data`` lacks one of ``names``."""
    for name in names:
        if name not in data:
            raise ValueError(f"{source}: label {name!r} is missing but needed (present: {sorted(data.keys())})")


def per_element_energies(dataset, elements: list[int] | None = None) -> dict[int, float]:
    """Least-squares E0s: energies ``E ~ sum_Z n_Z e_Z`` over the dataset; {Z: e_Z} in eV.

    Elements absent from the data are absent from the result unless listed in ``elements`` (then 0).
    With linearly dependent compositions the minimum-norm solution is returned.
    """
    counts, energies = [], []
    for k in range(len(dataset)):
        data = dataset[k]
        require_labels(data, ["energy"], f"frame {k}")
        counts.append(torch.bincount(data.atomic_numbers, minlength=MAX_ATOMIC_NUMBER + 1).numpy())
        energies.append(float(data.energy))
    if not counts:
        raise ValueError("dataset: expected at least one frame, got an empty dataset")
    counts = np.stack(counts).astype(np.float64)
    present = np.flatnonzero(counts.sum(0))
    solution, *_ = np.linalg.lstsq(counts[:, present], np.asarray(energies), rcond=None)
    e0 = {int(z): float(e) for z, e in zip(present, solution)}
    for z in elements or []:
        e0.setdefault(int(z), 0.0)
    return e0


def mean_neighbors(dataset) -> float:
    """Average number of neighbors per atom (edges / atoms); the frames need ``edge_index``."""
    edges = atoms = 0
    for k in range(len(dataset)):
        data = dataset[k]
        require_labels(data, ["edge_index"], f"frame {k} (no neighbor list: give the dataset a cutoff)")
        edges += data.edge_index.shape[1]
        atoms += data.num_nodes
    return edges / max(atoms, 1)


def force_rms(dataset) -> float:
    """Root mean square of all force components in eV/A."""
    total, count = 0.0, 0
    for k in range(len(dataset)):
        data = dataset[k]
        require_labels(data, ["forces"], f"frame {k}")
        total += float((data.forces.double() ** 2).sum())
        count += data.forces.numel()
    return (total / max(count, 1)) ** 0.5

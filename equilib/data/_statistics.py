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
    """Check that ``data`` carries every label in ``names``.

    Args:
        data: An :class:`AtomicData` or a ``Batch``.
        names: The labels needed (e.g. ``["energy", "forces"]``).
        source: Names ``data`` in the error message.

    Raises:
        ValueError: Naming ``source`` and the first missing label.
    """
    for name in names:
        if name not in data:
            raise ValueError(f"{source}: label {name!r} is missing but needed (present: {sorted(data.keys())})")


def per_element_energies(dataset, elements: list[int] | None = None) -> dict[int, float]:
    """Least-squares per-element reference energies (E0s): ``E ~ sum_Z n_Z e_Z`` over the dataset.

    With linearly dependent compositions the minimum-norm solution is returned.

    Args:
        dataset: A sequence of :class:`AtomicData` with ``energy``.
        elements: Atomic numbers to include even when absent from the data (then 0.0).

    Returns:
        ``{Z: e_Z}`` in eV for the elements present (and those listed).

    Raises:
        ValueError: If the dataset is empty or a frame has no energy.

    Examples:
        >>> import numpy as np
        >>> from ase import Atoms
        >>> from equilib.data import AtomicData, per_element_energies
        >>> frames = []
        >>> for n in (1, 2, 3):  # E = -1 eV per H and -5 eV per O
        ...     atoms = Atoms("H" * n + "O", positions=np.arange(3 * (n + 1)).reshape(-1, 3))
        ...     atoms.info["energy"] = -1.0 * n - 5.0
        ...     frames.append(AtomicData.from_ase(atoms))
        >>> {z: round(e, 6) for z, e in per_element_energies(frames, elements=[6]).items()}
        {1: -1.0, 8: -5.0, 6: 0.0}
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
    """Average number of neighbors per atom (edges / atoms).

    Args:
        dataset: A sequence of :class:`AtomicData` with neighbor lists.

    Returns:
        The mean, a float (0.0 for a dataset without atoms).

    Raises:
        ValueError: If a frame has no ``edge_index``.
    """
    edges = atoms = 0
    for k in range(len(dataset)):
        data = dataset[k]
        require_labels(data, ["edge_index"], f"frame {k} (no neighbor list: give the dataset a cutoff)")
        edges += data.edge_index.shape[1]
        atoms += data.num_nodes
    return edges / max(atoms, 1)


def force_rms(dataset) -> float:
    """Root mean square of all force components.

    Args:
        dataset: A sequence of :class:`AtomicData` with ``forces``.

    Returns:
        The RMS in eV/A, a float.

    Raises:
        ValueError: If a frame has no forces.
    """
    total, count = 0.0, 0
    for k in range(len(dataset)):
        data = dataset[k]
        require_labels(data, ["forces"], f"frame {k}")
        total += float((data.forces.double() ** 2).sum())
        count += data.forces.numel()
    return (total / max(count, 1)) ** 0.5

"""Atomic graphs with the fields of OC20's S2EF data, on torch-geometric ``Data``/``Batch``.

Field names and meanings follow the Open Catalyst 2020 data (Chanussot et al., ACS Catal. 2021): ``pos`` (n, 3) A,
``cell`` (1, 3, 3) rows = lattice vectors, ``pbc`` (1, 3), ``atomic_numbers`` (n,), ``natoms`` (1,), ``tags`` (n,)
(0 subsurface, 1 surface, 2 adsorbate), ``fixed`` (n,) bool, ``energy`` (1,) eV, ``forces`` (n, 3) eV/A,
optional ``stress`` (1, 3, 3) eV/A^3, ``sid``/``fid`` (1,) system and frame ids, and after :meth:`with_neighbors`
``edge_index`` (2, E) and integer ``cell_offsets`` (E, 3) (see :func:`neighbor_list` for the convention).
Batching with ``torch_geometric.data.Batch`` stacks cells to (B, 3, 3) and offsets ``edge_index``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch_geometric.data import Data

from ._neighbors import edge_vectors_and_lengths, neighbor_list

MIN_DISTANCE = 0.1  # A: closer atoms are an input error, not physics
MAX_ATOMIC_NUMBER = 118  # the heaviest known element (oganesson); tables indexed by Z have MAX_ATOMIC_NUMBER + 1 rows


class AtomicData(Data):
    """One structure as a graph. Build it with :meth:`from_ase`; batch it with ``Batch.from_data_list``."""

    @classmethod
    def from_ase(cls, atoms, *, cutoff: float | None = None, source: str = "atoms", dtype=torch.float64,
                 labels: bool = True):
        """Convert an ``ase.Atoms`` into a graph, validating it.

        Energy, forces and stress are read from an attached calculator's results when present, else from
        ``atoms.info["energy"]``, ``atoms.arrays["forces"]`` and ``atoms.info["stress"]`` (6 Voigt components or 3x3);
        stress is stored as a (1, 3, 3) matrix in eV/A^3. ``sid`` and ``fid`` come from ``atoms.info``; ``FixAtoms``
        constraints become ``fixed``.

        Args:
            atoms: The structure.
            cutoff: Neighbor-list cutoff in Angstrom; None makes no neighbor list.
            source: Names the structure in error messages (e.g. ``"train.lmdb, frame 12"``).
            dtype: Dtype of the floating fields.
            labels: Read energy, forces and stress; False reads none (a calculator's query structure).

        Returns:
            The :class:`AtomicData` (with ``edge_index`` and ``cell_offsets`` when ``cutoff`` is given).

        Raises:
            ValueError: If a position is not finite, an atomic number is unknown, two atoms are closer than 0.1 A, the
                forces are not (n, 3) or the stress has another shape.

        Examples:
            >>> from ase.build import molecule
            >>> from equilib.data import AtomicData
            >>> atoms = molecule("H2O")
            >>> atoms.info["energy"] = -14.2
            >>> data = AtomicData.from_ase(atoms, cutoff=1.2)
            >>> data.pos.shape, data.cell.shape, data.edge_index.shape  # two O-H bonds, both ways
            (torch.Size([3, 3]), torch.Size([1, 3, 3]), torch.Size([2, 4]))
            >>> data.atomic_numbers, float(data.energy)
            (tensor([8, 1, 1]), -14.2)
        """
        numbers = np.asarray(atoms.numbers)
        positions = np.asarray(atoms.positions, dtype=np.float64)
        _validate(positions, numbers, source)
        n = len(atoms)
        data = cls(
            pos=torch.as_tensor(positions, dtype=dtype),
            cell=torch.as_tensor(np.asarray(atoms.cell.array), dtype=dtype).reshape(1, 3, 3),
            pbc=torch.as_tensor(np.asarray(atoms.pbc), dtype=torch.bool).reshape(1, 3),
            atomic_numbers=torch.as_tensor(numbers, dtype=torch.long),
            natoms=torch.tensor([n]),
            tags=torch.as_tensor(atoms.get_tags(), dtype=torch.long),
            fixed=_fixed_mask(atoms),
        )
        labels = _labels(atoms) if labels else {}
        if "energy" in labels:
            data.energy = torch.tensor([float(labels["energy"])], dtype=dtype)
        if "forces" in labels:
            forces = np.asarray(labels["forces"], dtype=np.float64)
            if forces.shape != (n, 3):
                raise ValueError(f"{source}: forces: expected shape ({n}, 3), got {forces.shape}")
            data.forces = torch.as_tensor(forces, dtype=dtype)
        if "stress" in labels:
            data.stress = torch.as_tensor(_stress_matrix(labels["stress"], source), dtype=dtype).reshape(1, 3, 3)
        for key in ("sid", "fid"):
            if key in atoms.info:
                data[key] = torch.tensor([int(atoms.info[key])])
        return data.with_neighbors(cutoff) if cutoff is not None else data

    def with_neighbors(self, cutoff: float, backend: str = "auto") -> AtomicData:
        """Add ``edge_index`` and ``cell_offsets`` for the pairs closer than ``cutoff`` (in place).

        Args:
            cutoff: Cutoff radius in Angstrom.
            backend: Neighbor-list backend, as for :func:`neighbor_list`.

        Returns:
            ``self``.

        Raises:
            ValueError: As for :func:`neighbor_list`.
        """
        self.edge_index, self.cell_offsets = neighbor_list(
            self.pos, cutoff, self.cell.reshape(3, 3), self.pbc.reshape(3), backend=backend
        )
        return self

    def to_ase(self):
        """Convert back to ``ase.Atoms``.

        Returns:
            ``ase.Atoms`` with tags, fixed atoms as ``FixAtoms``, ``sid``/``fid`` in ``info`` and the labels (energy,
            forces, stress in Voigt order) as a single-point calculator.
        """
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator
        from ase.constraints import FixAtoms

        atoms = Atoms(
            numbers=self.atomic_numbers.cpu().numpy(),
            positions=self.pos.detach().cpu().numpy(),
            cell=self.cell.reshape(3, 3).detach().cpu().numpy(),
            pbc=self.pbc.reshape(3).cpu().numpy(),
            tags=self.tags.cpu().numpy(),
        )
        if self.fixed.any():
            atoms.set_constraint(FixAtoms(mask=self.fixed.cpu().numpy()))
        results = {}
        if "energy" in self:
            results["energy"] = float(self.energy)
        if "forces" in self:
            results["forces"] = self.forces.detach().cpu().numpy()
        if "stress" in self:
            from ase.stress import full_3x3_to_voigt_6_stress

            results["stress"] = full_3x3_to_voigt_6_stress(self.stress.reshape(3, 3).detach().cpu().numpy())
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        for key in ("sid", "fid"):
            if key in self:
                atoms.info[key] = int(self[key])
        return atoms


def batch_index(data) -> torch.Tensor:
    """Each atom's graph in ``data``.

    Args:
        data: An :class:`AtomicData` or a ``Batch`` of them.

    Returns:
        (atoms,) torch.long: ``data.batch`` of a ``Batch``, zeros for one structure.
    """
    batch = getattr(data, "batch", None)
    return batch if batch is not None else torch.zeros_like(data.atomic_numbers)


def edge_vectors(data) -> torch.Tensor:
    """Vectors from each center i to its neighbor j, ``pos[j] - pos[i] + cell_offsets @ cell``.

    Differentiable in ``pos`` and ``cell`` (forces, stress); :func:`edge_vectors_and_lengths` does the same on tensors.

    Args:
        data: An :class:`AtomicData` or a ``Batch`` with ``edge_index`` and ``cell_offsets``.

    Returns:
        (E, 3) edge vectors in ``pos``'s dtype.
    """
    vectors, _ = edge_vectors_and_lengths(data.pos, data.cell, data.edge_index, data.cell_offsets, batch_index(data))
    return vectors


def _validate(positions: np.ndarray, numbers: np.ndarray, source: str) -> None:
    if not np.isfinite(positions).all():
        bad = int(np.argwhere(~np.isfinite(positions))[0, 0])
        raise ValueError(f"{source}: positions: atom {bad} has a non-finite coordinate {positions[bad].tolist()}")
    if len(numbers) and (numbers.min() < 1 or numbers.max() > MAX_ATOMIC_NUMBER):
        bad = int(np.argwhere((numbers < 1) | (numbers > MAX_ATOMIC_NUMBER))[0, 0])
        raise ValueError(f"{source}: atomic_numbers: atom {bad} has unknown element Z={int(numbers[bad])}")
    if len(positions) > 1:
        from scipy.spatial import cKDTree

        pairs = cKDTree(positions).query_pairs(MIN_DISTANCE, output_type="ndarray")
        if len(pairs):
            a, b = map(int, pairs[0])
            d = float(np.linalg.norm(positions[a] - positions[b]))
            raise ValueError(f"{source}: positions: atoms {a} and {b} overlap ({d:.3g} A < {MIN_DISTANCE} A)")


def _fixed_mask(atoms) -> torch.Tensor:
    from ase.constraints import FixAtoms

    mask = np.zeros(len(atoms), dtype=bool)
    for constraint in atoms.constraints:
        if isinstance(constraint, FixAtoms):
            mask[constraint.index] = True
    return torch.as_tensor(mask)


def _labels(atoms) -> dict:
    labels = {}
    calc = atoms.calc
    if calc is not None and getattr(calc, "results", None):
        labels.update({k: calc.results[k] for k in ("energy", "forces", "stress") if k in calc.results})
    for key in ("energy", "stress"):
        if key not in labels and key in atoms.info:
            labels[key] = atoms.info[key]
    if "forces" not in labels and "forces" in atoms.arrays:
        labels["forces"] = atoms.arrays["forces"]
    return labels


def _stress_matrix(stress, source: str) -> np.ndarray:
    from ase.stress import voigt_6_to_full_3x3_stress

    s = np.asarray(stress, dtype=np.float64)
    if s.shape == (6,):
        return voigt_6_to_full_3x3_stress(s)
    if s.shape == (3, 3):
        return s
    raise ValueError(f"{source}: stress: expected 6 Voigt components or a 3x3 matrix, got shape {s.shape}")

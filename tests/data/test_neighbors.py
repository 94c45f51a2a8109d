"""Neighbor lists: vesin and the torch fallback give ase.neighborlist's edge set on every kind of cell."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, bulk, fcc111, fcc211, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from equilib.data import neighbor_list


def _systems():
    rng = np.random.default_rng(0)
    slab = fcc111("Pt", (3, 3, 4), vacuum=7.0)
    add_adsorbate(slab, "O", 1.6, "fcc")
    stepped = fcc211("Cu", (3, 3, 3), vacuum=6.0)
    tiny = bulk("Cu", "fcc", a=3.6)  # one atom: a 6 A cutoff reaches many images
    triclinic = Atoms("Si2", scaled_positions=[[0, 0, 0], [0.3, 0.2, 0.6]],
                      cell=[[3.1, 0, 0], [1.2, 2.9, 0], [0.7, 0.4, 3.3]], pbc=True)
    rattled = bulk("NaCl", "rocksalt", a=5.6, cubic=True).repeat((2, 2, 2))
    rattled.positions += rng.normal(0, 0.2, rattled.positions.shape)
    rattled.positions[0] += [7.0, -12.0, 30.0]  # far outside the cell: must be wrapped consistently
    far = molecule("C6H6")
    far.positions += [1e3, -2e3, 5e2]  # a molecule far from the origin, no cell
    wire = Atoms("Cu3", positions=[[0, 0, 0], [1.3, 1.2, 0.1], [2.5, 0.1, 0.3]], cell=[3.7, 20, 20],
                 pbc=[True, False, False])
    return {"slab111": slab, "slab211": stepped, "tiny-bulk": tiny, "triclinic": triclinic, "rattled-bulk": rattled,
            "molecule-far": far, "wire-mixed-pbc": wire}


SYSTEMS = _systems()


def _as_set(edge_index, offsets):
    j, i = edge_index.numpy()
    return sorted(zip(i.tolist(), j.tolist(), map(tuple, offsets.numpy().tolist())))


@pytest.mark.parametrize("cutoff", [3.0, 6.0])
@pytest.mark.parametrize("backend", ["vesin", "torch"])
@pytest.mark.parametrize("name", SYSTEMS)
def test_same_edges_as_ase(name, backend, cutoff):
    atoms = SYSTEMS[name]
    i, j, shifts = ase_neighbor_list("ijS", atoms, cutoff)
    ref = sorted(zip(i.tolist(), j.tolist(), map(tuple, shifts.tolist())))
    cell = None if not atoms.pbc.any() and name == "molecule-far" else atoms.cell.array
    edge_index, offsets = neighbor_list(torch.tensor(atoms.positions), cutoff, cell, atoms.pbc, backend=backend)
    assert len(ref) > 0 and _as_set(edge_index, offsets) == ref
    vec = atoms.positions[edge_index[0]] - atoms.positions[edge_index[1]] + offsets.numpy() @ atoms.cell.array
    assert np.linalg.norm(vec, axis=1).max() < cutoff


def test_empty_and_single_atom():
    edge_index, offsets = neighbor_list(torch.zeros(1, 3), 5.0)
    assert edge_index.shape == (2, 0) and offsets.shape == (0, 3)
    edge_index, _ = neighbor_list(torch.zeros(0, 3), 5.0)
    assert edge_index.shape == (2, 0)


def test_bad_input():
    with pytest.raises(ValueError, match=r"positions: expected a float tensor of shape \(n_atoms, 3\)"):
        neighbor_list(torch.zeros(4, 2), 3.0)
    with pytest.raises(ValueError, match="positions: expected finite values"):
        neighbor_list(torch.tensor([[0.0, 0.0, float("nan")]]), 3.0)
    with pytest.raises(ValueError, match="cutoff: expected a positive number"):
        neighbor_list(torch.zeros(2, 3), -1.0)
    with pytest.raises(ValueError, match="cell: periodic boundaries"):
        neighbor_list(torch.zeros(2, 3), 3.0, None, True)
    with pytest.raises(ValueError, match="cell: the periodic cell vectors are degenerate"):
        neighbor_list(torch.zeros(2, 3), 3.0, torch.zeros(3, 3), True)
    with pytest.raises(ValueError, match="backend: expected one of"):
        neighbor_list(torch.zeros(2, 3), 3.0, backend="ase")

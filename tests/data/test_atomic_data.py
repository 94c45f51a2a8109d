"""AtomicData: round trip with ASE, OC20 fields, batching, edge vectors, and validation errors."""

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from ase.neighborlist import neighbor_list
from torch_geometric.data import Batch

from equilib.data import AtomicData, edge_vectors


def _adslab():
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.5, "fcc")
    slab.set_constraint(FixAtoms(mask=slab.get_tags() == 3))
    slab.calc = EMT()
    slab.get_potential_energy()
    slab.info.update(sid=17, fid=3)
    return slab


def test_round_trip_and_fields():
    atoms = _adslab()
    data = AtomicData.from_ase(atoms, cutoff=5.0)
    assert data.cell.shape == (1, 3, 3) and data.pbc.shape == (1, 3) and int(data.natoms) == len(atoms)
    assert torch.equal(data.fixed, torch.as_tensor(atoms.get_tags() == 3))
    assert float(data.energy) == pytest.approx(atoms.get_potential_energy())
    assert np.allclose(data.forces.numpy(), atoms.get_forces(apply_constraint=False))  # OC20 keeps raw forces
    back = data.to_ase()
    assert np.allclose(back.positions, atoms.positions) and (back.numbers == atoms.numbers).all()
    assert (back.get_tags() == atoms.get_tags()).all() and back.info["sid"] == 17 and back.info["fid"] == 3
    assert back.get_potential_energy() == pytest.approx(atoms.get_potential_energy())
    assert len(back.constraints[0].index) == 4


def test_stress_is_stored_as_a_matrix():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True)
    atoms.calc = EMT()
    stress = atoms.get_stress()
    data = AtomicData.from_ase(atoms)
    assert data.stress.shape == (1, 3, 3)
    assert np.allclose(data.to_ase().get_stress(), stress)


def test_batch_and_edge_vectors_match_ase_distances():
    a, b = _adslab(), bulk("Ni", "fcc", a=3.5).repeat((2, 2, 2))
    a.calc = None
    a.info.clear()  # PyG batches need the same keys in every structure
    batch = Batch.from_data_list([AtomicData.from_ase(x, cutoff=4.0) for x in (a, b)])
    assert batch.cell.shape == (2, 3, 3)
    lengths = edge_vectors(batch).norm(dim=1)
    for k, atoms in enumerate((a, b)):
        ref = np.sort(neighbor_list("d", atoms, 4.0))
        mask = batch.batch[batch.edge_index[1]] == k
        assert len(ref) > 0 and int(mask.sum()) == len(ref)
        assert np.allclose(np.sort(lengths[mask].numpy()), ref)


def test_validation_errors_name_the_source():
    atoms = bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1))
    bad = atoms.copy()
    bad.positions[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"train.lmdb, frame 5: positions: atom 1 has a non-finite coordinate"):
        AtomicData.from_ase(bad, source="train.lmdb, frame 5")
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.05, 0, 0]
    with pytest.raises(ValueError, match=r"x: positions: atoms 0 and 1 overlap \(0.05 A < 0.1 A\)"):
        AtomicData.from_ase(close, source="x")
    unknown = atoms.copy()
    unknown.numbers[0] = 0
    with pytest.raises(ValueError, match="atomic_numbers: atom 0 has unknown element Z=0"):
        AtomicData.from_ase(unknown)
    wrong = atoms.copy()
    wrong.info["stress"] = [1.0, 2.0]
    with pytest.raises(ValueError, match="stress: expected 6 Voigt components or a 3x3 matrix"):
        AtomicData.from_ase(wrong)

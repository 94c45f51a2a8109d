"""Statistics against values known by construction and brute force."""

import numpy as np
import pytest
import torch
from ase.build import bulk, molecule

from equilib.data import AtomicData, force_rms, mean_neighbors, per_element_energies, require_labels

E0 = {1: -13.6, 6: -1030.2, 8: -2040.7}


def _dataset(generator):
    frames = []
    for name in ("H2O", "CH4", "CO2", "C2H6", "H2", "CH3OH"):
        atoms = molecule(name)
        energy = sum(E0[int(z)] for z in atoms.numbers)
        atoms.info["energy"] = energy
        atoms.arrays["forces"] = torch.randn(len(atoms), 3, generator=generator, dtype=torch.float64).numpy()
        frames.append(AtomicData.from_ase(atoms, cutoff=2.0))
    return frames


def test_per_element_energies_recover_the_references(generator):
    e0 = per_element_energies(_dataset(generator), elements=[1, 6, 8, 29])
    assert set(e0) == {1, 6, 8, 29} and e0[29] == 0.0
    for z in E0:
        assert e0[z] == pytest.approx(E0[z], abs=1e-9)


def test_mean_neighbors_and_force_rms_by_brute_force(generator):
    data = _dataset(generator)
    edges = sum(d.edge_index.shape[1] for d in data)
    assert mean_neighbors(data) == pytest.approx(edges / sum(d.num_nodes for d in data))
    forces = np.concatenate([d.forces.numpy() for d in data])
    assert force_rms(data) == pytest.approx(np.sqrt((forces**2).mean()))


def test_missing_labels_are_named():
    data = AtomicData.from_ase(bulk("Cu"))
    with pytest.raises(ValueError, match=r"frame 0: label 'energy' is missing but needed"):
        per_element_energies([data])
    with pytest.raises(ValueError, match="give the dataset a cutoff"):
        mean_neighbors([data])
    with pytest.raises(ValueError, match=r"train.lmdb, frame 3: label 'forces' is missing"):
        require_labels(data, ["forces"], "train.lmdb, frame 3")
    with pytest.raises(ValueError, match="dataset: expected at least one frame"):
        per_element_energies([])

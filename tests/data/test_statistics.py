"""Statistics on a tiny hand-built dataset, against values counted by hand and plain loops over the raw arrays."""

import itertools
import math

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk

from equilib.data import AtomicData, force_rms, mean_neighbors, per_element_energies, require_labels

E0 = {1: -13.6, 6: -1030.2, 8: -2040.7}
CUTOFF = 2.0
# (symbols, positions, cell or None, forces): neighbors within CUTOFF, counted by hand
FRAMES = [
    ("H2O", [[0, 0, 0], [1.0, 0, 0], [2.5, 0, 0]], None, [[3, 0, 0], [0, 4, 0], [0, 0, 0]]),  # H-H, H-O: 4 directed
    ("CO", [[0, 0, 0], [1.2, 0, 0]], None, [[1, 2, 2], [0, 0, 0]]),  # one pair: 2
    ("CH", [[0, 0, 0], [0, 3.0, 0]], None, [[0, 0, 0], [2, 0, 0]]),  # too far apart: 0
    ("H", [[0, 0, 0]], 1.5, [[0, 0, 1]]),  # periodic cube of 1.5 A: its 6 face images (the next are 2.12 A): 6
]
EDGES, ATOMS = 4 + 2 + 0 + 6, 3 + 2 + 2 + 1
SQUARED_FORCES, COMPONENTS = (9 + 16) + (1 + 4 + 4) + 4 + 1, 3 * ATOMS


def _atoms(symbols, positions, cell, forces, energy=None):
    atoms = Atoms(symbols, positions=positions)
    if cell is not None:
        atoms.set_cell([cell, cell, cell])
        atoms.pbc = True
    atoms.info["energy"] = sum(E0[int(z)] for z in atoms.numbers) if energy is None else energy
    atoms.arrays["forces"] = np.array(forces, dtype=np.float64)
    return atoms


def _dataset():
    return [AtomicData.from_ase(_atoms(*frame), cutoff=CUTOFF) for frame in FRAMES]


def _brute_force_neighbors(atoms, cutoff):
    """Ordered pairs (i, j, image) closer than ``cutoff``, by a loop over atoms and periodic images."""
    shifts = itertools.product(range(-2, 3), repeat=3) if atoms.pbc.all() else [(0, 0, 0)]
    count = 0
    for shift in shifts:
        offset = [sum(shift[k] * atoms.cell[k][d] for k in range(3)) for d in range(3)]
        for i, j in itertools.product(range(len(atoms)), repeat=2):
            if i == j and shift == (0, 0, 0):
                continue
            delta = [atoms.positions[j][d] + offset[d] - atoms.positions[i][d] for d in range(3)]
            count += math.sqrt(sum(c * c for c in delta)) < cutoff
    return count


def test_per_element_energies_recover_the_references():
    e0 = per_element_energies(_dataset(), elements=[1, 6, 8, 29])
    assert set(e0) == {1, 6, 8, 29} and e0[29] == 0.0
    for z in E0:
        assert e0[z] == pytest.approx(E0[z], abs=1e-9)


def test_per_element_energies_are_the_least_squares_fit():
    # H: -1 eV, H2: -5 eV. Minimising (e - (-1))^2 + (2e - (-5))^2 gives 5e = -1 - 10: e = -2.2 eV
    frames = [_atoms("H", [[0, 0, 0]], None, [[0, 0, 0]], energy=-1.0),
              _atoms("H2", [[0, 0, 0], [0.74, 0, 0]], None, [[0, 0, 0]] * 2, energy=-5.0)]
    e0 = per_element_energies([AtomicData.from_ase(a) for a in frames])
    assert e0 == {1: pytest.approx(-2.2, abs=1e-12)}


def test_mean_neighbors_by_hand_and_by_brute_force():
    counted = sum(_brute_force_neighbors(_atoms(*frame), CUTOFF) for frame in FRAMES)
    assert counted == EDGES
    assert mean_neighbors(_dataset()) == pytest.approx(EDGES / ATOMS, abs=1e-12)  # 12 / 8


def test_force_rms_by_hand_and_by_a_loop():
    squares = [c * c for *_, forces in FRAMES for row in forces for c in row]
    assert (sum(squares), len(squares)) == (SQUARED_FORCES, COMPONENTS)
    assert force_rms(_dataset()) == pytest.approx(math.sqrt(39 / 24), abs=1e-12)


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

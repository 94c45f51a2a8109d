"""What the potentials' tests share (``tests/nn/test_potential.py``, ``tests/nn/test_plain_potential.py``,
``tests/frames/test_potential.py``): rattled and strained structures, their graphs at the tests' cutoff, and the
central finite differences of the energy that forces and stress are checked against."""

import numpy as np
from ase.build import add_adsorbate, fcc111

from equilib.data import AtomicData

CUTOFF = 4.0
EPS = 1e-5


def rattled(atoms, seed, scale):
    """``atoms`` with every position moved by N(0, scale^2) noise from ``default_rng(seed)`` (in place)."""
    atoms.positions += np.random.default_rng(seed).normal(0, scale, atoms.positions.shape)
    return atoms


def strained(atoms, seed):
    """``atoms`` with the cell deformed by ``I + 0.02 N(0, 1)`` from ``default_rng(seed)``, atoms along (in place)."""
    strain = np.eye(3) + 0.02 * np.random.default_rng(seed).normal(size=(3, 3))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms


def adslab(seed=0):
    """OC20-style: a rattled Cu(111) slab, periodic in x and y, with an O adatom."""
    slab = fcc111("Cu", (2, 2, 2), vacuum=5.0)
    add_adsorbate(slab, "O", 1.4, "fcc")
    return rattled(slab, seed, 0.05)


def data_of(atoms, cutoff=CUTOFF):
    return AtomicData.from_ase(atoms, cutoff=cutoff)


def energy_of(model, atoms, cutoff=CUTOFF):
    return float(model(data_of(atoms, cutoff), compute_forces=False)["energy"].detach())


def force_difference(model, atoms, atom, axis, eps=EPS):
    """``-dE/dx`` of one coordinate by central differences."""
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[atom, axis] += sign * eps
        energies.append(energy_of(model, moved))
    return -(energies[0] - energies[1]) / (2 * eps)


def stress_difference(model, atoms, i, j, eps=EPS):
    """``(1/V) dE/d(strain_ij)`` under a symmetric strain, by central differences."""
    energies = []
    for sign in (1, -1):
        deformation = np.eye(3)
        deformation[i, j] += sign * eps / 2
        deformation[j, i] += sign * eps / 2
        moved = atoms.copy()
        moved.set_cell(atoms.cell.array @ deformation, scale_atoms=True)
        energies.append(energy_of(model, moved))
    return (energies[0] - energies[1]) / (2 * eps) / atoms.get_volume()

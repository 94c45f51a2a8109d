"""Relaxations and their comparison with a reference: minimum-image distances, OC20's ADwT, EMT against itself."""

import itertools

import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from equilib.data import AtomicData
from equilib.relaxation import (
    ADWT_THRESHOLDS,
    average_distance_within_threshold,
    compare_relaxation,
    minimum_image_distances,
    relax,
)


def test_minimum_image_distances_match_a_search_over_images():
    rng = np.random.default_rng(0)
    cell = np.array([[5.0, 0.0, 0.0], [2.5, 4.3, 0.0], [0.3, 0.2, 20.0]])
    reference = rng.uniform(0, 1, (12, 3)) @ cell
    moved = reference + rng.normal(0, 0.4, (12, 3)) + rng.integers(-2, 3, (12, 1)) * cell[0] + cell[1]
    pbc = np.array([True, True, False])
    got = minimum_image_distances(moved, reference, cell, pbc)
    shifts = [a * cell[0] + b * cell[1] for a, b in itertools.product(range(-4, 5), repeat=2)]
    brute = np.min([np.linalg.norm(moved - reference + s, axis=1) for s in shifts], axis=0)
    assert np.allclose(got, brute, atol=1e-12)
    assert np.allclose(minimum_image_distances(moved, reference, cell, np.zeros(3, bool)),
                       np.linalg.norm(moved - reference, axis=1))


def test_adwt_is_the_fraction_within_thresholds():
    assert average_distance_within_threshold(np.zeros(5)) == 1.0
    assert average_distance_within_threshold(np.array([0.0, 1.0])) == 0.5
    expected = float((ADWT_THRESHOLDS > 0.2).mean())  # one atom at 0.2 A: thresholds above it count
    assert average_distance_within_threshold(np.array([0.2])) == pytest.approx(expected)
    with pytest.raises(ValueError, match="distances"):
        average_distance_within_threshold(np.array([]))


def _record(offset: float):
    """An IS2RE record of O on Cu(111) relaxed with EMT; referenced energy = EMT energy - offset."""
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.4, "fcc")
    slab.set_tags([0] * 8 + [1] * 4 + [2])
    slab.set_constraint(FixAtoms(indices=range(8)))
    slab.positions[8:] += np.random.default_rng(1).normal(0, 0.05, (5, 3))
    reference = relax(slab, EMT(), fmax=0.02, steps=200)
    assert reference.converged and reference.energies[-1] < reference.energies[0]
    record = AtomicData.from_ase(slab, labels=False)
    record.y_init = torch.tensor([reference.energies[0] - offset], dtype=torch.float64)
    record.y_relaxed = torch.tensor([reference.energies[-1] - offset], dtype=torch.float64)
    record.pos_relaxed = torch.as_tensor(reference.atoms.positions)
    return record


def test_reference_against_itself_is_exact():
    record = _record(offset=0.0)
    result = compare_relaxation(EMT(), EMT(), record, fmax=0.02, steps=200, rerun_reference=True)
    assert result["converged"] and result["steps"] > 3
    assert abs(result["energy_error"]) < 1e-9 and abs(result["reference_energy_gap"]) < 1e-9
    assert result["max_displacement"] < 1e-9 and result["adwt"] == 1.0
    assert np.allclose(result["reference_energies"], result["model_energies"])


def test_an_energy_offset_is_an_energy_error_and_nothing_else():
    """Referenced energies 2.5 eV below raw EMT: a model reporting raw EMT (same forces, same path) is off by
    exactly +2.5 eV, while the reference's energy at its structure, referenced through y_init, has no gap."""
    record = _record(offset=2.5)
    result = compare_relaxation(EMT(), EMT(), record, fmax=0.02, steps=200)
    assert result["energy_error"] == pytest.approx(2.5, abs=1e-9)
    assert abs(result["reference_energy_gap"]) < 1e-9 and result["adwt"] == 1.0


def test_cell_relaxation_finds_the_lattice_constant_and_atoms_only_keeps_the_cell():
    """Compressed fcc Cu relaxes its cell to EMT's zero-stress lattice constant (3.590 A); an atoms-only relaxation of
    the same crystal has nothing to do (zero forces by symmetry) and leaves the cell as it was."""
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)
    result = relax(atoms, EMT(), fmax=1e-3, steps=100, cell=True)
    assert result.converged and result.steps > 0 and result.energies[-1] < result.energies[0]
    assert result.atoms.cell.lengths() == pytest.approx([3.590] * 3, abs=2e-3)
    assert result.fmax == pytest.approx(np.linalg.norm(result.atoms.get_forces(), axis=1).max())
    fixed_cell = relax(atoms, EMT(), fmax=1e-3, steps=100)
    assert fixed_cell.converged and fixed_cell.steps == 0 and np.allclose(fixed_cell.atoms.cell, atoms.cell)

def test_bad_arguments():
    record = _record(offset=0.0)
    del record.pos_relaxed
    with pytest.raises(ValueError, match="pos_relaxed"):
        compare_relaxation(EMT(), EMT(), record)
    with pytest.raises(ValueError, match="optimizer"):
        relax(fcc111("Cu", (1, 1, 2), vacuum=5.0), EMT(), optimizer="lbfgs-b")
    with pytest.raises(ValueError, match="fmax"):
        relax(fcc111("Cu", (1, 1, 2), vacuum=5.0), EMT(), fmax=0)

"""The ASE calculator: finite differences, committees, relaxations with ase.optimize and filters, NVE energy."""

import numpy as np
import pytest
import torch
from ase import units
from ase.build import add_adsorbate, bulk, fcc111
from ase.calculators.calculator import PropertyNotImplementedError
from ase.calculators.fd import calculate_numerical_forces, calculate_numerical_stress
from ase.filters import FrechetCellFilter
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.optimize import BFGS, FIRE

from equilib.calculator import EquilibCalculator
from equilib.nn import EquivariantPotential, PotentialConfig


def model(backend="grid", seed=0, dtype="float64", cutoff=4.5):
    torch.manual_seed(seed)
    return EquivariantPotential(PotentialConfig(species=[8, 29], cutoff=cutoff, channels=8, lmax=2, num_layers=2,
                                                backend=backend, avg_num_neighbors=30.0, dtype=dtype))


def cu_bulk():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.positions += np.random.default_rng(0).normal(0, 0.05, atoms.positions.shape)
    return atoms


@pytest.mark.parametrize("backend", ["cg", "grid"])
def test_forces_and_stress_match_finite_differences(backend):
    atoms = cu_bulk()
    atoms.calc = EquilibCalculator(model(backend))
    forces, stress = atoms.get_forces(), atoms.get_stress()
    assert np.abs(forces - calculate_numerical_forces(atoms, eps=1e-5)).max() < 1e-6
    assert np.abs(stress - calculate_numerical_stress(atoms, eps=1e-5)).max() < 1e-6
    assert np.abs(forces).max() > 1e-3 and np.abs(stress).max() > 1e-4
    assert atoms.get_potential_energy() == pytest.approx(atoms.get_potential_energies().sum())
    assert atoms.calc.get_property("free_energy") == atoms.get_potential_energy()


@pytest.mark.parametrize("backend", ["cg", "grid", "gaunt", "cp"])
def test_a_float32_model_converted_by_the_calculator_is_invariant_in_float64(backend):
    torch.manual_seed(0)
    options = {"rank": 10**6} if backend == "cp" else {}  # cp at its exact rank (a fitted one is approximate)
    float32 = EquivariantPotential(PotentialConfig(species=[8, 29], cutoff=4.5, channels=8, lmax=2, num_layers=2,
                                                   backend=backend, tp_options=options, avg_num_neighbors=30.0,
                                                   dtype="float32"))
    calc = EquilibCalculator(float32, dtype="float64")
    assert calc.models[0].dtype == torch.float64
    atoms = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.3, "hcp")
    atoms.positions += np.random.default_rng(4).normal(0, 0.1, atoms.positions.shape)
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    rotation = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))[0]  # a random O(3) element
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rotation.T)
    moved.positions = atoms.positions @ rotation.T + np.array([1.0, -2.0, 0.5])
    moved.calc = calc
    assert np.abs(forces).max() > 1e-3
    assert abs(moved.get_potential_energy() - energy) < 1e-10
    assert np.abs(moved.get_forces() - forces @ rotation.T).max() < 1e-10


def test_committee_mean_and_variance(tmp_path):
    members = [model(seed=s) for s in (1, 2, 3)]
    members[0].save(tmp_path / "a.pt")
    atoms = cu_bulk()
    calc = EquilibCalculator([tmp_path / "a.pt", members[1], members[2]])
    atoms.calc = calc
    energy = atoms.get_potential_energy()
    singles = []
    for m in members:
        probe = atoms.copy()
        probe.calc = EquilibCalculator(m)
        singles.append(probe.get_potential_energy())
    assert energy == pytest.approx(np.mean(singles), abs=1e-10)
    assert calc.results["energy_var"] == pytest.approx(np.var(singles), abs=1e-10)
    assert calc.results["forces_var"].shape == (len(atoms), 3)
    with pytest.raises(ValueError, match="a committee needs one cutoff"):
        EquilibCalculator([model(cutoff=4.0), model(cutoff=5.0)])
    with pytest.raises(TypeError, match="model: expected an EquivariantPotential"):
        EquilibCalculator(42)


def test_adsorbate_relaxation_reaches_fmax():
    slab = fcc111("Cu", (2, 2, 3), vacuum=6.0)
    add_adsorbate(slab, "O", 1.6, "fcc")
    slab.calc = EquilibCalculator(model())
    with pytest.raises(PropertyNotImplementedError, match="stress: needs a cell periodic in all three"):
        slab.get_stress()
    optimizer = BFGS(slab, logfile=None)
    assert optimizer.run(fmax=0.05, steps=500)
    assert np.linalg.norm(slab.get_forces(), axis=1).max() < 0.05


def test_cell_relaxation_with_frechet_filter():
    atoms = cu_bulk()
    atoms.calc = EquilibCalculator(model())
    optimizer = FIRE(FrechetCellFilter(atoms), logfile=None)
    assert optimizer.run(fmax=0.02, steps=1000)
    assert np.abs(atoms.get_stress()).max() * atoms.get_volume() < 0.1


def _nve_energy_spread(atoms, seed, steps=100, temperature_K=300):
    """Spread of the total energy over an NVE run, as a fraction of the thermal kinetic energy."""
    thermalize_momenta(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    dynamics = VelocityVerlet(atoms, timestep=1.0 * units.fs, logfile=None)
    energies = []
    for _ in range(steps):
        dynamics.run(1)
        energies.append(atoms.get_total_energy())
    return np.ptp(energies) / (1.5 * len(atoms) * units.kB * temperature_K)


def test_nve_conserves_energy():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 1, 1))
    atoms.calc = EquilibCalculator(model())
    assert _nve_energy_spread(atoms, seed=0) < 0.01


def test_results_are_cached_until_the_atoms_change():
    atoms = cu_bulk()
    calc = EquilibCalculator(model())
    atoms.calc = calc
    first = atoms.get_potential_energy()
    calls = []
    original = calc.calculate
    calc.calculate = lambda *a, **k: (calls.append(1), original(*a, **k))
    assert atoms.get_potential_energy() == first and not calls
    atoms.positions[0, 0] += 0.01
    assert atoms.get_potential_energy() != first and len(calls) == 1


def _fit(net, frames, steps=150):
    """A few Adam steps on energies and forces: enough to make a 'trained' model for dynamics tests."""
    from torch_geometric.data import Batch

    from equilib.data import AtomicData

    batch = Batch.from_data_list([AtomicData.from_ase(a, cutoff=net.config.cutoff) for a in frames])
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3)
    net.train()
    for _ in range(steps):
        optimizer.zero_grad()
        out = net(batch)
        energy_error = (out["energy"] - batch.energy) / batch.natoms
        loss = (out["forces"] - batch.forces).pow(2).mean() + energy_error.pow(2).mean()
        loss.backward()
        optimizer.step()
    net.eval()
    return float(loss)


@pytest.mark.slow
def test_nve_conserves_energy_with_a_trained_model():
    from ase.calculators.emt import EMT

    reference = bulk("Cu", "fcc", a=3.6, cubic=True)
    reference.calc = EMT()
    thermalize_momenta(reference, temperature_K=600, rng=np.random.default_rng(1))
    md = VelocityVerlet(reference, timestep=2.0 * units.fs, logfile=None)
    frames = []
    for _ in range(12):
        md.run(5)
        frame = reference.copy()
        frame.info["energy"] = reference.get_potential_energy()
        frame.arrays["forces"] = reference.get_forces()
        frames.append(frame)
    net = model(cutoff=4.0)
    initial_force_error = np.mean([np.abs(f.arrays["forces"]).mean() for f in frames])
    final_loss = _fit(net, frames)
    assert final_loss < 0.5 * initial_force_error**2  # it learned something
    atoms = frames[-1].copy()
    atoms.calc = EquilibCalculator(net)
    assert _nve_energy_spread(atoms, seed=2) < 0.01

"""The equivariant potential on every backend: forces and stress against finite differences, invariances, I/O."""

import numpy as np
import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from equilib.data import AtomicData
from equilib.nn import EquivariantPotential, PotentialConfig
from equilib.so3 import random_rotation
from tests.potentials import adslab, energy_of, force_difference, rattled, strained, stress_difference

BACKENDS = ["cg", "grid"]
ALL_BACKENDS = ["cg", "grid", "gaunt", "cp"]
TP_OPTIONS = {"cp": {"rank": 10**6}}  # cp at its exact rank: a fitted rank is equivariant only to its fit error


def make_model(backend, dtype="float64", seed=0):
    """A small potential; dtype "float32->float64" builds it in float32 and converts it with .to(torch.float64)."""
    torch.manual_seed(seed)
    built, _, converted = dtype.partition("->")
    config = PotentialConfig(species=[1, 6, 8, 29, 78], cutoff=4.0, channels=8, lmax=2, num_layers=2,
                             backend=backend, tp_options=TP_OPTIONS.get(backend, {}), avg_num_neighbors=10.0,
                             e0s={29: -0.3, 8: -1.0}, dtype=built)
    model = EquivariantPotential(config)
    return model.to(getattr(torch, converted)) if converted else model


def bulk_cell():
    return strained(rattled(bulk("Pt", "fcc", a=3.9).repeat((2, 1, 1)), 1, 0.08), 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_forces_are_minus_the_energy_gradient(backend):
    model, atoms = make_model(backend), adslab()
    out = model(AtomicData.from_ase(atoms, cutoff=4.0))
    for atom, axis in [(0, 0), (4, 2), (8, 1)]:
        assert float(out["forces"][atom, axis]) == pytest.approx(force_difference(model, atoms, atom, axis), abs=1e-7)
    assert out["forces"].abs().max() > 1e-3


@pytest.mark.parametrize("backend", BACKENDS)
def test_stress_is_the_strain_derivative_over_volume(backend):
    model, atoms = make_model(backend), bulk_cell()
    stress = model(AtomicData.from_ase(atoms, cutoff=4.0), compute_stress=True)["stress"][0].detach().numpy()
    for i, j in [(0, 0), (1, 2), (2, 1), (0, 1)]:
        assert stress[i, j] == pytest.approx(stress_difference(model, atoms, i, j), abs=1e-7)
    assert np.abs(stress - stress.T).max() < 1e-12 and np.abs(stress).max() > 1e-4


@pytest.mark.parametrize("dtype", ["float64", "float32->float64"])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_energy_is_invariant_and_forces_equivariant(backend, dtype, generator):
    model, atoms = make_model(backend, dtype), adslab()
    data = AtomicData.from_ase(atoms, cutoff=4.0)
    ref = model(data)
    rot = random_rotation(generator=generator).numpy()
    moved = atoms.copy()
    moved.set_cell(atoms.cell.array @ rot.T)
    moved.positions = atoms.positions @ rot.T + np.array([3.0, -7.0, 11.0])
    out = model(AtomicData.from_ase(moved, cutoff=4.0))
    assert float(out["energy"]) == pytest.approx(float(ref["energy"]), abs=1e-10)
    assert np.allclose(out["forces"].detach().numpy(), ref["forces"].detach().numpy() @ rot.T, atol=1e-10)
    perm = np.random.default_rng(3).permutation(len(atoms))
    shuffled = atoms[perm]
    out = model(AtomicData.from_ase(shuffled, cutoff=4.0))
    assert float(out["energy"]) == pytest.approx(float(ref["energy"]), abs=1e-10)
    assert np.allclose(out["forces"].detach().numpy(), ref["forces"].detach().numpy()[perm], atol=1e-10)
    imaged = atoms.copy()  # another periodic image of two atoms
    imaged.positions[0] += atoms.cell[0] - 2 * atoms.cell[1]
    imaged.positions[3] -= atoms.cell[1]
    assert energy_of(model, imaged) == pytest.approx(float(ref["energy"]), abs=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_equal_single_structures_and_e0s_shift(backend):
    model = make_model(backend)
    a, b = AtomicData.from_ase(adslab(), cutoff=4.0), AtomicData.from_ase(bulk_cell(), cutoff=4.0)
    batch = model(Batch.from_data_list([a, b]))
    assert float(batch["energy"][0]) == pytest.approx(float(model(a)["energy"]), abs=1e-10)
    assert float(batch["energy"][1]) == pytest.approx(float(model(b)["energy"]), abs=1e-10)
    shifted = make_model(backend)
    shifted.e0[shifted.config.species.index(29)] += 1.0
    n_cu = int((a.atomic_numbers == 29).sum())
    assert float(shifted(a)["energy"]) - float(model(a)["energy"]) == pytest.approx(n_cu, abs=1e-10)


@pytest.mark.parametrize("backend", BACKENDS)
def test_float32_model_and_save_load(backend, tmp_path):
    model = make_model(backend, dtype="float32")
    data = AtomicData.from_ase(adslab(), cutoff=4.0)
    out = model(data)
    assert out["energy"].dtype == torch.float32 and torch.get_default_dtype() == torch.float32
    model.save(tmp_path / "model.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]
    loaded = EquivariantPotential.load(tmp_path / "model.pt")
    assert loaded.config == model.config
    assert torch.equal(loaded(data)["energy"], out["energy"])


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_converted_model_has_the_tables_of_a_float64_build_and_saves_as_float64(backend, tmp_path):
    built, converted = make_model(backend, "float64"), make_model(backend, "float32->float64")
    assert converted.dtype == torch.float64 and converted.config.dtype == "float64"
    tables = dict(built.named_buffers())
    assert "e0" in tables and len(tables) > 1
    for name, buffer in converted.named_buffers():
        assert buffer.dtype == tables[name].dtype
        if name != "e0":  # e0 is model state (float32 values of a float32 model), everything else is a table
            assert torch.equal(buffer, tables[name]), name
    converted.save(tmp_path / "model.pt")
    loaded = EquivariantPotential.load(tmp_path / "model.pt")
    assert loaded.dtype == torch.float64
    data = AtomicData.from_ase(adslab(), cutoff=4.0)
    assert torch.equal(loaded(data)["forces"], converted(data)["forces"])


def test_errors():
    model = make_model("grid")
    data = AtomicData.from_ase(adslab())
    with pytest.raises(ValueError, match="data: expected a neighbor list"):
        model(data)
    gold = AtomicData.from_ase(bulk("Au", "fcc", a=4.1), cutoff=4.0)
    with pytest.raises(ValueError, match=r"atomic_numbers: elements \[79\] are not among the model's species"):
        model(gold)
    with pytest.raises(ValueError, match="species: expected distinct atomic numbers"):
        PotentialConfig(species=[1, 1])
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        PotentialConfig(species=[1], dtype="half")

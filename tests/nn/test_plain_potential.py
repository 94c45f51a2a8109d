"""The plain Cartesian potential (frame averaging's backbone): forces and stress against finite differences,
translation, permutation and periodic-image invariance but no rotation invariance, smoothness at the cutoff, frames
as leading axes, batches, save/load and errors."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk
from torch_geometric.data import Batch

from equilib.data import AtomicData
from equilib.groups import E3, SO3, Positions, Translations, Vectors, assert_equivariant, equivariance_error
from equilib.nn import EquivariantPotential, PlainPotential, PlainPotentialConfig
from tests.potentials import (
    CUTOFF,
    adslab,
    data_of,
    energy_of,
    force_difference,
    rattled,
    strained,
    stress_difference,
)


def make_model(dtype="float64", seed=0):
    torch.manual_seed(seed)
    return PlainPotential(PlainPotentialConfig(species=[1, 8, 29], cutoff=CUTOFF, channels=8, num_layers=2,
                                               avg_num_neighbors=10.0, e0s={29: -0.3, 8: -1.0}, dtype=dtype))


def bulk_cell():
    return strained(rattled(bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1)), 1, 0.08), 2)


def test_forces_and_stress_are_derivatives_of_the_energy():
    model, atoms = make_model(), adslab()
    forces = model(data_of(atoms))["forces"].detach().numpy()
    for atom, axis in [(0, 0), (4, 2), (8, 1), (8, 2)]:
        assert forces[atom, axis] == pytest.approx(force_difference(model, atoms, atom, axis), abs=1e-9)
    assert np.abs(forces).max() > 1e-4
    atoms = bulk_cell()
    stress = model(data_of(atoms), compute_stress=True)["stress"][0].detach().numpy()
    for i, j in [(0, 0), (1, 2), (0, 1)]:
        assert stress[i, j] == pytest.approx(stress_difference(model, atoms, i, j), abs=1e-9)
    assert np.abs(stress - stress.T).max() < 1e-12


def test_translation_permutation_and_image_invariant_but_not_rotation_invariant(generator):
    model, atoms = make_model(), adslab()
    data = data_of(atoms)

    def forces_of(pos, cell):
        moved = data.clone()
        moved.pos, moved.cell = pos, cell
        return model(moved)["forces"]

    inputs, reps = (data.pos, data.cell), (Positions(), Vectors())
    assert_equivariant(forces_of, Translations(3, scale=10.0), inputs, reps, Vectors(), generator=generator)
    assert equivariance_error(forces_of, SO3(), inputs, reps, Vectors(), generator=generator) > 1e-4
    assert equivariance_error(forces_of, E3(), inputs, reps, Vectors(), generator=generator) > 1e-4
    reference = {key: value.detach() for key, value in model(data).items()}
    perm = np.random.default_rng(3).permutation(len(atoms))
    shuffled = {key: value.detach() for key, value in model(data_of(atoms[perm])).items()}
    assert float(shuffled["energy"]) == pytest.approx(float(reference["energy"]), abs=1e-12)
    assert torch.allclose(shuffled["forces"], reference["forces"][perm], atol=1e-12, rtol=0)
    imaged = atoms.copy()
    imaged.positions[0] += atoms.cell[0] - 2 * atoms.cell[1]
    imaged.positions[3] -= atoms.cell[1]
    assert energy_of(model, imaged) == pytest.approx(float(reference["energy"]), abs=1e-12)


def test_energy_and_forces_vanish_smoothly_at_the_cutoff():
    model = make_model()
    direction = np.array([0.48, -0.6, 0.64])  # unit length
    energies, forces = [], []
    for r in (CUTOFF - 1e-3, CUTOFF + 1e-3):
        out = model(data_of(Atoms("CuO", positions=[[0, 0, 0], r * direction])))
        energies.append(float(out["energy"].detach()))
        forces.append(out["forces"].detach().abs().max())
    assert abs(energies[0] - energies[1]) < 1e-8  # the envelope's value and first two derivatives vanish there
    assert forces[0] < 1e-5 and forces[1] == 0


def test_graph_of_copies_and_pooling_over_them():
    """Three copies of a graph as one disjoint graph: without ``pool`` each copy is its own graph; with ``pool``
    the copies of an atom share their features after every layer."""
    model, data = make_model(), data_of(adslab())
    n, e = data.num_nodes, data.edge_index.shape[1]
    generator = torch.Generator().manual_seed(0)
    vectors = torch.randn(3, e, 3, dtype=torch.float64, generator=generator)
    lengths = torch.rand(e, dtype=torch.float64, generator=generator) + 1.0
    species = model.species(data.atomic_numbers)
    union = torch.cat([data.edge_index + f * n for f in range(3)], dim=1)
    atom = torch.arange(n).repeat(3)
    stacked = model.atomic_outputs(vectors.reshape(-1, 3), lengths.repeat(3), species.repeat(3), union)
    for f in range(3):
        alone = model.atomic_outputs(vectors[f], lengths, species, data.edge_index)
        assert torch.allclose(stacked[f * n:(f + 1) * n], alone, atol=1e-13, rtol=0)
    pooled = model.atomic_outputs(vectors.reshape(-1, 3), lengths.repeat(3), species.repeat(3), union, pool=atom)
    assert torch.allclose(pooled[:n], pooled[n:2 * n], atol=1e-13, rtol=0)
    assert not torch.allclose(pooled[:n], stacked[:n], atol=1e-6)
    same = model.atomic_outputs(vectors[0].repeat(3, 1), lengths.repeat(3), species.repeat(3), union, pool=atom)
    assert torch.allclose(same[:n], stacked[:n], atol=1e-13, rtol=0)  # pooling identical copies changes nothing
    with pytest.raises(ValueError, match=r"vectors, lengths, edge_index, pool: expected shapes"):
        model.atomic_outputs(vectors[0, :, :2], lengths, species, data.edge_index)
    with pytest.raises(ValueError, match=r"vectors, lengths, edge_index, pool: expected shapes"):
        model.atomic_outputs(vectors[0], lengths, species, data.edge_index, pool=atom)


def test_batches_e0s_save_load_and_dtype(tmp_path):
    model = make_model()
    a, b = data_of(adslab()), data_of(bulk_cell())
    with torch.no_grad():
        batch = model(Batch.from_data_list([a, b]), compute_forces=False)["energy"]
        singles = [float(model(x, compute_forces=False)["energy"]) for x in (a, b)]
    assert batch.tolist() == pytest.approx(singles, abs=1e-12)
    shifted = make_model()
    shifted.e0[shifted.config.species.index(29)] += 1.0
    difference = shifted(a)["energy"].detach() - model(a)["energy"].detach()
    assert float(difference) == pytest.approx(int((a.atomic_numbers == 29).sum()), abs=1e-12)
    converted = make_model(dtype="float32").to(torch.float64)
    assert converted.dtype == torch.float64 and converted.config.dtype == "float64"
    converted.save(tmp_path / "plain.pt")
    loaded = PlainPotential.load(tmp_path / "plain.pt")
    assert loaded.config == converted.config and torch.equal(loaded(a)["forces"], converted(a)["forces"])
    with pytest.raises(ValueError, match="no 'kind': 'EquivariantPotential'"):
        EquivariantPotential.load(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not an equilib model file"):
        PlainPotential.load(tmp_path / "junk.pt")


def test_errors():
    model = make_model()
    with pytest.raises(ValueError, match="data: expected a neighbor list"):
        model(AtomicData.from_ase(adslab()))
    with pytest.raises(ValueError, match=r"atomic_numbers: elements \[79\] are not among the model's species"):
        model(data_of(bulk("Au", "fcc", a=4.1)))
    with pytest.raises(ValueError, match="species: expected distinct atomic numbers"):
        PlainPotentialConfig(species=[1, 1])
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        PlainPotentialConfig(species=[1], dtype="half")
    with pytest.raises(ValueError, match="channels: expected a positive value"):
        PlainPotentialConfig(species=[1], channels=0)
    with pytest.raises(ValueError, match="num_layers: expected >= 1"):
        PlainPotentialConfig(species=[1], num_layers=0)

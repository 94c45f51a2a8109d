"""Every layer and model of equilib.nn through the one conformance check (equilib.groups.assert_equivariant), in
float64 at 1e-10, under O(3) or E(3) together with permutations of the atoms or particles; and models that are not
equivariant fail it."""

import numpy as np
import pytest
import torch
from ase import Atoms
from e3nn import o3

from equilib.data import AtomicData
from equilib.groups import (
    E3,
    O3,
    Irreps,
    OnSet,
    Permutations,
    Positions,
    Scalars,
    Vectors,
    assert_equivariant,
)
from equilib.nn import (
    EquivariantDynamicsNet,
    InteractionBlock,
    PlainDynamicsGNN,
    complete_graph,
)
from equilib.nn._harmonics import SphericalHarmonics
from equilib.nn._layers import EquivariantLinear, Gate, SpeciesSelfConnection
from tests.nn.test_potential import ALL_BACKENDS, TP_OPTIONS, adslab, make_model

F64 = torch.float64
HIDDEN = o3.Irreps("4x0e+3x1o+2x2e+1x1e+1x0o")


def test_equivariant_linear(generator):
    torch.manual_seed(0)
    layer = EquivariantLinear(HIDDEN, "2x0e+4x1o+3x2e+2x1e+0o", dtype=F64)
    x = torch.randn(6, HIDDEN.dim, generator=generator, dtype=F64)
    assert_equivariant(layer, O3(), x, Irreps(HIDDEN), Irreps(layer.irreps_out), generator=generator)


def test_species_self_connection(generator):
    torch.manual_seed(0)
    layer = SpeciesSelfConnection(HIDDEN, 3, "3x0e+2x1o+2x2e", dtype=F64)
    x = torch.randn(6, HIDDEN.dim, generator=generator, dtype=F64)
    species = torch.tensor([0, 2, 1, 1, 0, 2])
    assert_equivariant(layer, O3() * Permutations(6), (x, species), (OnSet(Irreps(HIDDEN)), OnSet(Scalars())),
                       OnSet(Irreps(layer.irreps_out)), generator=generator)


def test_gate(generator):
    gate = Gate("4x0e+2x0o", "2x1o+1x2e+1x1e")
    x = torch.randn(5, gate.irreps_in.dim, generator=generator, dtype=F64)
    assert_equivariant(gate, O3(), x, Irreps(gate.irreps_in), Irreps(gate.irreps_out), generator=generator)


def test_spherical_harmonics(generator):
    sh = SphericalHarmonics(4, dtype=F64)
    vectors = torch.randn(7, 3, generator=generator, dtype=F64)
    assert_equivariant(sh, O3(), vectors, Vectors(), Irreps(o3.Irreps.spherical_harmonics(4)), generator=generator)


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_interaction_block_on_a_point_cloud(backend, generator):
    """One message-passing block on a radius graph built from the positions: E(3) x S_n equivariant."""
    torch.manual_seed(0)
    irreps_sh = o3.Irreps.spherical_harmonics(2)
    block = InteractionBlock(HIDDEN, "4x0e+3x1o+2x2e+1x1e", irreps_sh, num_species=3, num_radial=4, radial_hidden=8,
                             avg_num_neighbors=4.0, backend=backend, tp_options=TP_OPTIONS.get(backend, {}), dtype=F64)
    sh = SphericalHarmonics(2, dtype=F64)

    def fn(x, positions, species):
        source, target = torch.nonzero((torch.cdist(positions, positions) < 2.5).fill_diagonal_(False)).T
        vectors = positions[source] - positions[target]
        radial = torch.cat([torch.cos(k * vectors.norm(dim=1, keepdim=True)) for k in range(4)], dim=1)
        return block(x, species, torch.stack([source, target]), sh(vectors), radial)

    n = 8
    x = torch.randn(n, HIDDEN.dim, generator=generator, dtype=F64)
    positions = 1.5 * torch.randn(n, 3, generator=generator, dtype=F64)
    species = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    assert_equivariant(fn, E3() * Permutations(n), (x, positions, species),
                       (OnSet(Irreps(HIDDEN)), OnSet(Positions()), OnSet(Scalars())), OnSet(Irreps(block.irreps_out)),
                       generator=generator)


def _energy_forces(model, cutoff=4.0):
    """The potential as a function of (positions, atomic numbers, cell) of a periodic slab."""
    def fn(positions, numbers, cell):
        atoms = Atoms(numbers=numbers.numpy(), positions=positions.detach().numpy(), cell=cell.numpy(), pbc=True)
        out = model(AtomicData.from_ase(atoms, cutoff=cutoff, labels=False))
        return out["energy"].detach(), out["forces"].detach(), out["energies"].detach()
    return fn


def _slab_inputs():
    atoms = adslab()
    return (torch.tensor(atoms.positions, dtype=F64), torch.tensor(atoms.numbers),
            torch.tensor(atoms.cell.array, dtype=F64))


REPS_IN = (OnSet(Positions()), OnSet(Scalars()), Vectors())
REPS_OUT = (Scalars(), OnSet(Vectors()), OnSet(Scalars()))


@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_potential_energy_forces_and_atomic_energies(backend, generator):
    model = make_model(backend)
    inputs = _slab_inputs()
    group = E3(scale=3.0) * Permutations(len(inputs[0]))
    assert_equivariant(_energy_forces(model), group, inputs, REPS_IN, REPS_OUT, generator=generator, samples=3)


def test_a_model_that_is_not_equivariant_fails_clearly(generator):
    model = make_model("grid")
    inputs = _slab_inputs()
    honest = _energy_forces(model)

    def biased(positions, numbers, cell):  # an external field along z: not O(3)-invariant
        energy, forces, energies = honest(positions, numbers, cell)
        field = torch.tensor([0.0, 0.0, 0.05], dtype=F64)
        return energy - (positions @ field).sum(), forces + field, energies - positions @ field

    group = E3() * Permutations(len(inputs[0]))
    with pytest.raises(AssertionError, match=r"not equivariant under E3\(scale=1.0\) \* Permutations\(9\): relative "
                                             r"error \d\.\d+e-0[1-3] > 1\.0e-10 \(per sample: "):
        assert_equivariant(biased, group, inputs, REPS_IN, REPS_OUT, generator=generator, samples=3)
    with pytest.raises(AssertionError, match="the output is zero"):
        assert_equivariant(lambda p, z, c: torch.zeros(3, dtype=F64), group, inputs, REPS_IN, Scalars())
    # permuting the atoms without their species is a different structure: caught too
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(honest, group, inputs, (OnSet(Positions()), Scalars(), Vectors()), REPS_OUT,
                           generator=generator, samples=3)
    assert np.isfinite(assert_equivariant(honest, group, inputs, REPS_IN, REPS_OUT, generator=generator, samples=2))


NBODY_REPS = (OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))


def _nbody_inputs(generator, systems=3):
    x = 2.0 * torch.randn(systems, 5, 3, generator=generator, dtype=F64)
    v = 0.5 * torch.randn(systems, 5, 3, generator=generator, dtype=F64)
    q = torch.randint(0, 2, (systems, 5), generator=generator).to(F64) * 2 - 1
    return x, v, q


@pytest.mark.parametrize("variant", [{}, {"scalar_messages": True}, {"coordinate_updates": True}])
@pytest.mark.parametrize("backend", ALL_BACKENDS)
def test_equivariant_dynamics_net(backend, variant, generator):
    torch.manual_seed(0)
    model = EquivariantDynamicsNet(backend=backend, channels=6, lmax=2, num_layers=2, num_radial=4, radial_hidden=8,
                                   tp_options=TP_OPTIONS.get(backend, {}), dtype=F64, **variant)
    with torch.no_grad():  # those variants start with no motion: random readouts, so that the check is not trivial
        for linear in [model.readout, *model.updates]:
            linear.weight.normal_(generator=generator)
    inputs = _nbody_inputs(generator)
    assert_equivariant(model, E3(scale=3.0) * Permutations(5), inputs, NBODY_REPS, OnSet(Positions()),
                       generator=generator)
    one = model(*(t[1] for t in inputs))  # one system without a batch axis: the same as in a batch
    assert torch.allclose(one, model(*inputs)[1], atol=1e-12)


def test_plain_gnn_is_permutation_equivariant_only(generator):
    torch.manual_seed(0)
    model = PlainDynamicsGNN(hidden=16, num_layers=2, dtype=F64)
    inputs = _nbody_inputs(generator)
    assert_equivariant(model, Permutations(5), inputs, NBODY_REPS, OnSet(Positions()), generator=generator)
    with pytest.raises(AssertionError, match="not equivariant under E3"):
        assert_equivariant(model, E3() * Permutations(5), inputs, NBODY_REPS, OnSet(Positions()), generator=generator)


def test_plain_gnn_dropout_acts_in_training_only(generator):
    torch.manual_seed(0)
    model = PlainDynamicsGNN(hidden=16, num_layers=2, dropout=0.5, dtype=F64)
    inputs = _nbody_inputs(generator)
    assert not torch.allclose(model(*inputs), model(*inputs))  # two dropout masks
    model.eval()
    assert torch.equal(model(*inputs), model(*inputs))
    assert_equivariant(model, Permutations(5), inputs, NBODY_REPS, OnSet(Positions()), generator=generator)
    with pytest.raises(ValueError, match=r"dropout: expected a probability in \[0, 1\), got 1.0"):
        PlainDynamicsGNN(dropout=1.0)


def test_point_cloud_inputs_are_checked():
    model = PlainDynamicsGNN(hidden=4, num_layers=1)
    x = torch.zeros(2, 5, 3)
    with pytest.raises(ValueError, match=r"charges: expected shape \(2, 5\), got \(2, 4\)"):
        model(x, x, torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"velocities: expected shape \(2, 5, 3\)"):
        model(x, x[:, :, :2], torch.zeros(2, 5))
    edges = complete_graph(2, 3)
    assert edges.shape == (2, 12) and not (edges[0] == edges[1]).any()
    assert set(map(tuple, edges.T.tolist())) == {(j + 3 * s, i + 3 * s) for s in range(2) for i in range(3)
                                                 for j in range(3) if i != j}

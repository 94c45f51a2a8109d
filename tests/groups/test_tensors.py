"""Cartesian tensor representations and the generators of linear groups."""

import pytest
import torch

from equilib.groups import (
    O2,
    O3,
    SO2,
    SO3,
    CartesianTensors,
    GroupElement,
    OrthogonalGroup,
    Scaling,
    Translations,
    parse_tensor_terms,
)

F64 = torch.float64


def kron_power(a: torch.Tensor, rank: int) -> torch.Tensor:
    out = torch.ones(1, 1, dtype=a.dtype)
    for _ in range(rank):
        out = torch.kron(out, a)
    return out


@pytest.mark.parametrize("dim", [3, 5])
def test_cartesian_tensors_act_as_kronecker_powers(dim):
    gen = torch.Generator().manual_seed(0)
    rep = CartesianTensors("2x0+3x1+2x2+1x3", dim=dim)
    linear = torch.randn(4, dim, dim, generator=gen, dtype=F64)  # any linear maps, not only orthogonal ones
    g = GroupElement(linear=linear)
    x = torch.randn(4, 6, rep.shape[0], generator=gen, dtype=F64)  # an extra batch axis after the elements
    out = rep.act(g, x)
    for k in range(4):
        blocks = [torch.block_diag(*[kron_power(linear[k], rank)] * mult) for mult, rank in rep.terms]
        assert torch.allclose(out[k], x[k] @ torch.block_diag(*blocks).T, atol=1e-12)
    h = GroupElement(linear=torch.randn(4, dim, dim, generator=gen, dtype=F64))
    assert torch.allclose(rep.act(g, rep.act(h, x)), rep.act(g.compose(h), x), atol=1e-10)  # a homomorphism


def test_cartesian_tensors_ignore_translations_and_check_their_input():
    rep = CartesianTensors("1x1+1x2")
    t = Translations().sample(2, generator=torch.Generator().manual_seed(0))
    x = torch.randn(2, 12, dtype=F64)
    assert torch.equal(rep.act(t, x), x)
    assert parse_tensor_terms("5x0 + 2 + 1x1") == ((5, 0), (1, 2), (1, 1))
    for bad in ["", "0x1", "x1", "2x-1", 3]:
        with pytest.raises(ValueError, match="spec: expected terms like '5x0\\+5x1'"):
            CartesianTensors(bad)
    with pytest.raises(ValueError, match="dim: expected a positive int, got 0"):
        CartesianTensors("1", dim=0)
    with pytest.raises(ValueError, match="needs a 5 x 5 linear part"):
        CartesianTensors("1x1", dim=5).act(O3().sample(2), torch.zeros(2, 5, dtype=F64))


@pytest.mark.parametrize("group", [SO3(), O3(), SO2(), O2(), SO2(axis=(1.0, 2.0, -0.5)), O2(axis=(0.0, 1.0, 0.0))],
                         ids=repr)
def test_generators_generate_group_elements(group):
    gens = group.generators()
    assert gens.dim == 3
    expected_lie = 3 if isinstance(group, SO3) else 1
    assert gens.lie.shape == (expected_lie, 3, 3)
    t = torch.linspace(-2.0, 3.0, 5, dtype=F64).view(-1, 1, 1, 1)
    flows = torch.linalg.matrix_exp(t * gens.lie).reshape(-1, 3, 3)  # one-parameter subgroups lie in the group
    assert bool(group.contains(GroupElement(linear=flows)).all())
    if len(gens.discrete):
        assert bool(group.contains(GroupElement(linear=gens.discrete)).all())
        connected = SO3() if isinstance(group, O3) else SO2(axis=group.axis)
        assert not bool(connected.contains(GroupElement(linear=gens.discrete)).any())  # the other component
    # the algebra is closed under commutators
    basis = gens.lie.reshape(len(gens.lie), -1).T
    for a in gens.lie:
        for b in gens.lie:
            c = (a @ b - b @ a).reshape(-1, 1)
            coeffs = torch.linalg.lstsq(basis, c).solution
            assert torch.allclose(basis @ coeffs, c, atol=1e-12)


@pytest.mark.parametrize(("group", "lie"), [(OrthogonalGroup(5), 10), (Scaling(3), 1), (Scaling(base=SO3()), 4),
                                           (Scaling(base=O2()), 2)], ids=repr)
def test_generators_of_orthogonal_groups_and_scalings(group, lie):
    gens = group.generators()
    d = gens.dim
    assert len(gens.lie) == lie
    t = torch.linspace(-1.5, 2.0, 4, dtype=F64).view(-1, 1, 1, 1)
    flows = torch.linalg.matrix_exp(t * gens.lie).reshape(-1, d, d)
    assert bool(group.contains(GroupElement(linear=flows)).all())
    if len(gens.discrete):
        assert bool(group.contains(GroupElement(linear=gens.discrete)).all())
    basis = gens.lie.reshape(len(gens.lie), -1).T
    for a in gens.lie:  # closed under commutators
        for b in gens.lie:
            c = (a @ b - b @ a).reshape(-1, 1)
            assert torch.allclose(basis @ torch.linalg.lstsq(basis, c).solution, c, atol=1e-12)


def test_groups_without_linear_generators_say_so():
    with pytest.raises(NotImplementedError, match="no generators of a linear part"):
        Translations().generators()

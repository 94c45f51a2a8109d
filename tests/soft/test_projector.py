"""Equivariant projectors: symmetric, idempotent, equal to the group average, and giving exactly equivariant maps."""

import math

import pytest
import torch

from equilib.groups import O2, O3, SO2, SO3, CartesianTensors, GroupElement, OrthogonalGroup, Scaling
from equilib.soft import EquivariantProjector, JointPenalty

F64 = torch.float64
GROUPS = [O3(), SO3(), O2(), SO2(), O2(axis=(1.0, 0.0, 0.0)), SO2(axis=(0.3, -1.0, 2.0)), Scaling(3),
          Scaling(base=SO3())]
IN, OUT = "2x0+2x1+1x2", "1x0+1x1+2x2"


def dense(projector: EquivariantProjector) -> torch.Tensor:
    """P as a matrix over vec(W), from its action on every unit weight matrix."""
    n_out, n_in = projector.out_rep.shape[0], projector.in_rep.shape[0]
    eye = torch.eye(n_out * n_in, dtype=F64)
    return torch.stack([projector.project(e.view(n_out, n_in)).reshape(-1) for e in eye], dim=1)


def matrices(rep: CartesianTensors, g: GroupElement) -> torch.Tensor:
    return rep.act(g, torch.eye(rep.shape[0], dtype=F64).expand(len(g), -1, -1)).transpose(1, 2)


@pytest.mark.parametrize("group", GROUPS, ids=repr)
def test_projector_is_an_orthogonal_projection_onto_equivariant_maps(group):
    p = EquivariantProjector(group, IN, OUT)
    m = dense(p)
    assert torch.allclose(m, m.T, atol=1e-12) and torch.allclose(m @ m, m, atol=1e-12)
    assert round(float(torch.trace(m))) == p.dimension > 0
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(p.out_rep.shape[0], p.in_rep.shape[0], generator=gen, dtype=F64)
    g = group.sample(6, generator=gen)
    rho_in, rho_out = matrices(p.in_rep, g), matrices(p.out_rep, g)
    pw = p.project(w)
    assert float((rho_out @ pw - pw @ rho_in).abs().max()) < 1e-10  # exactly equivariant
    assert float((rho_out @ w - w @ rho_in).abs().max()) > 1e-2  # a random map is not
    b = torch.randn(p.out_rep.shape[0], generator=gen, dtype=F64)
    pb = p.project_bias(b)
    assert float((rho_out @ pb - pb).abs().max()) < 1e-10
    assert torch.allclose(p.project_bias(pb), pb, atol=1e-12)
    # the penalty is half the squared distance to the projection, zero on equivariant maps
    assert torch.allclose(p.penalty(w, b), 0.5 * ((w - pw).square().sum() + (b - pb).square().sum()))
    assert float(p.penalty(pw, pb)) < 1e-20


@pytest.mark.parametrize("group", [O2(), SO2(axis=(0.3, -1.0, 2.0))], ids=repr)
def test_projector_equals_the_average_over_the_group(group):
    """For a compact group acting orthogonally, P W = E_g[rho_out(g) W rho_in(g)^-1] (Haar); for rotations about an
    axis an equispaced grid of angles integrates these trigonometric polynomials (degree <= 6 here) exactly."""
    p = EquivariantProjector(group, IN, OUT)
    w = torch.randn(p.out_rep.shape[0], p.in_rep.shape[0], generator=torch.Generator().manual_seed(1), dtype=F64)
    angles = torch.arange(16, dtype=F64) * (2 * math.pi / 16)
    rotations = group._rotations(angles)
    linear = torch.cat([rotations, rotations @ group._mirror()]) if isinstance(group, O2) else rotations
    g = GroupElement(linear=linear)
    average = (matrices(p.out_rep, g) @ w @ matrices(p.in_rep, g).transpose(1, 2)).mean(0)
    assert torch.allclose(p.project(w), average, atol=1e-12)


def test_projector_of_o5_gives_exactly_equivariant_maps():
    p = EquivariantProjector(OrthogonalGroup(5), CartesianTensors("2x1", 5), CartesianTensors("1x0+2x1+1x2", 5))
    gen = torch.Generator().manual_seed(2)
    w = torch.randn(p.out_rep.shape[0], p.in_rep.shape[0], generator=gen, dtype=F64)
    g = OrthogonalGroup(5).sample(4, generator=gen)
    pw = p.project(w)
    rho_in, rho_out = matrices(p.in_rep, g), matrices(p.out_rep, g)
    assert float((rho_out @ pw - pw @ rho_in).abs().max()) < 1e-10 < float((rho_out @ w - w @ rho_in).abs().max())
    assert torch.allclose(p.project(pw), pw, atol=1e-12)


def test_known_dimensions_and_errors():
    dims = {repr(g): [EquivariantProjector(g, a, b).dimension for a, b in
                      [("1x1", "1x1"), ("1x1", "1x2"), ("1x2", "1x2"), ("1x0", "1x2")]] for g in GROUPS[:4]}
    # O(3): lambda I; no vector -> matrix map (parity); identity, transpose, trace; the identity matrix
    assert dims["O3()"] == [1, 0, 3, 1]
    assert dims["SO3()"] == [1, 1, 3, 1]  # the Levi-Civita symbol maps vectors to matrices
    assert dims[repr(O2())] == [2, 4, 10, 2]  # diag(a, a, c); invariant matrices I and e_z e_z^T
    assert dims[repr(SO2())] == [3, 7, 19, 3]
    # scalings: only maps between equal ranks (c^b W = W c^a); with rotations, the SO(3) maps between equal ranks
    scaled = {repr(g): [EquivariantProjector(g, a, b).dimension for a, b in
                        [("1x1", "1x1"), ("1x1", "1x2"), ("1x2", "1x2"), ("1x0", "1x2")]] for g in GROUPS[6:]}
    assert scaled == {repr(Scaling(3)): [9, 0, 81, 0], repr(Scaling(base=SO3())): [1, 0, 3, 0]}
    # O(5): lambda I; nothing from vectors to matrices; identity, transpose, trace; the identity matrix
    o5 = [EquivariantProjector(OrthogonalGroup(5), CartesianTensors(a, 5), CartesianTensors(b, 5)).dimension
          for a, b in [("1x1", "1x1"), ("1x1", "1x2"), ("1x2", "1x2"), ("1x0", "1x2")]]
    assert o5 == [1, 0, 3, 1]
    with pytest.raises(ValueError, match=r"weight: expected shape \(9, 3\)"):
        EquivariantProjector(O3(), "1x1", "1x2").project(torch.zeros(3, 9))
    with pytest.raises(ValueError, match=r"bias: expected shape \(9,\)"):
        EquivariantProjector(O3(), "1x1", "1x2").project_bias(torch.zeros(3))
    with pytest.raises(ValueError, match="in_rep: CartesianTensors\\('1x1', dim=5\\) lives in 5 dimensions"):
        EquivariantProjector(O3(), CartesianTensors("1x1", dim=5), "1x1")


def test_joint_penalty_equals_each_groups_penalty():
    gen = torch.Generator().manual_seed(4)
    projectors = [EquivariantProjector(g, IN, OUT) for g in GROUPS]
    joint = JointPenalty(projectors)
    w = torch.randn(projectors[0].out_rep.shape[0], projectors[0].in_rep.shape[0], generator=gen, dtype=F64)
    b = torch.randn(projectors[0].out_rep.shape[0], generator=gen, dtype=F64)
    for bias in (b, None):
        assert torch.allclose(joint(w, bias), torch.stack([p.penalty(w, bias) for p in projectors]), rtol=1e-12)
    w32 = w.float().requires_grad_()
    joint(w32, b.float())[2].backward()  # the gradient of 1/2 ||W - P W||^2 is W - P W
    assert torch.allclose(w32.grad.double(), w - projectors[2].project(w), atol=1e-5)
    assert float(joint(projectors[0].project(w), projectors[0].project_bias(b))[0]) < 1e-12 * float(w.square().sum())
    with pytest.raises(ValueError, match="projectors: expected projectors between the same representations"):
        JointPenalty([projectors[0], EquivariantProjector(O3(), "1x1", "1x1")])

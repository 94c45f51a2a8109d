"""The potential's layers against e3nn's (same weights, float64) and against random rotations and inversions."""

import numpy as np
import pytest
import torch
from e3nn import nn as e3nn_nn
from e3nn import o3

from equilib.nn._harmonics import SphericalHarmonics
from equilib.nn._layers import EquivariantLinear, Gate, RadialMLP, SpeciesSelfConnection, second_moment_scale
from equilib.so3 import random_rotation, wigner_D

F64 = torch.float64


def _rotations(generator, count=3):
    for k in range(count):
        r = random_rotation(generator=generator).to(F64)
        yield r if k % 2 == 0 else -r  # odd k: with the inversion


@pytest.mark.parametrize("irreps_in, irreps_out", [
    ("8x0e+8x1o+8x2e", "8x0e+8x1o+8x2e"),
    ("4x0e+3x1o+2x0e+5x2e", "3x1o+6x0e+2x2e+1x0e+4x3o"),  # repeated irreps, an output no input reaches
])
def test_linear_is_e3nn_linear_with_the_same_weights(irreps_in, irreps_out, generator):
    torch.manual_seed(0)
    ours = EquivariantLinear(irreps_in, irreps_out, dtype=F64)
    theirs = o3.Linear(irreps_in, irreps_out).to(F64)
    # e3nn: one (mul_in, mul_out) block per (input entry, output entry) of the same irrep; ours: one (c_in, c_out)
    # matrix per irrep over all of its entries, rows and columns entry by entry
    weights = dict(zip([(i.i_in, i.i_out) for i in theirs.instructions], theirs.weight_views(yield_instruction=False)))
    i_in, i_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
    blocks = []
    for ir in dict.fromkeys(ir for mul, ir in i_out if mul > 0):
        ins = [k for k, (mul, other) in enumerate(i_in) if other == ir]
        outs = [k for k, (mul, other) in enumerate(i_out) if other == ir]
        if ins:
            blocks.append(torch.cat([torch.cat([weights[a, b] for b in outs], dim=1) for a in ins], dim=0).reshape(-1))
    with torch.no_grad():
        ours.weight.copy_(torch.cat(blocks))
    x = torch.randn(5, i_in.dim, generator=generator, dtype=F64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)
    for g in _rotations(generator):
        d_in, d_out = wigner_D(i_in, g).to(F64), wigner_D(i_out, g).to(F64)
        assert torch.allclose(ours(x @ d_in.T), ours(x) @ d_out.T, atol=1e-12)


def test_self_connection_is_e3nn_tensor_product_with_one_hot_species(generator):
    torch.manual_seed(0)
    irreps_in, irreps_out, species = o3.Irreps("6x0e+4x1o+3x2e"), o3.Irreps("5x0e+2x1o+3x2e"), 4
    ours = SpeciesSelfConnection(irreps_in, species, irreps_out, dtype=F64)
    theirs = o3.FullyConnectedTensorProduct(irreps_in, f"{species}x0e", irreps_out).to(F64)
    views = theirs.weight_views(yield_instruction=False)  # (mul_in, species, mul_out) per irrep, in order
    with torch.no_grad():
        ours.weight.copy_(torch.cat([w.permute(1, 0, 2).reshape(species, -1) for w in views], dim=1))
    x = torch.randn(7, irreps_in.dim, generator=generator, dtype=F64)
    z = torch.tensor([0, 3, 1, 1, 2, 0, 3])
    onehot = torch.nn.functional.one_hot(z, species).to(F64)
    assert torch.allclose(ours(x, z), theirs(x, onehot), atol=1e-12)
    for g in _rotations(generator):
        d_in, d_out = wigner_D(irreps_in, g).to(F64), wigner_D(irreps_out, g).to(F64)
        assert torch.allclose(ours(x @ d_in.T, z), ours(x, z) @ d_out.T, atol=1e-12)


def test_gate_is_e3nn_gate(generator):
    scalars, gated = o3.Irreps("4x0e"), o3.Irreps("2x1o+1x2e")
    ours = Gate(scalars, gated)
    theirs = e3nn_nn.Gate(scalars, [torch.nn.functional.silu], "3x0e", [torch.sigmoid], gated)
    assert ours.irreps_in.simplify() == theirs.irreps_in and ours.irreps_out == theirs.irreps_out
    for act, scale in ((theirs.act_scalars.acts[0], ours._silu), (theirs.act_gates.acts[0], ours._sigmoid)):
        assert act.cst == pytest.approx(scale, rel=3e-3)  # e3nn samples a million normals; ours is quadrature
        act.cst = scale
    x = torch.randn(6, ours.irreps_in.dim, generator=generator, dtype=F64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)
    for g in _rotations(generator):
        d_in, d_out = wigner_D(ours.irreps_in, g).to(F64), wigner_D(ours.irreps_out, g).to(F64)
        assert torch.allclose(ours(x @ d_in.T), ours(x) @ d_out.T, atol=1e-12)


def test_second_moment_scale_against_the_closed_form():
    # E[relu(z)^2] = 1/2, E[z^2] = 1, E[tanh] from a fine trapezoid rule
    assert second_moment_scale(torch.relu) == pytest.approx(2**0.5, rel=1e-12)
    assert second_moment_scale(lambda z: z) == pytest.approx(1.0, rel=1e-12)
    z = np.linspace(-12, 12, 200001)
    tanh2 = np.trapezoid(np.tanh(z) ** 2 * np.exp(-z * z / 2), z) / np.sqrt(2 * np.pi)
    assert second_moment_scale(torch.tanh) == pytest.approx(tanh2**-0.5, rel=1e-9)


def test_radial_mlp_is_e3nn_fully_connected_net(generator):
    torch.manual_seed(0)
    ours = RadialMLP([8, 16, 16, 5], dtype=F64)
    theirs = e3nn_nn.FullyConnectedNet([8, 16, 16, 5], torch.nn.functional.silu).to(F64)
    with torch.no_grad():
        for k, weight in enumerate(ours.weights):
            weight.copy_(getattr(theirs, f"layer{k}").weight)
    for module in theirs.modules():
        if type(module).__name__ == "normalize2mom":
            module.cst = ours._silu
    x = torch.randn(9, 8, generator=generator, dtype=F64)
    assert torch.allclose(ours(x), theirs(x), atol=1e-12)


@pytest.mark.parametrize("lmax", [0, 1, 2, 3, 6])
def test_spherical_harmonics_are_e3nn_and_differentiable_on_the_axes(lmax, generator):
    vectors = torch.randn(50, 3, generator=generator, dtype=F64) * 3
    vectors[:3] = torch.eye(3, dtype=F64) * torch.tensor([[2.0], [0.5], [1.0]], dtype=F64)  # on the axes
    ours = SphericalHarmonics(lmax, dtype=F64)
    theirs = o3.SphericalHarmonics(o3.Irreps.spherical_harmonics(lmax), normalize=True, normalization="component")
    assert torch.allclose(ours(vectors), theirs(vectors), atol=1e-12)
    if lmax == 0:
        return  # a constant
    vectors.requires_grad_()
    (grad,) = torch.autograd.grad(ours(vectors).pow(3).sum(), vectors, create_graph=True)
    (second,) = torch.autograd.grad(grad.pow(2).sum(), vectors)
    assert torch.isfinite(grad).all() and torch.isfinite(second).all()
    (reference,) = torch.autograd.grad(theirs(vectors).pow(3).sum(), vectors)
    assert torch.allclose(grad, reference, atol=1e-10)

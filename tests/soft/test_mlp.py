"""The soft-equivariant MLP: exact, RPP and free modes, penalties per group."""

import pytest
import torch

from equilib.groups import O2, O3, SO2, CartesianTensors, assert_equivariant, equivariance_error
from equilib.soft import SoftEquivariantMLP, TensorNonlinearity

F64 = torch.float64
IN, OUT, HIDDEN = CartesianTensors("5x0+5x1"), CartesianTensors("1x2"), "6x0+4x1+3x2"


@pytest.fixture
def x():
    return torch.randn(9, IN.shape[0], generator=torch.Generator().manual_seed(1), dtype=F64)


def penalty(model, group):
    return float(model.penalties([group])[repr(group)].detach())


def error(model, group, x):
    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        return float(equivariance_error(model, group, x, IN, OUT, samples=4, generator=gen))


def test_nonlinearity_is_o3_equivariant():
    step = TensorNonlinearity(CartesianTensors("4x0+3x1+2x2+1x3"))
    assert step.input_rep().terms == ((10, 0), (3, 1), (2, 2), (1, 3))  # 6 gates in front of the 4 scalars
    z = torch.randn(5, step.input_rep().shape[0], generator=torch.Generator().manual_seed(0), dtype=F64)
    assert_equivariant(step, O3(), z, step.input_rep(), step.hidden)
    only_vectors = TensorNonlinearity(CartesianTensors("2x1"))
    assert only_vectors.input_rep().terms == ((2, 0), (2, 1))


@pytest.mark.parametrize("group", [O3(), O2(), SO2(axis=(1.0, 0.0, 0.0))], ids=repr)
def test_exact_and_rpp_models_are_equivariant_under_their_group_only(group, x):
    torch.manual_seed(0)
    model = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, mode="exact", group=group, dtype=F64)
    assert_equivariant(model, group, x, IN, OUT)
    assert penalty(model, group) < 1e-12
    if not isinstance(group, O3):
        assert error(model, O3(), x) > 1e-3 and penalty(model, O3()) > 1e-3
    rpp = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, mode="rpp", group=group, dtype=F64)
    assert_equivariant(rpp, group, x, IN, OUT)  # the free pathway starts at zero
    with torch.no_grad():
        rpp.readout.free_weight.normal_(generator=torch.Generator().manual_seed(3))
    assert error(rpp, group, x) > 1e-3
    equivariant, free = rpp.rpp_prior()
    assert float(free.detach()) > 0 and float(equivariant.detach()) > 0


def test_free_model_projected_onto_a_group_becomes_equivariant(x):
    torch.manual_seed(0)
    model = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, dtype=F64)
    groups = [O3(), O2()]
    before = {repr(g): penalty(model, g) for g in groups}
    assert all(v > 1e-2 for v in before.values())
    assert before["O3()"] > before[repr(O2())]  # O(2) constrains less than O(3)
    assert error(model, O2(), x) > 1e-3
    with torch.no_grad():  # PER's claim: zero penalty for G means exactly G-equivariant
        for k, layer in enumerate(model.layers()):
            projector = model._projectors[(k, repr(O2()))]
            layer.weight.copy_(projector.project(layer.weight))
            layer.bias.copy_(projector.project_bias(layer.bias))
    assert penalty(model, O2()) < 1e-12
    assert_equivariant(model, O2(), x, IN, OUT)
    assert error(model, O3(), x) > 1e-3


def test_input_scale_multiplies_the_inputs_and_keeps_equivariance(x):
    torch.manual_seed(0)
    scaled = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, mode="exact", group=O2(), input_scale=0.2, dtype=F64)
    plain = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, mode="exact", group=O2(), dtype=F64)
    plain.load_state_dict(scaled.state_dict())
    assert torch.allclose(scaled(x), plain(0.2 * x), atol=1e-12)
    assert not torch.allclose(scaled(x), plain(x))
    assert_equivariant(scaled, O2(), x, IN, OUT)


def test_centring_the_positions_makes_every_mode_translation_invariant(x):
    from equilib.groups import E3, Concat, Positions, Scalars, Translations

    positions = Concat(Scalars(5), *[Positions()] * 5)  # IN's layout: 5 masses, then 5 points copy-major
    torch.manual_seed(0)
    free = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, centre=True, dtype=F64)
    exact = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, mode="exact", group=O3(), centre=True, dtype=F64)
    plain = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=2, dtype=F64)
    plain.load_state_dict(free.state_dict())
    assert_equivariant(free, Translations(3), x, positions, OUT)
    assert_equivariant(exact, E3(), x, positions, OUT)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(2)
        assert float(equivariance_error(plain, Translations(3), x, positions, OUT, samples=4, generator=gen)) > 1e-3
        points = x[:, 5:].reshape(9, 5, 3)
        centred = torch.cat([x[:, :5], (points - points.mean(1, keepdim=True)).reshape(9, 15)], 1)
        assert torch.allclose(free(x), plain(centred), atol=1e-12)


def test_penalty_gradient_is_the_residual(x):
    torch.manual_seed(0)
    model = SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=1, dtype=F64)
    model.penalties([O3()])["O3()"].backward()
    layer = model.readout
    projector = model._projectors[(1, "O3()")]
    residual = layer.weight.detach() - projector.project(layer.weight.detach())
    assert torch.allclose(layer.weight.grad, residual, atol=1e-12)


def test_bad_configurations_are_named():
    with pytest.raises(ValueError, match="hidden: expected one term per rank in increasing rank order"):
        SoftEquivariantMLP(IN, OUT, "2x1+3x0")
    with pytest.raises(ValueError, match="num_layers: expected a positive int, got 0"):
        SoftEquivariantMLP(IN, OUT, HIDDEN, num_layers=0)
    with pytest.raises(ValueError, match="mode: expected one of"):
        SoftEquivariantMLP(IN, OUT, HIDDEN, mode="soft")
    with pytest.raises(ValueError, match="group: mode 'exact' needs the group"):
        SoftEquivariantMLP(IN, OUT, HIDDEN, mode="exact")
    with pytest.raises(ValueError, match=r"x: expected a last axis of 20"):
        SoftEquivariantMLP(IN, OUT, HIDDEN)(torch.zeros(2, 21))
    with pytest.raises(ValueError, match=r"centre: CartesianTensors\('2x0\+1x2'\) has no rank-1 inputs"):
        SoftEquivariantMLP("2x0+1x2", OUT, HIDDEN, centre=True)
    with pytest.raises(ValueError, match="rpp_prior: the model is in mode 'free'"):
        SoftEquivariantMLP(IN, OUT, HIDDEN).rpp_prior()

"""The kernel SIREN: output shape, Sitzmann et al.'s initialisation (weight bounds, unit-variance pre-activations),
the final layer's 1/fan_in output variance, and input checks."""

import math

import pytest
import torch

from equilib.lie import Siren


def test_shape_and_layers():
    torch.manual_seed(0)
    net = Siren(3, 7, hidden=20, layers=4)
    assert net(torch.zeros(4, 5, 3)).shape == (4, 5, 7)
    assert len(net.sines) == 4 and net.sines[0].in_features == 3 and net.final.out_features == 7
    assert "omega0=10.0" in repr(net)


def test_weight_bounds_and_spread():
    torch.manual_seed(0)
    hidden, omega0 = 256, 10.0
    net = Siren(2, 5, hidden=hidden, layers=3, omega0=omega0)
    first = net.sines[0].weight.detach()
    assert first.abs().max() <= 1 / 2 and first.abs().max() > 0.45  # U(-1/in, 1/in), in = 2
    for layer in net.sines[1:]:
        bound = math.sqrt(6 / hidden) / omega0
        w = layer.weight.detach()
        assert w.abs().max() <= bound
        assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.02 * bound  # uniform: std = bound / sqrt(3)
    assert not net.final.bias.detach().any()


def test_unit_variance_preactivations_and_output_scale():
    torch.manual_seed(0)
    hidden, omega0, fan_in = 256, 10.0, 40
    net = Siren(2, 64, hidden=hidden, layers=3, omega0=omega0, fan_in=fan_in)
    x = 2 * torch.rand(4096, 2) - 1
    with torch.no_grad():
        z = torch.sin(omega0 * net.sines[0](x))
        for layer in net.sines[1:]:
            pre = omega0 * (z @ layer.weight.T)  # Sitzmann et al.: omega0 W z is about N(0, 1)
            assert 0.9 < float(pre.std()) < 1.1
            z = torch.sin(omega0 * layer(z))
        out = net(x)
    assert 0.75 < float(out.var()) * fan_in < 1.25


@pytest.mark.parametrize("kwargs, match", [
    (dict(in_features=0, out_features=3), "in_features"),
    (dict(in_features=2, out_features=3, layers=0), "layers"),
    (dict(in_features=2, out_features=3, omega0=-1.0), "omega0"),
    (dict(in_features=2, out_features=3, fan_in=0), "fan_in"),
])
def test_invalid_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Siren(**kwargs)


def test_wrong_input_width():
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2\)"):
        Siren(2, 3)(torch.zeros(4, 3))

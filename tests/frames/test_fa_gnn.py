"""FA-GNN (per-layer frame averaging with re-framed latent vectors): exact E(3) x S_n equivariance in float64,
degenerate inputs (a varying number of frames), stochastic frames, the plain layers it shares."""

from __future__ import annotations

import math

import pytest
import torch

from equilib.frames import FrameAveragedDynamicsGNN
from equilib.groups import E3, O3, SE3, Permutations, assert_equivariant, equivariance_error
from equilib.nn import PlainDynamicsGNN
from tests.frames.test_frames import F64, NBODY_IN, NBODY_OUT, _nbody


def _model(**options) -> FrameAveragedDynamicsGNN:
    torch.manual_seed(0)
    return FrameAveragedDynamicsGNN(hidden=12, num_layers=3, dtype=F64, **options)


@pytest.mark.parametrize("group, name", [(E3() * Permutations(5), "E3"), (SE3() * Permutations(5), "SE3")])
def test_fa_gnn_is_exactly_equivariant(group, name):
    assert_equivariant(_model(group=name), group, _nbody(5, 0), NBODY_IN, NBODY_OUT, tol=1e-10,
                       generator=torch.Generator().manual_seed(0))


def test_centring_the_latent_cloud_keeps_exact_equivariance_and_changes_the_model():
    centred = _model(centre_latent=True)
    assert_equivariant(centred, E3() * Permutations(5), _nbody(5, 0), NBODY_IN, NBODY_OUT, tol=1e-10,
                       generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(centred(*_nbody(5, 1)), _model()(*_nbody(5, 1)))


def test_its_layers_alone_are_not_equivariant_and_reframing_matters():
    torch.manual_seed(0)
    plain = PlainDynamicsGNN(hidden=12, num_layers=3, distances=True, dtype=F64)
    assert equivariance_error(plain, E3(), _nbody(5, 1), NBODY_IN, NBODY_OUT) > 1e-2
    model = _model()
    plain.load_state_dict(model.state_dict())  # the same layers: only the framing differs
    assert not torch.allclose(plain(*_nbody(5, 1)), model(*_nbody(5, 1)))
    proper_only = _model(group="SE3")  # four proper frames: not reflection-equivariant
    assert equivariance_error(proper_only, O3(), _nbody(5, 1), NBODY_IN, NBODY_OUT,
                              generator=torch.Generator().manual_seed(2)) > 1e-3


def test_batches_match_single_systems():
    model = _model()
    inputs = _nbody(5, 2, 2, 3)
    out = model(*inputs)
    assert out.shape == (2, 3, 5, 3)
    assert torch.allclose(out[1, 2], model(*(t[1, 2] for t in inputs)), atol=1e-12)


def test_degenerate_inputs_get_tie_break_frames_and_stay_exact():
    """A regular pentagon: a degenerate spectrum (20 tie-break frames); a batch mixing it with a generic system has
    different frame counts per system."""
    angle = torch.arange(5, dtype=F64) * 2 * math.pi / 5
    pentagon = torch.stack([angle.cos(), angle.sin(), torch.zeros_like(angle)], -1)
    x, v, q = _nbody(5, 3, 2)
    x = torch.stack([pentagon, x[1]])
    model = _model()
    assert_equivariant(model, E3(), (x, v, q), NBODY_IN, NBODY_OUT, tol=1e-10, batched=True,
                       generator=torch.Generator().manual_seed(1))
    assert torch.allclose(model(x, v, q)[0], model(x[0], v[0], q[0]), atol=1e-12)


def test_stochastic_frames():
    model = _model(stochastic=True, generator=torch.Generator().manual_seed(0))
    inputs = _nbody(5, 4, 3)
    exact = model.eval()(*inputs)
    model.train()
    first, second = model(*inputs), model(*inputs)
    assert not torch.allclose(first, second) and not torch.allclose(first, exact)
    again = _model(stochastic=True, generator=torch.Generator().manual_seed(0)).train()
    assert torch.equal(again(*inputs), first)  # reproducible through the generator
    assert torch.allclose(model.eval()(*inputs), exact)


def test_gradients_reach_every_parameter():
    model = _model()
    model(*_nbody(5, 5, 4)).square().sum().backward()
    assert all(p.grad is not None and bool(p.grad.abs().sum() > 0) for p in model.parameters())


def test_errors():
    with pytest.raises(ValueError, match="hidden: expected a positive multiple of 3"):
        FrameAveragedDynamicsGNN(hidden=16)
    with pytest.raises(ValueError, match="group"):
        FrameAveragedDynamicsGNN(group="O3")
    x, v, q = _nbody(5, 0)
    with pytest.raises(ValueError, match="charges"):
        _model()(x, v, q[:4])

"""PointNet: shapes, unit outputs, clouds independent of each other, exact permutation equivariance, no rotation
equivariance (the check can fail), and its frame-averaged version exactly E(3) x S_m-equivariant in float64,
reflections included."""

import pytest
import torch

from equilib.frames import FrameAveraged
from equilib.groups import (
    E3,
    O3,
    GroupElement,
    OnSet,
    Permutations,
    Positions,
    Vectors,
    assert_equivariant,
    equivariance_error,
)
from equilib.nn import PointNet
from equilib.train._normals_task import UnitVectors
from tests.conftest import randn

SMALL = {"local_widths": (16,), "global_widths": (24, 32), "head_widths": (24,)}
IN, OUT = OnSet(Positions()), OnSet(Vectors())


def _net(seed=0, **kwargs):
    torch.manual_seed(seed)
    return PointNet(**{**SMALL, **kwargs}, dtype=torch.float64)


def _cloud(generator, m=40):
    """An anisotropic cloud (a simple PCA spectrum), off the origin."""
    return randn(m, 3, generator=generator) * torch.tensor([1.0, 2.0, 3.5], dtype=torch.float64) + 0.7


def _frame_averaged(seed=0, **kwargs):
    return UnitVectors(FrameAveraged(_net(seed, **kwargs), IN, OUT, group="E3")).eval()


def _reflections():
    """A mirror, the inversion and a rotoreflection, with translations."""
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    angle = torch.tensor(0.9, dtype=torch.float64)
    c, s = torch.cos(angle), torch.sin(angle)
    turn = torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)
    linear = torch.stack([mirror, -torch.eye(3, dtype=torch.float64), turn @ mirror])
    assert (torch.linalg.det(linear) < 0).all()
    return GroupElement(linear=linear, translation=torch.tensor([[0.5, -1.0, 2.0], [0.0, 0.0, 0.0], [3.0, 1, -1]],
                                                                  dtype=torch.float64))


def test_shapes_unit_outputs_and_independent_clouds(generator):
    net = _net()
    x = randn(3, 2, 17, 3, generator=generator)
    out = net(x)
    assert out.shape == (3, 2, 17, 3)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3, 2, 17, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(net(x[1, 0]), out[1, 0], atol=1e-12)  # each cloud alone gives the same
    raw = _net(normalize=False)(x)
    assert not torch.allclose(raw.norm(dim=-1), torch.ones(3, 2, 17, dtype=torch.float64))
    assert _net(out_dim=5, layer_norm=False)(x).shape == (3, 2, 17, 5)
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


def test_permutation_equivariant_but_not_rotation_equivariant(generator):
    net, x = _net(), _cloud(generator)
    assert assert_equivariant(net, Permutations(len(x)), x, IN, OUT, generator=generator) < 1e-12
    error = equivariance_error(net, O3(), x, IN, OUT, samples=8, generator=generator)
    assert error > 0.3  # raw coordinates: far from equivariant
    with pytest.raises(AssertionError, match="not equivariant"):
        assert_equivariant(net, O3(), x, IN, OUT, generator=generator)


@pytest.mark.parametrize("orient", [False, True])
def test_frame_averaged_pointnet_is_exactly_e3_and_permutation_equivariant(orient, generator):
    model, x = _frame_averaged(orient=orient), _cloud(generator)
    group = E3() * Permutations(len(x))
    assert assert_equivariant(model, group, x, IN, OUT, samples=8, generator=generator) < 1e-10
    assert assert_equivariant(model, O3(), x, IN, OUT, elements=_reflections()) < 1e-10
    batch = torch.stack([x, _cloud(generator), _cloud(generator)])  # batched, as the task calls it
    assert assert_equivariant(model, E3(), batch, IN, OUT, samples=4, generator=generator) < 1e-10
    out = model(batch)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3, len(x), dtype=torch.float64), atol=1e-12)
    assert torch.allclose(out[1], model(batch[1]), atol=1e-12)


def test_orient_points_the_outputs_away_from_the_centroid(generator):
    x = randn(2, 30, 3, generator=generator) + 5.0
    plain, oriented = _net(), _net(orient=True)
    out = oriented(x)
    assert ((out * (x - x.mean(dim=-2, keepdim=True))).sum(-1) >= 0).all()
    assert torch.allclose(out.abs(), plain(x).abs(), atol=1e-12)  # only signs change
    assert not ((plain(x) * (x - x.mean(dim=-2, keepdim=True))).sum(-1) >= 0).all()
    assert assert_equivariant(oriented, E3() * Permutations(30), x[0], IN, OUT, tol=10.0) > 0.1  # still not
    with pytest.raises(ValueError, match="orient: .* needs out_dim 3"):
        PointNet(out_dim=2, orient=True)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="local_widths: expected a non-empty list"):
        PointNet(local_widths=())
    with pytest.raises(ValueError, match="head_widths: expected a non-empty list of positive ints"):
        PointNet(head_widths=(8, 0))
    with pytest.raises(ValueError, match="out_dim"):
        PointNet(out_dim=0)
    with pytest.raises(ValueError, match=r"points: expected shape \(..., m, 3\)"):
        PointNet()(torch.zeros(4, 2))
    with pytest.raises(ValueError, match="m >= 1"):
        PointNet()(torch.zeros(2, 0, 3))

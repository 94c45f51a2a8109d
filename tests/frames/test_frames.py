"""equilib.frames: PCA frames (orthogonality, counts, equivariance, batching, degeneracy) and FrameAveraged
(exact equivariance of wrapped non-equivariant backbones, stochastic mode, errors)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from equilib.frames import FrameAveraged, pca_frames
from equilib.groups import (
    E3,
    O3,
    SE3,
    SO3,
    OnSet,
    Permutations,
    Positions,
    Scalars,
    Vectors,
    assert_equivariant,
    equivariance_error,
)
from equilib.nn import PlainDynamicsGNN

F64 = torch.float64
NBODY_IN = (OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))
NBODY_OUT = OnSet(Positions())


def _cloud(n: int, seed: int, *lead: int) -> torch.Tensor:
    """Random anisotropic points (a well separated spectrum), rotated and shifted arbitrarily."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, n, 3, dtype=F64, generator=gen) * torch.tensor([1.0, 2.0, 3.5], dtype=F64)
    return x + torch.randn(3, dtype=F64, generator=gen)


def _nbody(n: int, seed: int, *lead: int):
    gen = torch.Generator().manual_seed(seed + 1000)
    return (_cloud(n, seed, *lead), torch.randn(*lead, n, 3, dtype=F64, generator=gen),
            torch.randn(*lead, n, dtype=F64, generator=gen).sign())


class FlatMLP(torch.nn.Module):
    """A plain MLP on the flattened coordinates of m points: neither rotation nor permutation equivariant."""

    def __init__(self, m: int, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(torch.nn.Linear(3 * m, 32, dtype=F64), torch.nn.SiLU(),
                                       torch.nn.Linear(32, 3 * m + 1, dtype=F64))
        self.m = m

    def forward(self, x):
        out = self.net(x.flatten(-2))
        return out[..., :-1].unflatten(-1, (self.m, 3)), out[..., -1:]


def _gnn() -> PlainDynamicsGNN:
    torch.manual_seed(0)
    return PlainDynamicsGNN(hidden=16, num_layers=2, dtype=F64)


def _same_set(a: torch.Tensor, b: torch.Tensor) -> None:
    """Two (F, 3, 3) stacks hold the same matrices, in any order."""
    distance = (a.unsqueeze(1) - b.unsqueeze(0)).flatten(2).norm(dim=-1)
    match = distance.argmin(1)
    assert sorted(match.tolist()) == list(range(len(a)))
    assert float(distance.min(1).values.max()) < 1e-10


# -- pca_frames -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("group, count, det", [("O3", 8, None), ("E3", 8, None), ("SO3", 4, 1.0), ("SE3", 4, 1.0)])
def test_frames_orthogonal_count_det(group, count, det):
    frames = pca_frames(_cloud(7, 0, 5), group=group)
    assert frames.rotations.shape == (5, count, 3, 3)
    r = frames.rotations
    assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3, dtype=F64).expand_as(r), atol=1e-12)
    dets = torch.linalg.det(r)
    if det is None:
        assert (dets > 0).sum(-1).tolist() == [4] * 5 and (dets < 0).sum(-1).tolist() == [4] * 5
    else:
        assert torch.allclose(dets, torch.full_like(dets, det))
    assert (frames.spectrum[..., :-1] <= frames.spectrum[..., 1:]).all()
    _same_set(r[0], r[0].unique(dim=0))  # all distinct


def test_frames_match_eigendecomposition():
    x = _cloud(9, 1)
    frames = pca_frames(x)
    centred = x - x.mean(0)
    covariance = centred.T @ centred / len(x)
    assert torch.allclose(frames.centroids, x.mean(0))
    for r in frames.rotations:
        assert torch.allclose(r @ torch.diag(frames.spectrum) @ r.T, covariance, atol=1e-12)


@pytest.mark.parametrize("group_name, group", [("O3", E3()), ("SO3", SE3())])
def test_frames_are_equivariant(group_name, group):
    x = _cloud(8, 2)
    g = group.sample(3, generator=torch.Generator().manual_seed(3))
    frames = pca_frames(x, group=group_name)
    for k in range(3):
        moved = pca_frames(Positions().act(g[k], x.unsqueeze(0))[0], group=group_name)
        rotation, shift = g.linear[k], g.translation[k]
        assert torch.allclose(moved.centroids, rotation @ frames.centroids + shift, atol=1e-12)
        assert torch.allclose(moved.spectrum, frames.spectrum, atol=1e-12)
        _same_set(moved.rotations, rotation @ frames.rotations)


def test_frames_invariant_under_permutation():
    x = _cloud(8, 4)
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(0))
    _same_set(pca_frames(x[perm]).rotations, pca_frames(x).rotations)


def test_batched_graphs_of_different_sizes():
    sizes = [4, 9, 6, 5]
    clouds = [_cloud(n, 10 + k) for k, n in enumerate(sizes)]
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    weights = torch.rand(sum(sizes), dtype=F64, generator=torch.Generator().manual_seed(0)) + 0.5
    for group in ("O3", "SO3"):
        frames = pca_frames(torch.cat(clouds), batch=batch, weights=weights, group=group)
        assert frames.centroids.shape == (4, 3)
        for k, cloud in enumerate(clouds):
            alone = pca_frames(cloud, weights=weights[batch == k], group=group)
            assert torch.allclose(frames.centroids[k], alone.centroids, atol=1e-12)
            assert torch.allclose(frames.spectrum[k], alone.spectrum, atol=1e-12)
            _same_set(frames.rotations[k], alone.rotations)


def test_leading_axes_match_batch_vector():
    """Clouds along leading axes (sums over the point axis) and the same clouds with a batch vector (scatter sums)
    give the same frames, weighted or not; a zero weight sum is refused on both paths."""
    x = _cloud(6, 5, 2, 3)
    weights = torch.rand(2, 3, 6, dtype=F64, generator=torch.Generator().manual_seed(1)) + 0.1
    batch = torch.arange(6).repeat_interleave(6)
    for w in (None, weights):
        frames = pca_frames(x, weights=w)
        assert frames.rotations.shape == (2, 3, 8, 3, 3)
        flat = pca_frames(x.reshape(-1, 3), batch=batch, weights=None if w is None else w.reshape(-1))
        assert torch.allclose(frames.centroids.reshape(6, 3), flat.centroids, atol=1e-12)
        assert torch.allclose(frames.spectrum.reshape(6, 3), flat.spectrum, atol=1e-12)
        for k in range(6):
            _same_set(frames.rotations.reshape(6, 8, 3, 3)[k], flat.rotations[k])
    zero = weights.clone()
    zero[1, 2] = 0.0
    with pytest.raises(ValueError, match="sum to zero"):
        pca_frames(x, weights=zero)
    with pytest.raises(ValueError, match="sum to zero"):
        pca_frames(x.reshape(-1, 3), batch=batch, weights=zero.reshape(-1))


def _polygon(n: int) -> torch.Tensor:
    angle = torch.arange(n, dtype=F64) * 2 * math.pi / n
    return torch.stack([angle.cos(), angle.sin(), torch.zeros_like(angle)], -1)


DEGENERATE = {
    "equilateral triangle": _polygon(3),
    "regular tetrahedron": torch.tensor([[1, 1, 1], [1, -1, -1], [-1, 1, -1], [-1, -1, 1]], dtype=F64),
    "linear molecule": torch.tensor([[0, 0, -1.16], [0, 0, 0], [0, 0, 1.16]], dtype=F64),  # CO2
    "cube": torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=F64)] * 3),
    "benzene ring": torch.cat([1.39 * _polygon(6), 2.47 * _polygon(6)]),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
def test_degenerate_inputs_are_detected(name):
    rotation = SO3().sample(1, generator=torch.Generator().manual_seed(0)).linear[0]
    x = DEGENERATE[name] @ rotation.T + 0.3
    with pytest.warns(RuntimeWarning, match=r"1 of 1 graphs have a degenerate covariance spectrum"):
        pca_frames(x)
    with pytest.raises(ValueError, match="degenerate"):
        pca_frames(x, on_degenerate="raise")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pca_frames(x, on_degenerate="ignore")
        pca_frames(_cloud(5, 0))  # a generic cloud passes silently


def test_degenerate_message_counts_graphs():
    x = torch.cat([_cloud(5, 0), DEGENERATE["cube"], _cloud(4, 1), DEGENERATE["linear molecule"]])
    batch = torch.tensor([0] * 5 + [1] * 8 + [2] * 4 + [3] * 3)
    with pytest.raises(ValueError, match=r"2 of 4 graphs .* graph 1: .* graph 3: "):
        pca_frames(x, batch=batch, on_degenerate="raise")


def test_pca_frames_errors():
    with pytest.raises(ValueError, match="empty"):
        pca_frames(torch.zeros(0, 3, dtype=F64))
    with pytest.raises(ValueError, match="empty"):
        pca_frames(torch.zeros(3, 3, dtype=F64), batch=torch.tensor([0, 0, 2]))
    with pytest.raises(ValueError, match=r"\(\.\.\., N, 3\)"):
        pca_frames(torch.zeros(4, 2, dtype=F64))
    with pytest.raises(ValueError, match="batch"):
        pca_frames(torch.zeros(4, 3, dtype=F64), batch=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="group"):
        pca_frames(_cloud(4, 0), group="SE2")
    with pytest.raises(ValueError, match="on_degenerate"):
        pca_frames(_cloud(4, 0), on_degenerate="fix")
    with pytest.raises(ValueError, match="weights"):
        pca_frames(_cloud(4, 0), weights=torch.ones(3, dtype=F64))
    with pytest.raises(TypeError, match="floating"):
        pca_frames(torch.zeros(4, 3, dtype=torch.long))


# -- FrameAveraged ----------------------------------------------------------------------------------------------------


def test_backbones_alone_are_not_equivariant():
    x = _cloud(5, 0)
    mlp = FlatMLP(5)
    assert equivariance_error(mlp, E3(), x, OnSet(Positions()), (OnSet(Vectors()), Scalars()), samples=4) > 1e-2
    assert equivariance_error(_gnn(), E3(), _nbody(5, 0), NBODY_IN, NBODY_OUT, samples=4) > 1e-2


@pytest.mark.parametrize("group", [E3(), SE3(), O3(), SO3()])
def test_frame_averaged_mlp_is_equivariant(group):
    x = _cloud(5, 1)
    name = type(group).__name__
    model = FrameAveraged(FlatMLP(5), OnSet(Positions()), (OnSet(Vectors()), Scalars()), group=name)
    assert_equivariant(model, group, x, OnSet(Positions()), (OnSet(Vectors()), Scalars()), tol=1e-10,
                       generator=torch.Generator().manual_seed(0))
    if name in ("O3", "SO3"):  # no translation part: the origin is kept
        assert equivariance_error(model, E3(), x, OnSet(Positions()), (OnSet(Vectors()), Scalars())) > 1e-3
    if name in ("SO3", "SE3"):  # four proper frames cannot make it reflection-equivariant
        assert equivariance_error(model, O3(), x, OnSet(Positions()), (OnSet(Vectors()), Scalars()),
                                  generator=torch.Generator().manual_seed(1)) > 1e-3


@pytest.mark.parametrize("group", [E3() * Permutations(6), SE3() * Permutations(6)])
def test_frame_averaged_gnn_is_equivariant_with_permutations(group):
    model = FrameAveraged(_gnn(), NBODY_IN, NBODY_OUT, group="E3")
    assert_equivariant(model, group, _nbody(6, 2), NBODY_IN, NBODY_OUT, tol=1e-10,
                       generator=torch.Generator().manual_seed(0))


def test_frame_averaged_batch_of_systems():
    model = FrameAveraged(_gnn(), NBODY_IN, NBODY_OUT)
    inputs = _nbody(5, 3, 2, 3)
    out = model(*inputs)
    assert out.shape == (2, 3, 5, 3)
    for i in range(2):
        for j in range(3):
            assert torch.allclose(out[i, j], model(*(t[i, j] for t in inputs)), atol=1e-12)
    assert_equivariant(model, E3(), inputs, NBODY_IN, NBODY_OUT, batched=True)


def test_all_frames_average_is_the_mean_of_single_frames():
    model = FrameAveraged(_gnn(), NBODY_IN, NBODY_OUT).eval()
    inputs = _nbody(5, 4, 3)
    singles = torch.stack([model(*inputs, frames=torch.full((3,), f)) for f in range(8)])
    assert torch.allclose(singles.mean(0), model(*inputs), atol=1e-12)
    assert (singles - singles[0]).abs().max() > 1e-3  # the frames really differ for this backbone


def test_stochastic_mode():
    model = FrameAveraged(_gnn(), NBODY_IN, NBODY_OUT, stochastic=True, generator=torch.Generator().manual_seed(0))
    inputs = _nbody(5, 5, 4)
    singles = torch.stack([model(*inputs, frames=torch.full((4,), f)) for f in range(8)], 1)  # (4, 8, 5, 3)
    model.train()
    draws = [model(*inputs) for _ in range(3)]
    assert not torch.allclose(draws[0], draws[1])
    for draw in draws:  # each system's output is one of its frame outputs
        distance = (draw.unsqueeze(1) - singles).detach().flatten(2).norm(dim=-1)
        assert float(distance.min(1).values.max()) < 1e-12
    seeded = FrameAveraged(model.backbone, NBODY_IN, NBODY_OUT, stochastic=True,
                           generator=torch.Generator().manual_seed(0))
    assert torch.equal(seeded(*inputs), draws[0])  # reproducible through the generator
    model.eval()
    assert torch.allclose(model(*inputs), singles.mean(1), atol=1e-12)


def test_frame_averaged_errors():
    with pytest.raises(ValueError, match="OnSet\\(Positions\\(\\)\\)"):
        FrameAveraged(FlatMLP(3), OnSet(Vectors()), OnSet(Vectors()))
    with pytest.raises(ValueError, match="group"):
        FrameAveraged(FlatMLP(3), OnSet(Positions()), OnSet(Vectors()), group="SE2")
    with pytest.raises(TypeError, match="in_reps"):
        FrameAveraged(FlatMLP(3), "positions", OnSet(Vectors()))
    with pytest.raises(TypeError, match="backbone"):
        FrameAveraged(3, OnSet(Positions()), OnSet(Vectors()))
    model = FrameAveraged(_gnn(), NBODY_IN, NBODY_OUT)
    x, v, q = _nbody(4, 0)
    with pytest.raises(ValueError, match="expected 3 tensors"):
        model(x, v)
    with pytest.raises(ValueError, match=r"inputs\[1\]"):
        model(x, v[..., :2], q)
    with pytest.raises(ValueError, match=r"inputs\[2\]: expected the leading axes"):
        model(x.expand(2, 4, 3), v.expand(2, 4, 3), q)
    with pytest.raises(ValueError, match="non-empty"):
        model(x[:0], v[:0], q[:0])
    with pytest.raises(ValueError, match="out_reps"):
        FrameAveraged(_gnn(), NBODY_IN, (NBODY_OUT, NBODY_OUT))(x, v, q)
    with pytest.raises(ValueError, match="frames"):
        model(x, v, q, frames=torch.tensor([8]))


def test_frame_averaged_irreps_inputs_and_outputs():
    from equilib.groups import Irreps

    torch.manual_seed(1)
    net = torch.nn.Linear(4 * (3 + 9), 4 * 9, dtype=F64)

    def backbone(x, features):
        return net(torch.cat([x, features], -1).flatten(-2)).unflatten(-1, (4, 9))

    in_reps, out_reps = (OnSet(Positions()), OnSet(Irreps("0e+1o+2e"))), OnSet(Irreps("1e+2o+0o"))
    inputs = (_cloud(4, 6), torch.randn(4, 9, dtype=F64, generator=torch.Generator().manual_seed(2)))
    assert equivariance_error(backbone, E3(), inputs, in_reps, out_reps) > 1e-2
    assert_equivariant(FrameAveraged(backbone, in_reps, out_reps), E3(), inputs, in_reps, out_reps, tol=1e-10)

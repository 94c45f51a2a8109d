"""equilib.frames.frame_set: PCA frames with tie-break frames on degenerate spectra (exactly equivariant sets whose
size is the point group's order for symmetric clouds), and FrameAveraged exact on degenerate inputs."""

from __future__ import annotations

import warnings

import pytest
import torch

from equilib.frames import FrameAveraged, frame_set, pca_frames
from equilib.groups import E3, O3, OnSet, Positions, Scalars, Vectors, assert_equivariant, equivariance_error
from tests.frames.test_frames import DEGENERATE, F64, FlatMLP, _cloud

# frames under O3 and SO3: |point group| (O3: full group incl. reflections; SO3: rotations only)
COUNTS = {"equilateral triangle": (12, 6), "regular tetrahedron": (24, 12), "cube": (48, 24),
          "benzene ring": (24, 12)}


def _moved(x: torch.Tensor, seed: int):
    g = O3().sample(1, generator=torch.Generator().manual_seed(seed))
    return x @ g.linear[0].T + torch.tensor([0.3, -1.0, 2.0], dtype=F64), g.linear[0]


def _same_set(a: torch.Tensor, b: torch.Tensor) -> None:
    distance = (a.unsqueeze(1) - b.unsqueeze(0)).flatten(2).norm(dim=-1)
    assert sorted(distance.argmin(1).tolist()) == list(range(len(a)))
    assert float(distance.min(1).values.max()) < 1e-10


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_tie_break_frames_are_the_point_group_and_equivariant(name):
    x, _ = _moved(DEGENERATE[name], 0)
    for group, count in zip(("O3", "SO3"), COUNTS[name]):
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the remedy is silent
            frames = frame_set(x, group=group)
        assert frames.counts.tolist() == [count]
        r = frames.rotations
        assert torch.allclose(r.transpose(-1, -2) @ r, torch.eye(3, dtype=F64).expand_as(r), atol=1e-12)
        if group == "SO3":
            assert torch.allclose(torch.linalg.det(r), torch.ones(count, dtype=F64))
        _same_set(r, r.unique(dim=0))
        for seed in (1, 2, 3):  # reflections included
            moved, rotation = _moved(x, seed)
            _same_set(frame_set(moved, group=group).rotations, rotation @ r)
        permutation = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        _same_set(frame_set(x[permutation], group=group).rotations, r)


def test_symmetric_cloud_frames_are_its_symmetries():
    """For the cube, every frame maps the canonical cube onto itself: the frames are one orbit of O_h."""
    x, _ = _moved(DEGENERATE["cube"], 4)
    frames = frame_set(x)
    canonical = (x - frames.centroids) @ frames.rotations  # (48, 8, 3): the points' coordinates in each frame
    reference = canonical[0][torch.argsort(canonical[0][:, 0] * 100 + canonical[0][:, 1] * 10 + canonical[0][:, 2])]
    for points in canonical:
        ordered = points[torch.argsort(points[:, 0] * 100 + points[:, 1] * 10 + points[:, 2])]
        assert torch.allclose(ordered, reference, atol=1e-12)


def test_near_degenerate_spectra_use_the_tie_break():
    """A tiny gap (1e-6, below the tolerance) makes PCA eigenvectors unstable; the tie-break frames stay exact."""
    x = DEGENERATE["benzene ring"] * torch.tensor([1.0, 1.0 + 1e-6, 1.0], dtype=F64)
    assert bool((pca_frames(x, on_degenerate="ignore").spectrum.diff() / 6 < 1e-5).any())
    assert frame_set(x).counts.tolist() == [24]  # the six H are tied within the tolerance: all propose an axis
    model = FrameAveraged(FlatMLP(12), OnSet(Positions()), (OnSet(Vectors()), Scalars()))
    assert_equivariant(model, E3(), x, OnSet(Positions()), (OnSet(Vectors()), Scalars()), tol=1e-10,
                       generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_frame_averaging_is_exact_on_degenerate_clouds(name):
    x = DEGENERATE[name]
    reps = (OnSet(Positions()), (OnSet(Vectors()), Scalars()))
    exact = FrameAveraged(FlatMLP(len(x)), *reps)
    assert_equivariant(exact, E3(), x, *reps, tol=1e-10, generator=torch.Generator().manual_seed(1))
    plain = FrameAveraged(FlatMLP(len(x)), *reps, on_degenerate="ignore")  # ill-defined PCA frames
    assert equivariance_error(plain, E3(), x, *reps, generator=torch.Generator().manual_seed(1)) > 1e-3


def test_linear_molecules_are_exact_on_positions_alone():
    """Collinear points have a continuous stabiliser, reported. On positions alone the average is still exact: the
    canonical points lie on the axis whatever the in-plane axes, and the sign frames cancel in-plane outputs. An
    off-axis input (a velocity) sees the arbitrary in-plane axes, and exactness is lost."""
    x = DEGENERATE["linear molecule"]
    with pytest.warns(RuntimeWarning, match="continuous stabiliser"):
        assert frame_set(x).counts.tolist() == [8]
    reps = (OnSet(Positions()), (OnSet(Vectors()), Scalars()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert_equivariant(FrameAveraged(FlatMLP(3), *reps), E3(), x, *reps, tol=1e-10)
        mlp = FlatMLP(6)
        with_velocity = FrameAveraged(lambda p, v: mlp(torch.cat([p, v], -2)), (reps[0], OnSet(Vectors())),
                                      (OnSet(Vectors()), Scalars()))
        v = torch.randn(3, 3, dtype=F64, generator=torch.Generator().manual_seed(0))
        assert equivariance_error(with_velocity, E3(), (x, v), (reps[0], OnSet(Vectors())), reps[1]) > 1e-3


def test_generic_clouds_are_unchanged_and_batched_mixtures_work():
    x = _cloud(6, 0)
    assert torch.equal(frame_set(x).rotations, pca_frames(x).rotations)
    clouds = [_cloud(5, 1), DEGENERATE["cube"], _cloud(4, 2), DEGENERATE["regular tetrahedron"]]
    batch = torch.arange(4).repeat_interleave(torch.tensor([len(c) for c in clouds]))
    frames = frame_set(torch.cat(clouds), batch=batch)
    assert frames.counts.tolist() == [8, 48, 8, 24]
    for k, cloud in enumerate(clouds):
        _same_set(frames.rotations[frames.graph == k], frame_set(cloud).rotations)


def test_weights_break_ties_and_masks_exclude_points():
    tetrahedron = DEGENERATE["regular tetrahedron"]
    heavy = torch.tensor([1.0, 1.0, 1.0, 2.0], dtype=F64)  # one heavy vertex: a C3v symmetric top
    assert frame_set(tetrahedron, weights=heavy).counts.tolist() == [12]  # |C3v| = 6 axes x 2 signs of the normal
    padded = torch.cat([_cloud(5, 3), torch.full((3, 3), 7.0, dtype=F64)])
    mask = torch.tensor([1.0] * 5 + [0.0] * 3, dtype=F64)
    _same_set(frame_set(padded, weights=mask).rotations, frame_set(padded[:5]).rotations)


def test_frame_set_errors():
    with pytest.raises(ValueError, match="on_degenerate"):
        frame_set(_cloud(4, 0), on_degenerate="fix")
    with pytest.raises(ValueError, match="max_frames"):
        frame_set(_cloud(4, 0), max_frames=0)
    with pytest.raises(ValueError, match="degenerate"):
        frame_set(DEGENERATE["cube"], on_degenerate="raise")
    with pytest.warns(RuntimeWarning, match="max_frames=10"):
        assert frame_set(DEGENERATE["cube"], max_frames=10).counts.tolist() == [10]

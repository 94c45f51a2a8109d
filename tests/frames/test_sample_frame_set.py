"""Stochastic frames: sample_frame_set draws the frame frame_set + random_frames would, without building them all."""

import pytest
import torch

from equilib.frames import frame_set, sample_frame_set
from equilib.frames._frame_set import random_frames

F64 = torch.float64


def clouds():
    gen = torch.Generator().manual_seed(0)
    scalene = torch.randn(6, 7, 3, generator=gen, dtype=F64) * torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    square = torch.tensor([[1.0, 0, 0], [0, 1.0, 0], [-1.0, 0, 0], [0, -1.0, 0], [0, 0, 0.3], [0, 0, -0.3], [0, 0, 0]],
                          dtype=F64)
    return {"simple": scalene, "with a degenerate one": torch.cat([scalene[:2], square.unsqueeze(0), scalene[2:3]])}


@pytest.mark.parametrize("group", ["O3", "SO3"])
@pytest.mark.parametrize("name", ["simple", "with a degenerate one"])
def test_the_drawn_frame_is_frame_sets(group, name):
    points = clouds()[name]
    full = frame_set(points, group=group)
    for seed in range(4):
        expected = full.one_per_cloud(random_frames(full.counts, torch.Generator().manual_seed(seed)))
        drawn = sample_frame_set(points, group=group, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(drawn.rotations, expected.rotations) and torch.equal(drawn.graph, expected.graph)
        assert torch.equal(drawn.centroids, full.centroids)
    if group == "SO3":
        assert torch.allclose(torch.linalg.det(drawn.rotations), torch.ones(len(points), dtype=F64))


def test_batch_vectors_and_errors():
    points = clouds()["simple"]
    batch = torch.arange(6).repeat_interleave(7)
    flat = sample_frame_set(points.reshape(-1, 3), batch, generator=torch.Generator().manual_seed(1))
    dense = sample_frame_set(points, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(flat.rotations, dense.rotations, atol=1e-12)
    with pytest.raises(ValueError, match="on_degenerate: expected one of"):
        sample_frame_set(points, on_degenerate="skip")
    with pytest.raises(ValueError, match="max_frames: expected a positive int, got 0"):
        sample_frame_set(points, max_frames=0)
    with pytest.raises(ValueError, match="positions: empty point cloud"):
        sample_frame_set(torch.zeros(2, 0, 3, dtype=F64))

"""FrameAveraged on PyG-style batches: graphs of different sizes (a batch vector), per-point and per-graph inputs and
outputs, edge lists replicated into every frame copy, padded clouds with masks, stochastic frames, errors."""

from __future__ import annotations

import pytest
import torch

from equilib.frames import FrameAveraged
from equilib.groups import E3, SE3, OnSet, Positions, Scalars, Vectors, assert_equivariant, equivariance_error
from tests.frames.test_frames import DEGENERATE, F64, _cloud

SIZES = [5, 8, 3, 6]


class EdgeGNN(torch.nn.Module):
    """One round of messages on raw coordinate differences (not rotation-equivariant): per-point vectors, and one
    energy per graph."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.message = torch.nn.Sequential(torch.nn.Linear(7, 16, dtype=F64), torch.nn.Tanh())
        self.vector = torch.nn.Linear(16, 3, dtype=F64)
        self.energy = torch.nn.Linear(16, 1, dtype=F64)

    def forward(self, x, charge, *, batch, edge_index):
        source, target = edge_index
        m = self.message(torch.cat([x[source] - x[target], x[target], charge[source].unsqueeze(-1)], -1))
        h = torch.zeros(len(x), 16, dtype=x.dtype).index_add_(0, target, m)
        energy = torch.zeros(int(batch.max()) + 1, 1, dtype=x.dtype).index_add_(0, batch, self.energy(h))
        return self.vector(h), energy


class DeepSet(torch.nn.Module):
    """Sum pooling per graph of a point MLP on raw coordinates (needs only the batch vector)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.point = torch.nn.Sequential(torch.nn.Linear(3, 16, dtype=F64), torch.nn.Tanh())
        self.head = torch.nn.Linear(16, 3, dtype=F64)

    def forward(self, x, *, batch):
        pooled = torch.zeros(int(batch.max()) + 1, 16, dtype=x.dtype).index_add_(0, batch, self.point(x))
        return self.head(pooled)


def _graphs(sizes=SIZES, seed=0):
    clouds = [_cloud(n, seed + k) for k, n in enumerate(sizes)]
    gen = torch.Generator().manual_seed(seed)
    charges = torch.randn(sum(sizes), dtype=F64, generator=gen)
    batch = torch.arange(len(sizes)).repeat_interleave(torch.tensor(sizes))
    offsets = torch.cumsum(torch.tensor([0] + sizes[:-1]), 0)
    edges = torch.cat([torch.cartesian_prod(torch.arange(n), torch.arange(n)).T + o
                       for n, o in zip(sizes, offsets.tolist())], 1)
    edges = edges[:, edges[0] != edges[1]]
    return torch.cat(clouds), charges, batch, edges


REPS = (OnSet(Positions()), OnSet(Scalars())), (OnSet(Vectors()), Scalars(1))


def test_graphs_match_one_at_a_time_and_are_equivariant():
    x, q, batch, edges = _graphs()
    model = FrameAveraged(EdgeGNN(), *REPS)
    vectors, energy = model(x, q, batch=batch, edge_index=edges)
    assert vectors.shape == (len(x), 3) and energy.shape == (len(SIZES), 1)
    for k in range(len(SIZES)):
        members = batch == k
        inner = edges[:, members[edges[0]]] - int(torch.nonzero(members)[0])
        alone = model(x[members], q[members], batch=torch.zeros(int(members.sum()), dtype=torch.long),
                      edge_index=inner)
        assert torch.allclose(vectors[members], alone[0], atol=1e-12)
        assert torch.allclose(energy[k], alone[1][0], atol=1e-12)
    # the backbone alone is not equivariant; averaged it is, with all graphs moved by one element
    def plain(x, q):
        return EdgeGNN()(x, q, batch=batch, edge_index=edges)

    def averaged(x, q):
        return model(x, q, batch=batch, edge_index=edges)

    out_reps = (OnSet(Vectors()), OnSet(Scalars()))
    assert equivariance_error(plain, E3(), (x, q), REPS[0], out_reps) > 1e-2
    assert_equivariant(averaged, E3(), (x, q), REPS[0], out_reps, tol=1e-10)


def test_each_graph_may_move_by_its_own_element():
    x, q, batch, edges = _graphs(seed=3)
    model = FrameAveraged(EdgeGNN(), *REPS, group="SE3")
    g = SE3().sample(len(SIZES), generator=torch.Generator().manual_seed(5))
    rows = g[batch]
    moved = Positions().act(rows, x)
    vectors, energy = model(x, q, batch=batch, edge_index=edges)
    moved_vectors, moved_energy = model(moved, q, batch=batch, edge_index=edges)
    assert torch.allclose(moved_vectors, Vectors().act(rows, vectors), atol=1e-10)
    assert torch.allclose(moved_energy, energy, atol=1e-10)


def test_batch_vector_without_edges_and_unsorted_batches():
    x, _, batch, _ = _graphs(seed=6)
    model = FrameAveraged(DeepSet(), OnSet(Positions()), Vectors())
    out = model(x, batch=batch)
    assert out.shape == (len(SIZES), 3)
    shuffle = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(model(x[shuffle], batch=batch[shuffle]), out, atol=1e-12)
    assert_equivariant(lambda p: model(p, batch=batch), E3(), x, OnSet(Positions()), Vectors(), tol=1e-10)


def test_degenerate_graphs_get_their_extra_frames_in_a_batch():
    clouds = [_cloud(5, 1), DEGENERATE["cube"], DEGENERATE["benzene ring"], _cloud(4, 2)]
    sizes = [len(c) for c in clouds]
    x, batch = torch.cat(clouds), torch.arange(4).repeat_interleave(torch.tensor(sizes))
    model = FrameAveraged(DeepSet(), OnSet(Positions()), Vectors())
    assert model.frame_elements(x, batch)[1].bincount().tolist() == [8, 48, 24, 8]
    assert_equivariant(lambda p: model(p, batch=batch), E3(), x, OnSet(Positions()), Vectors(), tol=1e-10)


def test_stochastic_frames_on_graphs():
    x, q, batch, edges = _graphs(seed=8)
    model = FrameAveraged(EdgeGNN(), *REPS, stochastic=True, generator=torch.Generator().manual_seed(0))
    singles = [model(x, q, batch=batch, edge_index=edges, frames=torch.full((4,), f)) for f in range(8)]
    model.train()
    with torch.no_grad():
        vectors, energy = model(x, q, batch=batch, edge_index=edges)
    for k in range(4):  # each graph's energy is the one of one of its frames
        assert min(float((energy[k] - s[1][k]).abs()) for s in singles) < 1e-12
    model.eval()
    mean = torch.stack([s[1] for s in singles]).mean(0)
    assert torch.allclose(model(x, q, batch=batch, edge_index=edges)[1], mean, atol=1e-12)


def test_padded_clouds_with_a_mask_equal_the_unpadded_ones():
    """Equal-size layout with padding: weights=mask keeps padding out of the frames; the backbone gets the mask."""
    torch.manual_seed(2)
    point = torch.nn.Linear(3, 8, dtype=F64)
    head = torch.nn.Linear(8, 3, dtype=F64)

    def masked_deep_set(x, mask):
        return head((torch.tanh(point(x)) * mask.unsqueeze(-1)).sum(-2))

    model = FrameAveraged(masked_deep_set, (OnSet(Positions()), OnSet(Scalars())), Vectors())
    clouds = [_cloud(4, 0), _cloud(6, 1)]
    padded = torch.full((2, 6, 3), 5.0, dtype=F64)
    mask = torch.zeros(2, 6, dtype=F64)
    for k, cloud in enumerate(clouds):
        padded[k, :len(cloud)], mask[k, :len(cloud)] = cloud, 1.0
    out = model(padded, mask, weights=mask)
    for k, cloud in enumerate(clouds):
        assert torch.allclose(out[k], model(cloud, torch.ones(len(cloud), dtype=F64)), atol=1e-12)


def test_graph_layout_errors():
    x, q, batch, edges = _graphs()
    model = FrameAveraged(EdgeGNN(), *REPS)
    with pytest.raises(ValueError, match=r"inputs\[1\]: expected 22 rows"):
        model(x, q[:-1], batch=batch, edge_index=edges)
    with pytest.raises(ValueError, match="edge_index: an edge joins two different graphs"):
        model(x, q, batch=batch, edge_index=torch.tensor([[0], [7]]))
    with pytest.raises(ValueError, match=r"edge_index: expected a torch.long tensor of shape \(2, E\)"):
        model(x, q, batch=batch, edge_index=edges.T)
    with pytest.raises(ValueError, match="edge_index: needs a batch vector"):
        model(x, q, edge_index=edges)
    with pytest.raises(ValueError, match="batch: expected a torch.long tensor"):
        model(x, q, batch=batch[:-1], edge_index=edges)
    with pytest.raises(ValueError, match="frames: expected"):
        model(x, q, batch=batch, edge_index=edges, frames=torch.full((4,), 8))
    bad = FrameAveraged(lambda x, q, batch, edge_index: (x, q.unsqueeze(-1)), *REPS)
    with pytest.raises(ValueError, match=r"outputs\[1\]: expected 32 rows"):
        bad(x, q, batch=batch, edge_index=edges)

"""Loss landscapes: slices of a quadratic against its closed form, the second difference along the top Hessian
eigenvector against Lanczos, exact restoration of the parameters, filter normalisation by hand, a potential's energy
+ force loss, plots and errors."""

import pytest
import torch
from torch_geometric.data import Batch

from equilib.curvature import (
    Hessian,
    LossSlice,
    LossSurface,
    ParameterSpace,
    filter_normalize,
    loss_slice_1d,
    loss_surface_2d,
    plot_landscape,
    random_direction,
    task_loss,
    top_eigenpairs,
)
from tests.curvature.test_operators import PotentialTask, potential, structures

F64 = torch.float64


class Quadratic(torch.nn.Module):
    """``L(theta) = 0.5 theta^T A theta + b^T theta`` with a random symmetric ``A``."""

    def __init__(self, dim=6, seed=0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        m = torch.randn(dim, dim, generator=generator, dtype=F64)
        self.register_buffer("a", m + m.T)
        self.register_buffer("b", torch.randn(dim, generator=generator, dtype=F64))
        self.theta = torch.nn.Parameter(torch.randn(dim, generator=generator, dtype=F64))

    def loss(self, model, batch):
        return 0.5 * self.theta @ self.a @ self.theta + self.b @ self.theta


def test_slices_of_a_quadratic_along_eigenvectors_are_its_closed_form():
    model = Quadratic()
    eigenvalues, vectors = torch.linalg.eigh(model.a)
    theta = model.theta.detach().clone()
    l0 = float(model.loss(model, None).detach())
    slope = model.a @ theta + model.b
    alphas = torch.linspace(-2.0, 3.0, 11, dtype=F64)
    for k in (0, 5):
        v = vectors[:, k]
        line = loss_slice_1d(model, model.loss, None, v, alphas)
        expected = l0 + alphas * float(slope @ v) + 0.5 * float(eigenvalues[k]) * alphas**2
        assert torch.allclose(line.losses, expected, rtol=1e-12, atol=1e-12)
        assert torch.equal(line.alphas, alphas)
    betas = torch.tensor([-1.0, 0.0, 0.5], dtype=F64)
    v1, v2 = vectors[:, 5], vectors[:, 2]
    plane = loss_surface_2d(model, model.loss, None, v1, v2, alphas, betas)
    a, b = alphas[:, None], betas[None, :]
    expected = (l0 + a * float(slope @ v1) + b * float(slope @ v2)
                + 0.5 * (float(eigenvalues[5]) * a**2 + float(eigenvalues[2]) * b**2))  # v1 . A v2 = 0
    assert plane.losses.shape == (11, 3) and torch.allclose(plane.losses, expected, rtol=1e-12, atol=1e-12)
    assert torch.equal(model.theta.detach(), theta)


def mlp_and_data(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(3, 5), torch.nn.Tanh(), torch.nn.Linear(5, 2)).double()
    generator = torch.Generator().manual_seed(seed + 1)
    batches = [(torch.randn(7, 3, generator=generator, dtype=F64), torch.randn(7, 2, generator=generator, dtype=F64))
               for _ in range(2)]
    return model, batches


def mse(model, batch):
    return (model(batch[0]) - batch[1]).pow(2).mean()


def test_second_difference_along_the_top_eigenvector_is_lambda_max():
    model, batches = mlp_and_data()
    top = top_eigenpairs(Hessian(model, mse, batches), k=1, tol=1e-10, generator=torch.Generator().manual_seed(0))
    assert bool(top.converged[0])
    h = 1e-3
    line = loss_slice_1d(model, mse, batches, top.eigenvectors[:, 0], [-h, 0.0, h])
    second = float(line.losses[0] - 2 * line.losses[1] + line.losses[2]) / h**2
    assert second == pytest.approx(float(top.eigenvalues[0]), rel=1e-5)
    with torch.no_grad():  # the exact loss over both batches: their mean
        assert float(line.losses[1]) == pytest.approx(float(mse(model, batches[0]) + mse(model, batches[1])) / 2,
                                                       rel=1e-14)
    weighted = loss_slice_1d(model, mse, batches, top.eigenvectors[:, 0], [0.0], weights=[3, 1])
    with torch.no_grad():
        assert float(weighted.losses[0]) == pytest.approx(float(3 * mse(model, batches[0]) + mse(model, batches[1]))
                                                          / 4, rel=1e-14)


def test_parameters_are_restored_bit_identically_also_after_an_error():
    model, batches = mlp_and_data(seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    d1 = random_direction(model, generator=torch.Generator().manual_seed(1), one_d="keep")
    d2 = random_direction(model, generator=torch.Generator().manual_seed(2), one_d="keep")
    loss_surface_2d(model, mse, batches, d1, d2, [-0.7, 0.3, 1.1], [0.13, -2.9])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    calls = []

    def fails_on_the_third_call(model, batch):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return mse(model, batch)

    with pytest.raises(RuntimeError, match="boom"):
        loss_slice_1d(model, fails_on_the_third_call, batches, d1, [0.31, 0.77])
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())
    # only the chosen parameters move
    line = loss_slice_1d(model, mse, batches, torch.ones(12, dtype=F64), [0.0, 1.0], params="2.")
    assert line.losses[0] != line.losses[1]
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before))


def test_filter_normalisation_by_hand():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv1d(2, 3, 2), torch.nn.Flatten(), torch.nn.Linear(6, 4),
                                torch.nn.LayerNorm(4)).double()
    with torch.no_grad():
        model[2].weight[1].zero_()  # a zero filter of the weights gets a zero direction
        model[3].weight.mul_(1.7)
    space = ParameterSpace(model)
    raw = torch.randn(space.dim, generator=torch.Generator().manual_seed(5), dtype=F64)
    for one_d in ("zero", "keep"):
        d = filter_normalize(model, raw, one_d=one_d)
        for name, p, piece, original in zip(space.names, space.parameters, space.unflatten(d), space.unflatten(raw)):
            if p.dim() >= 2:
                rows, weight_rows = piece.reshape(p.shape[0], -1), p.detach().reshape(p.shape[0], -1)
                original = original.reshape(p.shape[0], -1)
                for r in range(p.shape[0]):  # filter r: the raw filter times |theta_r| / |raw_r|
                    scale = float(weight_rows[r].norm()) / float(original[r].norm())
                    assert torch.allclose(rows[r], original[r] * scale, rtol=1e-14, atol=0), (name, r)
            elif one_d == "zero":
                assert torch.equal(piece, torch.zeros_like(piece)), name
            else:
                scale = float(p.detach().norm()) / float(original.norm())
                assert torch.allclose(piece, original * scale, rtol=1e-14, atol=0), name
    assert float(space.unflatten(filter_normalize(model, raw))[2][1].norm()) == 0.0
    first = random_direction(model, generator=torch.Generator().manual_seed(7))
    assert torch.equal(first, random_direction(model, generator=torch.Generator().manual_seed(7)))
    assert not torch.equal(first, random_direction(model, generator=torch.Generator().manual_seed(8)))
    bad = raw.clone()
    bad[space.blocks["2.weight"]][6:12] = 0.0  # the second row of 2.weight
    with pytest.raises(ValueError, match="direction: filter 1 of 2.weight is zero"):
        filter_normalize(model, bad)


def test_a_potential_energy_and_force_loss_along_a_line():
    model, frames = potential(), structures()
    loss = task_loss(PotentialTask())
    batches = [Batch.from_data_list(frames[:2]), Batch.from_data_list(frames[2:])]
    direction = random_direction(model, one_d="keep", generator=torch.Generator().manual_seed(0))
    line = loss_slice_1d(model, loss, batches, direction, [0.0, 0.05])
    union = Batch.from_data_list(frames)
    model.train()
    assert float(line.losses[0]) == pytest.approx(float(loss(model, union)), rel=1e-13)  # the loss of the union
    assert float(line.losses[1]) != pytest.approx(float(line.losses[0]), rel=1e-6)
    assert model.training


def test_plots_are_written(tmp_path):
    model, batches = mlp_and_data()
    d1 = random_direction(model, generator=torch.Generator().manual_seed(0))
    d2 = random_direction(model, generator=torch.Generator().manual_seed(1))
    grid = torch.linspace(-1.0, 1.0, 5, dtype=F64)
    line = loss_slice_1d(model, mse, batches, d1, grid)
    plane = loss_surface_2d(model, mse, batches, d1, d2, grid, grid[:4])
    for name, result in (("line.png", line), ("plane.png", plane)):
        assert plot_landscape(result, tmp_path / name) == tmp_path / name
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["line.png", "plane.png"]  # no temporary files left
    with pytest.raises(TypeError, match="result: expected a LossSlice or a LossSurface"):
        plot_landscape((line.alphas, line.losses), tmp_path / "x.png")
    with pytest.raises(ValueError, match="levels: expected at least 2"):
        plot_landscape(plane, tmp_path / "x.png", levels=1)
    with pytest.raises(ValueError, match="a contour plot needs at least two alphas"):
        plot_landscape(LossSurface(grid[:1], grid, plane.losses[:1]), tmp_path / "x.png")
    assert isinstance(line, LossSlice)


def test_errors_name_the_argument():
    model, batches = mlp_and_data()
    dim = ParameterSpace(model).dim
    d = torch.ones(dim, dtype=F64)
    with pytest.raises(ValueError, match=rf"direction: expected shape \({dim},\)"):
        loss_slice_1d(model, mse, batches, torch.ones(dim + 1, dtype=F64), [0.0])
    with pytest.raises(TypeError, match="direction: expected a tensor"):
        loss_slice_1d(model, mse, batches, [1.0] * dim, [0.0])
    with pytest.raises(ValueError, match="d2: expected finite entries"):
        loss_surface_2d(model, mse, batches, d, d * float("nan"), [0.0], [0.0])
    with pytest.raises(ValueError, match="alphas: expected a non-empty 1-d sequence"):
        loss_slice_1d(model, mse, batches, d, [])
    with pytest.raises(ValueError, match="betas: expected finite numbers"):
        loss_surface_2d(model, mse, batches, d, d, [0.0], [float("inf")])
    with pytest.raises(ValueError, match="alphas: expected a sequence"):
        loss_slice_1d(model, mse, batches, d, 1.0)
    with pytest.raises(ValueError, match="one_d: expected one of"):
        random_direction(model, one_d="bias")
    with pytest.raises(TypeError, match="generator: expected a torch.Generator"):
        random_direction(model, generator=0)

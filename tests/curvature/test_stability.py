"""Stability ratios by hand and against gradient descent on a quadratic; preconditioned sharpness against dense
float64 eigenvalues; Adam's preconditioner against the second-moment recursion."""

import math

import pytest
import torch

from equilib.curvature import (
    DenseOperator,
    PreconditionedOperator,
    adam_preconditioner,
    preconditioned_sharpness,
    stability,
)


def psd(dim=40, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_stability_ratios_by_hand():
    reading = stability(lr=0.01, lambda_max=150.0, trace=400.0, frobenius=250.0)
    assert (reading.lr, reading.gd_ratio, reading.sgd_ratio, reading.frobenius_ratio) == (0.01, 1.5, 4.0, 2.5)
    assert reading.stable_gd is True and reading.stable_sgd is False
    alone = stability(lr=0.5, lambda_max=torch.tensor(4.0, dtype=torch.float64))
    assert alone.gd_ratio == 2.0 and alone.stable_gd is True  # the limit itself is stable
    assert alone.sgd_ratio is None and alone.stable_sgd is None and alone.frobenius_ratio is None
    assert stability(lr=0.5, lambda_max=4.01).stable_gd is False


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_stable_gd_predicts_gradient_descent_on_a_quadratic(factor):
    matrix = psd()
    lambda_max = float(torch.linalg.eigvalsh(matrix)[-1])
    lr = factor * 2 / lambda_max
    x = torch.ones(40, dtype=torch.float64)
    for _ in range(2000):  # gradient descent on x^T A x / 2
        x = x - lr * matrix @ x
    converged = float(x.norm()) < 1.0
    assert stability(lr, lambda_max).stable_gd is converged


def test_preconditioned_sharpness_matches_dense():
    matrix = psd(dim=80)
    diagonal = torch.linspace(0.5, 20.0, 80, dtype=torch.float64)
    scale = diagonal.rsqrt()
    dense = scale[:, None] * matrix * scale[None, :]
    expected = torch.linalg.eigvalsh(dense).flip(0)[:2]
    pairs = preconditioned_sharpness(DenseOperator(matrix), diagonal, k=2, tol=1e-10,
                                     generator=torch.Generator().manual_seed(1))
    assert torch.allclose(pairs.eigenvalues, expected, rtol=1e-8, atol=0)
    similar = torch.linalg.eigvals(matrix / diagonal[:, None]).real.max()  # the spectrum of P^{-1} A
    assert float(pairs.eigenvalues[0]) == pytest.approx(float(similar), rel=1e-8)
    y = pairs.eigenvectors[:, 0]
    assert torch.allclose(dense @ y, pairs.eigenvalues[0] * y, atol=1e-8, rtol=0)


def test_preconditioned_operator_products_and_blocks():
    blocks = {"w": slice(0, 30), "b": slice(30, 40)}
    op = DenseOperator(psd(), blocks=blocks)
    diagonal = torch.rand(40, generator=torch.Generator().manual_seed(2), dtype=torch.float64) + 0.5
    wrapped = PreconditionedOperator(op, diagonal.float())  # cast to the operator's dtype
    dense = op.matrix / diagonal.sqrt()[:, None] / diagonal.sqrt()[None, :]
    v = torch.randn(40, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    assert wrapped.blocks == blocks and wrapped.dtype == torch.float64
    assert torch.allclose(wrapped.matmat(v), dense @ v, rtol=1e-6)
    assert torch.allclose(wrapped.matvec(v[:, 0]), wrapped.matmat(v)[:, 0], atol=1e-14, rtol=0)


def tiny_model():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1)).double()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64))
    return model


def batch():
    generator = torch.Generator().manual_seed(4)
    x = torch.randn(16, 3, generator=generator, dtype=torch.float64)
    return x, torch.sin(x.sum(1, keepdim=True))


@pytest.mark.parametrize("kind, amsgrad", [("Adam", False), ("Adam", True), ("AdamW", False)])
def test_adam_preconditioner_matches_the_second_moment_recursion(kind, amsgrad):
    model = tiny_model()
    first, second = list(model[0].parameters()), list(model[2].parameters())
    groups = [{"params": first, "betas": (0.9, 0.99), "eps": 1e-6}, {"params": second, "betas": (0.8, 0.95)}]
    optimizer = getattr(torch.optim, kind)(groups, lr=0.05, eps=1e-8, amsgrad=amsgrad)
    params = first + second
    moments = [torch.zeros_like(p) for p in params]
    largest = [torch.zeros_like(p) for p in params]
    x, y = batch()
    steps = 5
    for _ in range(steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        for i, p in enumerate(params):
            beta2 = 0.99 if i < len(first) else 0.95
            moments[i] = beta2 * moments[i] + (1 - beta2) * p.grad**2
            largest[i] = torch.maximum(largest[i], moments[i])
        optimizer.step()
    expected = []
    for i in range(len(params)):
        beta2, eps = (0.99, 1e-6) if i < len(first) else (0.95, 1e-8)
        v = largest[i] if amsgrad else moments[i]
        expected.append((torch.sqrt(v / (1 - beta2**steps)) + eps).reshape(-1))
    found = adam_preconditioner(optimizer, params)
    assert found.shape == (sum(p.numel() for p in params),) and found.dtype == torch.float64
    assert torch.allclose(found, torch.cat(expected), rtol=1e-12, atol=0)
    split = sum(p.numel() for p in first)
    assert torch.equal(adam_preconditioner(optimizer, second + first), torch.cat([found[split:], found[:split]]))


def test_preconditioned_sharpness_of_a_tiny_models_hessian():
    model = tiny_model()
    params = list(model.parameters())
    optimizer = torch.optim.Adam(params, lr=0.01)
    x, y = batch()
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        optimizer.step()
    shapes = [p.shape for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])

    def loss(vector):
        tensors, start = [], 0
        for shape in shapes:
            tensors.append(vector[start:start + math.prod(shape)].reshape(shape))
            start += math.prod(shape)
        hidden = torch.tanh(x @ tensors[0].T + tensors[1])
        return torch.nn.functional.mse_loss(hidden @ tensors[2].T + tensors[3], y)

    hessian = torch.autograd.functional.hessian(loss, flat)
    hessian = (hessian + hessian.T) / 2
    preconditioner = adam_preconditioner(optimizer, params)
    expected = torch.linalg.eigvals(hessian / preconditioner[:, None]).real.max()
    pairs = preconditioned_sharpness(DenseOperator(hessian), preconditioner, tol=1e-10,
                                     generator=torch.Generator().manual_seed(5))
    assert float(pairs.eigenvalues[0]) == pytest.approx(float(expected), rel=1e-8)


def test_errors():
    with pytest.raises(ValueError, match="lr: expected a finite number > 0, got 0.0"):
        stability(0.0, 1.0)
    with pytest.raises(ValueError, match="lr: expected a finite number, got nan"):
        stability(math.nan, 1.0)
    with pytest.raises(ValueError, match="lambda_max: expected a finite number, got 'big'"):
        stability(0.1, "big")
    with pytest.raises(ValueError, match="trace: expected a finite number, got inf"):
        stability(0.1, 1.0, trace=math.inf)
    op = DenseOperator(psd(dim=5))
    with pytest.raises(ValueError, match=r"preconditioner: expected a \(dim,\) tensor with dim=5, got \(4,\)"):
        preconditioned_sharpness(op, torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="preconditioner: expected finite positive entries"):
        PreconditionedOperator(op, torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))
    with pytest.raises(TypeError, match="op: expected a CurvatureOperator, got Tensor"):
        preconditioned_sharpness(op.matrix, torch.ones(5))
    model = tiny_model()
    with pytest.raises(TypeError, match="optimizer: expected a torch.optim.Adam or AdamW, got SGD"):
        adam_preconditioner(torch.optim.SGD(model.parameters(), lr=0.1), list(model.parameters()))
    adam = torch.optim.Adam(model[0].parameters())
    with pytest.raises(ValueError, match="params: parameter 0 has no optimizer state yet"):
        adam_preconditioner(adam, list(model[0].parameters()))
    with pytest.raises(ValueError, match=r"params: parameter 0 \(shape \(1, 4\)\) is not in the optimizer"):
        adam_preconditioner(adam, [model[2].weight])
    with pytest.raises(ValueError, match="params: expected at least one parameter"):
        adam_preconditioner(adam, [])

"""The operator contract: shape, dtype and block checks, matmat against matvec, the SciPy view."""

import numpy as np
import pytest
import scipy.sparse.linalg
import torch

from equilib.curvature import CurvatureOperator, DenseOperator


def spd(dim=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return a @ a.T + torch.eye(dim, dtype=torch.float64)


def test_dense_operator_products_and_scipy_view():
    matrix = spd()
    op = DenseOperator(matrix, blocks={"a": slice(0, 2), "b": slice(2, 6)})
    v = torch.randn(6, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.allclose(op.matmat(v), matrix @ v, atol=1e-13, rtol=0)
    assert torch.allclose(op.matvec(v[:, 0]), matrix @ v[:, 0], atol=1e-13, rtol=0)
    looped = CurvatureOperator._matmat(op, v)  # the default matmat: one matvec per column
    assert torch.allclose(looped, matrix @ v, atol=1e-13, rtol=0)
    linear = op.to_scipy()
    assert linear.shape == (6, 6)
    assert np.allclose(linear @ v.numpy(), (matrix @ v).numpy(), atol=1e-12)
    assert np.allclose(linear.matvec(v[:, 0].numpy()), (matrix @ v[:, 0]).numpy(), atol=1e-12)
    top = scipy.sparse.linalg.eigsh(linear, k=2, which="LA", return_eigenvectors=False)
    assert np.allclose(np.sort(top), torch.linalg.eigvalsh(matrix)[-2:].numpy(), rtol=1e-10)


def test_errors():
    with pytest.raises(ValueError, match=r"matrix: expected a square \(dim, dim\) tensor, got \(2, 3\)"):
        DenseOperator(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="matrix: expected a symmetric matrix"):
        DenseOperator(torch.tensor([[1.0, 2.0], [0.0, 1.0]], dtype=torch.float64))
    op = DenseOperator(spd())
    with pytest.raises(ValueError, match=r"v: expected shape \(dim,\) with dim=6, got \(5,\)"):
        op.matvec(torch.zeros(5, dtype=torch.float64))
    with pytest.raises(ValueError, match="v: expected dtype torch.float64 on cpu, got torch.float32"):
        op.matvec(torch.zeros(6))
    with pytest.raises(ValueError, match=r"vectors: expected shape \(dim, k\)"):
        op.matmat(torch.zeros(6, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"blocks: 'b' is slice\(3, 6, None\); expected slice\(2, stop\)"):
        DenseOperator(spd(), blocks={"a": slice(0, 2), "b": slice(3, 6)})
    with pytest.raises(ValueError, match="blocks: they cover 4 entries, expected dim=6"):
        DenseOperator(spd(), blocks={"a": slice(0, 4)})
    with pytest.raises(ValueError, match="dim: expected a positive int, got 0"):
        CurvatureOperator(0, torch.float64, "cpu")

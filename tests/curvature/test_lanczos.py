"""Lanczos and power iteration against a dense float64 eigendecomposition of spiked and low-rank matrices."""

import pytest
import torch

from equilib.curvature import DenseOperator, lanczos, power_iteration, top_eigenpairs
from equilib.curvature._checks import random_vectors

OUTLIERS = (50.0, 40.0, 30.0, 25.0, 20.0, -35.0, -12.0)


def spiked(dim=300, outliers=OUTLIERS, seed=0):
    """A random symmetric matrix: a bulk uniform in [-1, 1] and the given outliers, with its dense spectrum."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    bulk = 2.0 * torch.rand(dim - len(outliers), generator=generator, dtype=torch.float64) - 1.0
    spectrum = torch.cat([torch.tensor(outliers, dtype=torch.float64), bulk])
    matrix = basis @ torch.diag(spectrum) @ basis.T
    matrix = (matrix + matrix.T) / 2
    values, vectors = torch.linalg.eigh(matrix)
    return DenseOperator(matrix), values, vectors


def low_rank(dim=300, seed=1):
    """``U diag(3, 2, 1) U^T`` with orthonormal ``U``: rank 3, a 297-fold zero eigenvalue."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(dim, 3, generator=generator, dtype=torch.float64))
    matrix = u @ torch.diag(torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)) @ u.T
    return DenseOperator((matrix + matrix.T) / 2)


def assert_vectors_match(found, reference, atol):
    """Columns equal up to sign."""
    signs = torch.sign((found * reference).sum(0))
    assert torch.allclose(found * signs, reference, atol=atol, rtol=0)


def true_residuals(op, pairs):
    vectors = pairs.eigenvectors
    return torch.linalg.vector_norm(op.matmat(vectors) - vectors * pairs.eigenvalues, dim=0)


@pytest.mark.parametrize("which, order", [("largest", [-1, -2, -3, -4, -5]), ("smallest", [0, 1]),
                                          ("magnitude", [-1, -2, 0])])
def test_top_eigenpairs_match_dense(which, order):
    op, values, vectors = spiked()
    k = len(order)
    pairs = top_eigenpairs(op, k=k, which=which, tol=1e-10, generator=torch.Generator().manual_seed(2))
    expected = values[order]
    assert pairs.eigenvalues.dtype == torch.float64 and pairs.eigenvectors.shape == (300, k)
    assert torch.allclose(pairs.eigenvalues, expected, rtol=1e-8, atol=0)
    assert_vectors_match(pairs.eigenvectors, vectors[:, order], atol=1e-6)
    assert bool(pairs.converged.all())
    assert bool((pairs.residuals <= 1e-10 * expected.abs() + 1e-12).all())
    assert torch.allclose(true_residuals(op, pairs), pairs.residuals, atol=1e-9, rtol=0)  # the estimate is the norm
    assert pairs.matvecs < 120  # Krylov: far fewer products than dim


def test_lanczos_tridiagonal_is_the_projection_and_quadrature_is_exact():
    op, values, _ = spiked(dim=80)
    start = random_vectors(op, 1, "rademacher", torch.Generator().manual_seed(3))[:, 0]
    run = lanczos(op, steps=12, start=start, keep_basis=True)
    q = run.basis
    assert run.matvecs == 12 and not run.invariant and run.alphas.shape == (12,) and run.betas.shape == (11,)
    assert torch.allclose(q.T @ q, torch.eye(12, dtype=torch.float64), atol=1e-13, rtol=0)
    assert torch.allclose(q.T @ op.matrix @ q, run.tridiagonal(), atol=1e-11, rtol=0)
    nodes, weights = run.quadrature()
    assert abs(float(weights.sum()) - 1.0) < 1e-13
    unit = start / start.norm()
    for power in range(2 * 12):  # Gauss quadrature is exact up to degree 2m - 1
        exact = unit @ torch.linalg.matrix_power(op.matrix, power) @ unit
        assert abs(float((weights * nodes**power).sum() - exact)) <= 1e-10 * max(1.0, 50.0**power)


def test_lanczos_stops_on_an_invariant_subspace():
    op = low_rank()
    run = lanczos(op, steps=50, generator=torch.Generator().manual_seed(4), keep_basis=True)
    assert run.invariant and run.matvecs == 4 and run.residual == 0.0  # the range (3) and the start's null part
    nodes, _ = run.quadrature()
    assert torch.allclose(nodes[1:], torch.linalg.eigvalsh(op.matrix)[-3:], rtol=1e-10)
    assert abs(float(nodes[0])) < 1e-10
    assert lanczos(op, steps=50, keep_basis=False, generator=torch.Generator().manual_seed(4)).basis is None


def test_top_eigenpairs_on_a_low_rank_matrix_restarts_for_repeated_eigenvalues():
    op = low_rank()
    values = torch.linalg.eigvalsh(op.matrix)
    top = top_eigenpairs(op, k=3, tol=1e-12, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(top.eigenvalues, values.flip(0)[:3], rtol=1e-10)
    assert top.matvecs <= 6
    # a random start meets the 297-fold zero once; the restarted blocks find the other copies
    bottom = top_eigenpairs(op, k=3, which="smallest", generator=torch.Generator().manual_seed(5))
    assert bool((bottom.eigenvalues.abs() < 1e-10).all()) and bool(bottom.converged.all())
    q = bottom.eigenvectors
    assert torch.allclose(q.T @ q, torch.eye(3, dtype=torch.float64), atol=1e-12, rtol=0)


def test_steps_beyond_dim_give_the_exact_spectrum():
    op, values, _ = spiked(dim=20, outliers=(9.0, -7.0))
    pairs = top_eigenpairs(op, k=20, which="smallest", generator=torch.Generator().manual_seed(6))
    assert pairs.matvecs == 20
    assert torch.allclose(pairs.eigenvalues, values, atol=1e-12, rtol=0)


def test_float32_operator_gives_float64_ritz_values():
    op64, values, _ = spiked(dim=100)
    op = DenseOperator(op64.matrix.float())
    pairs = top_eigenpairs(op, k=2, tol=1e-5, generator=torch.Generator().manual_seed(7))
    assert pairs.eigenvalues.dtype == torch.float64 and pairs.eigenvectors.dtype == torch.float32
    assert torch.allclose(pairs.eigenvalues, values.flip(0)[:2], rtol=1e-5)


def test_power_iteration_top3_with_deflation():
    op, values, vectors = spiked(outliers=(50.0, 40.0, 30.0, 25.0, 20.0))
    pairs = power_iteration(op, k=3, tol=1e-10, generator=torch.Generator().manual_seed(8))
    assert torch.allclose(pairs.eigenvalues, values.flip(0)[:3], rtol=1e-6, atol=0)
    assert_vectors_match(pairs.eigenvectors, vectors.flip(1)[:, :3], atol=1e-3)
    assert bool(pairs.converged.all())
    assert torch.allclose(true_residuals(op, pairs), pairs.residuals, atol=1e-9, rtol=0)
    warm = power_iteration(op, k=3, tol=1e-10, start=pairs.eigenvectors)  # warm start: a few products per pair
    assert torch.allclose(warm.eigenvalues, pairs.eigenvalues, rtol=1e-8) and warm.matvecs < pairs.matvecs / 4


def test_lanczos_needs_fewer_products_than_power_iteration():
    op, values, _ = spiked(outliers=(50.0, 40.0, 30.0, 25.0, 20.0))
    expected = values.flip(0)[:3]
    power = power_iteration(op, k=3, tol=1e-10, generator=torch.Generator().manual_seed(9))
    krylov = top_eigenpairs(op, k=3, tol=1e-6, generator=torch.Generator().manual_seed(9))
    for pairs in (power, krylov):
        assert torch.allclose(pairs.eigenvalues, expected, rtol=1e-6, atol=0)
    assert 3 * krylov.matvecs < power.matvecs
    same_tol = power_iteration(op, k=3, tol=1e-6, generator=torch.Generator().manual_seed(9))
    assert 3 * krylov.matvecs < same_tol.matvecs  # and power iteration at tol 1e-6 is only ~1e-6 accurate


def test_errors():
    op, _, _ = spiked(dim=10, outliers=(5.0,))
    with pytest.raises(TypeError, match="op: expected a CurvatureOperator, got Tensor"):
        top_eigenpairs(op.matrix)
    with pytest.raises(ValueError, match="k: expected an int >= 1, got 0"):
        top_eigenpairs(op, k=0)
    with pytest.raises(ValueError, match="k: expected at most dim=10 eigenpairs, got 11"):
        power_iteration(op, k=11)
    with pytest.raises(ValueError, match="which: expected one of"):
        top_eigenpairs(op, which="top")
    with pytest.raises(ValueError, match="tol: expected a finite number > 0, got 0"):
        top_eigenpairs(op, tol=0)
    with pytest.raises(ValueError, match="max_steps: expected at least k=3, got 2"):
        top_eigenpairs(op, k=3, max_steps=2)
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        lanczos(op, steps=0)
    with pytest.raises(ValueError, match=r"start: expected a \(dim,\) tensor with dim=10, got \(9,\)"):
        lanczos(op, steps=3, start=torch.ones(9, dtype=torch.float64))
    with pytest.raises(ValueError, match="start: expected a nonzero finite vector"):
        lanczos(op, steps=3, start=torch.zeros(10, dtype=torch.float64))
    with pytest.raises(TypeError, match="generator: expected a torch.Generator or None, got int"):
        lanczos(op, steps=3, generator=0)
    with pytest.raises(ValueError, match=r"start: expected a \(10, 2\) tensor"):
        power_iteration(op, k=2, start=torch.ones(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="start: expected nonzero finite columns"):
        power_iteration(op, k=1, start=torch.zeros(10, dtype=torch.float64))
    with pytest.raises(ValueError, match="max_iters: expected an int >= 1, got 0"):
        power_iteration(op, max_iters=0)
    with pytest.raises(ValueError, match="distribution: expected one of"):
        random_vectors(op, 1, "uniform", None)

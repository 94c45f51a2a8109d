"""Hutchinson, Hutch++, per-block traces and the Frobenius norm against dense float64 traces."""

import math

import pytest
import torch

from equilib.curvature import DenseOperator, block_traces, frobenius_norm, hutchinson, hutchpp

BLOCKS = {"a": slice(0, 10), "b": slice(10, 40), "c": slice(40, 60)}


def symmetric(dim=60, seed=0, shift=1.0):
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
    return (a + a.T) / 2 + shift * torch.eye(dim, dtype=torch.float64)


def low_rank_plus_noise(dim=200, rank=10, seed=1):
    """PSD: ``rank`` large decaying eigenvalues (100 ... 10) plus a small PSD bulk."""
    generator = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(dim, rank, generator=generator, dtype=torch.float64))
    top = torch.logspace(2, 1, rank, dtype=torch.float64)
    w = torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim
    matrix = u @ torch.diag(top) @ u.T + 0.1 * w @ w.T
    return (matrix + matrix.T) / 2


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def assert_unbiased(estimates, truth):
    """The mean over seeds is within 3 standard errors of the truth."""
    estimates = torch.tensor(estimates, dtype=torch.float64)
    stderr = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(float(estimates.mean()) - truth) < 3 * stderr, (float(estimates.mean()), truth, stderr)


def test_hutchinson_is_exact_for_a_diagonal_matrix():
    diagonal = torch.linspace(-3.0, 5.0, 40, dtype=torch.float64)
    result = hutchinson(DenseOperator(torch.diag(diagonal)), probes=5, generator=seeded(0))
    assert result.value == pytest.approx(float(diagonal.sum()), abs=1e-12)
    assert result.stderr == pytest.approx(0.0, abs=1e-12) and result.matvecs == 5


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_is_unbiased_and_its_stderr_matches_the_spread(distribution):
    matrix = symmetric()
    op = DenseOperator(matrix)
    runs = [hutchinson(op, probes=10, distribution=distribution, generator=seeded(s)) for s in range(300)]
    truth = float(torch.trace(matrix))
    assert_unbiased([r.value for r in runs], truth)
    spread = float(torch.tensor([r.value for r in runs]).std())
    reported = float(torch.tensor([r.stderr for r in runs]).pow(2).mean().sqrt())
    assert reported == pytest.approx(spread, rel=0.2)
    # the variance of v^T A v: 2 (||A||_F^2 - sum A_ii^2) for Rademacher, 2 ||A||_F^2 for Gaussian
    frobenius2 = float((matrix**2).sum())
    variance = 2 * (frobenius2 - float((matrix.diagonal() ** 2).sum())) if distribution == "rademacher" \
        else 2 * frobenius2
    assert spread == pytest.approx(math.sqrt(variance / 10), rel=0.2)


def test_hutchpp_is_unbiased():
    matrix = low_rank_plus_noise()
    op = DenseOperator(matrix)
    runs = [hutchpp(op, matvecs=15, generator=seeded(s)) for s in range(200)]
    assert_unbiased([r.value for r in runs], float(torch.trace(matrix)))
    assert all(r.matvecs == 15 and r.stderr > 0 for r in runs)


def test_hutchpp_beats_hutchinson_at_equal_budget():
    matrix = low_rank_plus_noise()
    op = DenseOperator(matrix)
    truth = float(torch.trace(matrix))
    plain = [abs(hutchinson(op, probes=30, generator=seeded(s)).value - truth) for s in range(50)]
    sketched = [abs(hutchpp(op, matvecs=30, generator=seeded(s)).value - truth) for s in range(50)]
    mean_plain, mean_sketched = sum(plain) / 50, sum(sketched) / 50
    assert mean_sketched < mean_plain / 10, (mean_sketched, mean_plain)


def test_hutchpp_is_exact_when_the_sketch_spans_the_range():
    generator = seeded(2)
    factor = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    matrix = factor @ factor.T  # rank 4 < n = 5 sketch columns
    result = hutchpp(DenseOperator((matrix + matrix.T) / 2), matvecs=15, generator=seeded(3))
    assert result.value == pytest.approx(float(torch.trace(matrix)), rel=1e-12)
    assert result.stderr < 1e-10


def test_block_traces_match_the_dense_blocks():
    matrix = symmetric()
    result = block_traces(DenseOperator(matrix, blocks=BLOCKS), probes=400, generator=seeded(4))
    assert list(result.blocks) == ["a", "b", "c"] and result.matvecs == 400
    for name, part in BLOCKS.items():
        block = result.blocks[name]
        truth = float(torch.trace(matrix[part, part]))
        assert abs(block.trace - truth) < 3 * block.stderr, (name, block, truth)
        assert block.size == part.stop - part.start and block.average == pytest.approx(block.trace / block.size)
    total = sum(block.trace for block in result.blocks.values())
    same_probes = hutchinson(DenseOperator(matrix), probes=400, generator=seeded(4))
    assert total == pytest.approx(same_probes.value, rel=1e-12)  # the blocks split each probe's v^T A v


def test_block_traces_are_exact_for_a_diagonal_matrix():
    diagonal = torch.arange(1.0, 61.0, dtype=torch.float64)
    result = block_traces(DenseOperator(torch.diag(diagonal), blocks=BLOCKS), probes=3, generator=seeded(5))
    for name, part in BLOCKS.items():
        assert result.blocks[name].trace == pytest.approx(float(diagonal[part].sum()), abs=1e-12)
        assert result.blocks[name].average == pytest.approx(float(diagonal[part].mean()), abs=1e-12)
        assert result.blocks[name].stderr == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_frobenius_norm(distribution):
    matrix = symmetric()
    op = DenseOperator(matrix)
    truth = float(torch.linalg.matrix_norm(matrix))
    single = frobenius_norm(op, probes=200, distribution=distribution, generator=seeded(6))
    assert abs(single.value - truth) < 3 * single.stderr
    squares = [frobenius_norm(op, probes=5, distribution=distribution, generator=seeded(s)).value ** 2
               for s in range(200)]
    assert_unbiased(squares, truth**2)  # the squared norm is the unbiased quantity


def test_float32_operator_uses_the_same_probes():
    matrix = symmetric()
    single = hutchinson(DenseOperator(matrix.float()), probes=50, generator=seeded(7))
    double = hutchinson(DenseOperator(matrix), probes=50, generator=seeded(7))
    assert single.value == pytest.approx(double.value, rel=1e-5)


def test_one_probe_has_no_standard_error():
    result = hutchinson(DenseOperator(symmetric()), probes=1, generator=seeded(8))
    assert math.isnan(result.stderr) and result.matvecs == 1


def test_errors():
    op = DenseOperator(symmetric())
    with pytest.raises(TypeError, match="op: expected a CurvatureOperator, got Tensor"):
        hutchinson(op.matrix, probes=3)
    with pytest.raises(TypeError, match="op: expected a CurvatureOperator, got Tensor"):
        block_traces(op.matrix, probes=3)
    with pytest.raises(ValueError, match="probes: expected an int >= 1, got 0"):
        frobenius_norm(op, probes=0)
    with pytest.raises(ValueError, match="matvecs: expected a multiple of 3"):
        hutchpp(op, matvecs=10)
    with pytest.raises(ValueError, match="matvecs: expected an int >= 1, got 1.5"):
        hutchpp(op, matvecs=1.5)
    with pytest.raises(ValueError, match="distribution: expected one of"):
        hutchinson(op, probes=3, distribution="normal")
    with pytest.raises(TypeError, match="generator: expected a torch.Generator or None"):
        block_traces(op, probes=3, generator=1)

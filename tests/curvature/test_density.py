"""Stochastic Lanczos quadrature against dense float64 spectra: weights, traces of functions, exact nodes, smoothing."""

import math

import pytest
import torch

from equilib.curvature import DenseOperator, plot_density, smooth, spectral_density, trace_of_function
from equilib.curvature._checks import random_vectors


def spiked(dim=200, seed=0):
    """Bulk in [0, 1] plus outliers 10, 20, 40: positive definite, with its dense spectrum."""
    generator = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    spectrum = torch.cat([torch.tensor([40.0, 20.0, 10.0], dtype=torch.float64),
                          0.05 + torch.rand(dim - 3, generator=generator, dtype=torch.float64)])
    matrix = basis @ torch.diag(spectrum) @ basis.T
    return DenseOperator((matrix + matrix.T) / 2), torch.sort(spectrum).values


def seeded(seed):
    return torch.Generator().manual_seed(seed)


def test_weights_sum_to_one_and_outliers_are_nodes():
    op, spectrum = spiked()
    result = spectral_density(op, steps=30, probes=5, generator=seeded(0))
    assert len(result.nodes) == len(result.weights) == 5 and result.dim == 200 and result.matvecs == 150
    for nodes, weights in zip(result.nodes, result.weights):
        assert nodes.shape == weights.shape == (30,) and nodes.dtype == torch.float64
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
        assert bool((weights >= 0).all())
        assert torch.allclose(nodes[-3:], spectrum[-3:], rtol=1e-10)  # converged outliers, once each (reorth)
        assert float(nodes[0]) >= float(spectrum[0]) - 1e-10 and float(nodes[-1]) <= float(spectrum[-1]) + 1e-10


@pytest.mark.parametrize("power", [1, 2])
def test_traces_of_functions(power):
    op, spectrum = spiked()
    result = spectral_density(op, steps=20, probes=40, generator=seeded(1))
    estimate = trace_of_function(result, lambda x: x**power)
    truth = float((spectrum**power).sum())
    assert abs(estimate.value - truth) < 3 * estimate.stderr, (estimate, truth)
    assert estimate.matvecs == 800


@pytest.mark.parametrize("power", [1, 9])
def test_each_probe_is_exact_below_degree_2m(power):
    op, _ = spiked()
    result = spectral_density(op, steps=5, probes=4, generator=seeded(2))
    generator = seeded(2)  # the same Rademacher starts, drawn one per probe
    starts = [random_vectors(op, 1, "rademacher", generator)[:, 0] for _ in range(4)]
    for v, nodes, weights in zip(starts, result.nodes, result.weights):
        exact = v @ torch.linalg.matrix_power(op.matrix, power) @ v  # v^T A^p v, p <= 2m - 1
        assert float(op.dim * (weights * nodes**power).sum()) == pytest.approx(float(exact), rel=1e-9)


def test_log_determinant():
    op, spectrum = spiked()
    result = spectral_density(op, steps=30, probes=30, generator=seeded(3))
    estimate = trace_of_function(result, torch.log)
    assert abs(estimate.value - float(spectrum.log().sum())) < 3 * estimate.stderr


def test_steps_at_dim_give_the_exact_eigenvalues():
    op, spectrum = spiked(dim=25)
    result = spectral_density(op, steps=40, probes=2, generator=seeded(4))
    for nodes, weights in zip(result.nodes, result.weights):
        assert torch.allclose(nodes, spectrum, atol=1e-10, rtol=0)
        assert float(weights.sum()) == pytest.approx(1.0, abs=1e-12)
    assert result.matvecs == 50


def test_invariant_subspace_stops_early():
    diagonal = torch.tensor([2.0] * 10 + [7.0] * 5, dtype=torch.float64)  # two distinct eigenvalues
    result = spectral_density(DenseOperator(torch.diag(diagonal)), steps=10, probes=3, generator=seeded(5))
    assert result.matvecs == 6
    for nodes, weights in zip(result.nodes, result.weights):
        assert torch.allclose(nodes, torch.tensor([2.0, 7.0], dtype=torch.float64), atol=1e-12)
        assert torch.allclose(weights, torch.tensor([10 / 15, 5 / 15], dtype=torch.float64), atol=1e-12)
    assert trace_of_function(result, torch.exp).value == pytest.approx(float(diagonal.exp().sum()), rel=1e-12)


def test_smoothed_density_integrates_to_one():
    op, _ = spiked()
    result = spectral_density(op, steps=30, probes=4, generator=seeded(6))
    grid = torch.linspace(-5.0, 50.0, 40001, dtype=torch.float64)
    for sigma in (0.05, 0.5):
        density = smooth(result.nodes, result.weights, grid, sigma)
        assert density.shape == grid.shape and bool((density >= 0).all())
        assert float(torch.trapezoid(density, grid)) == pytest.approx(1.0, abs=1e-8)
    one = smooth(result.nodes[0], result.weights[0], grid, 0.5)  # a single probe's tensors
    assert float(torch.trapezoid(one, grid)) == pytest.approx(1.0, abs=1e-8)


def test_smoothed_density_of_a_known_spectrum():
    nodes = torch.tensor([0.0, 3.0], dtype=torch.float64)
    weights = torch.tensor([0.25, 0.75], dtype=torch.float64)
    grid = torch.tensor([0.0, 3.0], dtype=torch.float64)
    density = smooth(nodes, weights, grid, sigma=0.1)
    peak = 1 / (0.1 * math.sqrt(2 * math.pi))
    assert torch.allclose(density, torch.tensor([0.25 * peak, 0.75 * peak], dtype=torch.float64), rtol=1e-12)


@pytest.mark.parametrize("log_scale", [True, False])
def test_plot_density_writes_a_png(tmp_path, log_scale):
    op, _ = spiked(dim=60)
    result = spectral_density(op, steps=15, probes=2, generator=seeded(7))
    path = plot_density(result, tmp_path / "density.png", log_scale=log_scale, points=500)
    assert path == tmp_path / "density.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["density.png"]


def test_errors(tmp_path):
    op, _ = spiked(dim=10)
    with pytest.raises(TypeError, match="op: expected a CurvatureOperator, got Tensor"):
        spectral_density(op.matrix, steps=3, probes=1)
    with pytest.raises(ValueError, match="steps: expected an int >= 1, got 0"):
        spectral_density(op, steps=0, probes=1)
    with pytest.raises(ValueError, match="probes: expected an int >= 1, got 0"):
        spectral_density(op, steps=3, probes=0)
    result = spectral_density(op, steps=3, probes=1, generator=seeded(8))
    assert math.isnan(trace_of_function(result, lambda x: x).stderr)
    with pytest.raises(TypeError, match="result: expected a SpectralDensity, got tuple"):
        trace_of_function(tuple(result), lambda x: x)
    with pytest.raises(ValueError, match="f: expected one value per node"):
        trace_of_function(result, lambda x: x.sum())
    grid = torch.linspace(0.0, 1.0, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="sigma: expected a finite number > 0, got 0.0"):
        smooth(result.nodes, result.weights, grid, 0.0)
    with pytest.raises(ValueError, match="grid: expected a 1-D tensor"):
        smooth(result.nodes, result.weights, grid[None], 0.1)
    with pytest.raises(ValueError, match="nodes, weights: expected matching 1-D tensors"):
        smooth(result.nodes, result.weights + result.weights, grid, 0.1)
    with pytest.raises(ValueError, match="points: expected at least 2, got 1"):
        plot_density(result, tmp_path / "x.png", points=1)

"""Stochastic Lanczos quadrature (SLQ): the spectral density of an operator and traces of functions of it.

For a unit start ``q = v / ||v||`` the spectral measure ``mu_q = sum_i (u_i^T q)^2 delta(lambda_i)`` has
``q^T f(A) q = integral f d mu_q``; ``m`` Lanczos steps from ``q`` give its Gauss quadrature: nodes ``theta_k`` (the
eigenvalues of ``T_m``) and weights ``tau_k = (e_1^T y_k)^2`` (Golub & Welsch 1969), exact for polynomials of degree up
to ``2m - 1``. With Rademacher ``v`` (``||v||^2 = dim`` exactly) ``E[v^T f(A) v] = tr f(A)``, so averaging over
``probes`` starts gives ``tr f(A) ~ (dim / probes) sum_l sum_k tau_k^(l) f(theta_k^(l))`` and the density
``phi(t) ~ (1 / probes) sum_l sum_k tau_k^(l) delta(t - theta_k^(l))`` (Ubaru, Chen & Saad, SIMAX 2017; Lin, Saad &
Yang, SIAM Review 2016). :func:`spectral_density` returns these raw nodes and weights; smoothing is a separate,
explicit step (:func:`smooth`, a Gaussian kernel of width ``sigma``), since libraries differ in their kernels and
their densities are only comparable at the same ``sigma``.

Lanczos runs with full reorthogonalisation (:func:`~equilib.curvature._lanczos.lanczos`), so converged outliers
appear once, not as ghost copies.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ..utils import atomic_savefig
from ._base import CurvatureOperator
from ._checks import check_count, check_generator, check_operator, check_positive, random_vectors
from ._lanczos import lanczos
from ._trace import Estimate


class SpectralDensity(NamedTuple):
    """Gauss quadratures of the spectral measure, one per random start.

    Attributes:
        nodes: Per probe, the ``(m,)`` float64 ascending nodes (Ritz values); ``m`` is ``steps``, or fewer where
            the Krylov space was invariant.
        weights: Per probe, the ``(m,)`` float64 weights, summing to 1.
        dim: The operator's dimension (the scale of trace estimates).
        matvecs: Number of operator products used.
    """

    nodes: tuple[torch.Tensor, ...]
    weights: tuple[torch.Tensor, ...]
    dim: int
    matvecs: int


def spectral_density(op: CurvatureOperator, steps: int, probes: int,
                     generator: torch.Generator | None = None) -> SpectralDensity:
    """Stochastic Lanczos quadrature: ``steps`` Lanczos steps from each of ``probes`` Rademacher starts.

    Args:
        op: The symmetric operator.
        steps: Lanczos steps per probe, at least 1 (more than ``op.dim`` runs ``op.dim``; at ``op.dim`` the nodes
            are the eigenvalues). The basis of one probe (``steps`` vectors) is held at a time.
        probes: Number of random starts, at least 1.
        generator: Random source of the starts.

    Returns:
        The raw nodes and weights, see :class:`SpectralDensity`.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``steps`` or ``probes`` is not a positive int.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 1.0, 5.0], dtype=torch.float64)))
        >>> result = spectral_density(op, steps=3, probes=2, generator=torch.Generator().manual_seed(0))
        >>> [[round(x, 10) for x in nodes.tolist()] for nodes in result.nodes]  # the double 1.0 is one node
        [[1.0, 5.0], [1.0, 5.0]]
        >>> [[round(w, 10) for w in weights.tolist()] for weights in result.weights]
        [[0.6666666667, 0.3333333333], [0.6666666667, 0.3333333333]]
    """
    check_operator(op)
    check_count(steps, "steps")
    check_count(probes, "probes")
    check_generator(generator)
    nodes, weights, matvecs = [], [], 0
    for _ in range(probes):
        run = lanczos(op, steps, start=random_vectors(op, 1, "rademacher", generator)[:, 0])
        theta, tau = run.quadrature()
        nodes.append(theta)
        weights.append(tau)
        matvecs += run.matvecs
    return SpectralDensity(tuple(nodes), tuple(weights), op.dim, matvecs)


def trace_of_function(result: SpectralDensity, f: Callable[[torch.Tensor], torch.Tensor]) -> Estimate:
    """The SLQ estimate of ``tr f(A)``: ``dim sum_k tau_k f(theta_k)`` averaged over the probes.

    Each probe's value is an unbiased Hutchinson sample of ``tr f(A)`` up to the quadrature error (none for
    polynomials of degree below ``2m``), so the standard error is that of the probes' values.

    Args:
        result: A :func:`spectral_density` result.
        f: Applied to a float64 tensor of nodes, returning one value per node (e.g. ``lambda x: x`` for the trace,
            ``lambda x: x**2`` for ``||A||_F^2``, ``torch.log`` for the log-determinant of a positive definite
            ``A``).

    Returns:
        :class:`~equilib.curvature._trace.Estimate` of ``tr f(A)`` (NaN standard error from one probe), with the
        products ``result`` used.

    Raises:
        TypeError: If ``result`` is not a :class:`SpectralDensity`.
        ValueError: If ``f`` does not return one value per node.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
        >>> result = spectral_density(op, steps=3, probes=2, generator=torch.Generator().manual_seed(0))
        >>> round(trace_of_function(result, lambda x: x**2).value, 10)  # 1 + 4 + 9: exact for a diagonal
        14.0
    """
    if not isinstance(result, SpectralDensity):
        raise TypeError(f"result: expected a SpectralDensity, got {type(result).__name__}")
    samples = []
    for nodes, weights in zip(result.nodes, result.weights):
        values = torch.as_tensor(f(nodes), dtype=torch.float64)
        if values.shape != nodes.shape:
            raise ValueError(f"f: expected one value per node, shape {tuple(nodes.shape)}, got {tuple(values.shape)}")
        samples.append(result.dim * float((weights * values).sum()))
    samples = torch.tensor(samples, dtype=torch.float64)
    stderr = float(samples.std()) / math.sqrt(len(samples)) if len(samples) > 1 else math.nan
    return Estimate(float(samples.mean()), stderr, result.matvecs)


def smooth(nodes: torch.Tensor | Sequence[torch.Tensor], weights: torch.Tensor | Sequence[torch.Tensor],
           grid: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Gaussian-kernel density ``(1/P) sum_l sum_k tau_k^(l) N(t; theta_k^(l), sigma^2)`` on a grid.

    Each probe's weights sum to 1, so the density integrates to 1 over a grid that extends a few ``sigma`` beyond
    the nodes. ``sigma`` sets what is resolved: PyHessian and google/spectral-density use a variance of
    ``1e-5 max(1, lambda_max - lambda_min)``.

    Args:
        nodes: The ``P`` probes' nodes (a sequence of 1-D tensors, as in :class:`SpectralDensity`), or one probe's.
        weights: The matching weights.
        grid: 1-D points ``t`` to evaluate at.
        sigma: The kernel's standard deviation, positive.

    Returns:
        ``(len(grid),)`` float64 density.

    Raises:
        ValueError: If ``sigma`` is not positive, ``grid`` is not 1-D, or nodes and weights do not pair up.

    Examples:
        >>> import torch
        >>> grid = torch.linspace(-10.0, 10.0, 2001, dtype=torch.float64)
        >>> density = smooth(torch.tensor([0.0, 2.0]), torch.tensor([0.5, 0.5]), grid, sigma=0.5)
        >>> round(float(torch.trapezoid(density, grid)), 8)
        1.0
    """
    check_positive(sigma, "sigma")
    if not isinstance(grid, torch.Tensor) or grid.dim() != 1:
        raise ValueError(f"grid: expected a 1-D tensor, got {getattr(grid, 'shape', type(grid).__name__)}")
    if isinstance(nodes, torch.Tensor):
        nodes, weights = [nodes], [weights]
    if len(nodes) == 0 or len(nodes) != len(weights) or any(
            torch.as_tensor(n).shape != torch.as_tensor(w).shape or torch.as_tensor(n).dim() != 1
            for n, w in zip(nodes, weights)):
        raise ValueError("nodes, weights: expected matching 1-D tensors, one pair per probe")
    grid = grid.to(torch.float64)
    density = torch.zeros_like(grid)
    for theta, tau in zip(nodes, weights):
        theta, tau = torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(tau, dtype=torch.float64)
        z = (grid[:, None] - theta[None, :]) / sigma
        density += (torch.exp(-0.5 * z**2) * tau).sum(1)
    return density / (len(nodes) * sigma * math.sqrt(2 * math.pi))


def plot_density(result: SpectralDensity, path: str | os.PathLike, sigma: float | None = None,
                 log_scale: bool = True, points: int = 10000) -> Path:
    """Draws the smoothed spectral density to a PNG file (matplotlib's Agg canvas; written atomically).

    The grid spans the nodes plus 5% and ``5 sigma`` on each side; with ``log_scale`` the density axis is
    logarithmic (down to ``1e-8`` of its peak), so the bulk and the weak outliers show on one plot. The nodes are
    marked along the bottom.

    Args:
        result: A :func:`spectral_density` result.
        path: The PNG file to write; its directory must exist.
        sigma: Kernel width; None uses PyHessian's ``sqrt(1e-5 max(1, lambda_max - lambda_min))``.
        log_scale: Whether the density axis is logarithmic.
        points: Grid points, at least 2.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        TypeError: If ``result`` is not a :class:`SpectralDensity`.
        ValueError: If ``sigma`` is not positive or ``points`` is below 2.
    """
    if not isinstance(result, SpectralDensity):
        raise TypeError(f"result: expected a SpectralDensity, got {type(result).__name__}")
    check_count(points, "points")
    if points < 2:
        raise ValueError(f"points: expected at least 2, got {points}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    every = torch.cat(result.nodes)
    low, high = float(every.min()), float(every.max())
    sigma = math.sqrt(1e-5 * max(1.0, high - low)) if sigma is None else sigma
    check_positive(sigma, "sigma")
    pad = 0.05 * (high - low) + 5 * sigma
    grid = torch.linspace(low - pad, high + pad, points, dtype=torch.float64)
    density = smooth(result.nodes, result.weights, grid, sigma)
    figure = Figure(figsize=(6.0, 3.6))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    floor = 1e-8 * float(density.max()) if log_scale else 0.0
    ax.plot(grid.numpy(), density.clamp(min=floor).numpy(), linewidth=1.0)
    ax.plot(every.numpy(), [floor if log_scale else 0.0] * len(every), "|", color="gray", markersize=8)
    ax.set(xlabel="eigenvalue", ylabel="density", yscale="log" if log_scale else "linear",
           title=f"SLQ: {len(result.nodes)} probes, {result.matvecs} products, sigma {sigma:.3g}")
    figure.tight_layout()
    return atomic_savefig(figure, path)

"""Randomised trace estimators from operator products: Hutchinson, Hutch++, per-block traces, the Frobenius norm.

For random ``v`` with ``E[v v^T] = I`` (Rademacher signs or standard normal entries), ``E[v^T A v] = tr(A)``
(Hutchinson 1989); for symmetric ``A`` the variance is ``2 (||A||_F^2 - sum_i A_ii^2)`` with Rademacher probes (exact
for a diagonal ``A``) and ``2 ||A||_F^2`` with Gaussian ones, so ``O(1/eps^2)`` products reach relative error
``eps``. Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021, arXiv:2010.09649, Algorithm 1) spends a third of its
budget on a sketch ``Q = orth(A S)``, a third on ``tr(Q^T A Q)`` exactly, and a third on Hutchinson for the deflated
rest ``(I - Q Q^T) A (I - Q Q^T)``: ``O(1/eps)`` products for positive semi-definite ``A``, and a large gain when the
spectrum decays (outliers above a bulk). The same probes give every block's trace at once, ``E[v_b^T (A v)_b] =
tr(A_bb)`` (the per-layer Hessian traces of HAWQ-V2, Dong et al., NeurIPS 2020, whose sensitivity is
``tr(A_bb) / n_b``), and ``E[||A v||^2] = tr(A^T A) = ||A||_F^2``.

Standard errors are the sample standard deviation of the per-probe values over ``sqrt(probes)`` (NaN from a single
probe). Probes are multiplied in blocks of :data:`CHUNK` columns through ``matmat``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ._base import CurvatureOperator
from ._checks import check_count, check_generator, check_operator, random_vectors

CHUNK = 32  # probes per matmat


class Estimate(NamedTuple):
    """A randomised estimate.

    Attributes:
        value: The estimate.
        stderr: Its standard error (NaN from a single probe).
        matvecs: Number of operator products used.
    """

    value: float
    stderr: float
    matvecs: int


class BlockTrace(NamedTuple):
    """The trace of one diagonal block ``A_bb``.

    Attributes:
        trace: Estimate of ``tr(A_bb)``.
        stderr: Its standard error.
        size: ``n_b``, the block's length.
        average: ``tr(A_bb) / n_b``, the block's mean eigenvalue (HAWQ-V2's sensitivity).
    """

    trace: float
    stderr: float
    size: int
    average: float


class BlockTraces(NamedTuple):
    """Per-block traces from shared probes.

    Attributes:
        blocks: ``{name: BlockTrace}`` for each block of ``op.blocks``, in order.
        matvecs: Number of operator products used (the probes, shared by all blocks).
    """

    blocks: dict[str, BlockTrace]
    matvecs: int


def hutchinson(op: CurvatureOperator, probes: int, distribution: str = "rademacher",
               generator: torch.Generator | None = None) -> Estimate:
    """Hutchinson's estimate of ``tr(A)``: the mean of ``v^T A v`` over random probes.

    Args:
        op: The symmetric operator.
        probes: Number of probes (operator products), at least 1.
        distribution: ``"rademacher"`` (never worse for symmetric ``A``, exact for diagonal ``A``) or
            ``"gaussian"``.
        generator: Random source of the probes.

    Returns:
        :class:`Estimate` of the trace.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``probes`` is not a positive int or ``distribution`` is unknown.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
        >>> hutchinson(op, probes=4, generator=torch.Generator().manual_seed(0))
        Estimate(value=6.0, stderr=0.0, matvecs=4)
    """
    samples = _probe(op, probes, distribution, generator, lambda v, av: (v * av).sum(0, keepdim=True))
    return Estimate(*_mean_and_stderr(samples[0]), probes)


def hutchpp(op: CurvatureOperator, matvecs: int, distribution: str = "rademacher",
            generator: torch.Generator | None = None) -> Estimate:
    """The Hutch++ estimate of ``tr(A)`` (Meyer, Musco, Musco & Woodruff 2021, Algorithm 1).

    With ``n = matvecs / 3``: random ``S, G`` of ``n`` columns each, ``Q = orth(A S)``, and
    ``tr(Q^T A Q) + (1/n) tr(G^T (I - Q Q^T) A (I - Q Q^T) G)``. The first term is exact given ``Q``; the standard
    error is that of the second (the stochastic part), from its ``n`` per-probe values.

    Args:
        op: The symmetric operator.
        matvecs: Operator products to spend, a multiple of 3 (at least 3; 6 or more for a standard error).
        distribution: Distribution of ``S`` and ``G``: ``"rademacher"`` or ``"gaussian"``.
        generator: Random source of ``S`` and ``G``.

    Returns:
        :class:`Estimate` of the trace.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``matvecs`` is not a positive multiple of 3 or ``distribution`` is unknown.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([100.0, 10.0, 1.0], dtype=torch.float64)))
        >>> estimate = hutchpp(op, matvecs=9, generator=torch.Generator().manual_seed(0))
        >>> round(estimate.value, 8), estimate.matvecs  # the 3-column sketch spans the whole space here
        (111.0, 9)
    """
    check_operator(op)
    check_count(matvecs, "matvecs")
    if matvecs % 3:
        raise ValueError(f"matvecs: expected a multiple of 3 (sketch, its products, residual probes), got {matvecs}")
    check_generator(generator)
    n = matvecs // 3
    sketch = random_vectors(op, n, distribution, generator)
    probes = random_vectors(op, n, distribution, generator)
    q, _ = torch.linalg.qr(_apply(op, sketch))
    exact = float((q.double() * _apply(op, q).double()).sum())
    deflated = probes - q @ (q.T @ probes)
    samples = (deflated.double() * _apply(op, deflated).double()).sum(0)
    mean, stderr = _mean_and_stderr(samples)
    return Estimate(exact + mean, stderr, matvecs)


def block_traces(op: CurvatureOperator, probes: int, distribution: str = "rademacher",
                 generator: torch.Generator | None = None) -> BlockTraces:
    """Hutchinson estimates of the traces of all diagonal blocks ``A_bb`` of ``op.blocks`` from shared probes.

    Each probe ``v`` spans all blocks; ``v_b^T (A v)_b`` is an unbiased sample of ``tr(A_bb)`` for every block
    ``b`` at once (one product per probe, whatever the number of blocks; per-block probes would cost one product
    per block but have lower variance).

    Args:
        op: The symmetric operator, with its ``blocks``.
        probes: Number of probes (operator products), at least 1.
        distribution: ``"rademacher"`` (exact for a diagonal ``A``) or ``"gaussian"``.
        generator: Random source of the probes.

    Returns:
        :class:`BlockTraces`: each block's trace, standard error, size and trace per entry.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``probes`` is not a positive int or ``distribution`` is unknown.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> matrix = torch.diag(torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64))
        >>> op = DenseOperator(matrix, blocks={"w": slice(0, 2), "b": slice(2, 3)})
        >>> result = block_traces(op, probes=3, generator=torch.Generator().manual_seed(0))
        >>> {name: (block.trace, block.average) for name, block in result.blocks.items()}
        {'w': (4.0, 2.0), 'b': (10.0, 10.0)}
    """
    check_operator(op)
    slices = list(op.blocks.values())

    def per_block(v, av):
        return torch.stack([(v[s] * av[s]).sum(0) for s in slices])

    samples = _probe(op, probes, distribution, generator, per_block)
    blocks = {}
    for (name, part), values in zip(op.blocks.items(), samples):
        trace, stderr = _mean_and_stderr(values)
        size = part.stop - part.start
        blocks[name] = BlockTrace(trace, stderr, size, trace / size)
    return BlockTraces(blocks, probes)


def frobenius_norm(op: CurvatureOperator, probes: int, distribution: str = "rademacher",
                   generator: torch.Generator | None = None) -> Estimate:
    """The Frobenius norm ``||A||_F`` from ``E[||A v||^2] = ||A||_F^2``.

    The mean of ``||A v||^2`` is unbiased for ``||A||_F^2``; its square root is returned, with the standard error
    carried over by the delta method (``se(||A||_F^2) / (2 ||A||_F)``).

    Args:
        op: The symmetric operator.
        probes: Number of probes (operator products), at least 1.
        distribution: ``"rademacher"`` or ``"gaussian"``.
        generator: Random source of the probes.

    Returns:
        :class:`Estimate` of ``||A||_F``.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``probes`` is not a positive int or ``distribution`` is unknown.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([3.0, -4.0], dtype=torch.float64)))
        >>> frobenius_norm(op, probes=2, generator=torch.Generator().manual_seed(0))
        Estimate(value=5.0, stderr=0.0, matvecs=2)
    """
    samples = _probe(op, probes, distribution, generator, lambda v, av: (av * av).sum(0, keepdim=True))
    squared, stderr = _mean_and_stderr(samples[0])
    norm = math.sqrt(squared)
    return Estimate(norm, stderr / (2 * norm) if norm > 0 else 0.0, probes)


def _probe(op: CurvatureOperator, probes: int, distribution: str, generator,
           statistic: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """``statistic(V, A V)`` in float64 for ``probes`` random columns ``V``, drawn and multiplied in chunks:
    ``(s, probes)``."""
    check_operator(op)
    check_count(probes, "probes")
    check_generator(generator)
    parts = []
    for first in range(0, probes, CHUNK):
        v = random_vectors(op, min(CHUNK, probes - first), distribution, generator)
        parts.append(statistic(v.double(), op.matmat(v).double()))
    return torch.cat(parts, dim=1).cpu()


def _apply(op: CurvatureOperator, vectors: torch.Tensor) -> torch.Tensor:
    """``A V`` in chunks of :data:`CHUNK` columns."""
    return torch.cat([op.matmat(vectors[:, i:i + CHUNK]) for i in range(0, vectors.shape[1], CHUNK)], dim=1)


def _mean_and_stderr(samples: torch.Tensor) -> tuple[float, float]:
    """The mean of 1-D samples and its standard error (NaN for a single sample)."""
    mean = float(samples.mean())
    if samples.numel() < 2:
        return mean, math.nan
    return mean, float(samples.std()) / math.sqrt(samples.numel())

"""Power iteration with Hotelling deflation: the top eigenpairs by magnitude, the baseline Lanczos is compared with.

Power iteration (von Mises 1929) repeats ``v <- B v / ||B v||``; the Rayleigh quotient ``v^T A v`` converges to the
eigenvalue of largest magnitude at the rate ``(|lambda_2| / |lambda_1|)^(2t)``. Each further pair runs on the
Hotelling-deflated operator ``B = A - sum_i lambda_i u_i u_i^T`` of the pairs already found (Hotelling 1933), applied
through ``A``'s products only. A pair stops when its eigenvalue changes by at most ``tol`` relative to itself between
two iterations, PyHessian's criterion (Yao et al., "PyHessian", 2020); the eigenvalue error is then about ``tol``,
but the vector error about ``sqrt(tol)`` and the deflation carries it into later pairs. Lanczos
(:func:`~equilib.curvature._lanczos.top_eigenpairs`) gets the same pairs from the same Krylov vectors with far fewer
products; this module is the comparison.
"""

from __future__ import annotations

import torch

from ._base import CurvatureOperator
from ._checks import check_count, check_generator, check_operator, check_positive, random_vectors
from ._lanczos import NEGLIGIBLE, Eigenpairs


def power_iteration(op: CurvatureOperator, k: int = 1, tol: float = 1e-6, max_iters: int = 1000,
                    start: torch.Tensor | None = None, generator: torch.Generator | None = None) -> Eigenpairs:
    """The ``k`` eigenpairs of largest magnitude by power iteration with Hotelling deflation.

    Args:
        op: The symmetric operator.
        k: Number of eigenpairs, ``1 <= k <= op.dim``.
        tol: Relative eigenvalue change between iterations at which a pair stops, positive.
        max_iters: Most iterations (operator products) per pair, at least 1.
        start: Warm start: ``(dim, k)`` start vectors, one column per pair (``(dim,)`` when ``k == 1``), e.g. the
            eigenvectors of a previous call; None draws Gaussian ones from ``generator``.
        generator: Random source of the start vectors.

    Returns:
        :class:`~equilib.curvature._lanczos.Eigenpairs` in the order found (descending magnitude when the
        iteration converged): Rayleigh quotients ``theta = v^T A v``, unit vectors ``v``, residuals
        ``||A v - theta v||`` (all of ``A``, from the last product), whether each pair met ``tol``.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``k``, ``tol`` or ``max_iters`` is out of range, or ``start`` has the wrong shape or a zero
            column.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, -4.0, 2.0], dtype=torch.float64)))
        >>> pairs = power_iteration(op, k=2, tol=1e-10, generator=torch.Generator().manual_seed(0))
        >>> [round(x, 6) for x in pairs.eigenvalues.tolist()]
        [-4.0, 2.0]
    """
    check_operator(op)
    check_count(k, "k")
    if k > op.dim:
        raise ValueError(f"k: expected at most dim={op.dim} eigenpairs, got {k}")
    check_positive(tol, "tol")
    check_count(max_iters, "max_iters")
    check_generator(generator)
    starts = _starts(op, k, start, generator)
    values, vectors, residuals, converged = [], [], [], []
    matvecs = 0
    for i in range(k):
        v = starts[:, i]
        found = torch.stack(vectors, dim=1) if vectors else None
        deflation = torch.tensor(values, dtype=op.dtype, device=op.device)
        previous = None
        for _ in range(max_iters):
            product = op.matvec(v)
            matvecs += 1
            theta = float(torch.dot(v, product))
            residual = float(torch.linalg.vector_norm(product - theta * v))
            deflated = product if found is None else product - found @ (deflation * (found.T @ v))
            norm = float(torch.linalg.vector_norm(deflated))
            done = previous is not None and abs(theta - previous) <= tol * abs(theta)
            scale = max(abs(values[0]) if values else 0.0, abs(theta))
            if done or norm <= NEGLIGIBLE * torch.finfo(op.dtype).eps * scale:  # B v = 0: the rest is null
                done = True
                break
            previous, v = theta, deflated / norm
        values.append(theta)
        vectors.append(v)
        residuals.append(residual)
        converged.append(done)
    return Eigenpairs(torch.tensor(values, dtype=torch.float64), torch.stack(vectors, dim=1),
                      torch.tensor(residuals, dtype=torch.float64), torch.tensor(converged), matvecs)


def _starts(op: CurvatureOperator, k: int, start: torch.Tensor | None, generator) -> torch.Tensor:
    """``(dim, k)`` unit start vectors in the operator's dtype and on its device."""
    if start is None:
        start = random_vectors(op, k, "gaussian", generator)
    else:
        shape = (op.dim,) if k == 1 else (op.dim, k)
        if not isinstance(start, torch.Tensor) or tuple(start.shape) not in {shape, (op.dim, k)}:
            got = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
            raise ValueError(f"start: expected a {shape} tensor (dim={op.dim}, k={k}), got {got}")
        start = start.reshape(op.dim, k).to(device=op.device, dtype=op.dtype)
    norms = torch.linalg.vector_norm(start, dim=0)
    if not bool(torch.all(torch.isfinite(norms) & (norms > 0))):
        raise ValueError("start: expected nonzero finite columns")
    return start / norms

"""Lanczos iteration with full reorthogonalisation: tridiagonal projections, Gauss quadrature and extremal Ritz pairs.

From a unit start ``q_1`` the recurrence ``beta_j q_{j+1} = A q_j - alpha_j q_j - beta_{j-1} q_{j-1}`` builds an
orthonormal basis ``Q_m`` of the Krylov space ``span{q_1, A q_1, ..., A^{m-1} q_1}`` with ``A Q_m = Q_m T_m +
beta_m q_{m+1} e_m^T``, ``T_m`` tridiagonal (Lanczos 1950). In floating point the ``q_j`` lose orthogonality as Ritz
values converge (Paige 1976: "ghost" copies of converged eigenvalues); here every new vector is orthogonalised again
against the whole basis, twice with classical Gram-Schmidt ("twice is enough", Giraud, Langou & Rozloznik 2005), so
the basis stays orthonormal to working precision at ``O(dim m)`` memory (Golub & Van Loan, Matrix Computations,
4th ed., sections 10.1-10.3). ``T_m`` is assembled and diagonalised in float64 with ``eigh`` whatever the operator's
dtype. ``T_m = S Theta S^T`` gives the Ritz values ``theta_i``, the Ritz vectors ``Q_m s_i`` with residual norm
``||A y_i - theta_i y_i|| = beta_m |e_m^T s_i|`` (no extra product), and the Gauss quadrature of Golub & Welsch (1969):
nodes ``theta_i``, weights ``(e_1^T s_i)^2``.

A residual ``beta_j`` below ``100 eps ||T||`` (``eps`` of the operator's dtype) marks an invariant subspace: the
Krylov space holds exact eigenpairs and the recurrence stops there (:func:`lanczos`), or, when more eigenpairs are
wanted (:func:`top_eigenpairs`), restarts from a random vector orthogonal to the basis with a zero coupling, which
also finds further copies of repeated eigenvalues. The threshold is tight on purpose: rounding noise above it (the
computed residual of an exactly invariant space grows like ``eps ||A||^2 / min beta``) only costs further steps,
whose nodes carry negligible weight, while a looser one could cut a genuinely small coupling (a narrow bulk far below
the outliers in float32).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from ._base import CurvatureOperator
from ._checks import check_count, check_generator, check_operator, check_positive, random_vectors

WHICH = ("largest", "smallest", "magnitude")
NEGLIGIBLE = 100.0  # in machine epsilons of the operator's dtype times ||T||: a numerically zero residual


class Lanczos(NamedTuple):
    """The outcome of ``m`` Lanczos steps: the tridiagonal projection ``T_m = Q_m^T A Q_m``.

    Attributes:
        alphas: ``(m,)`` float64 diagonal of ``T_m``.
        betas: ``(m - 1,)`` float64 off-diagonal of ``T_m``.
        residual: ``beta_m``, the norm of ``A q_m - alpha_m q_m - beta_{m-1} q_{m-1}`` after the last step (0.0 on
            an invariant subspace).
        basis: ``(dim, m)`` orthonormal Lanczos vectors ``Q_m`` in the operator's dtype, or None when not kept.
        invariant: Whether the Krylov space is invariant (the recurrence stopped early, or ``m == dim``).
        matvecs: Number of operator products used (``m``).
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    residual: float
    basis: torch.Tensor | None
    invariant: bool
    matvecs: int

    def tridiagonal(self) -> torch.Tensor:
        """The ``(m, m)`` float64 tridiagonal matrix ``T_m``.

        Returns:
            ``T_m``, symmetric.
        """
        return tridiagonal(self.alphas, self.betas)

    def quadrature(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The Gauss quadrature of the start vector's spectral measure (Golub & Welsch 1969).

        ``q_1^T f(A) q_1 ~ sum_i w_i f(theta_i)``, exact for polynomials of degree up to ``2m - 1`` (and for every
        ``f`` on an invariant subspace).

        Returns:
            ``(nodes, weights)``: the ``(m,)`` ascending Ritz values and the squared first components of the
            eigenvectors of ``T_m`` (float64, summing to 1).
        """
        nodes, vectors = torch.linalg.eigh(self.tridiagonal())
        return nodes, vectors[0] ** 2


class Eigenpairs(NamedTuple):
    """Eigenvalue estimates of an operator with their vectors and residuals.

    Attributes:
        eigenvalues: ``(k,)`` float64.
        eigenvectors: ``(dim, k)`` unit columns in the operator's dtype.
        residuals: ``(k,)`` float64 residual norms ``||A y - theta y||``.
        converged: ``(k,)`` bool: whether each pair met the stopping tolerance.
        matvecs: Number of operator products used.
    """

    eigenvalues: torch.Tensor
    eigenvectors: torch.Tensor
    residuals: torch.Tensor
    converged: torch.Tensor
    matvecs: int


def lanczos(op: CurvatureOperator, steps: int, start: torch.Tensor | None = None,
            generator: torch.Generator | None = None, keep_basis: bool = False) -> Lanczos:
    """``steps`` Lanczos steps with full reorthogonalisation, stopping early on an invariant subspace.

    Args:
        op: The symmetric operator.
        steps: Number of steps (operator products), at least 1; more than ``op.dim`` runs ``op.dim``.
        start: ``(dim,)`` nonzero start vector (normalised here), or None for a Gaussian one drawn from
            ``generator``.
        generator: Random source of the start vector (and nothing else).
        keep_basis: Whether to return the Lanczos vectors (``dim x m`` memory after the call).

    Returns:
        The tridiagonal projection, see :class:`Lanczos`.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``steps`` is not a positive int, or ``start`` is not a nonzero ``(dim,)`` tensor.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)))
        >>> run = lanczos(op, steps=10, start=torch.ones(4, dtype=torch.float64))
        >>> run.matvecs, run.invariant
        (4, True)
        >>> nodes, weights = run.quadrature()
        >>> [round(x, 10) for x in nodes.tolist()], [round(w, 10) for w in weights.tolist()]
        ([1.0, 2.0, 3.0, 4.0], [0.25, 0.25, 0.25, 0.25])
    """
    check_operator(op)
    check_count(steps, "steps")
    check_generator(generator)
    krylov = _Krylov(op, _start(op, start, generator), min(steps, op.dim), generator, restart=False)
    while len(krylov.alphas) < krylov.capacity and krylov.step():
        pass
    m = len(krylov.alphas)
    return Lanczos(torch.tensor(krylov.alphas, dtype=torch.float64), torch.tensor(krylov.betas[:m - 1],
                   dtype=torch.float64), krylov.betas[m - 1], krylov.basis(m).clone() if keep_basis else None,
                   krylov.invariant, krylov.matvecs)


def top_eigenpairs(op: CurvatureOperator, k: int = 1, which: str = "largest", tol: float = 1e-6,
                   max_steps: int = 200, generator: torch.Generator | None = None) -> Eigenpairs:
    """The ``k`` extremal eigenpairs by Lanczos with full reorthogonalisation, stopped on the residual estimate.

    After each step the Ritz pairs of ``T_j`` are computed; the run stops when each of the ``k`` wanted ones has
    ``beta_j |e_j^T s_i| <= tol |theta_i|`` (or a numerically zero residual), after ``max_steps`` steps, or when the
    whole space is spanned. An invariant Krylov space (a random start reaches one early only when eigenvalues are
    repeated, e.g. the zeros of a low-rank matrix) restarts the recurrence from a random vector orthogonal to the
    basis; such a new block holds copies of eigenvalues already found, so once a complete block leaves the wanted
    values unchanged, no later one can change them, and the run may stop. Repeated eigenvalues whose Krylov space is
    not exactly invariant (degenerate multiplets) are found once, as with any single-vector Krylov method. Eigenvalue
    errors are at most the residual and, for an eigenvalue separated by a gap ``g`` from the rest, about
    ``residual^2 / g``; eigenvector angles about ``residual / g`` (Golub & Van Loan, section 10.1.4).

    Args:
        op: The symmetric operator.
        k: Number of eigenpairs, ``1 <= k <= op.dim``.
        which: ``"largest"`` (algebraic, descending), ``"smallest"`` (algebraic, ascending) or ``"magnitude"``
            (largest ``|theta|``, descending by magnitude).
        tol: Relative residual tolerance, positive.
        max_steps: Most Lanczos steps (operator products), at least ``k``; capped at ``op.dim``. The basis holds
            one vector per step taken (up to ``max_steps + 1``).
        generator: Random source of the start (and restart) vectors.

    Returns:
        :class:`Eigenpairs` ordered as ``which`` says; ``residuals`` are the estimates ``beta_j |e_j^T s_i|``,
        equal to ``||A y - theta y||`` up to rounding with a reorthogonalised basis.

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator` or ``generator`` not a ``torch.Generator``.
        ValueError: If ``k``, ``which``, ``tol`` or ``max_steps`` is out of range.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.arange(1.0, 21.0, dtype=torch.float64)))
        >>> pairs = top_eigenpairs(op, k=2, generator=torch.Generator().manual_seed(0))
        >>> [round(x, 8) for x in pairs.eigenvalues.tolist()], bool(pairs.converged.all())
        ([20.0, 19.0], True)
    """
    check_operator(op)
    check_count(k, "k")
    if k > op.dim:
        raise ValueError(f"k: expected at most dim={op.dim} eigenpairs, got {k}")
    if which not in WHICH:
        raise ValueError(f"which: expected one of {WHICH}, got {which!r}")
    check_positive(tol, "tol")
    check_count(max_steps, "max_steps")
    if max_steps < k:
        raise ValueError(f"max_steps: expected at least k={k}, got {max_steps}")
    check_generator(generator)
    krylov = _Krylov(op, _start(op, None, generator), min(max_steps, op.dim), generator, restart=True)
    previous = None  # the wanted Ritz values when the last invariant block ended
    while True:
        running = krylov.step()
        m = len(krylov.alphas)
        if m < k and running:
            continue
        theta, s = torch.linalg.eigh(tridiagonal(torch.tensor(krylov.alphas, dtype=torch.float64),
                                                 torch.tensor(krylov.betas[:m - 1], dtype=torch.float64)))
        chosen = _select(theta, k, which)
        residuals = krylov.betas[m - 1] * s[m - 1, chosen].abs()
        floor = NEGLIGIBLE * torch.finfo(op.dtype).eps * krylov.scale
        converged = (residuals <= tol * theta[chosen].abs()) | (residuals <= floor)
        if krylov.betas[m - 1] == 0.0:  # a block ended invariant: settled once a whole new block changes nothing
            settled = previous is not None and previous.shape == chosen.shape and bool(
                torch.allclose(theta[chosen], previous, rtol=0.0, atol=floor))
            previous = theta[chosen]
        else:
            settled = previous is None
        if (settled and bool(converged.all())) or not running or m == krylov.capacity:
            break
    vectors = krylov.basis(m) @ s[:, chosen].to(device=op.device, dtype=op.dtype)
    return Eigenpairs(theta[chosen], vectors, residuals, converged, krylov.matvecs)


def tridiagonal(alphas: torch.Tensor, betas: torch.Tensor) -> torch.Tensor:
    """The symmetric tridiagonal matrix with diagonal ``alphas`` and off-diagonal ``betas``, in float64.

    Args:
        alphas: ``(m,)``.
        betas: ``(m - 1,)``.

    Returns:
        ``(m, m)`` float64.
    """
    alphas, betas = alphas.to(torch.float64), betas.to(torch.float64)
    return torch.diag(alphas) + torch.diag(betas, 1) + torch.diag(betas, -1)


def _select(theta: torch.Tensor, k: int, which: str) -> torch.Tensor:
    """Indices of the ``k`` wanted Ritz values (fewer if there are fewer) among the ascending ``theta``."""
    k = min(k, theta.numel())
    if which == "largest":
        return torch.arange(theta.numel() - 1, theta.numel() - 1 - k, -1)
    if which == "smallest":
        return torch.arange(k)
    return torch.sort(theta.abs(), descending=True, stable=True).indices[:k]


class _Krylov:
    """The Lanczos recurrence, one operator product per :meth:`step`, the basis reorthogonalised twice.

    The Lanczos vectors are the rows of a buffer that doubles as needed (up to ``capacity + 1`` rows), so a run
    that converges early holds little memory. ``betas[j]`` couples ``q_{j+1}`` to ``q_{j+2}`` (0-based ``j``); after
    ``m`` steps ``betas[m - 1]`` is the residual ``beta_m``. ``scale`` is the largest ``|alpha|`` or ``beta`` seen, a
    lower bound of ``||A||``.
    """

    def __init__(self, op: CurvatureOperator, start: torch.Tensor, capacity: int, generator, restart: bool):
        self.op, self.capacity, self.generator, self.restart = op, capacity, generator, restart
        self.rows = torch.empty(min(capacity + 1, 16), op.dim, dtype=op.dtype, device=op.device)
        self.rows[0] = start
        self.alphas: list[float] = []
        self.betas: list[float] = []
        self.scale, self.matvecs, self.invariant = 0.0, 0, False

    def basis(self, m: int) -> torch.Tensor:
        """``(dim, m)``: the first ``m`` Lanczos vectors as columns."""
        return self.rows[:m].T

    def step(self) -> bool:
        """One Lanczos step; returns whether another step can follow (False on an invariant subspace without
        restart, or when the whole space is spanned)."""
        j = len(self.alphas)
        q = self.rows[j]
        w = self.op.matvec(q)
        self.matvecs += 1
        alpha = float(torch.dot(q, w))
        w = w - alpha * q
        if j > 0:
            w = w - self.betas[j - 1] * self.rows[j - 1]
        w = _orthogonalise(w, self.rows[:j + 1])
        beta = float(torch.linalg.vector_norm(w))
        self.alphas.append(alpha)
        self.scale = max(self.scale, abs(alpha), beta)
        if j + 2 > self.rows.shape[0]:
            grown = torch.empty(min(2 * self.rows.shape[0], self.capacity + 1), self.op.dim, dtype=self.op.dtype,
                                device=self.op.device)
            grown[:j + 1] = self.rows[:j + 1]
            self.rows = grown
        spanned = j + 1 == self.op.dim
        if spanned or beta <= NEGLIGIBLE * torch.finfo(self.op.dtype).eps * self.scale:
            self.betas.append(0.0)
            self.invariant = True
            if spanned or not self.restart:
                return False
            w = _orthogonalise(random_vectors(self.op, 1, "gaussian", self.generator)[:, 0], self.rows[:j + 1])
            self.rows[j + 1] = w / torch.linalg.vector_norm(w)
            return True
        self.betas.append(beta)
        self.rows[j + 1] = w / beta
        return True


def _orthogonalise(w: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """``w`` minus its projection on the orthonormal rows of ``rows``: classical Gram-Schmidt, twice."""
    for _ in range(2):
        w = w - rows.T @ (rows @ w)
    return w


def _start(op: CurvatureOperator, start: torch.Tensor | None, generator) -> torch.Tensor:
    """A unit start vector in the operator's dtype and on its device."""
    if start is None:
        start = random_vectors(op, 1, "gaussian", generator)[:, 0]
    elif not isinstance(start, torch.Tensor) or tuple(start.shape) != (op.dim,):
        got = tuple(start.shape) if isinstance(start, torch.Tensor) else type(start).__name__
        raise ValueError(f"start: expected a (dim,) tensor with dim={op.dim}, got {got}")
    start = start.to(device=op.device, dtype=op.dtype)
    norm = float(torch.linalg.vector_norm(start))
    if not math.isfinite(norm) or norm == 0.0:
        raise ValueError(f"start: expected a nonzero finite vector, got norm {norm}")
    return start / norm

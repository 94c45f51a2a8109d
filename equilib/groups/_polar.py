"""GL+(n, R) and SL(n, R), n = 2 or 3, through the polar (Cartan) decomposition ``g = P R``.

``P = (g g^T)^(1/2)`` is symmetric positive definite (of determinant 1 for SL) and ``R`` is a rotation; ``S = log P``
(symmetric, traceless for SL) and ``A = log R`` (skew-symmetric) form a global chart of the group onto a subset of its
Lie algebra, so elements can be sampled, and functions on the group integrated, without the group exponential (which
is not surjective on SL(2)). This is the parametrisation of Mironenco & Forre, "Lie Group Decompositions for
Equivariant Neural Networks" (ICLR 2024): ``P`` from a log-normal law, ``R`` from the Haar measure of SO(n), Monte Carlo
integrals over the group weighted by the Haar density of the chart.

Every function takes a batch of matrices with any leading axes and computes in the input's dtype (float64 gives
round trips exact to about 1e-12).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..so3 import random_rotation
from ._element import GroupElement
from ._groups import Group, LinearGenerators, _check_count, _identity_matrices, _no_other_parts


def _check_n(n) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n not in (2, 3):
        raise ValueError(f"n: expected 2 or 3, got {n!r}")


def _check_square(x: torch.Tensor, name: str) -> int:
    """The size n of square matrices ``x`` of shape ``(..., n, n)``, n = 2 or 3."""
    if not isinstance(x, torch.Tensor) or x.dim() < 2 or x.shape[-1] != x.shape[-2]:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected square matrices of shape (..., n, n), got {shape}")
    _check_n(x.shape[-1])
    return x.shape[-1]


def _where(mask: torch.Tensor) -> str:
    """`` at index (i, ...)`` of the first True entry of a batch mask ("" for a single matrix)."""
    return f" at index {tuple(mask.nonzero()[0].tolist())}" if mask.dim() else ""


def _check_symmetry(x: torch.Tensor, name: str, sign: int) -> None:
    """Check ``x^T == sign * x`` to round-off (sign 1: symmetric, -1: skew-symmetric)."""
    scale = x.abs().amax(dim=(-2, -1)).clamp(min=1.0)
    error = (x.mT - sign * x).abs().amax(dim=(-2, -1))
    bad = error > 1e3 * torch.finfo(x.dtype).eps * scale
    if bad.any():
        what = "symmetric" if sign == 1 else "skew-symmetric"
        raise ValueError(f"{name}: expected {what} matrices, got one off by {float(error[bad].max()):.1e}"
                         f"{_where(bad)}")


def _svd(g: torch.Tensor, name: str = "g") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The SVD ``g = U diag(s) V^T`` of square matrices of positive determinant."""
    n = _check_square(g, name)
    u, s, vh = torch.linalg.svd(g)
    singular = ~(s[..., -1] > n * torch.finfo(g.dtype).eps * s[..., 0])
    if singular.any():
        raise ValueError(f"{name}: expected invertible matrices, got a singular one{_where(singular)} (singular "
                         f"values {s[singular][0].tolist()})")
    negative = torch.linalg.det(u @ vh) < 0
    if negative.any():
        raise ValueError(f"{name}: expected matrices of positive determinant, got det <= 0{_where(negative)}")
    return u, s, vh


def _symmetrised(x: torch.Tensor) -> torch.Tensor:
    return (x + x.mT) / 2


def polar(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The polar decomposition ``g = P R`` of matrices of positive determinant, from an SVD ``g = U diag(s) V^T``:
    ``P = U diag(s) U^T`` (symmetric positive definite) and ``R = U V^T`` (a rotation).

    Args:
        g: ``(..., n, n)`` matrices, n = 2 or 3, with det > 0.

    Returns:
        ``(P, R)``, each of ``g``'s shape.

    Raises:
        ValueError: If ``g`` is not a batch of square matrices, n is not 2 or 3, or a matrix is singular or has
            det <= 0.

    Examples:
        >>> import torch
        >>> from equilib.groups import polar
        >>> P, R = polar(torch.tensor([[2.0, 0.0], [0.0, 0.5]], dtype=torch.float64) @ torch.tensor([[0.0, -1.0],
        ...              [1.0, 0.0]], dtype=torch.float64))
        >>> P.diagonal().tolist(), R.tolist()
        ([2.0, 0.5], [[0.0, -1.0], [1.0, 0.0]])
    """
    u, s, vh = _svd(g)
    return _symmetrised((u * s.unsqueeze(-2)) @ u.mT), u @ vh


def polar_inverse(P: torch.Tensor, R: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The polar factors of ``g^-1`` for ``g = P R``, without a generic matrix inverse: ``g^-1 = R^T P^-1`` with
    ``P^-1`` from an eigendecomposition, so ``g^-1 = (R^T P^-1 R) R^T`` (in the chart: ``S -> -R^T S R``,
    ``A -> -A``).

    Args:
        P: ``(..., n, n)`` symmetric positive definite matrices, n = 2 or 3.
        R: ``(..., n, n)`` rotations.

    Returns:
        ``(R^T P^-1 R, R^T)``, the polar factors of the inverses.

    Raises:
        ValueError: If the shapes differ, n is not 2 or 3, or ``P`` is not symmetric positive definite.
    """
    _check_square(P, "P")
    if R.shape != P.shape:
        raise ValueError(f"R: expected the shape of P {tuple(P.shape)}, got {tuple(R.shape)}")
    _check_symmetry(P, "P", 1)
    eigenvalues, vectors = torch.linalg.eigh(P)
    if not (eigenvalues > 0).all():
        raise ValueError(f"P: expected positive definite matrices, got eigenvalues <= 0"
                         f"{_where(~(eigenvalues > 0).all(-1))}")
    inverse = (vectors / eigenvalues.unsqueeze(-2)) @ vectors.mT
    return _symmetrised(R.mT @ inverse @ R), R.mT


def polar_product(P1: torch.Tensor, R1: torch.Tensor, P2: torch.Tensor,
                  R2: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The polar factors of the product ``g1 g2 = (P1 R1) (P2 R2)``, recomputed from the product (in general
    ``P1 R1 P2 R1^T`` is not symmetric, so the factors do not compose factor by factor).

    Args:
        P1: ``(..., n, n)`` symmetric positive definite factors of ``g1``.
        R1: ``(..., n, n)`` rotation factors of ``g1``.
        P2: ``(..., n, n)`` symmetric positive definite factors of ``g2``.
        R2: ``(..., n, n)`` rotation factors of ``g2``.

    Returns:
        ``(P, R)`` with ``P R = g1 g2``.

    Raises:
        ValueError: As for :func:`polar`, for the product.
    """
    return polar(P1 @ R1 @ P2 @ R2)


def _log_rotation(R: torch.Tensor) -> torch.Tensor:
    """``log R``, skew-symmetric: angle in (-pi, pi] for n = 2; axis-angle with angle in [0, pi] for n = 3."""
    if R.shape[-1] == 2:
        angle = torch.atan2(R[..., 1, 0] - R[..., 0, 1], R[..., 0, 0] + R[..., 1, 1])
        at_pi = angle <= -math.pi + 4 * torch.finfo(R.dtype).eps  # -pi to round-off: +pi
        angle = torch.where(at_pi, torch.full_like(angle, math.pi), angle)
        zero = torch.zeros_like(angle)
        return torch.stack([torch.stack([zero, -angle], -1), torch.stack([angle, zero], -1)], -2)
    return _hat(_rotation_vector(R))


def _rotation_vector(R: torch.Tensor) -> torch.Tensor:
    """The rotation vector ``angle * axis`` (angle in [0, pi]) through the unit quaternion (Shepperd's pivot on the
    largest of ``trace, R_00, R_11, R_22``, accurate at every angle, pi included)."""
    m = R
    trace = m[..., 0, 0] + m[..., 1, 1] + m[..., 2, 2]
    pivot = torch.stack([trace, m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]], -1).argmax(-1)
    a21, a02, a10 = m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]
    s01, s02, s12 = m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1]
    tiny = torch.finfo(R.dtype).tiny
    diagonals = (1 + trace, 1 + 2 * m[..., 0, 0] - trace, 1 + 2 * m[..., 1, 1] - trace, 1 + 2 * m[..., 2, 2] - trace)
    cases = []
    for k, square in enumerate(diagonals):  # square = 4 q_k^2; the other components from the off-diagonal terms
        big = square.clamp(min=0).sqrt() / 2
        d = (4 * big).clamp(min=tiny)
        others = {0: (a21, a02, a10), 1: (a21, s01, s02), 2: (a02, s01, s12), 3: (a10, s02, s12)}[k]
        q = [o / d for o in others]
        q.insert(k, big)
        cases.append(torch.stack(q, -1))
    q = torch.stack(cases, -2).gather(-2, pivot[..., None, None].expand(*pivot.shape, 1, 4)).squeeze(-2)
    eps = torch.finfo(R.dtype).eps
    w = torch.where(q[..., 0].abs() <= 4 * eps, torch.zeros_like(q[..., 0]), q[..., 0])  # pi to round-off: pi
    q = torch.cat([w.unsqueeze(-1), q[..., 1:]], -1)
    q = torch.where(q[..., :1] < 0, -q, q)  # w >= 0: angle in [0, pi]
    w, v = q[..., 0], q[..., 1:]
    norm = v.norm(dim=-1)
    angle = 2 * torch.atan2(norm, w)
    factor = torch.where(norm > 0, angle / norm.clamp(min=tiny), 2 / w.clamp(min=tiny))
    return factor.unsqueeze(-1) * v


def _hat(w: torch.Tensor) -> torch.Tensor:
    """The skew matrices ``[w]_x`` with ``[w]_x v = w x v``."""
    x, y, z = w.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack([torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1),
                        torch.stack([-y, x, zero], -1)], -2)


def chart(g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global chart of GL+(n) onto its Lie algebra through the polar decomposition: ``g = exp(S) exp(A)``.

    ``S = log P = U diag(log s) U^T`` is symmetric (traceless when det g = 1), ``A = log R`` is skew-symmetric with
    the principal angle: for n = 2, ``A = [[0, -t], [t, 0]]`` with t in (-pi, pi] (a rotation within round-off of
    -pi is returned as +pi); for n = 3, ``A = [w]_x`` for the rotation vector ``w`` of angle ``|w|`` in [0, pi]. At
    angle pi, the edge of the chart, ``w`` and ``-w`` give the same rotation: a rotation within round-off (about
    1e-15) of angle pi gets angle exactly pi and the ``w`` whose largest-magnitude component is positive. The chart
    is discontinuous there (a rotation by pi - e about ``-w`` maps near ``-w``) but exact: :func:`unchart` returns
    ``g``.

    Args:
        g: ``(..., n, n)`` matrices, n = 2 or 3, with det > 0.

    Returns:
        ``(S, A)``, each of ``g``'s shape.

    Raises:
        ValueError: As for :func:`polar`.

    Examples:
        >>> import torch
        >>> from equilib.groups import chart, unchart
        >>> g = torch.tensor([[1.0, 2.0], [0.0, 3.0]], dtype=torch.float64)
        >>> S, A = chart(g)
        >>> bool(torch.allclose(unchart(S, A), g, atol=1e-12)), round(float(S.trace().exp()), 12)  # det g = 3
        (True, 3.0)
    """
    u, s, vh = _svd(g)
    return _symmetrised((u * s.log().unsqueeze(-2)) @ u.mT), _log_rotation(u @ vh)


def _exp_symmetric(S: torch.Tensor) -> torch.Tensor:
    """``exp(S)`` of symmetric matrices through ``eigh``."""
    eigenvalues, vectors = torch.linalg.eigh(S)
    return _symmetrised((vectors * eigenvalues.exp().unsqueeze(-2)) @ vectors.mT)


def plane_rotations(angle: torch.Tensor) -> torch.Tensor:
    """The rotations of the plane by ``angle`` (counterclockwise): ``[[cos, -sin], [sin, cos]]``.

    Args:
        angle: Angles in radians, any shape.

    Returns:
        ``(*angle.shape, 2, 2)`` matrices.
    """
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _exp_skew(A: torch.Tensor) -> torch.Tensor:
    """``exp(A)`` of skew-symmetric matrices: the rotation matrix (n = 2), Rodrigues' formula (n = 3) or
    ``matrix_exp``."""
    n = A.shape[-1]
    if n == 2:
        angle = (A[..., 1, 0] - A[..., 0, 1]) / 2
        return plane_rotations(angle)
    if n != 3:
        return torch.linalg.matrix_exp(A)
    K = (A - A.mT) / 2
    squared = K[..., 2, 1] ** 2 + K[..., 0, 2] ** 2 + K[..., 1, 0] ** 2
    small = squared < 1e-8
    angle = torch.where(small, torch.ones_like(squared), squared).sqrt()  # safe for autograd at 0
    sinc = torch.where(small, 1 - squared / 6 + squared**2 / 120, angle.sin() / angle)
    cosc = torch.where(small, 0.5 - squared / 24 + squared**2 / 720, 2 * (angle / 2).sin() ** 2 / squared.where(
        ~small, torch.ones_like(squared)))
    eye = torch.eye(3, dtype=A.dtype, device=A.device)
    return eye + sinc[..., None, None] * K + cosc[..., None, None] * (K @ K)


def unchart(S: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`chart`: ``g = exp(S) exp(A)``.

    ``exp(S)`` through ``eigh``; ``exp(A)`` as the rotation by ``A[1, 0]`` (n = 2) or by Rodrigues' formula (n = 3).

    Args:
        S: ``(..., n, n)`` symmetric matrices, n = 2 or 3.
        A: ``(..., n, n)`` skew-symmetric matrices.

    Returns:
        ``(..., n, n)`` matrices of positive determinant.

    Raises:
        ValueError: If the shapes differ, n is not 2 or 3, ``S`` is not symmetric or ``A`` not skew-symmetric (to
            round-off).
    """
    _check_square(S, "S")
    if A.shape != S.shape:
        raise ValueError(f"A: expected the shape of S {tuple(S.shape)}, got {tuple(A.shape)}")
    _check_symmetry(S, "S", 1)
    _check_symmetry(A, "A", -1)
    return _exp_symmetric(S) @ _exp_skew(A)


def _log_sinhc(d: torch.Tensor) -> torch.Tensor:
    """``log(sinh(d) / d)`` for d >= 0, without overflow, cancellation or a 0 / 0 at d = 0."""
    small = d < 0.05
    safe = torch.where(small, torch.ones_like(d), d)
    series = d**2 / 6 - d**4 / 180 + d**6 / 2835
    return torch.where(small, series, safe + torch.log(-torch.expm1(-2 * safe)) - torch.log(2 * safe))


def _log_haar_density(S: torch.Tensor) -> torch.Tensor:
    n = S.shape[-1]
    eigenvalues = torch.linalg.eigvalsh(S)
    i, j = torch.triu_indices(n, n, offset=1, device=S.device)
    return _log_sinhc((eigenvalues[..., i] - eigenvalues[..., j]).abs()).sum(-1)


def haar_density(S: torch.Tensor) -> torch.Tensor:
    """The density of the Haar measure of GL+(n) (or SL(n)) in the polar chart ``g = exp(S) R``, relative to the
    Haar measure of SO(n) times the Lebesgue measure of the symmetric (traceless) ``S``:
    ``prod_{i<j} sinh(|s_i - s_j|) / |s_i - s_j|`` over the eigenvalues ``s_i`` of ``S`` (1 where they coincide).

    Derivation: the Haar measure of GL(n) is ``|det g|^-n dg``. The map ``g -> Q = g g^T = exp(2S)`` takes it, with
    ``R`` integrated out, to the GL-invariant measure ``det(Q)^(-(n+1)/2) dQ`` of symmetric positive definite
    matrices. In eigen-coordinates ``Q = O diag(q) O^T`` that is ``prod q^(-(n+1)/2) prod_{i<j} |q_i - q_j| dq dO``;
    with ``q_i = exp(2 s_i)`` the powers of ``q`` cancel and leave ``prod_{i<j} 2 sinh|s_i - s_j| ds dO``, while the
    Lebesgue measure of ``S = O diag(s) O^T`` is ``prod_{i<j} |s_i - s_j| ds dO``. Their ratio is the product above,
    up to a constant factor (the constant is fixed here by the value 1 at ``S = 0``). On SL(n), restricted to
    ``trace S = 0``, the same holds. The density grows like ``exp(sum_{i<j} |s_i - s_j|)``: the group is not compact.

    Args:
        S: ``(..., n, n)`` symmetric matrices, n = 2 or 3.

    Returns:
        The densities, of shape ``S.shape[:-2]``.

    Raises:
        ValueError: If ``S`` is not a batch of symmetric square matrices or n is not 2 or 3.

    Examples:
        >>> import torch
        >>> from equilib.groups import haar_density
        >>> S = torch.tensor([[[0.0, 0.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, -1.0]]], dtype=torch.float64)
        >>> [round(d, 12) for d in haar_density(S).tolist()]  # 1 and sinh(2) / 2
        [1.0, 1.813430203924]
    """
    _check_square(S, "S")
    _check_symmetry(S, "S", 1)
    return _log_haar_density(S).exp()


def _haar_rotations(n: int, count: int, generator: torch.Generator | None) -> torch.Tensor:
    """``count`` Haar rotations of SO(n) in float64: a uniform angle (n = 2), uniform quaternions (n = 3)."""
    if n == 2:
        angle = (2 * torch.rand(count, generator=generator, dtype=torch.float64) - 1) * math.pi
        return plane_rotations(angle)
    return random_rotation(count, generator=generator)


class _PolarGroup(Group):
    """Shared parts of :class:`GLPlus` and :class:`SL`."""

    parts = ("linear",)
    traceless = False

    def __init__(self, n: int, scale: float = 0.5) -> None:
        _check_n(n)
        if not (isinstance(scale, (int, float)) and not isinstance(scale, bool) and math.isfinite(scale)
                and scale > 0):
            raise ValueError(f"scale: expected a positive number, got {scale!r}")
        self.n, self.scale = n, float(scale)

    def _draw(self, count: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """``count`` pairs ``(S, R)`` in float64: ``S`` Gaussian (then ``R``, from the same generator)."""
        _check_count(count)
        n = self.n
        i, j = torch.triu_indices(n, n)
        values = self.scale * torch.randn(count, len(i), generator=generator, dtype=torch.float64)
        S = torch.zeros(count, n, n, dtype=torch.float64)
        S[:, i, j] = values
        S[:, j, i] = values
        if self.traceless:
            trace = S.diagonal(dim1=-2, dim2=-1).sum(-1)
            S = S - (trace / n)[:, None, None] * torch.eye(n, dtype=torch.float64)
        return S, _haar_rotations(n, count, generator)

    def log_sampling_density(self, S: torch.Tensor) -> torch.Tensor:
        """The log density of the ``S = log P`` that ``sample`` draws, in the coordinates of
        :func:`monte_carlo_integral` (the entries ``S_ij``, i <= j; for SL without the last diagonal entry).

        Args:
            S: ``(..., n, n)`` symmetric (traceless for SL) matrices.

        Returns:
            The log densities, of shape ``S.shape[:-2]``.
        """
        n, variance = self.n, self.scale**2
        i, j = torch.triu_indices(n, n)
        squares = S[..., i, j].pow(2).sum(-1)
        dim = len(i) - (1 if self.traceless else 0)
        constant = -dim / 2 * math.log(2 * math.pi * variance) + (0.5 * math.log(n) if self.traceless else 0.0)
        return constant - squares / (2 * variance)

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        S, R = self._draw(n, generator)
        return GroupElement(linear=(_exp_symmetric(S) @ R).to(device=device, dtype=dtype))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(linear=_identity_matrices(n, self.n, dtype, device))

    def contains(self, g, atol=1e-8):
        linear = g.linear
        if linear is None or linear.shape[1:] != (self.n, self.n) or not _no_other_parts(g, self.parts):
            return torch.zeros(len(g), dtype=torch.bool)
        det = torch.linalg.det(linear)
        ok = det > atol
        return ok & ((det - 1).abs() <= atol) if self.traceless else ok

    def generators(self, dtype=torch.float64):
        n = self.n
        units = torch.eye(n * n, dtype=dtype).view(n * n, n, n)  # E_ij, row-major
        if self.traceless:
            off = [units[i * n + j] for i in range(n) for j in range(n) if i != j]
            diagonal = [units[i * n + i] - units[(i + 1) * n + i + 1] for i in range(n - 1)]
            lie = torch.stack(off + diagonal)
        else:
            lie = units
        return LinearGenerators(lie, torch.zeros(0, n, n, dtype=dtype))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.n}, scale={self.scale})"


class GLPlus(_PolarGroup):
    """GL+(n, R), the n x n real matrices of positive determinant (n = 2 or 3), sampled through the polar
    decomposition ``g = exp(S) R`` (Mironenco & Forre, ICLR 2024).

    ``S`` is symmetric with independent N(0, scale^2) entries on and above the diagonal (``P = exp(S)`` is
    log-normal), then ``R`` is drawn from the Haar measure of SO(n), from the same generator. The group is not
    compact: this is not its Haar measure; :func:`monte_carlo_integral` reweights the samples by
    :func:`haar_density` to integrate against it. The Lie algebra gl(n) is spanned by all
    ``E_ij``; there are no discrete generators (the group is connected).

    Args:
        n: The size of the matrices, 2 or 3.
        scale: Standard deviation of the entries of ``S = log P``.

    Raises:
        ValueError: If ``n`` is not 2 or 3 or ``scale`` is not a positive number.

    Examples:
        >>> import torch
        >>> from equilib.groups import SL, GLPlus
        >>> group = GLPlus(2, scale=0.5)
        >>> g = group.sample(3, generator=torch.Generator().manual_seed(0))
        >>> group, g.linear.shape, bool(group.contains(g).all()), bool(SL(2).contains(g).any())
        (GLPlus(2, scale=0.5), torch.Size([3, 2, 2]), True, False)
    """


class SL(_PolarGroup):
    """SL(n, R), the n x n real matrices of determinant 1 (n = 2 or 3), through the polar decomposition
    ``g = exp(S) R`` with ``S`` symmetric and traceless.

    Samples as :class:`GLPlus`, with ``S`` projected onto its traceless part (``S - trace(S) / n I``). The Lie
    algebra sl(n) is spanned by ``E_ij`` (i != j) and ``E_ii - E_(i+1)(i+1)``; no discrete generators.

    Args:
        n: The size of the matrices, 2 or 3.
        scale: Standard deviation of the entries of ``S`` before the traceless projection.

    Raises:
        ValueError: If ``n`` is not 2 or 3 or ``scale`` is not a positive number.
    """

    traceless = True


def monte_carlo_integral(f: Callable[[GroupElement], torch.Tensor], group: GLPlus | SL, samples: int = 10000,
                         generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """A Monte Carlo estimate of the integral of ``f`` against the Haar measure of :class:`GLPlus` or :class:`SL`,
    by importance sampling in the polar chart.

    The elements ``g = exp(S) R`` are drawn as by ``group.sample`` and ``f(g)`` is weighted by
    ``haar_density(S) / q(S)``, ``q`` the Gaussian density of the drawn ``S``. The Haar measure of a non-compact group
    has no natural normalisation; the one integrated against is ``haar_density(S) dS dR`` with ``dR`` the
    *probability* Haar measure of SO(n) and ``dS`` the Lebesgue measure of the coordinates ``S_ij``, i <= j (for SL:
    i < j and the diagonal entries but the last), so that near the identity it is ``dS`` times a rotation of total
    mass 1. (Relative to the sampling law, which has mass 1, the weights are the Radon-Nikodym derivative; their mean
    does not converge, as the Haar measure has infinite mass.) The estimate is unbiased; its variance is finite when
    ``f`` decays faster than ``exp(-|S|^2 / (4 scale^2))`` in every direction (``|S|^2`` the sum of the squared
    coordinates), e.g. ``exp(-|g - I|^2 - |g^-1 - I|^2)``
    (on GL+, ``exp(-|g - I|^2)`` alone tends to a constant as ``g -> 0`` and is not integrable). Invariance:
    ``int f(h g) dg = int f(g) dg`` for every ``h`` (left and right, the groups are unimodular).

    Args:
        f: Maps a :class:`GroupElement` of ``samples`` float64 elements to a tensor of shape ``(samples, ...)``.
        group: A :class:`GLPlus` or :class:`SL`; its ``scale`` sets the sampling law.
        samples: Number of elements drawn (at least 2).
        generator: Torch generator for the draw; None uses the global one.

    Returns:
        ``(estimate, standard_error)``, float64 tensors of shape ``f(g).shape[1:]``; the standard error is the
        sample standard deviation of the weighted values over ``sqrt(samples)``.

    Raises:
        TypeError: If ``group`` is not a :class:`GLPlus` or :class:`SL`.
        ValueError: If ``samples`` is not an int of at least 2 or ``f`` returns a tensor without a leading axis of
            ``samples`` values.

    Examples:
        >>> import torch
        >>> from equilib.groups import GLPlus, monte_carlo_integral
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> def bump(g):  # decays as g grows and as g approaches a singular matrix
        ...     return torch.exp(-((g.linear - eye).pow(2) + (torch.linalg.inv(g.linear) - eye).pow(2)).sum((1, 2)) / 2)
        >>> estimate, error = monte_carlo_integral(bump, GLPlus(2), 20000, torch.Generator().manual_seed(0))
        >>> bool(error < 0.02 * estimate)
        True
    """
    if not isinstance(group, _PolarGroup):
        raise TypeError(f"group: expected a GLPlus or SL group, got {type(group).__name__}")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 2:
        raise ValueError(f"samples: expected an int of at least 2, got {samples!r}")
    S, R = group._draw(samples, generator)
    values = torch.as_tensor(f(GroupElement(linear=_exp_symmetric(S) @ R)))
    if values.dim() < 1 or values.shape[0] != samples:
        raise ValueError(f"f: expected a tensor of shape ({samples}, ...), got shape {tuple(values.shape)}")
    weights = (_log_haar_density(S) - group.log_sampling_density(S)).exp()
    terms = values.to(torch.float64) * weights.view(-1, *([1] * (values.dim() - 1)))
    return terms.mean(0), terms.std(0) / math.sqrt(samples)

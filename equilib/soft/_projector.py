"""Orthogonal projectors onto the linear maps between sums of Cartesian tensors that commute with a group: the null
space of the constraints its generators put on a map (EMLP, Finzi et al. ICML 2021), used by PER's regulariser
``||W - P W||^2`` (Kim et al. ICML 2023).

A map ``W`` from rank-a to rank-b tensors commutes with the group when ``dρ_b(X) W = W dρ_a(X)`` for every
Lie-algebra generator ``X`` and ``ρ_b(h) W = W ρ_a(h)`` for every discrete generator ``h``, with ``ρ_k(A) = A^(x)k``
and ``dρ_k(X) = sum_i 1 (x) .. X (at i) .. (x) 1``. Stacked as linear constraints on ``vec(W)`` (row-major), their
null space, from an SVD in float64, is an orthonormal basis ``Q``; ``P = Q Q^T``. A weight matrix between sums of
tensors is projected block by block: one small basis per pair of (output rank, input rank), applied to every pair of
copies, never a dense matrix over all weights.
"""

from __future__ import annotations

import torch

from ..groups import CartesianTensors, Group


def tensor_power(a: torch.Tensor, rank: int) -> torch.Tensor:
    """``a (x) a (x) ... (x) a`` (``rank`` factors; the 1 x 1 identity for rank 0).

    Args:
        a: ``(d, d)`` matrix.
        rank: Number of factors.

    Returns:
        ``(d^rank, d^rank)`` matrix.
    """
    return _kron([a] * rank, a.dtype)


def _kron(factors: list[torch.Tensor], dtype: torch.dtype) -> torch.Tensor:
    out = torch.ones(1, 1, dtype=dtype)
    for factor in factors:
        out = torch.kron(out, factor)
    return out


def tensor_algebra(x: torch.Tensor, rank: int) -> torch.Tensor:
    """The Lie-algebra action on rank-``rank`` tensors: ``sum_i 1 (x) .. x (at i) .. (x) 1``.

    Args:
        x: ``(d, d)`` Lie-algebra element.
        rank: Tensor rank.

    Returns:
        ``(d^rank, d^rank)`` matrix (zero for rank 0).
    """
    d = x.shape[0]
    eye = torch.eye(d, dtype=x.dtype)
    terms = [_kron([x if j == i else eye for j in range(rank)], x.dtype) for i in range(rank)]
    return sum(terms, torch.zeros(d**rank, d**rank, dtype=x.dtype))


def equivariant_basis(group: Group, rank_out: int, rank_in: int, tolerance: float = 1e-9) -> torch.Tensor:
    """An orthonormal basis of the maps from rank-``rank_in`` to rank-``rank_out`` tensors that commute with
    ``group``, as columns over ``vec(W)`` (row-major ``(d^rank_out, d^rank_in)``).

    Args:
        group: A group with :meth:`~equilib.groups.Group.generators`.
        rank_out: Rank of the output tensors.
        rank_in: Rank of the input tensors.
        tolerance: Singular values below ``tolerance`` times the largest (at least 1) count as zero.

    Returns:
        ``(d^(rank_out + rank_in), r)`` float64 matrix with orthonormal columns (``r = 0``: only the zero map).
    """
    gens = group.generators(torch.float64)
    d = gens.dim
    size_out, size_in = d**rank_out, d**rank_in
    eye_out, eye_in = torch.eye(size_out, dtype=torch.float64), torch.eye(size_in, dtype=torch.float64)
    constraints = [torch.kron(tensor_algebra(x, rank_out), eye_in)
                   - torch.kron(eye_out, tensor_algebra(x.T.contiguous(), rank_in)) for x in gens.lie]
    constraints += [torch.kron(tensor_power(h, rank_out), tensor_power(torch.linalg.inv(h).T.contiguous(), rank_in))
                    - torch.eye(size_out * size_in, dtype=torch.float64) for h in gens.discrete]
    if not constraints:
        return torch.eye(size_out * size_in, dtype=torch.float64)
    _, singular, vh = torch.linalg.svd(torch.cat(constraints), full_matrices=True)
    rank = int((singular > tolerance * max(1.0, float(singular.max()))).sum())
    return vh[rank:].T.contiguous()


def _copy_pairs(block: torch.Tensor, mult_out: int, size_out: int, mult_in: int, size_in: int) -> torch.Tensor:
    """A block ``(mult_out size_out, mult_in size_in)`` of a weight matrix as one row ``vec(W_ij)`` per pair of
    copies: ``(mult_out mult_in, size_out size_in)``."""
    return block.reshape(mult_out, size_out, mult_in, size_in).transpose(1, 2).reshape(mult_out * mult_in, -1)


def _copy_block(pairs: torch.Tensor, mult_out: int, size_out: int, mult_in: int, size_in: int) -> torch.Tensor:
    """The inverse of :func:`_copy_pairs`."""
    return pairs.reshape(mult_out, mult_in, size_out, size_in).transpose(1, 2).reshape(mult_out * size_out, -1)


class EquivariantProjector:
    """``W -> P W``: the orthogonal projection of weight matrices ``(out_rep.dim, in_rep.dim)`` (and biases) onto
    the maps that commute with ``group``, block by block (module docs). ``P`` is symmetric and idempotent.

    Args:
        group: The group (O3, SO3, O2/SO2 about an axis, ...).
        in_rep: The input :class:`~equilib.groups.CartesianTensors` (or its spec string).
        out_rep: The output :class:`~equilib.groups.CartesianTensors` (or its spec string).

    Raises:
        ValueError: If the representations' spaces differ from the group's.

    Examples:
        >>> import torch
        >>> from equilib.groups import O2, O3
        >>> from equilib.soft import EquivariantProjector
        >>> p = EquivariantProjector(O3(), "1x2", "1x2")  # O(3) maps of rank-2 tensors: identity, transpose, trace
        >>> p.dimension
        3
        >>> EquivariantProjector(O2(axis=(0.0, 0.0, 1.0)), "1x2", "1x2").dimension  # fewer constraints: more maps
        10
        >>> w = torch.randn(9, 9, dtype=torch.float64)
        >>> bool(torch.allclose(p.project(p.project(w)), p.project(w)))
        True
    """

    def __init__(self, group: Group, in_rep, out_rep) -> None:
        self.group = group
        self.in_rep = in_rep if isinstance(in_rep, CartesianTensors) else CartesianTensors(in_rep)
        self.out_rep = out_rep if isinstance(out_rep, CartesianTensors) else CartesianTensors(out_rep)
        dim = group.generators().dim
        for name, rep in (("in_rep", self.in_rep), ("out_rep", self.out_rep)):
            if rep.dim != dim:
                raise ValueError(f"{name}: {rep!r} lives in {rep.dim} dimensions, {group!r} acts on {dim}")
        ranks = {rank for _, rank in self.in_rep.terms + self.out_rep.terms}
        self._bases = {(b, a): equivariant_basis(group, b, a) for b in ranks for a in ranks | {0}}
        self._cast: dict[tuple, torch.Tensor] = {}

    @property
    def dimension(self) -> int:
        """The dimension of the space of equivariant weight matrices (the rank of ``P``)."""
        return sum(mo * mi * self._bases[(b, a)].shape[1]
                   for mo, b in self.out_rep.terms for mi, a in self.in_rep.terms)

    def _basis(self, rank_out: int, rank_in: int, like: torch.Tensor) -> torch.Tensor:
        key = (rank_out, rank_in, like.dtype, like.device)
        if key not in self._cast:
            self._cast[key] = self._bases[(rank_out, rank_in)].to(dtype=like.dtype, device=like.device)
        return self._cast[key]

    def project(self, weight: torch.Tensor) -> torch.Tensor:
        """``P W``, differentiable in ``W``.

        Args:
            weight: ``(out_rep.dim, in_rep.dim)`` matrix.

        Returns:
            The projected matrix, same shape.

        Raises:
            ValueError: If ``weight`` has another shape.
        """
        want = (self.out_rep.shape[0], self.in_rep.shape[0])
        if tuple(weight.shape) != want:
            raise ValueError(f"weight: expected shape {want} for {self.in_rep!r} -> {self.out_rep!r}, got "
                             f"{tuple(weight.shape)}")
        d = self.in_rep.dim
        rows = []
        for (mo, b), w_row in zip(self.out_rep.terms, weight.split(self.out_rep.sizes, dim=0), strict=True):
            blocks = []
            for (mi, a), w in zip(self.in_rep.terms, w_row.split(self.in_rep.sizes, dim=1), strict=True):
                q = self._basis(b, a, weight)
                projected = (_copy_pairs(w, mo, d**b, mi, d**a) @ q) @ q.T
                blocks.append(_copy_block(projected, mo, d**b, mi, d**a))
            rows.append(torch.cat(blocks, dim=1))
        return torch.cat(rows, dim=0)

    def project_bias(self, bias: torch.Tensor) -> torch.Tensor:
        """The bias's projection onto the invariant vectors of ``out_rep`` (a map from the trivial representation).

        Args:
            bias: ``(out_rep.dim,)`` vector.

        Returns:
            The projected vector.

        Raises:
            ValueError: If ``bias`` has another shape.
        """
        if tuple(bias.shape) != self.out_rep.shape:
            raise ValueError(f"bias: expected shape {self.out_rep.shape} for {self.out_rep!r}, got {tuple(bias.shape)}")
        d = self.out_rep.dim
        pieces = []
        for (mo, b), piece in zip(self.out_rep.terms, bias.split(self.out_rep.sizes), strict=True):
            q = self._basis(b, 0, bias)
            pieces.append(((_copy_pairs(piece, mo, d**b, 1, 1) @ q) @ q.T).reshape(-1))
        return torch.cat(pieces)

    def penalty(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """PER's regulariser of one layer: ``||W - P W||^2 / 2 + ||b - P b||^2 / 2`` (the bias term when given).

        Args:
            weight: ``(out_rep.dim, in_rep.dim)`` matrix.
            bias: ``(out_rep.dim,)`` vector or None.

        Returns:
            A differentiable 0-d tensor.
        """
        value = 0.5 * (weight - self.project(weight)).square().sum()
        if bias is not None:
            value = value + 0.5 * (bias - self.project_bias(bias)).square().sum()
        return value

    def __repr__(self) -> str:
        return f"EquivariantProjector({self.group!r}, {self.in_rep!r} -> {self.out_rep!r})"


class JointPenalty:
    """:meth:`EquivariantProjector.penalty` of one layer for several groups at once: every block of ``W`` is
    multiplied once by all the groups' bases side by side (kept in float64), and ``||W - P W||^2 = ||W||^2 - ||W Q||^2``
    (orthonormal ``Q``), summed in float64 so that small penalties keep their digits (to about 1e-16 of ``||W||^2``).

    Args:
        projectors: Projectors between the same representations, one per group.

    Raises:
        ValueError: If the projectors map between different representations.
    """

    def __init__(self, projectors: list[EquivariantProjector]) -> None:
        first = projectors[0]
        if any(repr(p.in_rep) != repr(first.in_rep) or repr(p.out_rep) != repr(first.out_rep) for p in projectors):
            raise ValueError("projectors: expected projectors between the same representations")
        self.in_rep, self.out_rep, self.count = first.in_rep, first.out_rep, len(projectors)
        ranks = {r for _, r in first.in_rep.terms} | {0}
        self._bases = {}
        for _, b in first.out_rep.terms:
            for a in ranks:
                bases = [p._bases[(b, a)] for p in projectors]
                self._bases[(b, a)] = (torch.cat(bases, dim=1), [q.shape[1] for q in bases])

    def __call__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """The penalties.

        Args:
            weight: ``(out_rep.dim, in_rep.dim)`` matrix.
            bias: ``(out_rep.dim,)`` vector or None.

        Returns:
            ``(number of groups,)`` differentiable penalties in ``weight``'s dtype.

        Raises:
            ValueError: If ``weight`` has another shape.
        """
        want = (self.out_rep.shape[0], self.in_rep.shape[0])
        if tuple(weight.shape) != want:
            raise ValueError(f"weight: expected shape {want}, got {tuple(weight.shape)}")
        d, w64 = self.in_rep.dim, weight.double()
        total_square = w64.square().sum()
        pieces = [(w64.split(self.out_rep.sizes, dim=0), self.in_rep.terms)]
        if bias is not None:
            b64 = bias.double()
            total_square = total_square + b64.square().sum()
            pieces.append(([b.unsqueeze(1) for b in b64.split(self.out_rep.sizes)], ((1, 0),)))
        kept = torch.zeros(self.count, dtype=torch.float64, device=weight.device)
        for rows, in_terms in pieces:
            for (mo, b), w_row in zip(self.out_rep.terms, rows, strict=True):
                columns = w_row.split([m * d**a for m, a in in_terms], dim=1)
                for (mi, a), w in zip(in_terms, columns, strict=True):
                    bases, sizes = self._bases[(b, a)]
                    if bases.shape[1] == 0:
                        continue
                    pairs = _copy_pairs(w, mo, d**b, mi, d**a)
                    norms = (pairs @ bases.to(pairs.device)).square().sum(0)
                    kept = kept + torch.stack([part.sum() for part in norms.split(sizes)])
        return (0.5 * (total_square - kept)).clamp_min(0.0).to(weight.dtype)

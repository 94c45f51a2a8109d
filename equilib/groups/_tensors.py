"""Sums of Cartesian tensors (the tensor representations of EMLP, Finzi et al. 2021): ``"5x0+5x1"`` is five scalars
and five vectors, ``"1x2"`` one rank-2 tensor; a linear map ``A`` acts on a rank-k tensor as ``A^(x)k``.

The flat layout concatenates the terms in order, each term copy-major (copy 0's components, then copy 1's) with a
rank-k tensor's ``dim^k`` components row-major: an inertia tensor ``I`` is ``I.reshape(9)``.
"""

from __future__ import annotations

import re

import torch

from ._representations import Representation, _linear_of_size

_TERM = re.compile(r"^\s*(?:(\d+)\s*x\s*)?(\d+)\s*$")


def parse_tensor_terms(spec: str) -> tuple[tuple[int, int], ...]:
    """``"5x0+5x1"`` as ``((5, 0), (5, 1))``: (multiplicity, rank) of each term; a bare rank counts once.

    Args:
        spec: Terms ``mult x rank`` joined by ``+``.

    Returns:
        The (multiplicity, rank) pairs in order.

    Raises:
        ValueError: If ``spec`` is not a string of such terms with positive multiplicities.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"spec: expected terms like '5x0+5x1' (multiplicity x rank), got {spec!r}")
    terms = []
    for term in spec.split("+"):
        match = _TERM.match(term)
        if match is None or (match.group(1) is not None and int(match.group(1)) < 1):
            raise ValueError(f"spec: expected terms like '5x0+5x1' (multiplicity x rank), got {spec!r}")
        terms.append((int(match.group(1) or 1), int(match.group(2))))
    return tuple(terms)


class CartesianTensors(Representation):
    """Copies of Cartesian tensors of several ranks side by side on the last axis; ``g`` acts through its linear part
    as ``A^(x)k`` on each rank-k copy (translations do not act; a linear part ``c I`` scales a rank-k copy by
    ``c^k``).

    Args:
        spec: The terms, e.g. ``"5x0+5x1"`` (module docs).
        dim: Dimension of the space (the vectors' size).

    Raises:
        ValueError: If ``spec`` cannot be parsed or ``dim`` is not a positive int.

    Examples:
        >>> import torch
        >>> from equilib.groups import O3, CartesianTensors
        >>> rep = CartesianTensors("2x0+1x1+1x2")
        >>> rep.shape, rep.terms
        ((14,), ((2, 0), (1, 1), (1, 2)))
        >>> g = O3().sample(1, generator=torch.Generator().manual_seed(0))
        >>> r = torch.randn(1, 3, dtype=torch.float64)
        >>> x = torch.cat([torch.ones(1, 2, dtype=torch.float64), r, (r[:, :, None] * r[:, None, :]).reshape(1, 9)], 1)
        >>> gr = r @ g.linear[0].T  # the outer product of a rotated vector is the rotated tensor
        >>> bool(torch.allclose(rep.act(g, x)[:, 5:], (gr[:, :, None] * gr[:, None, :]).reshape(1, 9)))
        True
    """

    def __init__(self, spec: str, dim: int = 3) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        self.spec, self.dim = spec, dim
        self.terms = parse_tensor_terms(spec)
        self.sizes = [mult * dim**rank for mult, rank in self.terms]
        self.shape = (sum(self.sizes),)

    def act(self, g, x):
        linear = _linear_of_size(g, self.dim, repr(self))
        if linear is None:
            return x
        linear = linear.to(x.dtype)
        pieces = []
        for (mult, rank), piece in zip(self.terms, x.split(self.sizes, dim=-1), strict=True):
            t = piece.reshape(*piece.shape[:-1], mult, *([self.dim] * rank))
            first = t.dim() - rank  # the tensor's first index (after the element's axis, others and the copies)
            for axis in range(first, t.dim()):  # A on each index of the tensor
                moved = t.movedim(axis, -1)
                a = linear.reshape(len(g), *([1] * (moved.dim() - 3)), self.dim, self.dim)
                t = (moved @ a.transpose(-1, -2)).movedim(-1, axis)
            pieces.append(t.reshape(piece.shape))
        return torch.cat(pieces, dim=-1)

    def __repr__(self) -> str:
        dim = "" if self.dim == 3 else f", dim={self.dim}"
        return f"CartesianTensors('{self.spec}'{dim})"

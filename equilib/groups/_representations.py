"""How a group element acts on a tensor: representations of the parts of :class:`GroupElement`.

Each representation reads the parts it needs and ignores the others: irreps (e3nn's layout and convention, Wigner
D matrices with parity), Cartesian vectors and pseudo-vectors, points (``A x + t``), scalars, a set of any of these
(the element's permutation reorders the set's leading axis) and concatenations along the last axis (one tensor
holding positions, velocities and charges side by side).

``act(g, x)`` takes ``x`` with one leading axis per element of ``g`` (shape ``(len(g), *shape)``) and returns
``g.x`` with the same shape; ``check(shape, where)`` validates the shape of one unbatched tensor.
"""

from __future__ import annotations

import torch
from e3nn import o3

from ..so3 import wigner_D
from ._element import GroupElement


class Representation:
    """A linear (or affine) action of group elements on tensors whose trailing axes have ``shape`` (None: any).

    Subclasses implement ``act``; ``check`` validates a tensor's shape against ``shape``.
    """

    shape: tuple[int, ...] | None = None

    def act(self, g: GroupElement, x: torch.Tensor) -> torch.Tensor:
        """``g.x``: the action of each element of ``g`` on the matching slice of ``x``.

        Args:
            g: ``n`` group elements; the representation reads only the parts it needs.
            x: Tensor of shape ``(n, ..., *shape)``: one leading axis per element of ``g``.

        Returns:
            Tensor of ``x``'s shape.

        Raises:
            ValueError: If ``g``'s parts do not fit the representation (e.g. a linear part of another dimension).
        """
        raise NotImplementedError

    def check(self, shape: tuple[int, ...], where: str) -> None:
        """Check that an (unbatched) tensor of ``shape`` can carry this representation.

        Args:
            shape: The tensor's shape.
            where: Name of the tensor in the error message (e.g. ``"inputs[0]"``).

        Raises:
            ValueError: If the trailing axes of ``shape`` do not match the representation's ``shape`` (or, for
                :class:`OnSet`, there is no set axis).
        """
        want = self.shape
        if want is not None and (len(shape) < len(want) or tuple(shape[len(shape) - len(want):]) != want):
            raise ValueError(f"{where}: {self!r} acts on tensors of shape (..., {', '.join(map(str, want))}), "
                             f"got shape {tuple(shape)}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _apply_matrix(matrix: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``matrix[k] @ v`` for every last-axis vector ``v`` of ``x[k]``."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    return (flat @ matrix.transpose(1, 2).to(x.dtype)).reshape(x.shape)


def _linear_of_size(g: GroupElement, d: int, what: str) -> torch.Tensor | None:
    if g.linear is not None and g.linear.shape[1] != d:
        raise ValueError(f"g: {what} needs a {d} x {d} linear part, the element has {tuple(g.linear.shape[1:])}")
    return g.linear


class Scalars(Representation):
    """Invariant tensors (energies, charges, species): every element acts as the identity.

    Args:
        dim: The size of the last axis, if it must be fixed (e.g. one column of a :class:`Concat`); None: any shape.
    """

    def __init__(self, dim: int | None = None) -> None:
        self.shape = None if dim is None else (dim,)

    def act(self, g, x):
        return x

    def __repr__(self) -> str:
        return "Scalars()" if self.shape is None else f"Scalars({self.shape[0]})"


class Irreps(Representation):
    """Features in e3nn's flat layout for ``irreps``: the O(3) part acts by Wigner D matrices with parity.

    The matrices are :func:`equilib.so3.wigner_D`; translations do not act. An l = 1 irrep is (x, y, z) in e3nn's
    order: ``Irreps("1o")`` acts like :class:`Vectors`, ``Irreps("1e")`` like :class:`PseudoVectors`.

    Args:
        irreps: Irreps string (e.g. ``"2x0e+1x1o"``) or e3nn Irreps.

    Examples:
        >>> import torch
        >>> from equilib.groups import O3, Irreps, Vectors
        >>> g = O3().sample(3, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        >>> bool(torch.allclose(Irreps("1o").act(g, x), Vectors().act(g, x)))
        True
        >>> Irreps("2x0e+1o+2e").act(g, torch.ones(3, 10, dtype=torch.float64)).shape
        torch.Size([3, 10])
    """

    def __init__(self, irreps) -> None:
        self.irreps = o3.Irreps(irreps)
        self.shape = (self.irreps.dim,)

    def act(self, g, x):
        linear = _linear_of_size(g, 3, repr(self))
        if linear is None:
            return x
        return _apply_matrix(wigner_D(self.irreps, linear.detach().to(torch.float64)), x)

    def __repr__(self) -> str:
        return f"Irreps('{self.irreps}')"


class Vectors(Representation):
    """Cartesian free vectors (velocities, forces, displacements): ``v -> A v``, not translated.

    Args:
        dim: Dimension of the vectors.
    """

    def __init__(self, dim: int = 3) -> None:
        self.shape = (dim,)

    def act(self, g, x):
        linear = _linear_of_size(g, self.shape[0], repr(self))
        return x if linear is None else _apply_matrix(linear, x)

    def __repr__(self) -> str:
        return f"Vectors({self.shape[0]})" if self.shape != (3,) else "Vectors()"


class PseudoVectors(Vectors):
    """Cartesian pseudo-vectors (angular momenta, magnetic fields): ``v -> det(A) A v``, not translated.

    Args:
        dim: Dimension of the vectors.
    """

    def act(self, g, x):
        linear = _linear_of_size(g, self.shape[0], repr(self))
        if linear is None:
            return x
        return _apply_matrix(linear * torch.linalg.det(linear).sign().view(-1, 1, 1), x)

    def __repr__(self) -> str:
        return f"PseudoVectors({self.shape[0]})" if self.shape != (3,) else "PseudoVectors()"


class Positions(Vectors):
    """Points: ``x -> A x + t``.

    Args:
        dim: Dimension of the points.
    """

    def act(self, g, x):
        x = super().act(g, x)
        if g.translation is None:
            return x
        if g.translation.shape[1] != self.shape[0]:
            raise ValueError(f"g: {self!r} needs a {self.shape[0]}-dimensional translation, the element has "
                             f"{g.translation.shape[1]}")
        return x + g.translation.to(x.dtype).view(x.shape[0], *([1] * (x.dim() - 2)), -1)

    def __repr__(self) -> str:
        return f"Positions({self.shape[0]})" if self.shape != (3,) else "Positions()"


class OnSet(Representation):
    """A set of items, each carrying the representation ``item``.

    The element's permutation reorders the set (the axis just before the item's own axes: the leading axis of an
    unbatched ``(m, *item_shape)`` tensor), then ``item`` acts on each item. ``OnSet(Scalars())`` is one number per
    item (atomic numbers, charges of shape ``(m,)``).

    Args:
        item: The representation of one item.

    Raises:
        TypeError: If ``item`` is not a :class:`Representation`.
    """

    def __init__(self, item: Representation) -> None:
        if not isinstance(item, Representation):
            raise TypeError(f"item: expected a Representation, got {type(item).__name__}")
        self.item = item
        self.item_shape = item.shape or ()  # Scalars(): one number per item, the set is the last axis
        self.shape = None

    def check(self, shape, where):
        self.item.check(shape, where)
        if len(shape) < len(self.item_shape) + 1:
            item = "".join(f", {s}" for s in self.item_shape)
            raise ValueError(f"{where}: {self!r} acts on tensors of shape (..., m{item}) with a set axis of m items, "
                             f"got shape {tuple(shape)}")

    def act(self, g, x):
        x = self.item.act(g, x)
        if g.permutation is None:
            return x
        axis = x.dim() - len(self.item_shape) - 1
        if g.permutation.shape[1] != x.shape[axis]:
            raise ValueError(f"g: a permutation of {g.permutation.shape[1]} items acting on a set of {x.shape[axis]}")
        index = g.permutation.view(len(g), *([1] * (axis - 1)), -1, *([1] * len(self.item_shape)))
        return x.gather(axis, index.expand_as(x))

    def __repr__(self) -> str:
        return f"OnSet({self.item!r})"


class Concat(Representation):
    """Several representations side by side along the last axis.

    E.g. ``Concat(Positions(), Vectors(), Scalars(1))`` for rows ``[x, v, q]`` of size 7.

    Args:
        *parts: Representations with a fixed one-axis ``shape`` each.

    Raises:
        ValueError: If a part is not a representation with a fixed last-axis size.
    """

    def __init__(self, *parts: Representation) -> None:
        for part in parts:
            if not isinstance(part, Representation) or part.shape is None or len(part.shape) != 1:
                raise ValueError(f"parts: expected representations with a fixed last-axis size, got {part!r}")
        self.parts = parts
        self.sizes = [part.shape[0] for part in parts]
        self.shape = (sum(self.sizes),)

    def act(self, g, x):
        return torch.cat([part.act(g, piece) for part, piece in zip(self.parts, x.split(self.sizes, dim=-1))], dim=-1)

    def __repr__(self) -> str:
        return f"Concat({', '.join(map(repr, self.parts))})"

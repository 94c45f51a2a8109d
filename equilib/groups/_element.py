"""A batch of group elements as the parts that act on tensors: a linear map, a translation, a permutation.

Every group of :mod:`equilib.groups` writes its elements this way (a semidirect-product form ``x -> A x + t`` on
points, with an independent permutation of a set axis), so that a representation only looks at the parts it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GroupElement:
    """A batch of ``n`` group elements as the parts that act on tensors.

    Each part is optional (absent = the identity in that part), but at least one is present and all hold ``n``
    elements. ``len(g)`` is ``n``; ``g[k]`` (an int keeps a batch of one) or ``g[a:b]`` selects elements.

    Attributes:
        linear: ``(n, d, d)`` matrices ``A`` (rotations, reflections), or None.
        translation: ``(n, d)`` vectors ``t``, or None; a point moves as ``x -> A x + t``.
        permutation: ``(n, m)`` torch.long index arrays ``p``, or None; a set moves as ``(g.x)[i] = x[p[i]]``.

    Raises:
        ValueError: If no part is given, the parts hold different numbers of elements, a part has the wrong shape
            (or the permutation is not torch.long), or the translation's dimension differs from the linear part's.

    Examples:
        >>> import torch
        >>> from equilib.groups import E3
        >>> g = E3().sample(2, generator=torch.Generator().manual_seed(0))
        >>> sorted(g.parts()), len(g)
        (['linear', 'translation'], 2)
        >>> e = g.compose(g.inverse())
        >>> bool(torch.allclose(e.linear, torch.eye(3, dtype=torch.float64))), bool(e.translation.abs().max() < 1e-12)
        (True, True)
    """

    linear: torch.Tensor | None = None
    translation: torch.Tensor | None = None
    permutation: torch.Tensor | None = None

    def __post_init__(self) -> None:
        sizes = {name: part.shape[0] for name, part in self.parts().items()}
        if not sizes:
            raise ValueError("GroupElement: expected at least one of linear, translation, permutation")
        if len(set(sizes.values())) > 1:
            raise ValueError(f"GroupElement: the parts hold different numbers of elements: {sizes}")
        if self.linear is not None and (self.linear.dim() != 3 or self.linear.shape[1] != self.linear.shape[2]):
            raise ValueError(f"linear: expected shape (n, d, d), got {tuple(self.linear.shape)}")
        if self.translation is not None and self.translation.dim() != 2:
            raise ValueError(f"translation: expected shape (n, d), got {tuple(self.translation.shape)}")
        if (self.linear is not None and self.translation is not None
                and self.linear.shape[1] != self.translation.shape[1]):
            raise ValueError(f"translation: expected dimension {self.linear.shape[1]} as the linear part, got "
                             f"{self.translation.shape[1]}")
        if self.permutation is not None and (self.permutation.dim() != 2 or self.permutation.dtype != torch.long):
            raise ValueError(f"permutation: expected a long tensor of shape (n, m), got {self.permutation.dtype} "
                             f"{tuple(self.permutation.shape)}")

    def parts(self) -> dict[str, torch.Tensor]:
        """The parts that are present, by name.

        Returns:
            ``{name: tensor}`` for the present parts among ``"linear"``, ``"translation"``, ``"permutation"``.
        """
        return {name: part for name in ("linear", "translation", "permutation")
                if (part := getattr(self, name)) is not None}

    def __len__(self) -> int:
        return next(iter(self.parts().values())).shape[0]

    def __getitem__(self, index) -> GroupElement:
        """The elements at ``index`` (an int keeps a batch of one)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return GroupElement(**{name: part[index] for name, part in self.parts().items()})

    def compose(self, other: GroupElement) -> GroupElement:
        """``self * other``: the elements that act as ``other`` first, then ``self``, pairwise.

        Args:
            other: As many elements as ``self``.

        Returns:
            The composed elements: ``A1 A2``, ``A1 t2 + t1``, ``p2[p1]``; a part absent from both stays absent.

        Raises:
            ValueError: If the numbers of elements or the shapes of the linear parts differ.
        """
        if len(self) != len(other):
            raise ValueError(f"other: expected {len(self)} elements, got {len(other)}")
        linear = _matmul(self.linear, other.linear)
        translation = other.translation
        if translation is not None and self.linear is not None:
            translation = (self.linear @ translation.unsqueeze(-1)).squeeze(-1)
        translation = _add(translation, self.translation)
        permutation = other.permutation
        if permutation is not None and self.permutation is not None:
            permutation = permutation.gather(1, self.permutation)
        elif permutation is None:
            permutation = self.permutation
        return GroupElement(linear, translation, permutation)

    def inverse(self) -> GroupElement:
        """The inverse elements.

        Returns:
            The elements ``A^-1``, ``-A^-1 t``, ``argsort(p)`` (the parts of ``self`` only).
        """
        linear = None if self.linear is None else torch.linalg.inv(self.linear)
        translation = None
        if self.translation is not None:
            if linear is None:
                translation = -self.translation
            else:
                translation = -(linear @ self.translation.unsqueeze(-1)).squeeze(-1)
        permutation = None if self.permutation is None else torch.argsort(self.permutation, dim=1)
        return GroupElement(linear, translation, permutation)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupElement:
        """The same elements with floating parts in ``dtype`` and every part on ``device``.

        Args:
            dtype: Dtype of the floating parts (``linear``, ``translation``); None keeps it.
            device: Device of every part; None keeps it.

        Returns:
            A new :class:`GroupElement`.
        """
        moved = {}
        for name, part in self.parts().items():
            moved[name] = part.to(device=device, dtype=dtype if part.is_floating_point() else None)
        return GroupElement(**moved)


def _matmul(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    if a.shape[1:] != b.shape[1:]:
        raise ValueError(f"other: expected linear parts of shape {tuple(a.shape[1:])}, got {tuple(b.shape[1:])}")
    return a @ b


def _add(a: torch.Tensor | None, b: torch.Tensor | None) -> torch.Tensor | None:
    if a is None or b is None:
        return b if a is None else a
    return a + b

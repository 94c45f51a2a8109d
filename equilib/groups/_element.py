"""A batch of group elements as the parts that act on tensors: a linear map, a translation, a permutation.

Every group of :mod:`equilib.groups` writes its elements this way (a semidirect-product form ``x -> A x + t`` on
points, with an independent permutation of a set axis), so that a representation only looks at the parts it needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class GroupElement:
    """``n`` group elements. Each part is optional (absent = the identity in that part):

    - ``linear``: ``(n, d, d)`` matrices ``A`` (rotations, reflections, later GL+(n) and SL(n)),
    - ``translation``: ``(n, d)`` vectors ``t``; a point moves as ``x -> A x + t``,
    - ``permutation``: ``(n, m)`` index arrays ``p``; a set moves as ``(g.x)[i] = x[p[i]]``.
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
        if self.linear is not None and self.translation is not None and self.linear.shape[1] != self.translation.shape[1]:
            raise ValueError(f"translation: expected dimension {self.linear.shape[1]} as the linear part, got "
                             f"{self.translation.shape[1]}")
        if self.permutation is not None and (self.permutation.dim() != 2 or self.permutation.dtype != torch.long):
            raise ValueError(f"permutation: expected a long tensor of shape (n, m), got {self.permutation.dtype} "
                             f"{tuple(self.permutation.shape)}")

    def parts(self) -> dict[str, torch.Tensor]:
        """The parts that are present, by name."""
        return {name: part for name in ("linear", "translation", "permutation")
                if (part := getattr(self, name)) is not None}

    def __len__(self) -> int:
        return next(iter(self.parts().values())).shape[0]

    def __getitem__(self, index) -> GroupElement:
        """The elements at ``index`` (an int keeps a batch of one)."""
        index = slice(index, index + 1) if isinstance(index, int) else index
        return GroupElement(**{name: part[index] for name, part in self.parts().items()})

    def compose(self, other: GroupElement) -> GroupElement:
        """``self * other``: the element that acts as ``other`` first, then ``self``."""
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
        """The inverse elements: ``A^-1``, ``-A^-1 t``, ``argsort(p)``."""
        linear = None if self.linear is None else torch.linalg.inv(self.linear)
        translation = None
        if self.translation is not None:
            translation = -self.translation if linear is None else -(linear @ self.translation.unsqueeze(-1)).squeeze(-1)
        permutation = None if self.permutation is None else torch.argsort(self.permutation, dim=1)
        return GroupElement(linear, translation, permutation)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupElement:
        """The same elements with floating parts in ``dtype`` and every part on ``device``."""
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

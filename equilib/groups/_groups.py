"""Groups as objects that sample their elements: O(3), SO(3), E(3), SE(3), SO(2) and O(2) about an axis, O(n),
positive scalings (alone or with a linear group), translations, permutations of a set, and direct products of these.

Compact groups sample from their normalised Haar measure (SO(3) through uniform unit quaternions, Shoemake 1992;
O(3) as SO(3) times a fair coin for the inversion; SO(2) and O(2) through a uniform angle; O(n) through the QR
decomposition of a Gaussian matrix). Translations and scalings have no normalised Haar measure: translations are drawn
from an isotropic Gaussian of standard deviation ``scale``, scale factors from a log-normal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..so3 import random_rotation
from ._element import GroupElement


@dataclass(frozen=True)
class LinearGenerators:
    """Generators of a matrix group acting on R^dim.

    Attributes:
        lie: ``(k, dim, dim)`` a basis of the Lie algebra (k = 0 for a finite group).
        discrete: ``(m, dim, dim)`` group elements that generate the group together with ``exp`` of the Lie algebra
            (m = 0 for a connected group).
    """

    lie: torch.Tensor
    discrete: torch.Tensor

    @property
    def dim(self) -> int:
        """The dimension of the space the matrices act on."""
        return self.lie.shape[-1]


def _cross_matrix(a: torch.Tensor) -> torch.Tensor:
    """The matrix of ``v -> a x v``."""
    zero = torch.zeros((), dtype=a.dtype)
    return torch.stack([torch.stack([zero, -a[2], a[1]]), torch.stack([a[2], zero, -a[0]]),
                        torch.stack([-a[1], a[0], zero])])


def _so3_algebra(dtype) -> torch.Tensor:
    """``L_x, L_y, L_z`` with ``L_a v = e_a x v``."""
    return torch.stack([_cross_matrix(e) for e in torch.eye(3, dtype=dtype)])


class Group:
    """A group that samples batches of :class:`GroupElement`.

    Subclasses set ``parts`` (the element parts they use: ``"linear"``, ``"translation"``, ``"permutation"``) and
    implement ``sample``, ``identity`` and ``contains``; ``G * H`` is their :class:`DirectProduct`.

    Examples:
        >>> import torch
        >>> from equilib.groups import O3, SO3
        >>> g = O3().sample(3, generator=torch.Generator().manual_seed(0))
        >>> g.linear.shape
        torch.Size([3, 3, 3])
        >>> O3().contains(g), SO3().contains(g)  # the second and third draws are improper
        (tensor([True, True, True]), tensor([False,  True, False]))
    """

    parts: tuple[str, ...] = ()

    def sample(self, n: int = 1, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64,
               device: torch.device | str | None = None) -> GroupElement:
        """``n`` elements drawn independently (from the normalised Haar measure when the group is compact).

        Args:
            n: Number of elements.
            generator: Torch generator for the draw; None uses the global one.
            dtype: Dtype of the floating parts (drawn in float64, then converted).
            device: Device of every part.

        Returns:
            A :class:`GroupElement` of ``n`` elements with the parts in ``parts``.

        Raises:
            ValueError: If ``n`` is not a non-negative int.
        """
        raise NotImplementedError

    def identity(self, n: int = 1, dtype: torch.dtype = torch.float64,
                 device: torch.device | str | None = None) -> GroupElement:
        """``n`` copies of the identity element, with the parts this group uses.

        Args:
            n: Number of elements.
            dtype: Dtype of the floating parts.
            device: Device of every part.

        Returns:
            A :class:`GroupElement` of ``n`` identities.
        """
        raise NotImplementedError

    def contains(self, g: GroupElement, atol: float = 1e-8) -> torch.Tensor:
        """For each of the elements ``g``, whether it belongs to this group.

        An element with a part the group does not use (e.g. a translation for :class:`SO3`) does not belong to it.

        Args:
            g: The elements to test.
            atol: Absolute tolerance of the tests (orthogonality, determinant, fixed axis).

        Returns:
            Bool tensor of shape ``(len(g),)``.
        """
        raise NotImplementedError

    def generators(self, dtype: torch.dtype = torch.float64) -> LinearGenerators:
        """The generators of the group's linear part: a basis of its Lie algebra and discrete elements that, with the
        identity component, generate the whole group. A linear map is equivariant under the group exactly when it
        commutes with both (what :mod:`equilib.soft`'s projectors solve for).

        Args:
            dtype: Dtype of the matrices.

        Returns:
            The :class:`LinearGenerators`.

        Raises:
            NotImplementedError: If the group has no linear part described by generators (translations,
                permutations, products).
        """
        raise NotImplementedError(f"{self!r}: no generators of a linear part (only linear groups such as O3, SO3, "
                                  "O2, SO2 and Scaling have them)")

    def __mul__(self, other: Group) -> DirectProduct:
        return DirectProduct(self, other)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def _check_count(n: int) -> None:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n: expected a non-negative int, got {n!r}")


def _identity_matrices(n: int, d: int, dtype, device) -> torch.Tensor:
    return torch.eye(d, dtype=dtype, device=device).expand(n, d, d).clone()


def _orthogonal(g: GroupElement, d: int, parts: tuple[str, ...], atol: float) -> torch.Tensor:
    """Whether each element is a d x d orthogonal map using no part beyond ``parts`` (all False if it has another
    part or no linear part of that size)."""
    linear = g.linear
    if linear is None or linear.shape[1:] != (d, d) or not _no_other_parts(g, parts):
        return torch.zeros(len(g), dtype=torch.bool)
    eye = torch.eye(d, dtype=linear.dtype, device=linear.device)
    return ((linear.transpose(1, 2) @ linear - eye).abs().flatten(1).amax(1) <= atol)


def _no_other_parts(g: GroupElement, allowed: tuple[str, ...]) -> bool:
    return all(name in allowed for name in g.parts())


class SO3(Group):
    """Rotations of R^3 (3 x 3 orthogonal matrices of determinant +1), uniform (Haar) samples."""

    parts = ("linear",)

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        _check_count(n)
        return GroupElement(linear=random_rotation(n, generator=generator).to(device=device, dtype=dtype))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(linear=_identity_matrices(n, 3, dtype, device))

    def contains(self, g, atol=1e-8):
        ok = _orthogonal(g, 3, self.parts, atol)
        return ok & ((torch.linalg.det(g.linear) - 1).abs() <= atol) if ok.any() else ok

    def generators(self, dtype=torch.float64):
        return LinearGenerators(_so3_algebra(dtype), torch.zeros(0, 3, 3, dtype=dtype))


class O3(SO3):
    """Rotations and improper rotations of R^3 (orthogonal 3 x 3 matrices).

    Samples are a Haar rotation times the inversion -I with probability 1/2 (the Haar measure of O(3)).
    """

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        rotation = SO3().sample(n, generator, torch.float64).linear
        flip = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
        sign = 1.0 - 2.0 * flip.to(torch.float64)
        return GroupElement(linear=(rotation * sign.view(-1, 1, 1)).to(device=device, dtype=dtype))

    def contains(self, g, atol=1e-8):
        return _orthogonal(g, 3, self.parts, atol)

    def generators(self, dtype=torch.float64):
        return LinearGenerators(_so3_algebra(dtype), -torch.eye(3, dtype=dtype).unsqueeze(0))


class _AboutAxis(Group):
    """Shared parts of SO(2) and O(2) about a unit axis of R^3.

    Args:
        axis: A non-zero 3-vector (normalised).

    Raises:
        ValueError: If ``axis`` is not a finite, non-zero 3-vector.
    """

    parts = ("linear",)

    def __init__(self, axis=(0.0, 0.0, 1.0)) -> None:
        axis = torch.as_tensor(axis, dtype=torch.float64)
        if axis.shape != (3,) or not torch.isfinite(axis).all() or axis.norm() == 0:
            raise ValueError(f"axis: expected a non-zero 3-vector, got {axis.tolist()}")
        self.axis = axis / axis.norm()

    def _rotations(self, angle: torch.Tensor) -> torch.Tensor:
        """Rodrigues' formula: rotations by ``angle`` (float64) about the axis."""
        a = self.axis
        cross = _cross_matrix(a)
        outer = torch.outer(a, a)
        eye = torch.eye(3, dtype=torch.float64)
        c, s = angle.cos().view(-1, 1, 1), angle.sin().view(-1, 1, 1)
        return c * eye + s * cross + (1 - c) * outer

    def _angles(self, n, generator):
        _check_count(n)
        return (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1) * math.pi

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(linear=_identity_matrices(n, 3, dtype, device))

    def _fixes_axis(self, g, atol):
        ok = _orthogonal(g, 3, self.parts, atol)
        if not ok.any():
            return ok
        axis = self.axis.to(g.linear)
        return ok & ((g.linear @ axis - axis).abs().amax(1) <= atol)

    def _algebra(self, dtype) -> torch.Tensor:
        """The rotations' generator ``v -> axis x v``."""
        return _cross_matrix(self.axis).to(dtype).unsqueeze(0)

    def _mirror(self) -> torch.Tensor:
        """A reflection through a plane that contains the axis."""
        normal = _perpendicular(self.axis)
        return torch.eye(3, dtype=torch.float64) - 2 * torch.outer(normal, normal)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(axis={[round(float(v), 6) for v in self.axis]})"


class SO2(_AboutAxis):
    """Rotations about ``axis``, embedded in SO(3); the angle is uniform on [-pi, pi).

    Args:
        axis: A non-zero 3-vector (normalised); default z.

    Raises:
        ValueError: If ``axis`` is not a finite, non-zero 3-vector.
    """

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        return GroupElement(linear=self._rotations(self._angles(n, generator)).to(device=device, dtype=dtype))

    def contains(self, g, atol=1e-8):
        ok = self._fixes_axis(g, atol)
        return ok & ((torch.linalg.det(g.linear) - 1).abs() <= atol) if ok.any() else ok

    def generators(self, dtype=torch.float64):
        return LinearGenerators(self._algebra(dtype), torch.zeros(0, 3, 3, dtype=dtype))


class O2(_AboutAxis):
    """The orthogonal maps of R^3 that fix ``axis``: rotations about it and reflections through planes that contain it.

    Samples have a uniform angle and a reflection with probability 1/2.

    Args:
        axis: A non-zero 3-vector (normalised); default z.

    Raises:
        ValueError: If ``axis`` is not a finite, non-zero 3-vector.

    Examples:
        >>> import torch
        >>> from equilib.groups import O2, SO2
        >>> g = O2(axis=(0.0, 0.0, 1.0)).sample(4, generator=torch.Generator().manual_seed(0))
        >>> SO2().contains(g)  # the reflections are not rotations
        tensor([ True,  True, False, False])
    """

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        rotation = self._rotations(self._angles(n, generator))
        flip = torch.rand(n, generator=generator, dtype=torch.float64) < 0.5
        linear = torch.where(flip.view(-1, 1, 1), rotation @ self._mirror(), rotation)
        return GroupElement(linear=linear.to(device=device, dtype=dtype))

    def contains(self, g, atol=1e-8):
        return self._fixes_axis(g, atol)

    def generators(self, dtype=torch.float64):
        return LinearGenerators(self._algebra(dtype), self._mirror().to(dtype).unsqueeze(0))


def _perpendicular(axis: torch.Tensor) -> torch.Tensor:
    helper = torch.zeros(3, dtype=torch.float64)
    helper[int(axis.abs().argmin())] = 1.0
    normal = torch.linalg.cross(axis, helper)
    return normal / normal.norm()


class Translations(Group):
    """Translations of R^dim, drawn from N(0, scale^2 I) (the group is not compact: no uniform measure).

    Args:
        dim: Dimension of the space.
        scale: Standard deviation of each component of a sampled translation.

    Raises:
        ValueError: If ``dim`` is not a positive int or ``scale`` is not positive.
    """

    parts = ("translation",)

    def __init__(self, dim: int = 3, scale: float = 1.0) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        if not scale > 0:
            raise ValueError(f"scale: expected a positive number, got {scale!r}")
        self.dim, self.scale = dim, float(scale)

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        _check_count(n)
        t = self.scale * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return GroupElement(translation=t.to(device=device, dtype=dtype))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(translation=torch.zeros(n, self.dim, dtype=dtype, device=device))

    def contains(self, g, atol=1e-8):
        ok = g.translation is not None and g.translation.shape[1] == self.dim and _no_other_parts(g, self.parts)
        return torch.full((len(g),), bool(ok))

    def __repr__(self) -> str:
        return f"Translations(dim={self.dim}, scale={self.scale})"


class OrthogonalGroup(Group):
    """The orthogonal maps of R^dim, O(dim) (e.g. O(5) of EMLP's ``O5Synthetic``); Haar samples, from the QR
    decomposition of a standard Gaussian matrix with the signs of R's diagonal moved into Q (Mezzadri 2007).

    Args:
        dim: Dimension of the space (at least 2; :class:`O3` is O(3) with its own sampler).

    Raises:
        ValueError: If ``dim`` is not an int of at least 2.

    Examples:
        >>> import torch
        >>> from equilib.groups import OrthogonalGroup
        >>> g = OrthogonalGroup(5).sample(2, generator=torch.Generator().manual_seed(0))
        >>> g.linear.shape, bool(OrthogonalGroup(5).contains(g).all())
        (torch.Size([2, 5, 5]), True)
    """

    parts = ("linear",)

    def __init__(self, dim: int) -> None:
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2:
            raise ValueError(f"dim: expected an int of at least 2, got {dim!r}")
        self.dim = dim

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        _check_count(n)
        gaussian = torch.randn(n, self.dim, self.dim, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        signs = torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))
        signs = torch.where(signs == 0, torch.ones_like(signs), signs)
        return GroupElement(linear=(q * signs.unsqueeze(-2)).to(device=device, dtype=dtype))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(linear=_identity_matrices(n, self.dim, dtype, device))

    def contains(self, g, atol=1e-8):
        return _orthogonal(g, self.dim, self.parts, atol)

    def generators(self, dtype=torch.float64):
        i, j = torch.triu_indices(self.dim, self.dim, offset=1)
        lie = torch.zeros(len(i), self.dim, self.dim, dtype=dtype)
        k = torch.arange(len(i))
        lie[k, i, j], lie[k, j, i] = 1.0, -1.0
        mirror = torch.eye(self.dim, dtype=dtype)
        mirror[0, 0] = -1.0
        return LinearGenerators(lie, mirror.unsqueeze(0))

    def __repr__(self) -> str:
        return f"OrthogonalGroup({self.dim})"


class Scaling(Group):
    """Positive scalings ``c I`` of R^dim, optionally combined with a linear group ``base`` whose elements they
    commute with (PER's ``SO3+Scale``: ``Scaling(base=SO3())``, elements ``c R``).

    The group is not compact: ``log c`` is drawn from N(0, scale^2) (a log-normal scale factor, symmetric under
    ``c -> 1 / c``), times a ``base`` element drawn from its own distribution.

    Args:
        dim: Dimension of the space (taken from ``base`` when given).
        scale: Standard deviation of ``log c``.
        base: A linear group (with :meth:`Group.generators`) or None.

    Raises:
        ValueError: If ``dim`` is not a positive int, ``scale`` is not positive or ``base`` has no generators.

    Examples:
        >>> import torch
        >>> from equilib.groups import SO3, Scaling
        >>> g = Scaling(base=SO3()).sample(2, generator=torch.Generator().manual_seed(0))
        >>> bool(Scaling(base=SO3()).contains(g).all()), bool(SO3().contains(g).any())
        (True, False)
    """

    parts = ("linear",)

    def __init__(self, dim: int = 3, scale: float = 0.5, base: Group | None = None) -> None:
        if base is not None:
            try:
                dim = base.generators().dim
            except NotImplementedError as error:
                raise ValueError(f"base: expected a linear group with generators, got {base!r}") from error
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        if not scale > 0:
            raise ValueError(f"scale: expected a positive number, got {scale!r}")
        self.dim, self.scale, self.base = dim, float(scale), base

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        _check_count(n)
        factor = (self.scale * torch.randn(n, generator=generator, dtype=torch.float64)).exp().view(-1, 1, 1)
        linear = (torch.eye(self.dim, dtype=torch.float64) if self.base is None
                  else self.base.sample(n, generator, torch.float64).linear)
        return GroupElement(linear=(factor * linear).to(device=device, dtype=dtype))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(linear=_identity_matrices(n, self.dim, dtype, device))

    def contains(self, g, atol=1e-8):
        if g.linear is None or g.linear.shape[1:] != (self.dim, self.dim) or not _no_other_parts(g, self.parts):
            return torch.zeros(len(g), dtype=torch.bool)
        det = torch.linalg.det(g.linear)
        factor = det.abs().clamp(min=torch.finfo(g.linear.dtype).tiny) ** (1 / self.dim)
        unscaled = g.linear / factor.view(-1, 1, 1)
        if self.base is None:
            eye = torch.eye(self.dim, dtype=g.linear.dtype, device=g.linear.device)
            return (det.abs() > 0) & ((unscaled - eye).abs().flatten(1).amax(1) <= atol)
        return (det.abs() > 0) & self.base.contains(GroupElement(linear=unscaled), atol)

    def generators(self, dtype=torch.float64):
        eye = torch.eye(self.dim, dtype=dtype).unsqueeze(0)
        if self.base is None:
            return LinearGenerators(eye, torch.zeros(0, self.dim, self.dim, dtype=dtype))
        base = self.base.generators(dtype)
        return LinearGenerators(torch.cat([base.lie, eye]), base.discrete)

    def __repr__(self) -> str:
        base = "" if self.base is None else f", base={self.base!r}"
        return f"Scaling(dim={self.dim}, scale={self.scale}{base})"


class Permutations(Group):
    """Permutations of a set of ``size`` items, sampled uniformly; they act on a set axis (see :class:`OnSet`).

    Args:
        size: Number of items of the set.

    Raises:
        ValueError: If ``size`` is not a positive int.

    Examples:
        >>> import torch
        >>> from equilib.groups import OnSet, Permutations, Scalars
        >>> g = Permutations(4).sample(1, generator=torch.Generator().manual_seed(0))
        >>> g.permutation
        tensor([[2, 1, 3, 0]])
        >>> OnSet(Scalars()).act(g, torch.tensor([[10.0, 20.0, 30.0, 40.0]]))  # (g.x)[i] = x[p[i]]
        tensor([[30., 20., 40., 10.]])
    """

    parts = ("permutation",)

    def __init__(self, size: int) -> None:
        if not isinstance(size, int) or size < 1:
            raise ValueError(f"size: expected a positive int, got {size!r}")
        self.size = size

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        _check_count(n)
        keys = torch.rand(n, self.size, generator=generator, dtype=torch.float64)
        return GroupElement(permutation=keys.argsort(dim=1).to(device))

    def identity(self, n=1, dtype=torch.float64, device=None):
        return GroupElement(permutation=torch.arange(self.size, device=device).expand(n, self.size).clone())

    def contains(self, g, atol=1e-8):
        p = g.permutation
        if p is None or p.shape[1] != self.size or not _no_other_parts(g, self.parts):
            return torch.zeros(len(g), dtype=torch.bool)
        return (p.sort(dim=1).values == torch.arange(self.size, device=p.device)).all(1)

    def __repr__(self) -> str:
        return f"Permutations({self.size})"


class DirectProduct(Group):
    """The direct product of groups acting through different parts, e.g. ``E3() * Permutations(5)``.

    Samples are drawn factor by factor from one generator; nested plain direct products are flattened.

    Args:
        *factors: The groups; no two may use the same part.

    Raises:
        TypeError: If a factor is not a :class:`Group`.
        ValueError: If two factors use the same part (use :class:`E3` for rotations with translations).
    """

    def __init__(self, *factors: Group) -> None:
        flat: list[Group] = []
        for factor in factors:
            if not isinstance(factor, Group):
                raise TypeError(f"factors: expected Group objects, got {type(factor).__name__}")
            flat.extend(factor.factors if type(factor) is DirectProduct else [factor])
        used = [part for factor in flat for part in factor.parts]
        if len(used) != len(set(used)):
            raise ValueError(f"factors: {flat} act through the same part ({used}); a direct product needs disjoint "
                             "parts (use E3 for rotations with translations)")
        self.factors = tuple(flat)
        self.parts = tuple(used)

    def _merge(self, elements: list[GroupElement]) -> GroupElement:
        merged: dict[str, torch.Tensor] = {}
        for element in elements:
            merged.update(element.parts())
        return GroupElement(**merged)

    def sample(self, n=1, generator=None, dtype=torch.float64, device=None):
        return self._merge([f.sample(n, generator, dtype, device) for f in self.factors])

    def identity(self, n=1, dtype=torch.float64, device=None):
        return self._merge([f.identity(n, dtype, device) for f in self.factors])

    def contains(self, g, atol=1e-8):
        if not _no_other_parts(g, self.parts):
            return torch.zeros(len(g), dtype=torch.bool)
        result = torch.ones(len(g), dtype=torch.bool)
        for factor in self.factors:
            present = {p: getattr(g, p) for p in factor.parts if getattr(g, p) is not None}
            if len(present) != len(factor.parts):
                return torch.zeros(len(g), dtype=torch.bool)
            result &= factor.contains(GroupElement(**present), atol)
        return result

    def __repr__(self) -> str:
        return " * ".join(repr(f) for f in self.factors)


class E3(DirectProduct):
    """Isometries of R^3, ``x -> R x + t`` with R in O(3) (Haar) and t ~ N(0, scale^2 I).

    Args:
        scale: Standard deviation of each translation component.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(O3(), Translations(3, scale))

    def __repr__(self) -> str:
        return f"E3(scale={self.factors[1].scale})"


class SE3(DirectProduct):
    """Proper isometries of R^3, ``x -> R x + t`` with R in SO(3) (Haar) and t ~ N(0, scale^2 I).

    Args:
        scale: Standard deviation of each translation component.
    """

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(SO3(), Translations(3, scale))

    def __repr__(self) -> str:
        return f"SE3(scale={self.factors[1].scale})"

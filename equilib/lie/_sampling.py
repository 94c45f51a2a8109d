"""The group elements a layer of :mod:`equilib.lie` works with: ``K`` elements of SL(2), GL+(2) or SO(2) drawn per
forward, their inverses, and the Monte Carlo weights of the group integral.

Composition: elements are 2 x 2 matrices acting on points of the plane, ``(g h) x = g (h x)``; a feature map
sampled at elements ``g_k`` is left-translated by ``a`` to the same values at ``a g_k`` (the ``Images`` action
``(a.f)(x) = f(a^-1 x)`` of :mod:`equilib.groups`, extended to the group axis).

Sampling (Mironenco & Forre, ICLR 2024): SL(2) and GL+(2) through the polar chart ``g = exp(S) R`` of
:class:`equilib.groups.SL` / :class:`equilib.groups.GLPlus` (``S`` Gaussian with standard deviation ``scale`` in its
coordinates, ``R`` a uniform rotation); the inverses ``g^-1 = R^T exp(-S)`` come from the factors, not from a
generic matrix inverse. SO(2): a uniform angle, ``g^-1 = g^T``.

Monte Carlo weights: an integral over the group ``int phi(h) dmu(h)`` is estimated as ``sum_k w_k phi(h_k)``. With
``weighting="haar"`` (the default), ``w_k = haar_density(S_k) q(0) / (K q(S_k))``, ``q`` the sampling density of the
chart coordinates of ``S`` (:func:`equilib.groups.haar_density` the Haar density in the chart): the estimate is
unbiased for the Haar measure ``mu`` normalised to the density ``q(0)`` at the identity times the probability Haar
measure of SO(2), so that near the identity the weights are ``1/K``, a plain sample mean. These weights are heavy
tailed (``q(0)/q(S) = exp(|S|^2 / (2 scale^2))``; the Haar measure of a non-compact group has infinite mass), and a
few draws can dominate a sum. ``weighting="uniform"``: ``w_k = 1/K``, the sample mean, which integrates against the
sampling law rather than the Haar measure (the plain sum of the paper's code, divided by ``K``). For SO(2) both are
``1/K`` (the Haar probability measure). The weights travel with the elements: left-translated samples keep them
(``haar(a h) / q_a(a h) = haar(h) / q(h)`` for the translated law ``q_a``, by left invariance).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

from ..groups import SL, SO2, GLPlus, GroupElement, chart, haar_density, plane_rotations, unchart

GROUP_NAMES = ("SL2", "GL2", "SO2")
WEIGHTINGS = ("haar", "uniform")
ROTATIONS = ("haar", "stratified")
DEFAULT_SCALE = 0.2
_DIMENSIONS = {"SL2": 3, "GL2": 4, "SO2": 1}


def _det(m: torch.Tensor) -> torch.Tensor:
    """Determinants of ``(..., 2, 2)`` matrices, in closed form."""
    return m[..., 0, 0] * m[..., 1, 1] - m[..., 0, 1] * m[..., 1, 0]


def _inverse(m: torch.Tensor) -> torch.Tensor:
    """Inverses of ``(..., 2, 2)`` matrices through the adjugate (closed form, no generic inversion)."""
    adjugate = torch.stack([torch.stack([m[..., 1, 1], -m[..., 0, 1]], -1),
                            torch.stack([-m[..., 1, 0], m[..., 0, 0]], -1)], -2)
    return adjugate / _det(m)[..., None, None]


def _as_matrix(a, name: str) -> torch.Tensor:
    """A single 2 x 2 matrix from a tensor of shape (2, 2) or (1, 2, 2) or a one-element GroupElement."""
    if isinstance(a, GroupElement):
        if len(a) != 1 or a.linear is None or a.translation is not None or a.permutation is not None:
            raise ValueError(f"{name}: expected one element with a 2 x 2 linear part only, got parts "
                             f"{sorted(a.parts())} of {len(a)} elements")
        a = a.linear
    if not isinstance(a, torch.Tensor) or a.shape not in ((2, 2), (1, 2, 2)):
        shape = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
        raise ValueError(f"{name}: expected a 2 x 2 matrix, got {shape}")
    return a.reshape(2, 2)


@dataclass(frozen=True)
class GroupSamples:
    """``K`` elements of a group of 2 x 2 matrices, their inverses and their Monte Carlo weights.

    Attributes:
        linear: ``(K, 2, 2)`` matrices ``g_k``.
        inverse: ``(K, 2, 2)`` matrices ``g_k^-1``.
        weights: ``(K,)`` Monte Carlo weights ``w_k`` of the group integral (module docs).

    Raises:
        ValueError: If the shapes do not fit (``K >= 1``), or the tensors are not floating or not on one device.

    Examples:
        >>> import math, torch
        >>> from equilib.lie import GroupSamples
        >>> quarter = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)
        >>> samples = GroupSamples.from_linear(torch.stack([torch.eye(2, dtype=torch.float64), quarter]))
        >>> moved = samples.left_translate(quarter)  # a g_k: the identity goes to the quarter turn
        >>> moved.linear[0].tolist(), moved.weights.tolist()
        ([[0.0, -1.0], [1.0, 0.0]], [0.5, 0.5])
    """

    linear: torch.Tensor
    inverse: torch.Tensor
    weights: torch.Tensor

    def __post_init__(self) -> None:
        for name in ("linear", "inverse", "weights"):
            value = getattr(self, name)
            if not isinstance(value, torch.Tensor) or not value.is_floating_point():
                raise ValueError(f"{name}: expected a floating tensor, got {getattr(value, 'dtype', type(value))}")
        linear = self.linear
        if linear.dim() != 3 or linear.shape[1:] != (2, 2) or linear.shape[0] < 1:
            raise ValueError(f"linear: expected shape (K, 2, 2) with K >= 1, got {tuple(linear.shape)}")
        if self.inverse.shape != linear.shape:
            raise ValueError(f"inverse: expected the shape of linear {tuple(linear.shape)}, got "
                             f"{tuple(self.inverse.shape)}")
        if self.weights.shape != linear.shape[:1]:
            raise ValueError(f"weights: expected shape ({len(linear)},), got {tuple(self.weights.shape)}")
        if len({self.linear.device, self.inverse.device, self.weights.device}) > 1:
            raise ValueError("GroupSamples: linear, inverse and weights are on different devices")

    def __len__(self) -> int:
        return self.linear.shape[0]

    @classmethod
    def from_linear(cls, linear: torch.Tensor, weights: torch.Tensor | None = None) -> GroupSamples:
        """Samples from given matrices, their inverses in closed form (the adjugate over the determinant).

        Args:
            linear: ``(K, 2, 2)`` matrices of positive determinant.
            weights: ``(K,)`` Monte Carlo weights; None gives ``1/K`` each.

        Returns:
            The :class:`GroupSamples`.

        Raises:
            ValueError: If ``linear`` is not a floating ``(K, 2, 2)`` tensor of matrices of positive determinant, or
                ``weights`` has the wrong shape.
        """
        if not isinstance(linear, torch.Tensor) or linear.dim() != 3 or linear.shape[1:] != (2, 2):
            shape = tuple(linear.shape) if isinstance(linear, torch.Tensor) else type(linear).__name__
            raise ValueError(f"linear: expected shape (K, 2, 2), got {shape}")
        if not linear.is_floating_point():
            raise ValueError(f"linear: expected a floating tensor, got {linear.dtype}")
        det = _det(linear)
        if not (det > 0).all():
            raise ValueError(f"linear: expected matrices of positive determinant, got det {det.min().item():.3g}")
        if weights is None:
            weights = torch.full((len(linear),), 1.0 / len(linear), dtype=linear.dtype, device=linear.device)
        return cls(linear, _inverse(linear), weights)

    def left_translate(self, a: torch.Tensor | GroupElement) -> GroupSamples:
        """The samples ``a g_k`` with inverses ``g_k^-1 a^-1`` and the same weights.

        Args:
            a: A 2 x 2 matrix of positive determinant (shape ``(2, 2)`` or ``(1, 2, 2)``, or a one-element
                :class:`~equilib.groups.GroupElement` with only a linear part).

        Returns:
            The translated :class:`GroupSamples`.

        Raises:
            ValueError: If ``a`` is not a single 2 x 2 matrix of positive determinant.
        """
        a = _as_matrix(a, "a").to(self.linear)
        if not _det(a) > 0:
            raise ValueError(f"a: expected a matrix of positive determinant, got det {float(_det(a)):.3g}")
        return GroupSamples(a @ self.linear, self.inverse @ _inverse(a), self.weights)

    def element(self) -> GroupElement:
        """The elements as a :class:`~equilib.groups.GroupElement` (linear part only).

        Returns:
            A :class:`~equilib.groups.GroupElement` of ``K`` elements.
        """
        return GroupElement(linear=self.linear)

    def determinant(self) -> torch.Tensor:
        """``det g_k``, in closed form.

        Returns:
            ``(K,)`` determinants.
        """
        return _det(self.linear)

    def to(self, dtype: torch.dtype | None = None, device: torch.device | str | None = None) -> GroupSamples:
        """The same samples in ``dtype`` on ``device``.

        Args:
            dtype: Floating dtype; None keeps it.
            device: Device; None keeps it.

        Returns:
            A new :class:`GroupSamples` (``self`` when nothing changes).
        """
        if (dtype is None or dtype == self.linear.dtype) and (device is None or torch.device(device)
                                                                == self.linear.device):
            return self
        return GroupSamples(*(t.to(device=device, dtype=dtype) for t in (self.linear, self.inverse, self.weights)))


class GroupFeatures(NamedTuple):
    """A feature map on the plane times sampled group elements, with the elements it is sampled at.

    Attributes:
        features: ``(B, C, K, H, W)`` values ``f(x, g_k)``.
        samples: The :class:`GroupSamples` ``g_k`` (``K`` of them).
    """

    features: torch.Tensor
    samples: GroupSamples


def map_features(x, fn):
    """``fn`` applied to a tensor, or to the features of :class:`GroupFeatures` (keeping their samples)."""
    if isinstance(x, GroupFeatures):
        return GroupFeatures(fn(x.features), x.samples)
    return fn(x)


def _resolve(group) -> tuple[str, float | None]:
    """``(name, scale)`` of a layer's group: a name in ``GROUP_NAMES`` or an SL(2), GLPlus(2) or SO2 (about z)."""
    if isinstance(group, str):
        name = group.upper()
        if name not in GROUP_NAMES:
            raise ValueError(f"group: unknown group name {group!r}, expected one of {GROUP_NAMES}")
        return name, (None if name == "SO2" else DEFAULT_SCALE)
    if isinstance(group, (SL, GLPlus)):
        if group.n != 2:
            raise ValueError(f"group: expected a group of 2 x 2 matrices, got {group!r}")
        return ("SL2" if isinstance(group, SL) else "GL2"), group.scale
    if isinstance(group, SO2):
        if group.axis[:2].abs().max() > 1e-12:
            raise ValueError(f"group: expected SO2 about the z axis (rotations of the plane), got axis "
                             f"{group.axis.tolist()}")
        return "SO2", None
    raise TypeError(f"group: expected one of {GROUP_NAMES} or an equilib.groups SL(2), GLPlus(2) or SO2, got "
                    f"{type(group).__name__}")


class GroupSampler:
    """Draws the ``K`` elements of a layer: SL(2), GL+(2) or SO(2), with inverses and Monte Carlo weights (module
    docs), and gives the chart coordinates of elements for the kernels.

    Draws come from the sampler's own ``torch.Generator`` when ``seed`` is given (a reproducible sequence, fresh
    elements at every call), from torch's global generator otherwise; with ``fixed=True`` the generator is reset to
    ``seed`` before every draw, so that every call returns the same elements (deterministic evaluation).

    Chart coordinates (:meth:`coordinates`, the kernel inputs on the group, ``dim`` of them): for ``g = exp(S)
    exp(A)`` (:func:`equilib.groups.chart`), SL(2): ``(S_11, S_12, t / pi)``; GL+(2): ``(S_11, S_12, S_22, t / pi)``;
    SO(2): ``(t / pi,)``, with ``t`` in (-pi, pi] the angle of ``exp(A)``.

    Args:
        group: ``"SL2"``, ``"GL2"`` or ``"SO2"`` (case-insensitive; SL2 and GL2 with ``scale`` 0.2), or an
            :class:`equilib.groups.SL` / :class:`equilib.groups.GLPlus` with ``n = 2`` (its ``scale``), or an
            :class:`equilib.groups.SO2` about the z axis.
        weighting: ``"haar"`` or ``"uniform"`` (module docs).
        rotations: How the rotation factors (the angles) of the ``K`` elements are drawn: ``"haar"``, independently
            and uniformly; ``"stratified"``, on the grid ``t_0 + 2 pi k / K`` with one uniform offset ``t_0`` per
            draw, so that each element is still Haar-distributed (the layers equivariant in distribution) while the
            angles cover the circle evenly (a lower-variance estimate of the integral over rotations; the paper's
            code uses the grid without the offset).
        seed: Seed of the sampler's generator; None draws from torch's global generator.
        fixed: Return the same elements at every call (needs ``seed``).

    Raises:
        ValueError: If the group name is unknown, the group is not one of 2 x 2 matrices, ``weighting`` is unknown,
            ``rotations`` is unknown, ``seed`` is not an int, or ``fixed`` is set without a seed.
        TypeError: If ``group`` is neither a name nor a supported group.

    Examples:
        >>> from equilib.lie import GroupSampler
        >>> sampler = GroupSampler("SL2", seed=0)
        >>> samples = sampler.draw(4)
        >>> samples.linear.shape, sampler.dim, bool(((samples.linear @ samples.inverse)[0].diag() - 1).abs().max()
        ...                                           < 1e-12)
        (torch.Size([4, 2, 2]), 3, True)
    """

    def __init__(self, group="SL2", weighting: str = "haar", seed: int | None = None, fixed: bool = False,
                 rotations: str = "haar") -> None:
        self.name, self.scale = _resolve(group)
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting: expected one of {WEIGHTINGS}, got {weighting!r}")
        if rotations not in ROTATIONS:
            raise ValueError(f"rotations: expected one of {ROTATIONS}, got {rotations!r}")
        self.rotations = rotations
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise ValueError(f"seed: expected an int or None, got {seed!r}")
        if fixed and seed is None:
            raise ValueError("fixed: the same elements at every call need a seed")
        self.weighting, self.seed, self.fixed = weighting, seed, bool(fixed)
        self.dim = _DIMENSIONS[self.name]
        self.volume_preserving = self.name != "GL2"
        self._group = {"SL2": SL, "GL2": GLPlus}.get(self.name)
        if self._group is not None:
            self._group = self._group(2, scale=self.scale)
        self.generator = None if seed is None else torch.Generator().manual_seed(seed)

    @torch.compiler.disable  # RNG with generators, float64 checks: run eagerly, one graph break per draw
    def draw(self, count: int) -> GroupSamples:
        """``count`` elements, float64 on the CPU.

        Args:
            count: Number of elements K (at least 1).

        Returns:
            The :class:`GroupSamples`.

        Raises:
            ValueError: If ``count`` is not an int of at least 1.
        """
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise ValueError(f"samples: expected an int of at least 1, got {count!r}")
        if self.fixed:
            self.generator.manual_seed(self.seed)
        uniform = torch.full((count,), 1.0 / count, dtype=torch.float64)
        if self.name == "SO2":
            rotation = plane_rotations(self._angles(count))
            return GroupSamples(rotation, rotation.mT, uniform)
        g = self._group.sample(count, generator=self.generator).linear
        S, A = chart(g)
        zero = torch.zeros_like(S)
        if self.rotations == "stratified":  # the drawn positive factor times rotations on the grid
            rotation = plane_rotations(self._angles(count))
            g = unchart(S, zero) @ rotation
        else:
            rotation = unchart(zero, A)
        inverse = rotation.mT @ unchart(-S, zero)
        if self.weighting == "uniform":
            return GroupSamples(g, inverse, uniform)
        # Haar density over the sampling density q of S, normalised by q(0): 1 / K at the identity
        q = self._group.log_sampling_density
        return GroupSamples(g, inverse, uniform * (haar_density(S).log() + q(torch.zeros_like(S)) - q(S)).exp())

    def _angles(self, count: int) -> torch.Tensor:
        """``count`` rotation angles in [-pi, pi), independent or stratified (class docs), float64."""
        if self.rotations == "haar":
            return (2 * torch.rand(count, generator=self.generator, dtype=torch.float64) - 1) * math.pi
        offset = 2 * math.pi * torch.rand((), generator=self.generator, dtype=torch.float64)
        grid = offset + 2 * math.pi * torch.arange(count, dtype=torch.float64) / count
        return torch.remainder(grid + math.pi, 2 * math.pi) - math.pi

    def coordinates(self, linear: torch.Tensor) -> torch.Tensor:
        """The chart coordinates of elements (class docs), computed in float64.

        Args:
            linear: ``(..., 2, 2)`` elements of the group.

        Returns:
            ``(..., dim)`` float64 coordinates.

        Raises:
            ValueError: If ``linear`` is not a batch of 2 x 2 matrices.
        """
        if not isinstance(linear, torch.Tensor) or linear.dim() < 2 or linear.shape[-2:] != (2, 2):
            shape = tuple(linear.shape) if isinstance(linear, torch.Tensor) else type(linear).__name__
            raise ValueError(f"linear: expected matrices of shape (..., 2, 2), got {shape}")
        m = linear.to(torch.float64)
        if self.name == "SO2":
            angle = torch.atan2(m[..., 1, 0] - m[..., 0, 1], m[..., 0, 0] + m[..., 1, 1])
            angle = torch.where(angle <= -math.pi + 1e-9, torch.full_like(angle, math.pi), angle)
            return (angle / math.pi).unsqueeze(-1)
        S, A = chart(m)
        angle = A[..., 1, 0] / math.pi
        if self.name == "SL2":
            return torch.stack([S[..., 0, 0], S[..., 0, 1], angle], -1)
        return torch.stack([S[..., 0, 0], S[..., 0, 1], S[..., 1, 1], angle], -1)

    def __repr__(self) -> str:
        scale = "" if self.scale is None else f", scale={self.scale}"
        return (f"GroupSampler({self.name!r}{scale}, weighting={self.weighting!r}, rotations={self.rotations!r}, "
                f"seed={self.seed}, fixed={self.fixed})")

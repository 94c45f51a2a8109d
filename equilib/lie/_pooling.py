"""Pooling of feature maps on the plane times sampled group elements ``(B, C, K, H, W)``.

:class:`GroupPool` reduces the group axis (max or mean over the ``K`` samples): the result is a map on the plane
that moves with the affine transformation (invariant in the group axis when the samples are closed under the
transformation). :class:`SpatialMaxPool` pools the plane and keeps the group axis and the elements.
:class:`GlobalPool` reduces the group axis and the plane together (max or mean over ``K, H, W``): the invariant
projection before a classifier head. Every pooling accepts a tensor or :class:`GroupFeatures`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._sampling import GroupFeatures, map_features

REDUCTIONS = ("max", "mean")


def _check_reduction(reduction: str) -> str:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction: expected one of {REDUCTIONS}, got {reduction!r}")
    return reduction


def _features(x, name: str = "x") -> torch.Tensor:
    features = x.features if isinstance(x, GroupFeatures) else x
    if not isinstance(features, torch.Tensor) or features.dim() != 5:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise ValueError(f"{name}: expected features of shape (B, C, K, H, W), got {shape}")
    return features


def _reduce(x: torch.Tensor, dims: tuple[int, ...], reduction: str) -> torch.Tensor:
    return x.amax(dim=dims) if reduction == "max" else x.mean(dim=dims)


class _Reduction(torch.nn.Module):
    """Base of the poolings that reduce axes by ``reduction``."""

    def __init__(self, reduction: str = "max") -> None:
        super().__init__()
        self.reduction = _check_reduction(reduction)


class GroupPool(_Reduction):
    """Max or mean over the group axis: ``(B, C, K, H, W) -> (B, C, H, W)`` (the mean is the plain sample mean).

    Args:
        reduction: ``"max"`` or ``"mean"``.

    Raises:
        ValueError: If ``reduction`` is unknown.
    """

    def forward(self, x: GroupFeatures | torch.Tensor) -> torch.Tensor:
        """Pool the group axis.

        Args:
            x: :class:`GroupFeatures` or a ``(B, C, K, H, W)`` tensor.

        Returns:
            ``(B, C, H, W)``.

        Raises:
            ValueError: If the features are not 5-dimensional.
        """
        return _reduce(_features(x), (2,), self.reduction)


class SpatialMaxPool(torch.nn.Module):
    """Max pooling over the plane for every channel and group element; the elements are kept.

    Args:
        kernel_size: Pooling window.
        stride: Stride; None is ``kernel_size``.

    Raises:
        ValueError: If ``kernel_size`` or ``stride`` is not a positive int.
    """

    def __init__(self, kernel_size: int = 2, stride: int | None = None) -> None:
        super().__init__()
        stride = kernel_size if stride is None else stride
        for name, value in (("kernel_size", kernel_size), ("stride", stride)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        self.kernel_size, self.stride = kernel_size, stride

    def forward(self, x: GroupFeatures | torch.Tensor) -> GroupFeatures | torch.Tensor:
        """Pool the plane.

        Args:
            x: :class:`GroupFeatures` or a ``(B, C, K, H, W)`` tensor.

        Returns:
            The same type, features ``(B, C, K, H', W')``.

        Raises:
            ValueError: If the features are not 5-dimensional.
        """
        B, C, K, H, W = _features(x).shape

        def pool(t: torch.Tensor) -> torch.Tensor:
            out = F.max_pool2d(t.reshape(B, C * K, H, W), self.kernel_size, self.stride)
            return out.view(B, C, K, *out.shape[-2:])

        return map_features(x, pool)

    def extra_repr(self) -> str:
        """The one-line description of the module.

        Returns:
            The sizes and options.
        """
        return f"kernel_size={self.kernel_size}, stride={self.stride}"


class GlobalPool(_Reduction):
    """The invariant projection: max (or mean) over the group axis and the plane, ``(B, C, K, H, W) -> (B, C)``.

    Args:
        reduction: ``"max"`` (the paper's) or ``"mean"``.

    Raises:
        ValueError: If ``reduction`` is unknown.
    """

    def forward(self, x: GroupFeatures | torch.Tensor) -> torch.Tensor:
        """Pool the group axis and the plane.

        Args:
            x: :class:`GroupFeatures` or a ``(B, C, K, H, W)`` tensor.

        Returns:
            ``(B, C)``.

        Raises:
            ValueError: If the features are not 5-dimensional.
        """
        return _reduce(_features(x), (2, 3, 4), self.reduction)

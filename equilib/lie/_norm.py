"""Layer normalisation of feature maps over every axis but the batch: ``(C, K, H, W)`` on the sampled group,
``(C, H, W)`` on the plane (the "layernorm3d" of Mironenco & Forre's code), then a per-channel scale and shift. The
statistics and the affine map are the same for every group element and pixel, so the normalisation commutes with
permutations of the samples and (up to the image border) with transformations of the plane.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._sampling import GroupFeatures, map_features
from ._siren import _positive_int


class GroupLayerNorm(torch.nn.Module):
    """LayerNorm over all axes but the batch, with a learned scale and shift per channel (axis 1).

    Args:
        channels: Number of channels C.
        affine: Learn the per-channel scale (started at 1) and shift (started at 0).
        eps: Added to the variance.

    Raises:
        ValueError: If ``channels`` is not a positive int or ``eps`` is negative.
    """

    def __init__(self, channels: int, affine: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.channels = _positive_int(channels, "channels")
        if not eps >= 0:
            raise ValueError(f"eps: expected a non-negative number, got {eps!r}")
        self.eps = float(eps)
        self.weight = torch.nn.Parameter(torch.ones(channels)) if affine else None
        self.bias = torch.nn.Parameter(torch.zeros(channels)) if affine else None

    def forward(self, x: GroupFeatures | torch.Tensor) -> GroupFeatures | torch.Tensor:
        """Normalise.

        Args:
            x: :class:`GroupFeatures` or a tensor ``(B, C, ...)`` with at least one axis after the channels.

        Returns:
            The same type and shape.

        Raises:
            ValueError: If the features do not have ``channels`` channels and at least 3 axes.
        """
        features = x.features if isinstance(x, GroupFeatures) else x
        if not isinstance(features, torch.Tensor) or features.dim() < 3 or features.shape[1] != self.channels:
            shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
            raise ValueError(f"x: expected features of shape (B, {self.channels}, ...), got {shape}")

        def normalise(t: torch.Tensor) -> torch.Tensor:
            out = F.layer_norm(t, t.shape[1:], eps=self.eps)
            if self.weight is None:
                return out
            shape = (1, -1) + (1,) * (t.dim() - 2)
            return out * self.weight.view(shape) + self.bias.view(shape)

        return map_features(x, normalise)

    def extra_repr(self) -> str:
        """The one-line description of the module.

        Returns:
            The sizes and options.
        """
        return f"{self.channels}, affine={self.weight is not None}, eps={self.eps}"

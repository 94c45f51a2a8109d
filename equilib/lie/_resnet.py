"""Image classifiers: :class:`AffineResNet`, the GResNet of Mironenco & Forre (ICLR 2024) on SL(2), GL+(2) or SO(2)
(with the plane's translations), and :class:`PlainCNN`, the same network with plain convolutions, as its baseline.

AffineResNet: lifting convolution (no padding: the paper finds padding there hurts), LayerNorm, GELU; one residual
block of two group convolutions ("same" padding, at the lift's elements so that the skip connection adds features
at the same elements), each followed by LayerNorm and GELU, the sum then GELU; LayerNorm, spatial max pool 2, GELU; a
final group convolution (no padding, fresh elements), LayerNorm, GELU; the invariant projection (max over the group
axis and the plane); the head Linear -> LayerNorm -> GELU -> Dropout -> Linear. The lift and the final convolution
draw their elements at every forward, in training and evaluation (``fixed=True`` with a ``seed`` for deterministic
evaluation). LayerNorms run over ``(C, K, H, W)``.

PlainCNN: the same sequence with ``Conv2d`` for the lift and the group convolutions, LayerNorm over ``(C, H, W)`` and
the global max over the plane. At the defaults (16 channels, kernel SIRENs of one sine layer of width 96 for
AffineResNet; 32 channels for PlainCNN) both have about 8e4 parameters. One sine layer, not the paper's three: with
fresh elements at every forward, the deeper SIRENs fit far more slowly at a CPU budget (docs/lie.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._group_conv import GroupConv2d
from ._kernels import check_kernel_size
from ._lifting import LiftingConv2d
from ._norm import GroupLayerNorm
from ._pooling import GlobalPool, SpatialMaxPool
from ._sampling import GroupFeatures, map_features
from ._siren import _positive_int


def _gelu(x):
    return map_features(x, F.gelu)


def _check_dropout(dropout) -> float:
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout: expected a number in [0, 1), got {dropout!r}")
    return float(dropout)


def _head(channels: int, hidden: int, num_classes: int, dropout: float) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(channels, hidden, bias=False), torch.nn.LayerNorm(hidden),
                               torch.nn.GELU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, num_classes))


def _check_images(x, channels: int) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"x: expected images of shape (B, {channels}, H, W), got {shape}")


class AffineResNet(torch.nn.Module):
    """The GResNet of Mironenco & Forre on ``R^2 x| G``, G = SL(2), GL+(2) or SO(2) (module docs).

    Args:
        in_channels: Image channels.
        num_classes: Number of logits.
        group: ``"SL2"``, ``"GL2"``, ``"SO2"`` or a group (see :class:`GroupSampler`).
        channels: Channels per group element in every layer.
        samples: Group elements K per sampled layer.
        kernel_size: Odd kernel size of every convolution.
        head_hidden: Width of the classifier head.
        dropout: Dropout rate of the head.
        hidden: Width of the kernel SIRENs.
        siren_layers: Number of sine layers of the kernel SIRENs.
        omega0: ``omega0`` of the kernel SIRENs.
        mask: Mask of every kernel: ``"auto"`` (hard for SL(2)/SO(2), smooth for GL+(2)), ``"hard"``, ``"smooth"``
            or ``"none"``.
        mask_radius: Radius of the masks in kernel coordinates.
        weighting: Monte Carlo weights of the group integrals: ``"uniform"`` (the default: the sample mean, as the
            paper's code) or ``"haar"`` (Haar over sampling density; unbiased for the Haar integral but heavy-tailed,
            see :class:`GroupSampler`).
        seed: Seed of the samplers (the lift's; the final convolution's is ``seed + 1``); None draws from torch's
            global generator.
        fixed: Draw the same elements at every forward (needs ``seed``).
        rotations: Angles of the sampled elements: ``"haar"`` (independent) or ``"stratified"`` (an evenly spaced
            grid with a uniform offset per draw, see :class:`GroupSampler`).

    Raises:
        ValueError: If a size is not a positive int, ``kernel_size`` is even, ``dropout`` is not in [0, 1), or the
            group or sampling options are invalid.
        TypeError: If ``group`` is neither a name nor a supported group.

    Examples:
        >>> import torch
        >>> from equilib.lie import AffineResNet
        >>> _ = torch.manual_seed(0)
        >>> model = AffineResNet(1, 10, group="SL2", channels=4, samples=3, hidden=8)
        >>> model(torch.randn(2, 1, 40, 40)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, group="SL2", channels: int = 16,
                 samples: int = 8, kernel_size: int = 5, head_hidden: int = 128, dropout: float = 0.3,
                 hidden: int = 96, siren_layers: int = 1, omega0: float = 10.0, mask: str = "auto",
                 mask_radius: float = 1.0, weighting: str = "uniform", seed: int | None = None,
                 fixed: bool = False, rotations: str = "haar") -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        _positive_int(num_classes, "num_classes")
        _positive_int(channels, "channels")
        _positive_int(head_hidden, "head_hidden")
        check_kernel_size(kernel_size)
        dropout = _check_dropout(dropout)
        siren = dict(group=group, samples=samples, bias=False, hidden=hidden, siren_layers=siren_layers,
                     omega0=omega0, mask=mask, mask_radius=mask_radius, weighting=weighting,
                     rotations=rotations)
        self.lift = LiftingConv2d(in_channels, channels, kernel_size, padding=0, seed=seed, fixed=fixed, **siren)
        self.block = torch.nn.ModuleList(GroupConv2d(channels, channels, kernel_size, padding="same", **siren)
                                         for _ in range(2))
        self.final = GroupConv2d(channels, channels, kernel_size, padding=0,
                                 seed=None if seed is None else seed + 1, fixed=fixed, **siren)
        self.norms = torch.nn.ModuleList(GroupLayerNorm(channels) for _ in range(5))
        self.pool = SpatialMaxPool(2)
        self.project = GlobalPool("max")
        self.head = _head(channels, head_hidden, num_classes, dropout)

    def group_features(self, x: torch.Tensor) -> GroupFeatures:
        """The features before the invariant projection.

        Args:
            x: ``(B, in_channels, H, W)`` images.

        Returns:
            :class:`GroupFeatures` ``(B, channels, K, H', W')`` at the final convolution's elements.

        Raises:
            ValueError: If ``x`` is not a batch of images with ``in_channels`` channels.
        """
        _check_images(x, self.in_channels)
        norms = self.norms
        h = _gelu(norms[0](self.lift(x)))
        y = _gelu(norms[1](self.block[0](h, samples=h.samples)))
        y = _gelu(norms[2](self.block[1](y, samples=h.samples)))
        h = GroupFeatures(F.gelu(y.features + h.features), h.samples)
        h = _gelu(self.pool(norms[3](h)))
        return _gelu(norms[4](self.final(h)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Args:
            x: ``(B, in_channels, H, W)`` images (40 x 40 at the defaults; at least 23 x 23 for kernel size 5).

        Returns:
            ``(B, num_classes)`` logits.
        """
        return self.head(self.project(self.group_features(x)))


class PlainCNN(torch.nn.Module):
    """The baseline: :class:`AffineResNet`'s network with plain convolutions (module docs).

    Args:
        in_channels: Image channels.
        num_classes: Number of logits.
        channels: Channels of every convolution.
        kernel_size: Odd kernel size of every convolution.
        head_hidden: Width of the classifier head.
        dropout: Dropout rate of the head.

    Raises:
        ValueError: If a size is not a positive int, ``kernel_size`` is even or ``dropout`` is not in [0, 1).
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, channels: int = 32, kernel_size: int = 5,
                 head_hidden: int = 128, dropout: float = 0.3) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        _positive_int(num_classes, "num_classes")
        _positive_int(channels, "channels")
        _positive_int(head_hidden, "head_hidden")
        k = check_kernel_size(kernel_size)
        dropout = _check_dropout(dropout)
        self.lift = torch.nn.Conv2d(in_channels, channels, k, bias=False)
        self.block = torch.nn.ModuleList(torch.nn.Conv2d(channels, channels, k, padding=k // 2, bias=False)
                                         for _ in range(2))
        self.final = torch.nn.Conv2d(channels, channels, k, bias=False)
        self.norms = torch.nn.ModuleList(GroupLayerNorm(channels) for _ in range(5))
        self.head = _head(channels, head_hidden, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Classify images.

        Args:
            x: ``(B, in_channels, H, W)`` images.

        Returns:
            ``(B, num_classes)`` logits.

        Raises:
            ValueError: If ``x`` is not a batch of images with ``in_channels`` channels.
        """
        _check_images(x, self.in_channels)
        norms = self.norms
        h = F.gelu(norms[0](self.lift(x)))
        y = F.gelu(norms[1](self.block[0](h)))
        y = F.gelu(norms[2](self.block[1](y)))
        h = F.gelu(y + h)
        h = F.gelu(F.max_pool2d(norms[3](h), 2))
        h = F.gelu(norms[4](self.final(h)))
        return self.head(h.amax(dim=(2, 3)))

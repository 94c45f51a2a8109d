"""The lifting convolution of Mironenco & Forre (ICLR 2024): images on the plane to feature maps on the plane times
``K`` sampled elements of SL(2), GL+(2) or SO(2), i.e. on samples of the affine group ``R^2 x| G``.

For an image ``f`` and elements ``g_k``: ``out(x, g_k) = sum_u k(g_k^-1 u) f(x + u) |det g_k^-1|`` over the kernel
grid ``u`` (:func:`kernel_grid`), the kernel ``k`` a :class:`Siren` of the two transformed coordinates, times the
mask (:func:`mask_values`) at ``g_k^-1 u``; the factor ``|det g_k^-1|`` (1 on SL(2) and SO(2), not computed there)
makes the sum approximate ``int k(g^-1 u) f(x + u) du / |det g|``, the integral against the affine group's Haar
measure. The ``K`` kernels are stacked on the output channels of one ``F.conv2d``; translations are exact through
the convolution (for whole-pixel shifts).

Equivariance: for an affine element ``(a, t)``, transforming the image to ``f'(x) = f(a^-1 (x - t))``
(:class:`equilib.groups.Images`) gives ``out'(x, a g_k) = out(a^-1 (x - t), g_k)``: the output at the
left-translated elements ``a g_k`` is the output at ``g_k`` moved by ``(a, t)``, up to the discretisation of the
integral over the kernel grid and the interpolation of the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._kernels import check_kernel_size, kernel_grid, mask_values, resolve_mask, resolve_padding
from ._sampling import GroupFeatures, GroupSampler, GroupSamples
from ._siren import Siren, _positive_float, _positive_int


def _check_samples(samples, name: str = "samples") -> GroupSamples | None:
    if samples is not None and not isinstance(samples, GroupSamples):
        raise TypeError(f"{name}: expected GroupSamples or None, got {type(samples).__name__}")
    return samples


class LiftingConv2d(torch.nn.Module):
    """Lifting convolution from images ``(B, C, H, W)`` to :class:`GroupFeatures` ``(B, out, K, H', W')`` at ``K``
    elements drawn at every forward (module docs).

    Args:
        in_channels: Input channels C.
        out_channels: Output channels per group element.
        kernel_size: Odd kernel size k (the kernel covers [-1, 1]^2 in kernel coordinates).
        group: ``"SL2"``, ``"GL2"``, ``"SO2"`` or a group (see :class:`GroupSampler`).
        samples: Number of elements K drawn per forward.
        padding: Zero padding: an int, ``"valid"`` or ``"same"``.
        bias: Add a learned bias per output channel (the same for every element and pixel).
        hidden: Width of the kernel SIREN.
        siren_layers: Number of sine layers of the kernel SIREN.
        omega0: ``omega0`` of the kernel SIREN.
        mask: ``"auto"`` (hard for SL(2)/SO(2), smooth for GL+(2)), ``"hard"``, ``"smooth"`` or ``"none"``.
        mask_slope: Slope of the smooth mask.
        mask_radius: Radius of the mask in kernel coordinates (1: the paper's, the disc inscribed in the grid).
        weighting: Monte Carlo weights attached to the drawn elements, ``"haar"`` or ``"uniform"`` (used by the next
            :class:`GroupConv2d`).
        seed: Seed of the layer's :class:`GroupSampler`; None draws from torch's global generator.
        fixed: Draw the same elements at every forward (needs ``seed``).

    Raises:
        ValueError: If a size is not a positive int, ``kernel_size`` is even, ``samples < 1``, or ``group``, ``mask``,
            ``padding``, ``weighting`` or the seed options are invalid.
        TypeError: If ``group`` is neither a name nor a supported group.

    Examples:
        >>> import torch
        >>> from equilib.lie import LiftingConv2d
        >>> _ = torch.manual_seed(0)
        >>> lift = LiftingConv2d(1, 4, kernel_size=5, group="SL2", samples=6)
        >>> out = lift(torch.randn(2, 1, 40, 40))
        >>> out.features.shape, out.samples.linear.shape  # no padding: 40 - 5 + 1 = 36
        (torch.Size([2, 4, 6, 36, 36]), torch.Size([6, 2, 2]))
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, group="SL2", samples: int = 8,
                 padding: int | str = 0, bias: bool = True, hidden: int = 60, siren_layers: int = 3,
                 omega0: float = 10.0, mask: str = "auto", mask_slope: float = 2.0, mask_radius: float = 1.0,
                 weighting: str = "haar",
                 seed: int | None = None, fixed: bool = False) -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = check_kernel_size(kernel_size)
        self.samples = _positive_int(samples, "samples")
        self.padding = resolve_padding(padding, kernel_size)
        self.sampler = GroupSampler(group, weighting=weighting, seed=seed, fixed=fixed)
        self.mask = resolve_mask(mask, self.sampler.volume_preserving)
        self.mask_slope = _positive_float(mask_slope, "mask_slope")
        self.mask_radius = _positive_float(mask_radius, "mask_radius")
        self.siren = Siren(2, out_channels * in_channels, hidden=hidden, layers=siren_layers, omega0=omega0,
                           fan_in=in_channels * kernel_size**2)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None

    def kernel(self, samples: GroupSamples) -> torch.Tensor:
        """The convolution weight for the elements ``samples``.

        Args:
            samples: The ``K`` elements ``g_k``.

        Returns:
            ``(out_channels * K, in_channels, k, k)``, the output channels ordered ``(out, K)``.
        """
        weight = self.siren.final.weight
        inverse = samples.inverse.to(device=weight.device, dtype=torch.float64)
        points = torch.einsum("kij,abj->kabi", inverse, kernel_grid(self.kernel_size, device=weight.device))
        factor = mask_values(points, self.mask, self.mask_slope, self.mask_radius)
        if not self.sampler.volume_preserving:
            factor = factor * samples.to(torch.float64, weight.device).determinant().abs().reciprocal()[:, None, None]
        values = self.siren(points.to(weight.dtype)) * factor.to(weight.dtype).unsqueeze(-1)
        K, k = len(samples), self.kernel_size
        values = values.view(K, k, k, self.out_channels, self.in_channels)
        return values.permute(3, 0, 4, 1, 2).reshape(self.out_channels * K, self.in_channels, k, k)

    def forward(self, x: torch.Tensor, samples: GroupSamples | None = None) -> GroupFeatures:
        """Lift images to the sampled group.

        Args:
            x: ``(B, in_channels, H, W)`` images.
            samples: The output elements; None draws ``self.samples`` of them.

        Returns:
            :class:`GroupFeatures` with features ``(B, out_channels, K, H', W')`` and the elements.

        Raises:
            ValueError: If ``x`` is not a batch of images of ``in_channels`` channels at least as large as the
                padded kernel allows.
            TypeError: If ``samples`` is not :class:`GroupSamples`.
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected images of shape (B, {self.in_channels}, H, W), got {shape}")
        if min(x.shape[-2:]) + 2 * self.padding < self.kernel_size:
            raise ValueError(f"x: images of size {tuple(x.shape[-2:])} are smaller than the kernel "
                             f"({self.kernel_size}, padding {self.padding})")
        samples = _check_samples(samples)
        if samples is None:
            samples = self.sampler.draw(self.samples)
        weight = self.kernel(samples).to(x.dtype)
        out = F.conv2d(x, weight, padding=self.padding)
        out = out.view(x.shape[0], self.out_channels, len(samples), *out.shape[-2:])
        if self.bias is not None:
            out = out + self.bias.to(out.dtype).view(1, -1, 1, 1, 1)
        return GroupFeatures(out, samples)

    def extra_repr(self) -> str:
        """The one-line description of the module.

        Returns:
            The sizes and options.
        """
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"group={self.sampler.name!r}, samples={self.samples}, padding={self.padding}, mask={self.mask!r}")

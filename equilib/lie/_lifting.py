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

from ._kernels import kernel_grid, mask_values
from ._sampled_conv import SampledConv2d
from ._sampling import GroupFeatures, GroupSamples


class LiftingConv2d(SampledConv2d):
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
        rotations: ``"haar"`` (independent angles) or ``"stratified"`` (an evenly spaced grid with a uniform offset;
            see :class:`GroupSampler`).

    Raises:
        ValueError: If a size is not a positive int, ``kernel_size`` is even, ``samples < 1``, or ``group``, ``mask``,
            ``padding``, ``weighting``, ``rotations`` or the seed options are invalid.
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
        self._check_size(x.shape, "images")
        samples = self._output_elements(samples)
        out = F.conv2d(x, self._full_precision_kernel(samples).to(x.dtype), padding=self.padding)
        return self._features(out, x.shape[0], samples)

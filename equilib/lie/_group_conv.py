"""The group convolution of Mironenco & Forre (ICLR 2024): feature maps on the plane times sampled elements of
SL(2), GL+(2) or SO(2) to feature maps at freshly drawn elements.

For input features ``f(x, h_j)`` at elements ``h_j`` (with Monte Carlo weights ``w_j``) and output elements ``g_i``:

    ``out(x, g_i) = sum_j w_j / |det h_j| sum_u k(g_i^-1 u, xi(g_i^-1 h_j)) f(x + u, h_j)``,

the Monte Carlo estimate of ``int_G int k(g^-1 u, g^-1 h) f(x + u, h) du dh / |det h|``, the convolution over the
affine group ``R^2 x| G`` with its left Haar measure ``du dh / |det h|`` (``|det h| = 1`` on SL(2) and SO(2), not
computed there). The kernel ``k`` is one :class:`Siren` of ``2 + dim G`` inputs: the transformed kernel grid
``g_i^-1 u`` and the chart coordinates ``xi`` of ``g_i^-1 h_j`` (:meth:`GroupSampler.coordinates`), times the mask at
``g_i^-1 u``. The sum over ``j`` and the input channels is one dense ``F.conv2d`` over ``C_in * K_in`` channels.

Equivariance: transforming the input by an affine ``(a, t)`` (each ``f(., h_j)`` moved by ``(a, t)`` and the input
elements left-translated to ``a h_j``, weights kept) and left-translating the output elements to ``a g_i`` moves the
output by ``(a, t)``: ``g_i^-1 h_j`` is unchanged, ``|det a h_j| = |det a| |det h_j|`` compensates the change of
variables ``u -> a u``; exact up to the discretisation over the kernel grid and interpolation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._kernels import kernel_grid, mask_values
from ._sampled_conv import SampledConv2d
from ._sampling import GroupFeatures, GroupSamples


class GroupConv2d(SampledConv2d):
    """Group convolution from :class:`GroupFeatures` ``(B, in, K_in, H, W)`` to ``(B, out, K, H', W')`` at ``K``
    elements drawn at every forward, or given (module docs).

    Args:
        in_channels: Input channels per group element.
        out_channels: Output channels per group element.
        kernel_size: Odd kernel size k.
        group: ``"SL2"``, ``"GL2"``, ``"SO2"`` or a group (see :class:`GroupSampler`); the input's elements must
            belong to the same group.
        samples: Number of output elements K drawn per forward.
        padding: Zero padding: an int, ``"valid"`` or ``"same"``.
        bias: Add a learned bias per output channel.
        hidden: Width of the kernel SIREN.
        siren_layers: Number of sine layers of the kernel SIREN.
        omega0: ``omega0`` of the kernel SIREN.
        mask: ``"auto"`` (hard for SL(2)/SO(2), smooth for GL+(2)), ``"hard"``, ``"smooth"`` or ``"none"``.
        mask_slope: Slope of the smooth mask.
        mask_radius: Radius of the mask in kernel coordinates (1: the paper's, the disc inscribed in the grid).
        weighting: Monte Carlo weights attached to the drawn output elements, ``"haar"`` or ``"uniform"``.
        seed: Seed of the layer's :class:`GroupSampler`; None draws from torch's global generator.
        fixed: Draw the same elements at every forward (needs ``seed``).
        rotations: ``"haar"`` (independent angles) or ``"stratified"`` (an evenly spaced grid with a uniform offset;
            see :class:`GroupSampler`).

    Raises:
        ValueError: If a size is not a positive int, ``kernel_size`` is even, ``samples < 1``, or ``group``, ``mask``,
            ``padding``, ``weighting``, ``rotations`` or the seed options are invalid.
        TypeError: If ``group`` is neither a name nor a supported group.
    """

    group_kernel = True

    def kernel(self, inputs: GroupSamples, outputs: GroupSamples) -> torch.Tensor:
        """The convolution weight from features at ``inputs`` to features at ``outputs``.

        Args:
            inputs: The ``K_in`` input elements ``h_j`` with their Monte Carlo weights.
            outputs: The ``K`` output elements ``g_i``.

        Returns:
            ``(out_channels * K, in_channels * K_in, k, k)``, output channels ordered ``(out, K)`` and input
            channels ``(in, K_in)``.
        """
        weight = self.siren.final.weight
        device, k = weight.device, self.kernel_size
        inputs, outputs = inputs.to(torch.float64, device), outputs.to(torch.float64, device)
        K, K_in = len(outputs), len(inputs)
        points = torch.einsum("kij,abj->kabi", outputs.inverse, kernel_grid(k, device=device))  # (K, k, k, 2)
        relative = self.sampler.coordinates(outputs.inverse.unsqueeze(1) @ inputs.linear.unsqueeze(0))  # (K, K_in, d)
        coordinates = torch.cat([points.unsqueeze(1).expand(K, K_in, k, k, 2),
                                 relative[:, :, None, None, :].expand(K, K_in, k, k, self.sampler.dim)], -1)
        weights = inputs.weights
        if not self.sampler.volume_preserving:
            weights = weights / inputs.determinant().abs()
        mask = mask_values(points, self.mask, self.mask_slope, self.mask_radius)
        factor = mask.unsqueeze(1) * weights.view(1, K_in, 1, 1)
        values = self.siren(coordinates.to(weight.dtype)) * factor.to(weight.dtype).unsqueeze(-1)
        values = values.view(K, K_in, k, k, self.out_channels, self.in_channels)
        return values.permute(4, 0, 5, 1, 2, 3).reshape(self.out_channels * K, self.in_channels * K_in, k, k)

    def forward(self, x: GroupFeatures, samples: GroupSamples | None = None) -> GroupFeatures:
        """Convolve over the plane and the sampled group.

        Args:
            x: :class:`GroupFeatures` with features ``(B, in_channels, K_in, H, W)``.
            samples: The output elements; None draws ``self.samples`` of them (pass ``x.samples`` to keep the input's
                elements, e.g. in a residual block).

        Returns:
            :class:`GroupFeatures` with features ``(B, out_channels, K, H', W')`` and the output elements.

        Raises:
            TypeError: If ``x`` is not :class:`GroupFeatures` or ``samples`` not :class:`GroupSamples`.
            ValueError: If the features do not have ``in_channels`` channels and one slot per input element, or are
                smaller than the padded kernel allows.
        """
        if not isinstance(x, GroupFeatures):
            raise TypeError(f"x: expected GroupFeatures (features and their group elements), got {type(x).__name__}")
        features = x.features
        if features.dim() != 5 or features.shape[1] != self.in_channels or features.shape[2] != len(x.samples):
            raise ValueError(f"x: expected features of shape (B, {self.in_channels}, {len(x.samples)}, H, W) (one "
                             f"slot per input element), got {tuple(features.shape)}")
        self._check_size(features.shape, "feature maps")
        samples = self._output_elements(samples)
        weight = self._full_precision_kernel(x.samples, samples).to(features.dtype)
        B, _, K_in, H, W = features.shape
        out = F.conv2d(features.reshape(B, self.in_channels * K_in, H, W), weight, padding=self.padding)
        return self._features(out, B, samples)

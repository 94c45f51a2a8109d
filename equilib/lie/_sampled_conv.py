"""What the lifting and group convolutions share: the options, the layer's :class:`GroupSampler`, the kernel
:class:`Siren` (of the two transformed grid coordinates, plus the chart coordinates of the group for a group
convolution), the mask, the bias, the elements drawn when none are given, and the output's layout."""

from __future__ import annotations

import torch

from ._kernels import check_kernel_size, resolve_mask, resolve_padding
from ._sampling import GroupFeatures, GroupSampler, GroupSamples
from ._siren import Siren, _positive_float, _positive_int


class SampledConv2d(torch.nn.Module):
    """Base of :class:`~equilib.lie.LiftingConv2d` and :class:`~equilib.lie.GroupConv2d` (their docs give the
    arguments); ``group_kernel`` says whether the kernel also reads the chart coordinates of a group element."""

    group_kernel = False

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, group="SL2", samples: int = 8,
                 padding: int | str = 0, bias: bool = True, hidden: int = 60, siren_layers: int = 3,
                 omega0: float = 10.0, mask: str = "auto", mask_slope: float = 2.0, mask_radius: float = 1.0,
                 weighting: str = "haar", seed: int | None = None, fixed: bool = False,
                 rotations: str = "haar") -> None:
        super().__init__()
        self.in_channels = _positive_int(in_channels, "in_channels")
        self.out_channels = _positive_int(out_channels, "out_channels")
        self.kernel_size = check_kernel_size(kernel_size)
        self.samples = _positive_int(samples, "samples")
        self.padding = resolve_padding(padding, kernel_size)
        self.sampler = GroupSampler(group, weighting=weighting, seed=seed, fixed=fixed, rotations=rotations)
        self.mask = resolve_mask(mask, self.sampler.volume_preserving)
        self.mask_slope = _positive_float(mask_slope, "mask_slope")
        self.mask_radius = _positive_float(mask_radius, "mask_radius")
        inputs = 2 + (self.sampler.dim if self.group_kernel else 0)
        self.siren = Siren(inputs, out_channels * in_channels, hidden=hidden, layers=siren_layers, omega0=omega0,
                           fan_in=in_channels * kernel_size**2)
        self.bias = torch.nn.Parameter(torch.zeros(out_channels)) if bias else None

    def _check_size(self, shape, what: str) -> None:
        if min(shape[-2:]) + 2 * self.padding < self.kernel_size:
            raise ValueError(f"x: {what} of size {tuple(shape[-2:])} are smaller than the kernel "
                             f"({self.kernel_size}, padding {self.padding})")

    def _full_precision_kernel(self, *elements: GroupSamples) -> torch.Tensor:
        """``self.kernel(*elements)`` outside any autocast region: the SIREN's sines of ``omega0``-scaled arguments
        lose their phase in bfloat16, so the kernel is made in the parameters' precision and only the convolution
        follows autocast."""
        with torch.autocast(self.siren.final.weight.device.type, enabled=False):
            return self.kernel(*elements)

    def _output_elements(self, samples) -> GroupSamples:
        """``samples`` if given (checked), else ``self.samples`` fresh elements."""
        if samples is None:
            return self.sampler.draw(self.samples)
        if not isinstance(samples, GroupSamples):
            raise TypeError(f"samples: expected GroupSamples or None, got {type(samples).__name__}")
        return samples

    def _features(self, out: torch.Tensor, batch: int, samples: GroupSamples) -> GroupFeatures:
        """The convolution's ``(B, out * K, H', W')`` output as features ``(B, out, K, H', W')`` plus the bias."""
        out = out.view(batch, self.out_channels, len(samples), *out.shape[-2:])
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

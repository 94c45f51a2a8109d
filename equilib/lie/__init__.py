"""Convolutions on the affine groups ``R^2 x| G``, G = SL(2), GL+(2) or SO(2), by Monte Carlo sampling of G:
the layers of Mironenco & Forre, "Lie Group Decompositions for Equivariant Neural Networks" (ICLR 2024).

The pieces:

- :class:`GroupSampler` draws the ``K`` elements of a layer at every forward (SL(2), GL+(2) through the polar chart
  of :class:`equilib.groups.SL` / :class:`equilib.groups.GLPlus`, SO(2) uniformly), as :class:`GroupSamples`:
  elements ``g_k``, inverses from the factors, Monte Carlo weights of the group integral (Haar density over the
  sampling density, or uniform). Feature maps travel as :class:`GroupFeatures` ``(features, samples)``, so that every
  layer knows at which elements its input is sampled.
- :class:`Siren` is the implicit neural representation of the kernels, evaluated on the kernel grid
  (:func:`kernel_grid`, [-1, 1]^2 with ``y`` up as :class:`equilib.groups.Images`) transformed by ``g^-1``, times a
  mask (hard unit disc for SL(2)/SO(2), smooth sigmoid for GL+(2)).
- :class:`LiftingConv2d` lifts images ``(B, C, H, W)`` to ``(B, C', K, H', W')``; :class:`GroupConv2d` convolves
  over the plane and the group (kernel of ``g_i^-1 u`` and the chart coordinates of ``g_i^-1 h_j``), each one
  ``F.conv2d``; :class:`GroupLayerNorm`, :class:`GroupPool` (over K), :class:`SpatialMaxPool` (over H, W) and
  :class:`GlobalPool` (the invariant projection over K, H, W) complete the layers.
- :class:`AffineResNet` is the paper's GResNet classifier, :class:`PlainCNN` the same network with plain
  convolutions.

Convention: elements act on the plane as 2 x 2 matrices, images as ``(g.f)(x) = f(g^-1 x)``. A layer is equivariant in
the sense that transforming its input by an affine ``(a, t)`` and left-translating its elements (``a g_k``, weights
kept, :meth:`GroupSamples.left_translate`) moves its output by ``(a, t)``, up to the discretisation of the plane;
with fresh samples at every forward the network is equivariant only approximately, more so as K grows.
"""

from ._group_conv import GroupConv2d
from ._kernels import kernel_grid, mask_values
from ._lifting import LiftingConv2d
from ._norm import GroupLayerNorm
from ._pooling import GlobalPool, GroupPool, SpatialMaxPool
from ._resnet import AffineResNet, PlainCNN
from ._sampling import GROUP_NAMES, GroupFeatures, GroupSampler, GroupSamples
from ._siren import Siren

__all__ = ["GROUP_NAMES", "AffineResNet", "GlobalPool", "GroupConv2d", "GroupFeatures", "GroupLayerNorm",
           "GroupPool", "GroupSampler", "GroupSamples", "LiftingConv2d", "PlainCNN", "Siren", "SpatialMaxPool",
           "kernel_grid", "mask_values"]

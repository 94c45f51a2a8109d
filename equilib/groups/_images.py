"""Images as a representation: a 2 x 2 linear part and a 2-d translation act on an image by resampling its pixel grid.

``(g.f)(x) = f(g^-1 x)``: the content of the image moves with ``x -> A x + t``, as :class:`Positions` ``(2)`` moves
points, by bilinear interpolation (``torch.nn.functional.grid_sample``). This is the action of GL+(2), SL(2) and their
affine extensions on images in the Lie-group decomposition convolutions of Mironenco & Forre (ICLR 2024).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ._representations import Representation, _linear_of_size


def _centres(size: int, dtype, device) -> torch.Tensor:
    """Pixel centres on [-1, 1], exactly antisymmetric (``c[size - 1 - k] == -c[k]``)."""
    k = torch.arange(size, dtype=dtype, device=device)
    return (2 * k - (size - 1)) / (size - 1)


class Images(Representation):
    """Images of shape ``(..., C, H, W)`` on the square [-1, 1]^2, acted on by ``(g.f)(x) = f(g^-1 x)``.

    Coordinates: ``x`` runs along the width from -1 (first column) to 1 (last column), ``y`` along the height from
    1 (first row, the top of the image as displayed) to -1 (last row), the pixel *centres* spanning [-1, 1]
    (``align_corners=True``). With ``y`` pointing up, the rotation by +90 degrees ``[[0, -1], [1, 0]]`` turns the
    image counterclockwise as displayed: it is ``torch.rot90(f, 1, dims=(-2, -1))`` on a square image, and an image
    of a point at ``p`` becomes one at ``A p + t`` (as :class:`Positions` ``(2)`` moves ``p``).

    Resampling: each output pixel ``x`` takes the value at ``g^-1 x = A^-1 (x - t)`` by bilinear interpolation of the
    four nearest pixel centres (``grid_sample``, ``mode="bilinear"``); values outside the pixel grid are zero
    (``padding_mode="zeros"``, the image is taken as zero beyond its border pixels, with a linear ramp to zero in
    the half-pixel just outside them). The action is linear in the image and the same for every channel; it is exact
    for permutations of the pixel grid (rotations by multiples of 90 degrees, reflections of the square) and
    otherwise a homomorphism only up to interpolation error, small for smooth images away from the border. The
    element's permutation, if any, is ignored.

    Args:
        channels: Number of channels C.
        size: Image size: an int for H = W, or ``(H, W)`` (each at least 2; a non-square image still covers
            [-1, 1]^2, with rectangular pixels).

    Raises:
        ValueError: If ``channels`` is not a positive int or ``size`` not an int (or pair of ints) of at least 2.

    Examples:
        >>> import torch
        >>> from equilib.groups import GroupElement, Images
        >>> image = torch.arange(4.0).view(1, 1, 2, 2)  # one element, one channel: [[0, 1], [2, 3]]
        >>> quarter_turn = GroupElement(linear=torch.tensor([[[0.0, -1.0], [1.0, 0.0]]]))
        >>> Images(1, 2).act(quarter_turn, image)
        tensor([[[[1., 3.],
                  [0., 2.]]]])
    """

    def __init__(self, channels: int, size: int | tuple[int, int]) -> None:
        if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
            raise ValueError(f"channels: expected a positive int, got {channels!r}")
        pair = (size, size) if isinstance(size, int) else tuple(size) if isinstance(size, (tuple, list)) else ()
        if len(pair) != 2 or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 2 for s in pair):
            raise ValueError(f"size: expected an int or a pair (H, W) of ints of at least 2, got {size!r}")
        self.shape = (channels, *pair)

    def act(self, g, x):
        if tuple(x.shape[-3:]) != self.shape or x.dim() < 4 or x.shape[0] != len(g):
            raise ValueError(f"x: {self!r} acts on tensors of shape ({len(g)}, ..., "
                             f"{', '.join(map(str, self.shape))}), got shape {tuple(x.shape)}")
        linear = _linear_of_size(g, 2, repr(self))
        translation = g.translation
        if translation is not None and translation.shape[1] != 2:
            raise ValueError(f"g: {self!r} needs a 2-dimensional translation, the element has "
                             f"{translation.shape[1]}")
        if linear is None and translation is None:
            return x
        height, width = self.shape[1:]
        dtype = x.dtype if x.is_floating_point() else torch.float64
        cx = _centres(width, dtype, x.device)
        cy = -_centres(height, dtype, x.device)  # y points up: row 0 is y = 1
        points = torch.stack(torch.meshgrid(cx, cy, indexing="xy"), -1)  # (H, W, 2) as (x, y)
        points = points.unsqueeze(0).expand(len(g), height, width, 2)
        if translation is not None:
            points = points - translation.to(dtype).view(-1, 1, 1, 2)
        if linear is not None:
            inverse = torch.linalg.inv(linear.to(dtype))
            points = torch.einsum("nij,nhwj->nhwi", inverse, points)
        grid = torch.stack([points[..., 0], -points[..., 1]], -1)  # grid_sample's y runs down the rows
        flat = x.reshape(len(g), -1, height, width).to(dtype)
        moved = F.grid_sample(flat, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
        return moved.reshape(x.shape).to(x.dtype)

    def __repr__(self) -> str:
        channels, height, width = self.shape
        return f"Images({channels}, {height})" if height == width else f"Images({channels}, ({height}, {width}))"

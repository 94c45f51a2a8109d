"""The kernel grid and the masks on transformed kernel coordinates (shared by the lifting and group convolutions).

Kernel coordinates follow :class:`equilib.groups.Images`: a ``k x k`` kernel covers [-1, 1]^2, its pixel centres at
``(2 i - (k - 1)) / (k - 1)``, ``x`` along the columns, ``y`` up (row 0 is ``y = 1``). ``F.conv2d`` correlates, so
the weight at ``u`` multiplies the input pixel at offset ``u`` (in kernel units) from the output pixel, and a linear
map of image coordinates is the same linear map of kernel coordinates (square pixels).

Masks (Mironenco & Forre, ICLR 2024), on the coordinates ``v = g^-1 u`` the kernel is evaluated at, with ``r`` the
mask radius (1 in the paper): ``"hard"`` keeps ``|v| <= r`` (a disc; points within a relative 1e-6 of the circle are
kept, so that round-off does not flip the grid points on it), the default for SL(2) and SO(2); ``"smooth"``
multiplies by ``sigmoid(slope (r - |v|))``, the default for GL+(2); ``"none"`` keeps the whole grid. The kernel is
only evaluated on the grid: where the mask's support in grid coordinates, ``g`` (disc), leaves [-1, 1]^2 (any
stretch of a radius-1 disc, the smooth mask's tails) the kernel is cut off, and that breaks equivariance beyond the
discretisation; a radius below 1 leaves room for stretches up to ``1 / r``.
"""

from __future__ import annotations

import torch

MASKS = ("auto", "hard", "smooth", "none")
_ON_CIRCLE = 1e-6


def check_kernel_size(kernel_size) -> int:
    """``kernel_size`` if it is an odd positive int.

    Args:
        kernel_size: The kernel size to check.

    Returns:
        ``kernel_size``.

    Raises:
        ValueError: If it is not an odd positive int (even kernels have no centre pixel and are not supported).
    """
    if not isinstance(kernel_size, int) or isinstance(kernel_size, bool) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd positive int (even kernels have no centre pixel), got "
                         f"{kernel_size!r}")
    return kernel_size


def kernel_grid(kernel_size: int, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The kernel's pixel centres in kernel coordinates (module docs).

    Args:
        kernel_size: Odd kernel size k.
        dtype: Dtype of the grid.
        device: Device of the grid.

    Returns:
        ``(k, k, 2)`` points ``(x, y)``; the single point ``(0, 0)`` for ``k = 1``.

    Raises:
        ValueError: If ``kernel_size`` is not an odd positive int.

    Examples:
        >>> from equilib.lie import kernel_grid
        >>> kernel_grid(3)[0].tolist()  # the top row: y = 1
        [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]
    """
    k = check_kernel_size(kernel_size)
    if k == 1:
        return torch.zeros(1, 1, 2, dtype=dtype, device=device)
    centres = (2 * torch.arange(k, dtype=torch.float64) - (k - 1)) / (k - 1)
    x = centres.view(1, k).expand(k, k)
    y = (-centres).view(k, 1).expand(k, k)
    return torch.stack([x, y], -1).to(dtype=dtype, device=device)


def resolve_mask(mask: str, volume_preserving: bool) -> str:
    """The mask a layer uses: ``"auto"`` is ``"hard"`` for volume-preserving groups (SL(2), SO(2)) and
    ``"smooth"`` otherwise (GL+(2)).

    Args:
        mask: One of ``MASKS``.
        volume_preserving: Whether the group preserves volume.

    Returns:
        ``"hard"``, ``"smooth"`` or ``"none"``.

    Raises:
        ValueError: If ``mask`` is unknown.
    """
    if mask not in MASKS:
        raise ValueError(f"mask: expected one of {MASKS}, got {mask!r}")
    if mask == "auto":
        return "hard" if volume_preserving else "smooth"
    return mask


def mask_values(points: torch.Tensor, mask: str, slope: float = 2.0, radius: float = 1.0) -> torch.Tensor:
    """The mask's factor at transformed kernel coordinates.

    Args:
        points: ``(..., 2)`` coordinates ``v = g^-1 u``.
        mask: ``"hard"``, ``"smooth"`` or ``"none"``.
        slope: Slope of the smooth mask.
        radius: Radius of the disc (hard) or of the half-value circle (smooth).

    Returns:
        ``(...)`` factors in [0, 1], in the dtype of ``points``.

    Raises:
        ValueError: If ``mask`` is not one of the three.
    """
    if mask == "none":
        return torch.ones_like(points[..., 0])
    norm = points.norm(dim=-1)
    if mask == "hard":
        return (norm <= radius * (1 + _ON_CIRCLE)).to(points.dtype)
    if mask == "smooth":
        return torch.sigmoid(slope * (radius - norm))
    raise ValueError(f"mask: expected 'hard', 'smooth' or 'none', got {mask!r}")


def resolve_padding(padding, kernel_size: int) -> int:
    """The zero padding of a convolution in pixels.

    Args:
        padding: A non-negative int, ``"valid"`` (0) or ``"same"`` (``kernel_size // 2``: the output keeps the
            input's size).
        kernel_size: The odd kernel size.

    Returns:
        The padding in pixels.

    Raises:
        ValueError: If ``padding`` is none of these.
    """
    if padding == "same":
        return kernel_size // 2
    if padding == "valid":
        return 0
    if not isinstance(padding, int) or isinstance(padding, bool) or padding < 0:
        raise ValueError(f"padding: expected a non-negative int, 'same' or 'valid', got {padding!r}")
    return padding

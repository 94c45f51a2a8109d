"""Shared inputs and transformations of the equilib.lie tests: smooth images, affine elements, moving feature maps."""

import math

import torch

from equilib.groups import GroupElement, Images
from equilib.lie import GroupFeatures

F64 = torch.float64
QUARTER_TURN = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)


def centres(size: int) -> torch.Tensor:
    return (2 * torch.arange(size, dtype=F64) - (size - 1)) / (size - 1)


def blobs(size: int, seed: int = 0, count: int = 4, width: float = 0.15, batch: int = 1) -> torch.Tensor:
    """``(batch, 1, size, size)`` float64 images: sums of Gaussian bumps of random sign near the centre (smooth, zero
    far before the border)."""
    generator = torch.Generator().manual_seed(seed)
    c = centres(size)
    x, y = c.view(1, -1), -c.view(-1, 1)
    images = torch.zeros(batch, 1, size, size, dtype=F64)
    for b in range(batch):
        for _ in range(count):
            p = (2 * torch.rand(2, generator=generator, dtype=F64) - 1) * 0.5
            amplitude = torch.randn((), generator=generator, dtype=F64)
            images[b, 0] += amplitude * torch.exp(-((x - p[0]) ** 2 + (y - p[1]) ** 2) / (2 * width**2))
    return images


def disc(size: int, radius: float) -> torch.Tensor:
    """``(size, size)`` mask of the pixels within ``radius`` of the centre."""
    c = centres(size)
    return c.view(1, -1) ** 2 + c.view(-1, 1) ** 2 <= radius**2


def rotation(angle: float) -> torch.Tensor:
    return torch.tensor([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]], dtype=F64)


def affine(linear: torch.Tensor, translation=(0.1, -0.05)) -> GroupElement:
    return GroupElement(linear=linear.unsqueeze(0), translation=torch.tensor([translation], dtype=F64))


def move(element: GroupElement, x: torch.Tensor) -> torch.Tensor:
    """Images or group feature maps ``(B, ..., H, W)`` (one element, B = 1) moved by ``element`` on the plane."""
    flat = x.reshape(1, -1, *x.shape[-2:])
    return Images(flat.shape[1], tuple(x.shape[-2:])).act(element, flat).reshape(x.shape)


def move_features(element: GroupElement, x: GroupFeatures) -> GroupFeatures:
    """The affine transformation of group features: maps moved on the plane, elements left-translated."""
    return GroupFeatures(move(element, x.features), x.samples.left_translate(element.linear))


def relative_error(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    if mask is not None:
        a, b = a[..., mask], b[..., mask]
    return float((a - b).norm() / b.norm())

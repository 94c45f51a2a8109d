"""PointNet (Qi, Su, Mo, Guibas, CVPR 2017), its segmentation layout as a per-point regressor: the backbone of the
normal-estimation experiment of Frame Averaging (Puny et al., ICLR 2022).

A shared per-point MLP gives local features; a second shared MLP and a max over the points give one global feature
per cloud; a per-point head on ``[local, global]`` predicts a 3-vector per point (a unit normal when ``normalize``).
Without the input and feature transform networks (T-Nets). It is permutation-equivariant and not rotation-equivariant:
it reads raw coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _mlp(widths: Sequence[int], layer_norm: bool, dtype: torch.dtype, last_activation: bool = True):
    layers: list[torch.nn.Module] = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if last_activation or k < len(widths) - 2:
            if layer_norm:
                layers.append(torch.nn.LayerNorm(b, dtype=dtype))
            layers.append(torch.nn.ReLU())
    return torch.nn.Sequential(*layers)


def _widths(value, name: str) -> tuple[int, ...]:
    widths = tuple(value)
    if not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ValueError(f"{name}: expected a non-empty list of positive ints, got {value!r}")
    return widths


class PointNet(torch.nn.Module):
    """PointNet's segmentation network as a per-point regressor: local MLP, global max-pool, concatenation, head.

    Args:
        local_widths: Widths of the shared per-point MLP on the coordinates (its output is the local feature).
        global_widths: Widths of the shared MLP on the local features before the max over the points (its last
            width is the global feature's size).
        head_widths: Hidden widths of the per-point head on ``[local, global]``.
        out_dim: Size of the per-point output (3 for a normal).
        normalize: Divide each output vector by its norm (unit normals).
        orient: Flip each output vector that points towards its cloud's centroid (``out . (x - centroid) < 0``): a
            sign convention for sign-ambiguous outputs (normals) that commutes with rotations, reflections,
            translations and permutations, so that outputs averaged over frames (which a sign-agnostic loss trains
            one by one with stochastic frames) do not cancel. Needs ``out_dim`` 3.
        layer_norm: A LayerNorm before every hidden ReLU (PointNet uses batch norm; LayerNorm keeps every cloud
            independent of the batch).
        dtype: Dtype of the parameters.

    Raises:
        ValueError: If a list of widths is empty or holds a non-positive width, or ``out_dim`` is not positive.

    Examples:
        >>> import torch
        >>> from equilib.nn import PointNet
        >>> net = PointNet(local_widths=(16,), global_widths=(32,), head_widths=(16,), dtype=torch.float64)
        >>> points = torch.randn(2, 10, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> normals = net(points)
        >>> normals.shape, bool(torch.allclose(normals.norm(dim=-1), torch.ones(2, 10, dtype=torch.float64)))
        (torch.Size([2, 10, 3]), True)
    """

    def __init__(self, local_widths: Sequence[int] = (64, 64), global_widths: Sequence[int] = (128, 256),
                 head_widths: Sequence[int] = (256, 128), out_dim: int = 3, normalize: bool = True,
                 orient: bool = False, layer_norm: bool = True, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        local_widths = _widths(local_widths, "local_widths")
        global_widths = _widths(global_widths, "global_widths")
        head_widths = _widths(head_widths, "head_widths")
        if not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(f"out_dim: expected a positive int, got {out_dim!r}")
        if orient and out_dim != 3:
            raise ValueError(f"orient: orienting outputs away from the centroid needs out_dim 3, got {out_dim}")
        self.local = _mlp((3, *local_widths), layer_norm, dtype)
        self.global_mlp = _mlp((local_widths[-1], *global_widths), layer_norm, dtype)
        self.head = _mlp((local_widths[-1] + global_widths[-1], *head_widths, out_dim), layer_norm, dtype,
                         last_activation=False)
        self.normalize = normalize
        self.orient = orient

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        """The per-point outputs.

        Args:
            points: ``(*B, m, 3)`` coordinates, ``m >= 1`` (any leading axes, none for one cloud).

        Returns:
            ``(*B, m, out_dim)``; unit vectors when ``normalize``, pointing away from the centroid when ``orient``.

        Raises:
            ValueError: If ``points`` is not of shape ``(..., m, 3)`` with ``m >= 1``.
        """
        if points.dim() < 2 or points.shape[-1] != 3 or points.shape[-2] == 0:
            raise ValueError(f"points: expected shape (..., m, 3) with m >= 1, got {tuple(points.shape)}")
        local = self.local(points)
        pooled = self.global_mlp(local).amax(dim=-2, keepdim=True)
        out = self.head(torch.cat([local, pooled.expand(*local.shape[:-1], pooled.shape[-1])], dim=-1))
        if self.orient:
            outward = ((points - points.mean(dim=-2, keepdim=True)) * out).sum(-1, keepdim=True) >= 0
            out = torch.where(outward, out, -out)
        if self.normalize:
            out = out / out.norm(dim=-1, keepdim=True).clamp_min(torch.finfo(out.dtype).tiny)
        return out

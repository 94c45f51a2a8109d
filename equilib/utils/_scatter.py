"""Segment reductions over an index: sum, mean and max of ``src`` rows grouped by ``index``.

The reductions are ``torch_geometric.utils.scatter`` (PyTorch Geometric, Fey and Lenssen 2019: torch's
``scatter_add_`` / ``scatter_reduce``, or torch-scatter where PyG uses it); equilib adds the input checks, whose errors
name the argument and what was expected. ``scripts/bench_scatter.py`` compares them with equilib's former own
reductions (docs/benchmarks.md). Empty segments are 0 for every reduction.
"""

from __future__ import annotations

import torch
from torch_geometric.utils import scatter as _pyg_scatter

REDUCTIONS = ("sum", "mean", "max")


def _check(src: torch.Tensor, index: torch.Tensor, dim: int, dim_size: int | None, reduce: str) -> tuple[int, int]:
    if not isinstance(src, torch.Tensor):
        raise TypeError(f"src: expected a torch.Tensor, got {type(src).__name__}")
    if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.dim() != 1:
        raise ValueError(f"index: expected a 1-D torch.long tensor, got {getattr(index, 'dtype', type(index))} "
                         f"of shape {tuple(getattr(index, 'shape', ()))}")
    if reduce not in REDUCTIONS:
        raise ValueError(f"reduce: expected one of {REDUCTIONS}, got {reduce!r}")
    if src.dim() == 0:
        raise ValueError("src: expected at least one dimension, got a 0-d tensor")
    if not -src.dim() <= dim < src.dim():
        raise ValueError(f"dim: expected an axis of src (from {-src.dim()} to {src.dim() - 1}), got {dim}")
    dim = dim % src.dim()
    if src.shape[dim] != index.numel():
        raise ValueError(f"index: expected {src.shape[dim]} entries (src.shape[{dim}]), got {index.numel()}")
    if dim_size is not None and index.device.type != "cpu":
        return dim, dim_size  # reading index values would synchronize the device on every call; torch checks bounds
    if index.numel() and int(index.min()) < 0:
        raise ValueError(f"index: expected non-negative entries, got min {int(index.min())}")
    needed = int(index.max()) + 1 if index.numel() else 0
    if dim_size is None:
        dim_size = needed
    elif dim_size < needed:
        raise ValueError(f"dim_size: expected at least max(index) + 1 = {needed}, got {dim_size}")
    return dim, dim_size


def scatter(
    src: torch.Tensor, index: torch.Tensor, dim: int = 0, dim_size: int | None = None, reduce: str = "sum"
) -> torch.Tensor:
    """Reduce the slices of ``src`` along ``dim`` that share an ``index`` value.

    ``out[..., i, ...]`` is the sum, mean or maximum of the slices ``src[..., k, ...]`` (along ``dim``) with
    ``index[k] == i``; a segment that no index points to is 0 for every reduction.

    Args:
        src: The values, any shape with at least one dimension.
        index: ``(src.shape[dim],)`` torch.long segment of each slice, non-negative.
        dim: The axis of ``src`` that ``index`` labels (negative counts from the end).
        dim_size: Size of ``dim`` in the output; default ``max(index) + 1``. On a non-CPU device, with ``dim_size``
            given, the index values are not read (no device synchronisation) and torch checks the bounds.
        reduce: ``"sum"``, ``"mean"`` or ``"max"``.

    Returns:
        ``src``'s shape with ``dim`` of size ``dim_size``, in ``src``'s dtype and device.

    Raises:
        TypeError: If ``src`` is not a tensor.
        ValueError: If ``index`` is not a 1-D torch.long tensor of ``src.shape[dim]`` entries, has a negative
            entry, ``reduce`` is unknown, ``src`` is 0-d, ``dim`` is not an axis of ``src``, or ``dim_size`` is
            smaller than ``max(index) + 1``.

    Examples:
        >>> import torch
        >>> from equilib.utils import scatter
        >>> src = torch.tensor([[1.0, 10.0], [2.0, 20.0], [4.0, 40.0]])
        >>> index = torch.tensor([0, 0, 2])
        >>> scatter(src, index, reduce="sum")
        tensor([[ 3., 30.],
                [ 0.,  0.],
                [ 4., 40.]])
        >>> scatter(src, index, dim_size=4, reduce="max")[:, 0]
        tensor([2., 0., 4., 0.])
        >>> scatter(src, index, dim=0, reduce="mean")[0]
        tensor([ 1.5000, 15.0000])
    """
    dim, dim_size = _check(src, index, dim, dim_size, reduce)
    return _pyg_scatter(src, index, dim=dim, dim_size=dim_size, reduce=reduce)

def scatter_sum(src, index, dim: int = 0, dim_size: int | None = None) -> torch.Tensor:
    """Sum of the slices of ``src`` along ``dim`` that share an index: :func:`scatter` with
    ``reduce="sum"``.

    Args:
        src: The values, any shape with at least one dimension.
        index: ``(src.shape[dim],)`` torch.long segment of each slice, non-negative.
        dim: The axis of ``src`` that ``index`` labels.
        dim_size: Size of ``dim`` in the output; default ``max(index) + 1``.

    Returns:
        ``src``'s shape with ``dim`` of size ``dim_size``.

    Raises:
        TypeError: If ``src`` is not a tensor.
        ValueError: On an invalid ``index``, ``dim`` or ``dim_size`` (see :func:`scatter`).
    """
    return scatter(src, index, dim, dim_size, "sum")


def scatter_mean(src, index, dim: int = 0, dim_size: int | None = None) -> torch.Tensor:
    """Mean of the slices of ``src`` along ``dim`` that share an index (0 for empty segments): :func:`scatter` with
    ``reduce="mean"``.

    Args:
        src: The values, any shape with at least one dimension.
        index: ``(src.shape[dim],)`` torch.long segment of each slice, non-negative.
        dim: The axis of ``src`` that ``index`` labels.
        dim_size: Size of ``dim`` in the output; default ``max(index) + 1``.

    Returns:
        ``src``'s shape with ``dim`` of size ``dim_size``.

    Raises:
        TypeError: If ``src`` is not a tensor.
        ValueError: On an invalid ``index``, ``dim`` or ``dim_size`` (see :func:`scatter`).
    """
    return scatter(src, index, dim, dim_size, "mean")


def scatter_max(src, index, dim: int = 0, dim_size: int | None = None) -> torch.Tensor:
    """Maximum of the slices of ``src`` along ``dim`` that share an index (0 for empty segments): :func:`scatter` with
    ``reduce="max"``.

    Args:
        src: The values, any shape with at least one dimension.
        index: ``(src.shape[dim],)`` torch.long segment of each slice, non-negative.
        dim: The axis of ``src`` that ``index`` labels.
        dim_size: Size of ``dim`` in the output; default ``max(index) + 1``.

    Returns:
        ``src``'s shape with ``dim`` of size ``dim_size``.

    Raises:
        TypeError: If ``src`` is not a tensor.
        ValueError: On an invalid ``index``, ``dim`` or ``dim_size`` (see :func:`scatter`).
    """
    return scatter(src, index, dim, dim_size, "max")

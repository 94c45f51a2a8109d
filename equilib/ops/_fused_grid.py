"""The fused grid product ``((x @ A) * (y @ B)) @ S``: SH coefficients to grid values, the pointwise product, and the
projection back, in one Triton kernel that keeps the grid values on chip (the ``"fused"`` transform of the ``grid``
backend; Xie et al., ICML 2025, write the product as these three matrix products).

Shapes: ``x`` ``(N, C, D1)``, ``y`` ``(N, C, D2)`` or ``(N, 1, D2)`` (one channel, broadcast over x's), the tables
``A`` ``(D1, P)``, ``B`` ``(D2, P)`` and ``S`` ``(P, D3)`` for P grid points; the result is ``(N, C, D3)``. Each
program of the kernel takes a block of ``N * C`` rows, loops over the grid in tiles of points, and accumulates
``(x A_tile * y B_tile) S_tile`` without writing grid values to memory.

Derivatives are grid products of the same form, so the kernel serves every direction: for an upstream gradient
``g``, ``dx = ((g @ S^T) * (y @ B)) @ A^T`` and ``dy = ((g @ S^T) * (x @ A)) @ B^T`` (summed over the channels when y
is broadcast). The backward calls :class:`FusedGridProduct` itself, so the double backward (forces of a potential
trained on them) is again the kernel. The tables get no gradient.

Where it runs: the Triton kernel on CUDA tensors (Triton ships with CUDA builds of torch) and on CPU tensors when
``TRITON_INTERPRET=1`` is set before the first call (Triton's interpreter: how the tests check the kernel without a
GPU); otherwise (and for dtypes other than float32 and float64) the same three matrix products in torch.
"""

from __future__ import annotations

import functools
import os

import torch

_BLOCK_ROWS = 32
_BLOCK_POINTS = 32


def _check(x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> None:
    if x.dim() != 3 or y.dim() != 3 or y.shape[0] != x.shape[0] or y.shape[1] not in (1, x.shape[1]):
        raise ValueError(f"x, y: expected (N, C, D1) and (N, C or 1, D2), got {tuple(x.shape)} and {tuple(y.shape)}")
    if a.shape[0] != x.shape[2] or b.shape[0] != y.shape[2] or not a.shape[1] == b.shape[1] == s.shape[0]:
        raise ValueError(f"tables: expected (D1, P), (D2, P), (P, D3) for D1 = {x.shape[2]}, D2 = {y.shape[2]}, "
                         f"got {tuple(a.shape)}, {tuple(b.shape)}, {tuple(s.shape)}")
    if len({x.dtype, y.dtype, a.dtype, b.dtype, s.dtype}) != 1:
        raise ValueError(f"x, y, tables: expected one dtype, got {x.dtype}, {y.dtype}, {a.dtype}, {b.dtype}, "
                         f"{s.dtype}")


def _reference(x, a, y, b, s) -> torch.Tensor:
    return ((x @ a) * (y @ b)) @ s


def uses_triton(x: torch.Tensor) -> bool:
    """Whether :func:`fused_grid_product` runs the Triton kernel on ``x``'s device (module docs).

    Args:
        x: A tensor on the device in question.

    Returns:
        True on CUDA with Triton importable, or on CPU with ``TRITON_INTERPRET=1`` and Triton importable.
    """
    if not (x.is_cuda or (x.device.type == "cpu" and os.environ.get("TRITON_INTERPRET") == "1")):
        return False
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


@functools.cache
def _kernel():
    """The Triton kernel, made on first use (Triton is imported only then)."""
    import triton
    import triton.language as tl

    @triton.jit
    def grid_product_kernel(x_ptr, a_ptr, y_ptr, b_ptr, s_ptr, out_ptr, rows_total, channels, y_row_n, y_row_c,
                            d1, d2, d3, points, DTYPE: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                            BLOCK_POINTS: tl.constexpr, BD1: tl.constexpr, BD2: tl.constexpr, BD3: tl.constexpr):
        rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
        live = rows < rows_total
        c1, c2, c3 = tl.arange(0, BD1), tl.arange(0, BD2), tl.arange(0, BD3)
        x = tl.load(x_ptr + rows[:, None] * d1 + c1[None, :], mask=live[:, None] & (c1[None, :] < d1), other=0.0)
        y_rows = (rows // channels) * y_row_n + (rows % channels) * y_row_c
        y = tl.load(y_ptr + y_rows[:, None] * d2 + c2[None, :], mask=live[:, None] & (c2[None, :] < d2), other=0.0)
        acc = tl.zeros((BLOCK_ROWS, BD3), dtype=DTYPE)
        for start in range(0, points, BLOCK_POINTS):
            p = start + tl.arange(0, BLOCK_POINTS)
            inside = p < points
            a = tl.load(a_ptr + c1[:, None] * points + p[None, :], mask=(c1[:, None] < d1) & inside[None, :],
                        other=0.0)
            b = tl.load(b_ptr + c2[:, None] * points + p[None, :], mask=(c2[:, None] < d2) & inside[None, :],
                        other=0.0)
            s = tl.load(s_ptr + p[:, None] * d3 + c3[None, :], mask=inside[:, None] & (c3[None, :] < d3), other=0.0)
            values = tl.dot(x, a, input_precision="ieee", out_dtype=DTYPE) * tl.dot(
                y, b, input_precision="ieee", out_dtype=DTYPE)
            acc += tl.dot(values.to(x.dtype), s, input_precision="ieee", out_dtype=DTYPE)
        tl.store(out_ptr + rows[:, None] * d3 + c3[None, :], acc.to(out_ptr.dtype.element_ty),
                 mask=live[:, None] & (c3[None, :] < d3))

    return triton, tl, grid_product_kernel


def _padded(n: int) -> int:
    """The block size of a dimension of n: a power of two, at least 16 (``tl.dot``'s smallest)."""
    return max(16, 1 << (n - 1).bit_length())


def _launch(x, a, y, b, s) -> torch.Tensor:
    triton, tl, kernel = _kernel()
    x, y, a, b, s = (t.contiguous() for t in (x, y, a, b, s))
    n, channels, d1 = x.shape
    d2, d3, points = y.shape[2], s.shape[1], s.shape[0]
    out = x.new_empty(n, channels, d3)
    rows = n * channels
    if rows == 0:
        return out
    y_row_n, y_row_c = y.shape[1], int(y.shape[1] > 1)  # y's row of (sample, channel): one channel is broadcast
    dtype = tl.float64 if x.dtype == torch.float64 else tl.float32
    grid = (triton.cdiv(rows, _BLOCK_ROWS),)
    kernel[grid](x, a, y, b, s, out, rows, channels, y_row_n, y_row_c, d1, d2, d3, points, DTYPE=dtype,
                 BLOCK_ROWS=_BLOCK_ROWS, BLOCK_POINTS=_BLOCK_POINTS, BD1=_padded(d1), BD2=_padded(d2),
                 BD3=_padded(d3))
    return out


class FusedGridProduct(torch.autograd.Function):
    """``((x @ A) * (y @ B)) @ S`` with the kernel in every direction (module docs)."""

    @staticmethod
    def forward(ctx, x, a, y, b, s):  # noqa: D102 - documented on the class
        ctx.save_for_backward(x, a, y, b, s)
        if uses_triton(x) and x.dtype in (torch.float32, torch.float64):
            return _launch(x, a, y, b, s)
        return _reference(x, a, y, b, s)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102 - documented on the class
        x, a, y, b, s = ctx.saved_tensors
        s_t = s.t()
        grad_x = grad_y = None
        if ctx.needs_input_grad[0]:
            grad_x = FusedGridProduct.apply(grad, s_t, y, b, a.t())
        if ctx.needs_input_grad[2]:
            grad_y = FusedGridProduct.apply(grad, s_t, x, a, b.t())
            if y.shape[1] == 1 and x.shape[1] != 1:
                grad_y = grad_y.sum(1, keepdim=True)
        return grad_x, None, grad_y, None, None


def fused_grid_product(x: torch.Tensor, a: torch.Tensor, y: torch.Tensor, b: torch.Tensor,
                       s: torch.Tensor) -> torch.Tensor:
    """``((x @ a) * (y @ b)) @ s``, the grid values kept on chip (module docs), differentiable twice in x and y.

    Args:
        x: ``(N, C, D1)`` coefficients.
        a: ``(D1, P)`` analysis table of x.
        y: ``(N, C, D2)`` or ``(N, 1, D2)`` coefficients (one channel is broadcast over x's).
        b: ``(D2, P)`` analysis table of y.
        s: ``(P, D3)`` synthesis table (quadrature weights included).

    Returns:
        ``(N, C, D3)``, in x's dtype.

    Raises:
        ValueError: If the shapes do not fit together or the dtypes differ.

    Examples:
        >>> import torch
        >>> from equilib.ops._fused_grid import fused_grid_product
        >>> x, y = torch.randn(4, 3, 9), torch.randn(4, 1, 4)
        >>> a, b, s = torch.randn(9, 50), torch.randn(4, 50), torch.randn(50, 16)
        >>> fused_grid_product(x, a, y, b, s).shape
        torch.Size([4, 3, 16])
    """
    _check(x, a, y, b, s)
    return FusedGridProduct.apply(x, a, y, b, s)

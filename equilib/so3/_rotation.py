"""Random rotations and the matrices that represent O(3) elements on irreps (Wigner D, parity included).

Uniform rotations come from normalised Gaussian quaternions (Shoemake 1992). The real Wigner D matrix of degree l
is computed in float64 from the defining identity ``Y(R x) = D(R) Y(x)`` of the real spherical harmonics of
:mod:`equilib.so3` (e3nn's convention), projected exactly with a product quadrature: ``D_ij = int Y_i(R x) Y_j(x)``.
An improper element is a rotation times the inversion -I, on which an irrep (l, p) acts as p times D(R).
(e3nn's ``D_from_matrix`` agrees to float32 precision; this one is exact to float64 round-off.)
"""

from __future__ import annotations

import numpy as np
import torch
from e3nn import o3

from ._harmonics import spherical_harmonics
from ._quadrature import exact_grid_size, gauss_legendre_grid


def random_rotation(
    *shape: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """Rotation matrices drawn uniformly (Haar) from SO(3), from normalised Gaussian quaternions.

    Args:
        *shape: Batch shape of the result.
        generator: Torch generator for the draw; None uses the global one.
        dtype: Dtype of the result (drawn in float64).

    Returns:
        Tensor of shape ``(*shape, 3, 3)``.

    Examples:
        >>> import torch
        >>> from equilib.so3 import random_rotation
        >>> r = random_rotation(2, generator=torch.Generator().manual_seed(0))
        >>> r.shape
        torch.Size([2, 3, 3])
        >>> bool(torch.allclose(r @ r.transpose(1, 2), torch.eye(3, dtype=r.dtype))), torch.linalg.det(r).round()
        (True, tensor([1., 1.], dtype=torch.float64))
    """
    q = torch.randn(*shape, 4, generator=generator, dtype=torch.float64)
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    ).reshape(*shape, 3, 3)
    return rot.to(dtype)


def _wigner_d_blocks(lmax: int, rotation: np.ndarray) -> list[np.ndarray]:
    grid = gauss_legendre_grid(*exact_grid_size(2 * lmax))
    points = grid.points()
    weighted = grid.harmonics(lmax) * grid.weights.reshape(-1, 1)
    rotated = spherical_harmonics(lmax, points @ rotation.T)
    full = rotated.T @ weighted  # D_ij = sum_g Y_i(R x_g) Y_j(x_g) w_g
    return [full[l * l : (l + 1) ** 2, l * l : (l + 1) ** 2] for l in range(lmax + 1)]


def wigner_D(irreps: str | o3.Irreps, matrix: torch.Tensor) -> torch.Tensor:
    """The block-diagonal matrix by which the O(3) element ``matrix`` acts on ``irreps``: ``Y(R x) = D(R) Y(x)``.

    An improper ``matrix`` (det -1, a rotation times -I) multiplies an irrep of parity p by p.

    Args:
        irreps: Irreps string or e3nn Irreps (e3nn's flat layout).
        matrix: Orthogonal matrices of shape (..., 3, 3).

    Returns:
        Tensor of shape (..., irreps.dim, irreps.dim) in ``matrix``'s dtype and device.

    Raises:
        ValueError: If ``matrix`` is not of shape (..., 3, 3) or not orthogonal.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from equilib.so3 import random_rotation, spherical_harmonics, wigner_D
        >>> r = random_rotation(generator=torch.Generator().manual_seed(0))
        >>> x = np.random.default_rng(0).standard_normal((5, 3))
        >>> y, y_rotated = (torch.as_tensor(spherical_harmonics(2, v)) for v in (x, x @ r.numpy().T))
        >>> d = wigner_D("0e+1o+2e", r)
        >>> d.shape, bool(torch.allclose(y @ d.T, y_rotated))
        (torch.Size([9, 9]), True)
    """
    if not isinstance(matrix, torch.Tensor) or matrix.dim() < 2 or matrix.shape[-2:] != (3, 3):
        raise ValueError(f"matrix: expected a tensor of shape (..., 3, 3), got {getattr(matrix, 'shape', matrix)!r}")
    irreps = o3.Irreps(irreps)
    mats = matrix.detach().cpu().to(torch.float64).reshape(-1, 3, 3).numpy()
    dets = np.linalg.det(mats)
    if np.any(np.abs(np.abs(dets) - 1.0) > 1e-6) or np.any(np.abs(np.swapaxes(mats, 1, 2) @ mats - np.eye(3)) > 1e-6):
        raise ValueError("matrix: expected orthogonal 3x3 matrices (elements of O(3))")
    lmax = max((ir.l for _, ir in irreps), default=0)
    out = np.zeros((len(mats), irreps.dim, irreps.dim))
    for k, (mat, det) in enumerate(zip(mats, dets)):
        sign = 1.0 if det > 0 else -1.0
        blocks = _wigner_d_blocks(lmax, mat * sign)
        i = 0
        for mul, ir in irreps:
            block = blocks[ir.l] * (ir.p if sign < 0 else 1)
            for _ in range(mul):
                out[k, i : i + ir.dim, i : i + ir.dim] = block
                i += ir.dim
    out = torch.as_tensor(out, dtype=matrix.dtype, device=matrix.device)
    return out.reshape(*matrix.shape[:-2], irreps.dim, irreps.dim)

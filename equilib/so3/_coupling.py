"""Coupling coefficients: Clebsch-Gordan <l1 0 l2 0 | l3 0> in closed form and real Gaunt coefficients.

The Gaunt coefficient is the integral of three real spherical harmonics,
``G[m1, m2, m3] = int Y_l1m1 Y_l2m2 Y_l3m3 dOmega``. It equals the CG coupling restricted to
l1 + l2 + l3 even, scaled per path by ``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>``
(e.g. Luo, Chen, Zhang, ICLR 2024, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt
Tensor Products"). In e3nn's real basis ``G = |gaunt_path_scale| * sqrt(2 l3 + 1) * o3.wigner_3j(l1, l2, l3)``:
e3nn fixes the sign of each Wigner-3j block to the sign of the Gaunt block.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np

from ._quadrature import exact_grid_size, gauss_legendre_grid


def _triangle(l1: int, l2: int, l3: int) -> bool:
    return abs(l1 - l2) <= l3 <= l1 + l2


def clebsch_gordan_m0(l1: int, l2: int, l3: int) -> float:
    """<l1 0 l2 0 | l3 0> from the closed form of the Wigner 3j symbol with zero projections.

    Zero unless the triangle holds and l1 + l2 + l3 = J is even; then, with g = J / 2,
    (l1 l2 l3; 0 0 0) = (-1)^g sqrt((J-2l1)!(J-2l2)!(J-2l3)! / (J+1)!) g! / ((g-l1)!(g-l2)!(g-l3)!)
    and <l1 0 l2 0 | l3 0> = (-1)^(l1-l2) sqrt(2 l3 + 1) (l1 l2 l3; 0 0 0). Exact integer arithmetic.

    Args:
        l1: Degree of the first factor.
        l2: Degree of the second factor.
        l3: Degree of the coupled state.

    Returns:
        The coefficient as a float; 0.0 for a negative degree, outside the triangle or for odd l1 + l2 + l3.

    Examples:
        >>> from equilib.so3 import clebsch_gordan_m0
        >>> round(clebsch_gordan_m0(1, 1, 0), 6), round(clebsch_gordan_m0(1, 1, 2), 6), clebsch_gordan_m0(1, 1, 1)
        (-0.57735, 0.816497, 0.0)
    """
    if min(l1, l2, l3) < 0 or not _triangle(l1, l2, l3):
        return 0.0
    big_j = l1 + l2 + l3
    if big_j % 2:
        return 0.0
    g = big_j // 2
    f = math.factorial
    num = f(big_j - 2 * l1) * f(big_j - 2 * l2) * f(big_j - 2 * l3)
    three_j = (-1) ** g * math.sqrt(num / f(big_j + 1)) * (f(g) // (f(g - l1) * f(g - l2) * f(g - l3)))
    return (-1) ** (l1 - l2) * math.sqrt(2 * l3 + 1) * three_j


def gaunt_path_scale(l1: int, l2: int, l3: int) -> float:
    """The Gaunt product's weight of path (l1, l2, l3): ``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>``.

    Args:
        l1: Degree of the first factor.
        l2: Degree of the second factor.
        l3: Output degree.

    Returns:
        The signed scale; 0.0 when l1 + l2 + l3 is odd or the triangle fails.
    """
    cg = clebsch_gordan_m0(l1, l2, l3)
    return math.sqrt((2 * l1 + 1) * (2 * l2 + 1) / (4.0 * math.pi * (2 * l3 + 1))) * cg


def gaunt_w3j_factor(l1: int, l2: int, l3: int) -> float:
    """The factor c with ``gaunt_tensor(l1, l2, l3) == c * e3nn.o3.wigner_3j(l1, l2, l3)``.

    c = |gaunt_path_scale| * sqrt(2 l3 + 1): e3nn's Wigner 3j blocks have unit Frobenius norm, a standard CG
    block over (m1, m2, m3) has norm sqrt(2 l3 + 1).

    Args:
        l1: Degree of the first factor.
        l2: Degree of the second factor.
        l3: Output degree.

    Returns:
        The non-negative factor c (0.0 for paths a Gaunt product does not realize).

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from e3nn import o3
        >>> from equilib.so3 import gaunt_tensor, gaunt_w3j_factor
        >>> w3j = o3.wigner_3j(1, 1, 2, dtype=torch.float64).numpy()
        >>> bool(np.allclose(gaunt_tensor(1, 1, 2), gaunt_w3j_factor(1, 1, 2) * w3j))
        True
    """
    return abs(gaunt_path_scale(l1, l2, l3)) * math.sqrt(2 * l3 + 1)


@cache
def _gaunt_tensor_cached(l1: int, l2: int, l3: int) -> np.ndarray:
    grid = gauss_legendre_grid(*exact_grid_size(l1 + l2 + l3))
    lmax = max(l1, l2, l3)
    y = grid.harmonics(lmax) * np.sqrt(grid.weights.reshape(-1, 1))  # split the weights over two factors
    y_plain = grid.harmonics(lmax)

    def block(l: int, a: np.ndarray) -> np.ndarray:
        return a[:, l * l : (l + 1) ** 2]

    g = np.einsum("gi,gj,gk->ijk", block(l1, y), block(l2, y_plain), block(l3, y))
    g.setflags(write=False)
    return g


def gaunt_tensor(l1: int, l2: int, l3: int) -> np.ndarray:
    """Real Gaunt coefficients ``G[m1, m2, m3] = int Y_l1m1 Y_l2m2 Y_l3m3 dOmega`` in e3nn's real basis.

    Computed by a product quadrature that is exact for degree l1 + l2 + l3 (cached per (l1, l2, l3)).

    Args:
        l1: Degree of the first factor.
        l2: Degree of the second factor.
        l3: Degree of the third factor.

    Returns:
        A float64 array of shape (2l1+1, 2l2+1, 2l3+1) (a fresh copy); zero when l1 + l2 + l3 is odd.

    Raises:
        ValueError: If a degree is not a non-negative int.
    """
    for name, l in (("l1", l1), ("l2", l2), ("l3", l3)):
        if not isinstance(l, int) or l < 0:
            raise ValueError(f"{name}: expected a non-negative int, got {l!r}")
    return _gaunt_tensor_cached(l1, l2, l3).copy()

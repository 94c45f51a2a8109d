"""Product quadrature on the sphere: Gauss-Legendre in cos(beta) times a uniform rule in alpha.

A rule with ``n_beta`` Gauss-Legendre nodes and ``n_alpha`` uniform azimuths integrates exactly every
polynomial on the sphere of degree <= min(2 n_beta - 1, n_alpha - 1). The product of three band-limited
functions of degrees L1, L2, L3 has degree D = L1 + L2 + L3, so ``ceil((D + 1) / 2) x (D + 1)`` points
integrate the Gaunt product exactly (see "The Price of Freedom", Xie et al. 2025, and the notes in
shared/notes/tensor-products.md: size the grid from D, not from max(L)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ._harmonics import spherical_harmonics_angles


def exact_grid_size(degree: int) -> tuple[int, int]:
    """Smallest (n_beta, n_alpha) of the product rule that integrates polynomials of ``degree`` exactly.

    Args:
        degree: Largest total degree to integrate (L1 + L2 + L3 for a Gaunt product).

    Returns:
        ``(degree // 2 + 1, degree + 1)``.

    Raises:
        ValueError: If ``degree`` is not a non-negative int.

    Examples:
        >>> from equilib.so3 import exact_grid_size
        >>> exact_grid_size(6)
        (4, 7)
    """
    if not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree: expected a non-negative int, got {degree!r}")
    return (degree + 2) // 2, degree + 1


@dataclass(frozen=True)
class S2Grid:
    """A Gauss-Legendre x uniform grid on the sphere, polar axis y (e3nn's convention).

    Points are ordered beta-major: point ``i * n_alpha + j`` is (beta_i, alpha_j). ``weights`` (n_beta, n_alpha)
    sums to 4 pi; ``shape`` is (n_beta, n_alpha).

    Attributes:
        beta: (n_beta,) polar angles from +y, increasing.
        alpha: (n_alpha,) azimuths, uniform on [0, 2 pi).
        beta_weights: (n_beta,) Gauss-Legendre weights of the nodes in cos(beta), summing to 2.

    Examples:
        >>> import numpy as np
        >>> from equilib.so3 import exact_grid_size, gauss_legendre_grid
        >>> grid = gauss_legendre_grid(*exact_grid_size(4))  # exact for products of two degree-2 functions
        >>> y = grid.harmonics(2)  # (15, 9)
        >>> bool(np.allclose(grid.integrate(y.T[:, None] * y.T[None, :]), np.eye(9)))  # orthonormal
        True
    """

    beta: np.ndarray
    alpha: np.ndarray
    beta_weights: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return len(self.beta), len(self.alpha)

    @property
    def weights(self) -> np.ndarray:
        return self.beta_weights[:, None] * np.full(len(self.alpha), 2.0 * math.pi / len(self.alpha))

    def points(self) -> np.ndarray:
        """Unit vectors of the grid points.

        Returns:
            Array of shape (n_beta * n_alpha, 3), ``(sin b sin a, cos b, sin b cos a)``.
        """
        b, a = np.meshgrid(self.beta, self.alpha, indexing="ij")
        xyz = np.stack([np.sin(b) * np.sin(a), np.cos(b), np.sin(b) * np.cos(a)], axis=-1)
        return xyz.reshape(-1, 3)

    def harmonics(self, lmax: int) -> np.ndarray:
        """Orthonormal real SH at the grid points, in float64.

        Args:
            lmax: Largest degree.

        Returns:
            Array of shape (n_beta * n_alpha, (lmax + 1)^2).
        """
        b, a = np.meshgrid(self.beta, self.alpha, indexing="ij")
        return spherical_harmonics_angles(lmax, b.reshape(-1), a.reshape(-1))

    def integrate(self, values: np.ndarray) -> np.ndarray:
        """Quadrature of ``values`` over the sphere.

        Args:
            values: Array of shape (..., n_beta * n_alpha), point order as :meth:`points`.

        Returns:
            Array of shape ``values.shape[:-1]``.
        """
        return np.asarray(values) @ self.weights.reshape(-1)


def gauss_legendre_grid(n_beta: int, n_alpha: int) -> S2Grid:
    """The product rule with ``n_beta`` Gauss-Legendre nodes in cos(beta) and ``n_alpha`` uniform azimuths.

    Args:
        n_beta: Number of polar nodes; exact in beta up to degree 2 n_beta - 1.
        n_alpha: Number of azimuths; exact in alpha up to degree n_alpha - 1.

    Returns:
        The :class:`S2Grid`.

    Raises:
        ValueError: If ``n_beta`` or ``n_alpha`` is not a positive int.
    """
    for name, n in (("n_beta", n_beta), ("n_alpha", n_alpha)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name}: expected a positive int, got {n!r}")
    z, w = np.polynomial.legendre.leggauss(n_beta)
    order = np.argsort(-z)  # beta increasing from the +y pole
    alpha = 2.0 * math.pi * np.arange(n_alpha) / n_alpha
    return S2Grid(beta=np.arccos(z[order]), alpha=alpha, beta_weights=w[order])

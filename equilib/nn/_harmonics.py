"""Real spherical harmonics of edge vectors as one matrix product of monomials, in e3nn's convention.

On the unit sphere the real spherical harmonic ``Y_lm`` is a homogeneous polynomial of degree l in (x, y, z) (a
harmonic polynomial), so ``Y(v / |v|) = monomials(v / |v|) @ C`` with ``C`` the coefficients of each ``Y_lm`` on the
``x^a y^b z^c`` with ``a + b + c = l``. ``C`` is found once in float64 by least squares against
:func:`equilib.so3.spherical_harmonics` (unique and exact: homogeneous monomials of one degree are independent on the
sphere) and kept as a table. Evaluating is a handful of operations for any lmax, where e3nn's generated code runs
several per degree; same values as ``e3nn.o3.SphericalHarmonics(..., normalize=True, normalization='component')``.
"""

from __future__ import annotations

import numpy as np
import torch

from ..so3 import spherical_harmonics
from ..utils import TableModule


def _monomials(lmax: int) -> list[tuple[int, int, int]]:
    """Exponents (a, b, c) of x^a y^b z^c with a + b + c <= lmax; index a + (lmax+1) b + (lmax+1)^2 c."""
    return [(a, b, c) for c in range(lmax + 1) for b in range(lmax + 1) for a in range(lmax + 1)]


def monomial_coefficients(lmax: int, normalization: str = "component") -> np.ndarray:
    """``C`` with ``Y(u) = monomials(u) @ C`` for unit vectors u, in float64.

    Args:
        lmax: Largest degree.
        normalization: As :func:`equilib.so3.spherical_harmonics`.

    Returns:
        Array of shape ((lmax+1)^3, (lmax+1)^2).
    """
    exponents = np.array(_monomials(lmax))
    points = np.random.default_rng(0).normal(size=(4 * (lmax + 1) ** 2 + 16, 3))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    values = spherical_harmonics(lmax, points, normalization)
    powers = np.prod(points[:, None, :] ** exponents[None], axis=-1)  # (points, monomials)
    coefficients = np.zeros((len(exponents), (lmax + 1) ** 2))
    for l in range(lmax + 1):
        rows = np.flatnonzero(exponents.sum(axis=1) == l)
        columns = slice(l * l, (l + 1) ** 2)
        coefficients[np.ix_(rows, np.arange(l * l, (l + 1) ** 2))] = np.linalg.lstsq(
            powers[:, rows], values[:, columns], rcond=None)[0]
    return coefficients


class SphericalHarmonics(TableModule):
    """``Y_lm(v / |v|)`` for l = 0..lmax in e3nn's order and normalisation, as a product of monomials with a table.

    Args:
        lmax: Largest degree.
        normalization: ``"component"`` or ``"integral"``.
        dtype: Dtype of the table; default torch's default dtype.
    """

    def __init__(self, lmax: int, normalization: str = "component", dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.lmax = lmax
        self.register_table("coefficients", monomial_coefficients(lmax, normalization),
                            dtype or torch.get_default_dtype())

    def forward(self, vectors: torch.Tensor) -> torch.Tensor:
        """The harmonics of the directions of ``vectors``.

        Args:
            vectors: (..., 3) non-zero vectors.

        Returns:
            (..., (lmax+1)^2).
        """
        n = self.lmax + 1
        unit = vectors / vectors.norm(dim=-1, keepdim=True)
        powers = [torch.ones_like(unit), unit]  # by products, not pow: the gradient of u^0 at u = 0 is 0 * inf
        while len(powers) < n:
            powers.append(powers[-1] * unit)
        x, y, z = torch.stack(powers[:n], dim=-1).unbind(-2)  # (..., n) each
        monomials = (x.unsqueeze(-2) * y.unsqueeze(-1)).unsqueeze(-3) * z[..., :, None, None]  # (..., c, b, a)
        return monomials.reshape(*vectors.shape[:-1], n**3) @ self.coefficients

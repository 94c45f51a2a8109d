"""Radial parts of an interatomic potential: a Bessel basis times a smooth polynomial cutoff (NequIP).

Batzner et al., "E(3)-equivariant graph neural networks for data-efficient and accurate interatomic potentials",
Nat. Commun. 2022: the Bessel functions ``sin(n pi x) / x`` of x = r / r_c (NequIP's ``sqrt(2 / r_c) sin(n pi r /
r_c) / r`` times ``sqrt(r_c / 2) r_c``, so that the features are of order one for any cutoff) and the envelope
``u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2)``, x = r / r_c, which goes to zero with its first
two derivatives at the cutoff, so energies and forces are smooth as atoms cross it.
"""

from __future__ import annotations

import math

import torch


class BesselBasis(torch.nn.Module):
    """``num_basis`` Bessel functions ``sin(w_n r / cutoff) / (r / cutoff)`` on [0, cutoff], as in NequIP.

    The frequencies ``w_n`` start at ``n pi`` (n = 1..num_basis) and are trainable.

    Args:
        cutoff: Cutoff radius (the unit of ``r``, Angstrom in a potential).
        num_basis: Number of functions.
        dtype: Dtype of the frequencies; default torch's default dtype.

    Raises:
        ValueError: If ``cutoff`` or ``num_basis`` is not positive.

    Examples:
        >>> import torch
        >>> from equilib.nn import BesselBasis
        >>> BesselBasis(cutoff=5.0, num_basis=4)(torch.tensor([1.0, 2.5, 4.0])).shape
        torch.Size([3, 4])
    """

    def __init__(self, cutoff: float, num_basis: int = 8, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not cutoff > 0 or num_basis < 1:
            raise ValueError(f"cutoff, num_basis: expected positive values, got {cutoff}, {num_basis}")
        self.cutoff = float(cutoff)
        self.frequencies = torch.nn.Parameter(math.pi * torch.arange(1, num_basis + 1, dtype=torch.float64)
                                              .to(dtype or torch.get_default_dtype()))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """The basis at distances ``r``.

        Args:
            r: Distances, any shape, non-zero.

        Returns:
            ``(*r.shape, num_basis)``.
        """
        x = r.unsqueeze(-1) / self.cutoff
        return torch.sin(self.frequencies * x) / x


class PolynomialCutoff(torch.nn.Module):
    """The smooth envelope ``u(r / cutoff)`` of degree ``p`` (NequIP); zero at and beyond the cutoff.

    Args:
        cutoff: Cutoff radius.
        p: Degree; the envelope and its first two derivatives vanish at the cutoff.

    Examples:
        >>> import torch
        >>> from equilib.nn import PolynomialCutoff
        >>> u = PolynomialCutoff(cutoff=5.0)(torch.tensor([0.0, 2.5, 5.0, 6.0]))
        >>> round(float(u[0]), 6), round(float(u[1]), 4), bool((u[2:] == 0).all())
        (1.0, 0.8555, True)
    """

    def __init__(self, cutoff: float, p: int = 6) -> None:
        super().__init__()
        self.cutoff, self.p = float(cutoff), float(p)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """The envelope at distances ``r``.

        Args:
            r: Distances, any shape.

        Returns:
            Tensor of ``r``'s shape, 1 at r = 0, 0 for r >= cutoff.
        """
        x = r / self.cutoff
        p = self.p
        # 1 + x^p (a + x (b + c x)), Horner's form of the envelope: fewer operations for autograd to record
        u = 1.0 + x**p * (-(p + 1) * (p + 2) / 2 + x * (p * (p + 2) - p * (p + 1) / 2 * x))
        return u * (x < 1.0)

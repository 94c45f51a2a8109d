"""Real spherical harmonics in the 2D Fourier basis of the torus, exact tables in float64.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor
Products" (ICLR 2024). With ``b`` the polar angle (from the y axis, e3nn's convention) extended to ``[0, 2 pi)`` and
``a`` the azimuth, a unit vector is ``(sin b sin a, cos b, sin b cos a)`` for every ``b``; for ``b > pi`` this is
the point ``(2 pi - b, a + pi)`` of the sphere, so a function on S^2 extends to the torus without change and
products commute with the extension. Each real SH is a trigonometric polynomial there:

    Y_lm(a, b) = S_m(a) Theta_lm(b),   Theta_lm(b) = sum_{|u| <= l} t_lm[u] e^{i u b},

and ``S_m`` has only the frequencies ``v = +-|m|`` (``sqrt 2 cos(m a)``, ``1``, ``sqrt 2 sin(|m| a)``).

- ``t_lm`` is obtained from ``2 lmax + 1`` equispaced samples of ``Theta_lm`` (a trigonometric polynomial of
  degree <= lmax) by the discrete Fourier transform, which recovers such a polynomial's coefficients exactly (to
  float64 round-off); no quadrature is involved.
- Projection back: ``<g, Y_lm> = int_0^2pi da int_0^pi db sin(b) g Y_lm``. For ``g = sum G[u, v] e^{i(ub + va)}``
  the ``a`` integral keeps ``v = -+|m|`` and the ``b`` integral is ``sum_u G[u, .] P_lm[u]`` with
  ``P_lm[u] = sum_u' t_lm[u'] I(u + u')`` and the closed form ``I(k) = int_0^pi sin(b) e^{ikb} db``.
"""

from __future__ import annotations

import math

import numpy as np

from ._harmonics import associated_legendre, sh_dim, sh_index


def theta_fourier(lmax: int) -> np.ndarray:
    """``t[(l, m), u]``: Fourier coefficients of ``Theta_lm(b)``, shape ``((lmax+1)^2, 2 lmax + 1)``, complex,
    ``u = -lmax..lmax``. Real and even in b for even |m|, imaginary and odd for odd |m|."""
    n = 2 * lmax + 1
    b = 2.0 * math.pi * np.arange(n) / n
    values = associated_legendre(lmax, np.cos(b))  # (n, dim), with |sin b|
    odd = np.array([abs(m) % 2 for l in range(lmax + 1) for m in range(-l, l + 1)], dtype=bool)
    values[:, odd] *= np.sign(np.sin(b))[:, None]  # P_l^|m| carries sin(b)^|m|: the torus extension is signed
    u = np.arange(-lmax, lmax + 1)
    return values.T @ np.exp(-1j * np.outer(b, u)) / n


def azimuth_fourier(m: int) -> dict[int, complex]:
    """Fourier coefficients of ``S_m(a)``: frequency v -> coefficient, at v = +-|m|."""
    if m == 0:
        return {0: 1.0 + 0j}
    k = abs(m)
    if m > 0:  # sqrt 2 cos(m a)
        return {k: math.sqrt(0.5) + 0j, -k: math.sqrt(0.5) + 0j}
    return {k: -1j * math.sqrt(0.5), -k: 1j * math.sqrt(0.5)}  # sqrt 2 sin(|m| a)


def sine_integral(k: np.ndarray) -> np.ndarray:
    """``I(k) = int_0^pi sin(b) e^{i k b} db`` for integer k: 2 / (1 - k^2) for even k, +-i pi / 2 for k = +-1,
    0 for other odd k."""
    k = np.asarray(k)
    even = k % 2 == 0
    out = np.zeros(k.shape, dtype=complex)
    out[even] = 2.0 / (1.0 - k[even].astype(float) ** 2)
    out[k == 1] = 0.5j * math.pi
    out[k == -1] = -0.5j * math.pi
    return out


def projection_fourier(lmax: int, umax: int) -> np.ndarray:
    """``P[(l, m), u] = sum_u' t_lm[u'] I(u + u')`` for ``u = -umax..umax``, shape ``((lmax+1)^2, 2 umax + 1)``:
    ``int_0^pi sin(b) e^{iub} Theta_lm(b) db``, the polar half of projecting ``e^{i(ub + va)}`` onto ``Y_lm``."""
    t = theta_fourier(lmax)
    u_in = np.arange(-lmax, lmax + 1)
    u = np.arange(-umax, umax + 1)
    return t @ sine_integral(u_in[:, None] + u[None, :])


def sh_to_fourier(lmax: int) -> np.ndarray:
    """Dense reference: ``F[(l, m), u, v]`` with ``Y_lm = sum F e^{i(ub + va)}``, u, v in -lmax..lmax (for tests;
    the backend uses the per-m blocks)."""
    t = theta_fourier(lmax)
    out = np.zeros((sh_dim(lmax), 2 * lmax + 1, 2 * lmax + 1), dtype=complex)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            for v, s in azimuth_fourier(m).items():
                out[sh_index(l, m), :, v + lmax] = t[sh_index(l, m)] * s
    return out

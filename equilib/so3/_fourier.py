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
    """Fourier coefficients ``t[(l, m), u]`` of the polar factors ``Theta_lm(b)`` on the torus.

    Real and even in b for even |m|, imaginary and odd for odd |m|.

    Args:
        lmax: Largest degree.

    Returns:
        A complex array of shape ``((lmax+1)^2, 2 lmax + 1)``, rows (l, m) in the flat layout, columns
        ``u = -lmax..lmax``.
    """
    n = 2 * lmax + 1
    b = 2.0 * math.pi * np.arange(n) / n
    values = associated_legendre(lmax, np.cos(b))  # (n, dim), with |sin b|
    odd = np.array([abs(m) % 2 for l in range(lmax + 1) for m in range(-l, l + 1)], dtype=bool)
    values[:, odd] *= np.sign(np.sin(b))[:, None]  # P_l^|m| carries sin(b)^|m|: the torus extension is signed
    u = np.arange(-lmax, lmax + 1)
    return values.T @ np.exp(-1j * np.outer(b, u)) / n


def azimuth_fourier(m: int) -> dict[int, complex]:
    """Fourier coefficients of the azimuthal factor ``S_m(a)`` (``sqrt 2 cos(m a)``, ``1`` or ``sqrt 2 sin(|m| a)``).

    Args:
        m: The order, any integer.

    Returns:
        ``{v: coefficient}`` with ``S_m(a) = sum_v coefficient e^{i v a}``, at v = +-|m| (only v = 0 for m = 0).

    Examples:
        >>> from equilib.so3 import azimuth_fourier
        >>> {v: round(abs(c) ** 2, 6) for v, c in azimuth_fourier(-2).items()}
        {2: 0.5, -2: 0.5}
    """
    if m == 0:
        return {0: 1.0 + 0j}
    k = abs(m)
    if m > 0:  # sqrt 2 cos(m a)
        return {k: math.sqrt(0.5) + 0j, -k: math.sqrt(0.5) + 0j}
    return {k: -1j * math.sqrt(0.5), -k: 1j * math.sqrt(0.5)}  # sqrt 2 sin(|m| a)


def sine_integral(k: np.ndarray) -> np.ndarray:
    """``I(k) = int_0^pi sin(b) e^{i k b} db`` for integer k.

    The closed form: 2 / (1 - k^2) for even k, +-i pi / 2 for k = +-1, 0 for other odd k.

    Args:
        k: Integer frequencies, any shape.

    Returns:
        A complex array of ``k``'s shape.
    """
    k = np.asarray(k)
    even = k % 2 == 0
    out = np.zeros(k.shape, dtype=complex)
    out[even] = 2.0 / (1.0 - k[even].astype(float) ** 2)
    out[k == 1] = 0.5j * math.pi
    out[k == -1] = -0.5j * math.pi
    return out


def projection_fourier(lmax: int, umax: int) -> np.ndarray:
    """The polar half of projecting ``e^{i(ub + va)}`` onto ``Y_lm``: ``int_0^pi sin(b) e^{iub} Theta_lm(b) db``.

    Computed as ``P[(l, m), u] = sum_u' t_lm[u'] I(u + u')`` with :func:`theta_fourier` and :func:`sine_integral`.

    Args:
        lmax: Largest degree.
        umax: Largest polar frequency.

    Returns:
        A complex array of shape ``((lmax+1)^2, 2 umax + 1)``, columns ``u = -umax..umax``.
    """
    t = theta_fourier(lmax)
    u_in = np.arange(-lmax, lmax + 1)
    u = np.arange(-umax, umax + 1)
    return t @ sine_integral(u_in[:, None] + u[None, :])


def sh_to_fourier(lmax: int) -> np.ndarray:
    """Dense 2D Fourier coefficients of every real SH: ``Y_lm = sum_(u, v) F[(l, m), u, v] e^{i(ub + va)}``.

    A reference for tests; the ``gaunt`` backend uses per-order blocks instead.

    Args:
        lmax: Largest degree.

    Returns:
        A complex array of shape ``((lmax+1)^2, 2 lmax + 1, 2 lmax + 1)``, u and v from -lmax to lmax.
    """
    t = theta_fourier(lmax)
    out = np.zeros((sh_dim(lmax), 2 * lmax + 1, 2 * lmax + 1), dtype=complex)
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            for v, s in azimuth_fourier(m).items():
                out[sh_index(l, m), :, v + lmax] = t[sh_index(l, m)] * s
    return out

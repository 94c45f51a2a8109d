"""Real spherical harmonics in e3nn's convention, evaluated in float64 for building tables.

Convention (e3nn >= 0.5): the polar axis is y. A unit vector is
``(sin b sin a, cos b, sin b cos a)`` and ``Y_lm(a, b) = S_m(a) * P_l^|m|(cos b)`` with
``S_m = sqrt(2) sin(|m| a)`` for m < 0, ``1`` for m = 0, ``sqrt(2) cos(m a)`` for m > 0, and ``P_l^m`` the
associated Legendre function without the Condon-Shortley phase, normalised so that the ``Y_lm`` are
orthonormal on the sphere ("integral" normalisation). Columns are ordered l = 0..lmax, m = -l..l.
"""

from __future__ import annotations

import math

import numpy as np


def sh_dim(lmax: int) -> int:
    """Number of real spherical harmonics of degrees 0..lmax: (lmax + 1)^2.

    Args:
        lmax: Largest degree.

    Returns:
        (lmax + 1)^2.
    """
    return (lmax + 1) ** 2


def sh_index(l: int, m: int) -> int:
    """Column of (l, m) in the flat layout (l = 0..lmax, then m = -l..l): ``l^2 + l + m``.

    Args:
        l: Degree.
        m: Order, -l..l.

    Returns:
        The column index.

    Examples:
        >>> from equilib.so3 import sh_dim, sh_index
        >>> sh_dim(2), sh_index(0, 0), sh_index(1, -1), sh_index(2, 2)
        (9, 0, 1, 8)
    """
    return l * l + l + m


def associated_legendre(lmax: int, cos_beta: np.ndarray) -> np.ndarray:
    """Orthonormalised associated Legendre functions ``P_l^|m|(cos b)`` of every (l, m), in float64.

    Column (l, m) holds the function of |m|, so that ``Y_lm = S_m(a) * column``. Uses the standard stable
    normalised recurrences (no Condon-Shortley phase).

    Args:
        lmax: Largest degree.
        cos_beta: Cosines of the polar angles, any shape.

    Returns:
        An array of shape ``(*cos_beta.shape, (lmax+1)^2)``.
    """
    z = np.asarray(cos_beta, dtype=np.float64)
    s = np.sqrt(np.clip(1.0 - z * z, 0.0, None))
    p = np.zeros((lmax + 1, lmax + 1) + z.shape)  # p[l, m]
    p[0, 0] = 1.0 / math.sqrt(4.0 * math.pi)
    for m in range(1, lmax + 1):
        p[m, m] = math.sqrt((2 * m + 1) / (2 * m)) * s * p[m - 1, m - 1]
    for m in range(0, lmax):
        p[m + 1, m] = math.sqrt(2 * m + 3) * z * p[m, m]
    for m in range(0, lmax + 1):
        for l in range(m + 2, lmax + 1):
            a = math.sqrt((4 * l * l - 1) / (l * l - m * m))
            b = math.sqrt(((l - 1) ** 2 - m * m) / (4 * (l - 1) ** 2 - 1))
            p[l, m] = a * (z * p[l - 1, m] - b * p[l - 2, m])
    out = np.empty(z.shape + (sh_dim(lmax),))
    for l in range(lmax + 1):
        for m in range(-l, l + 1):
            out[..., sh_index(l, m)] = p[l, abs(m)]
    return out


def azimuthal_harmonics(lmax: int, alpha: np.ndarray) -> np.ndarray:
    """The azimuthal factors ``S_m(a)`` for m = -lmax..lmax.

    ``sqrt(2) sin(|m| a)`` for m < 0, ``1`` for m = 0, ``sqrt(2) cos(m a)`` for m > 0.

    Args:
        lmax: Largest order.
        alpha: Azimuths in radians, any shape.

    Returns:
        A float64 array of shape ``(*alpha.shape, 2 lmax + 1)``.
    """
    a = np.asarray(alpha, dtype=np.float64)[..., None]
    m = np.arange(-lmax, lmax + 1)
    return np.where(
        m < 0,
        math.sqrt(2.0) * np.sin(np.abs(m) * a),
        np.where(m == 0, 1.0, math.sqrt(2.0) * np.cos(m * a)),
    )


def spherical_harmonics_angles(lmax: int, beta: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Orthonormal real spherical harmonics of degrees 0..lmax at polar angle ``beta`` and azimuth ``alpha``.

    Args:
        lmax: Largest degree.
        beta: Polar angles from +y in radians.
        alpha: Azimuths in radians, broadcastable with ``beta``.

    Returns:
        A float64 array of shape ``(*shape, (lmax+1)^2)``, columns in the flat (l, m) layout.
    """
    leg = associated_legendre(lmax, np.cos(beta))
    azi = azimuthal_harmonics(lmax, alpha)
    m_of_column = np.array([m + lmax for l in range(lmax + 1) for m in range(-l, l + 1)])
    return leg * azi[..., m_of_column]


def vector_to_angles(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Polar angle from +y and azimuth ``atan2(x, z)`` of (not necessarily unit) vectors.

    Args:
        vectors: Array of shape (..., 3).

    Returns:
        ``(beta, alpha)``, each of shape ``vectors.shape[:-1]``.

    Raises:
        ValueError: If a vector is zero.
    """
    v = np.asarray(vectors, dtype=np.float64)
    r = np.linalg.norm(v, axis=-1)
    if np.any(r == 0):
        raise ValueError("vectors: expected non-zero vectors, got a zero vector (its direction is undefined)")
    beta = np.arccos(np.clip(v[..., 1] / r, -1.0, 1.0))
    alpha = np.arctan2(v[..., 0], v[..., 2])
    return beta, alpha


def spherical_harmonics(lmax: int, vectors: np.ndarray, normalization: str = "integral") -> np.ndarray:
    """Real spherical harmonics of degrees 0..lmax of the directions of ``vectors``, in float64.

    Args:
        lmax: Largest degree.
        vectors: Array of shape (..., 3), non-zero (only the direction matters).
        normalization: ``"integral"`` (orthonormal on the sphere) or ``"component"`` (e3nn's default for edge
            features: sum over m of Y_lm^2 = 2l + 1).

    Returns:
        An array of shape (..., (lmax+1)^2), columns l = 0..lmax, m = -l..l.

    Raises:
        ValueError: If ``normalization`` is unknown or a vector is zero.

    Examples:
        >>> import numpy as np
        >>> from equilib.so3 import spherical_harmonics
        >>> y = spherical_harmonics(2, np.array([[0.0, 0.0, 2.0], [1.0, 1.0, 0.0]]), normalization="component")
        >>> y.shape
        (2, 9)
        >>> np.round(y[0, :4], 6)  # l = 0, then l = 1 in the order (x, y, z)
        array([1.      , 0.      , 0.      , 1.732051])
        >>> np.round((y[:, 4:] ** 2).sum(axis=1), 6)  # component normalisation: 2l + 1 for l = 2
        array([5., 5.])
    """
    if normalization not in ("integral", "component"):
        raise ValueError(f"normalization: expected 'integral' or 'component', got {normalization!r}")
    beta, alpha = vector_to_angles(vectors)
    y = spherical_harmonics_angles(lmax, beta, alpha)
    return y * math.sqrt(4.0 * math.pi) if normalization == "component" else y

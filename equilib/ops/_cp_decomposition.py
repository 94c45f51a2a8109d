"""Canonical polyadic (CP) decompositions of 3-way tensors, fitted in float64 and cached on disk.

``T[i, j, k] ~ sum_r A[i, r] B[j, r] C[k, r]``. :func:`cp_als` fits the factors by alternating least squares (Kolda
and Bader, "Tensor Decompositions and Applications", SIAM Review 2009, section 3.4) with line search, from a seeded
random start, so the same tensor and rank always give the same factors. :func:`slice_decomposition` is the exact
decomposition with one component per non-zero fiber (a rank upper bound, :func:`exact_rank_bound`).
:func:`fitted_factors` keeps fitted factors in ``$EQUILIB_CACHE/cp`` (default ``~/.cache/equilib/cp``), keyed by the
tensor's bytes, the rank and :data:`ALS_VERSION`, written atomically, so an op is fitted once per machine.

>>> t = np.einsum("ir,jr,kr->ijk", *(np.random.default_rng(0).standard_normal((4, 3)) for _ in range(3)))
>>> a, b, c, error = cp_als(t, rank=3, tol=1e-10)
>>> error < 1e-10
True
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from ..utils import atomic_write

ALS_VERSION = 2  # bump when the fit changes: cached factors of an older version are not reused


def cp_als(tensor: np.ndarray, rank: int, tol: float = 1e-7, max_iter: int = 3000, seed: int = 0):
    """Rank-``rank`` CP factors of a 3-way tensor by alternating least squares with line search, in float64.

    Before each sweep the factors are extrapolated along the previous sweep's change by ``sweep^(1/3)`` and the
    extrapolation is kept when it lowers the error (Bro's line search, as in Rajih, Comon, Harshman, SIAM J. Matrix
    Anal. Appl. 2008): it shortens the "swamps" where plain ALS creeps. Stops when the relative Frobenius error
    ``|T - [[A, B, C]]| / |T|`` is below ``tol``, after ``max_iter`` sweeps, or when 100 sweeps improved it by less
    than 0.1 %.

    Args:
        tensor: A 3-way array (converted to float64).
        rank: Number of components.
        tol: Relative error at which to stop.
        max_iter: Largest number of sweeps.
        seed: Seed of the random start.

    Returns:
        ``(A, B, C, relative_error)``: factors of shapes (d1, rank), (d2, rank), (d3, rank) with balanced column
        norms, and the final relative error (zeros and 0.0 for a zero tensor).

    Raises:
        ValueError: If ``tensor`` is not 3-way or ``rank`` is not a positive integer.
    """
    t = np.asarray(tensor, dtype=np.float64)
    if t.ndim != 3:
        raise ValueError(f"tensor: expected a 3-way array, got shape {t.shape}")
    if not isinstance(rank, (int, np.integer)) or rank < 1:
        raise ValueError(f"rank: expected a positive integer, got {rank!r}")
    norm = np.linalg.norm(t)
    if norm == 0:
        return (*(np.zeros((d, rank)) for d in t.shape), 0.0)
    d1, d2, d3 = t.shape
    rng = np.random.default_rng(seed)
    factors = [rng.standard_normal((d, rank)) for d in (d1, d2, d3)]
    unfolded = (t.reshape(d1, d2 * d3), t.transpose(1, 0, 2).reshape(d2, d1 * d3),
                t.transpose(2, 0, 1).reshape(d3, d1 * d2))
    error, previous, history = _relative_error(t, *factors, norm), None, []
    for sweep in range(max_iter):
        if previous is not None:
            trial = [p + (sweep + 1) ** (1 / 3) * (f - p) for f, p in zip(factors, previous)]
            if _relative_error(t, *trial, norm) < error:
                factors = trial
        previous = factors
        a, b, c = factors
        a = _least_squares(unfolded[0], b, c)
        b = _least_squares(unfolded[1], a, c)
        c = _least_squares(unfolded[2], a, b)
        factors = [a, b, c]
        error = _relative_error(t, a, b, c, norm)
        if sweep % 10 == 9:
            history.append(error)
            if error < tol or (len(history) > 10 and history[-11] - error < 1e-3 * history[-11]):
                break
    a, b, c = _balance(*factors)
    return a, b, c, _relative_error(t, a, b, c, norm)


def _least_squares(unfolded: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """argmin_F |unfolded - F (x khatri-rao y)^T|: ``unfolded (x kr y) ((x^T x) * (y^T y))^-1``, with a tiny ridge
    for rank-deficient Gram matrices."""
    khatri_rao = (x[:, None, :] * y[None, :, :]).reshape(-1, x.shape[1])
    gram = (x.T @ x) * (y.T @ y)
    gram[np.diag_indices_from(gram)] += 1e-13 * np.trace(gram) / len(gram)
    return np.linalg.solve(gram, (unfolded @ khatri_rao).T).T


def _relative_error(t, a, b, c, norm) -> float:
    return float(np.linalg.norm(np.einsum("ir,jr,kr->ijk", a, b, c) - t) / norm)


def _balance(a, b, c):
    """Equal column norms across the three factors (the product is unchanged): well-scaled float32 tables."""
    na, nb, nc = (np.linalg.norm(f, axis=0) for f in (a, b, c))
    scale = np.cbrt(na * nb * nc)
    safe = lambda n: np.where(n > 0, n, 1.0)  # noqa: E731
    return a * (scale / safe(na)), b * (scale / safe(nb)), c * (scale / safe(nc))


def _nonzero_fibers(tensor: np.ndarray) -> list[int]:
    """Number of non-zero fibers along each mode (fibers along mode 0: T[:, j, k] for each (j, k))."""
    return [int(np.count_nonzero(np.abs(tensor).sum(axis=mode))) for mode in range(3)]


def exact_rank_bound(tensor: np.ndarray) -> int:
    """Components of :func:`slice_decomposition`: the fewest non-zero fibers along any one mode."""
    return min(_nonzero_fibers(tensor))


def slice_decomposition(tensor: np.ndarray):
    """An exact CP decomposition: one component per non-zero fiber along the mode with the fewest of them
    (e.g. ``e_i (x) e_j (x) T[i, j, :]`` per non-zero (i, j)). Returns ``(A, B, C)``."""
    t = np.asarray(tensor, dtype=np.float64)
    mode = int(np.argmin(_nonzero_fibers(t)))
    moved = np.moveaxis(t, mode, 2)  # fibers along the last axis
    rows, cols = np.nonzero(np.abs(moved).sum(axis=2))
    first = np.eye(moved.shape[0])[:, rows]
    second = np.eye(moved.shape[1])[:, cols]
    fibers = moved[rows, cols, :].T
    factors = [first, second]
    factors.insert(mode, fibers)
    return tuple(factors)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """Where fitted factors live: ``override``, else ``$EQUILIB_CACHE/cp``, else ``~/.cache/equilib/cp``."""
    if override is not None:
        return Path(override)
    return Path(os.environ.get("EQUILIB_CACHE", Path.home() / ".cache" / "equilib")) / "cp"


def fitted_factors(tensor: np.ndarray, rank: int, tol: float, directory: str | os.PathLike | None = None):
    """:func:`cp_als` factors of ``tensor``, read from the on-disk cache when fitted before (same tensor bytes,
    rank, tolerance and :data:`ALS_VERSION`), else fitted and written atomically. Returns ``(A, B, C, error)``."""
    t = np.ascontiguousarray(tensor, dtype=np.float64)
    key = hashlib.sha256(t.tobytes() + f"{t.shape}|{rank}|{tol!r}|{ALS_VERSION}".encode()).hexdigest()[:32]
    path = cache_dir(directory) / f"{key}.npz"
    if path.exists():
        with np.load(path) as stored:
            return stored["a"], stored["b"], stored["c"], float(stored["error"])
    a, b, c, error = cp_als(t, rank, tol=tol)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(path) as f:
            np.savez(f, a=a, b=b, c=c, error=error)
    except OSError as err:  # a read-only or invalid cache costs a refit next time, not the construction
        warnings.warn(f"cache_dir: could not store the fitted CP factors in {path.parent} ({err}); set "
                      "EQUILIB_CACHE or cache_dir to a writable folder to fit only once", stacklevel=3)
    return a, b, c, error

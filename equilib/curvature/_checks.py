"""The argument checks and the random vectors every estimator shares.

Random vectors (Rademacher or Gaussian, ``E[v v^T] = I``) are drawn in float64 on the CPU from the caller's
``torch.Generator``, then cast and moved to the operator's dtype and device, so the same seed gives the same numbers
on every device and dtype.
"""

from __future__ import annotations

import math

import torch

from ._base import CurvatureOperator

DISTRIBUTIONS = ("rademacher", "gaussian")


def check_operator(op, name: str = "op") -> None:
    """Checks that ``op`` is a :class:`CurvatureOperator`.

    Args:
        op: The argument.
        name: Its name in the error message.

    Raises:
        TypeError: If it is not.
    """
    if not isinstance(op, CurvatureOperator):
        raise TypeError(f"{name}: expected a CurvatureOperator, got {type(op).__name__}")


def check_count(value, name: str) -> None:
    """Checks that ``value`` is an int of at least 1 (a number of steps, probes or eigenpairs).

    Args:
        value: The argument.
        name: Its name in the error message.

    Raises:
        ValueError: If it is not.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name}: expected an int >= 1, got {value!r}")


def check_positive(value, name: str) -> None:
    """Checks that ``value`` is a finite positive real number.

    Args:
        value: The argument.
        name: Its name in the error message.

    Raises:
        ValueError: If it is not.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")


def check_generator(generator) -> None:
    """Checks that ``generator`` is None or a ``torch.Generator``.

    Args:
        generator: The argument.

    Raises:
        TypeError: If it is neither.
    """
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator: expected a torch.Generator or None, got {type(generator).__name__}")


def random_vectors(op: CurvatureOperator, count: int, distribution: str,
                   generator: torch.Generator | None) -> torch.Tensor:
    """``count`` random vectors with ``E[v v^T] = I``, for the operator.

    Drawn in float64 on the CPU (the generator must be a CPU generator), then cast to the operator's dtype and
    moved to its device: the same seed gives the same vectors everywhere.

    Args:
        op: The operator (its ``dim``, ``dtype``, ``device``).
        count: Number of vectors.
        distribution: ``"rademacher"`` (independent signs) or ``"gaussian"`` (standard normal entries).
        generator: Random source, or None for torch's global one.

    Returns:
        ``(dim, count)``.

    Raises:
        ValueError: If ``distribution`` is neither.
    """
    if distribution == "rademacher":
        signs = torch.randint(0, 2, (op.dim, count), generator=generator, dtype=torch.float64)
        vectors = 2.0 * signs - 1.0
    elif distribution == "gaussian":
        vectors = torch.randn(op.dim, count, generator=generator, dtype=torch.float64)
    else:
        raise ValueError(f"distribution: expected one of {DISTRIBUTIONS}, got {distribution!r}")
    return vectors.to(op.dtype).to(op.device)

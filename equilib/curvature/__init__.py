"""Curvature diagnostics: second-order information of any equilib model's training loss.

:class:`CurvatureOperator` is the contract: a symmetric linear operator on flat parameter vectors (``matvec``,
``matmat``, named ``blocks``, ``to_scipy``); :class:`DenseOperator` wraps a matrix (the tests' reference). See
docs/curvature.md.
"""

from ._base import CurvatureOperator, DenseOperator

__all__ = ["CurvatureOperator", "DenseOperator"]

"""The contract every curvature operator and estimator shares: a symmetric linear operator on flat vectors.

An operator acts on flat vectors of length ``dim`` (the chosen parameters concatenated in a fixed order), in its
``dtype`` and on its ``device``; ``blocks`` names the slices of that vector (one per parameter, or per module), which
per-block estimators (traces, spectra of one block) read. Estimators only call :meth:`CurvatureOperator.matvec` and
:meth:`CurvatureOperator.matmat`, so they run unchanged on a dense matrix (:class:`DenseOperator`, the reference in
tests), a Hessian of a training loss, a Gauss-Newton matrix or a Fisher. :meth:`CurvatureOperator.to_scipy` hands
the same operator to SciPy's solvers (``scipy.sparse.linalg.eigsh``) and to curvlinops-style code.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse.linalg
import torch


class CurvatureOperator:
    """A symmetric linear operator on flat vectors of length ``dim``.

    Subclasses implement :meth:`_matvec` (and may override :meth:`_matmat` with a batched product); the public
    methods check shapes and dtypes, so estimators get clear errors.

    Args:
        dim: Length of the vectors the operator acts on.
        dtype: Floating dtype of the vectors.
        device: Device of the vectors.
        blocks: ``{name: slice}``: named, disjoint, contiguous parts of the vector (in order, covering it); None
            for one block ``"all"``.

    Raises:
        ValueError: If ``dim`` is not a positive int or the blocks do not tile the vector.
        TypeError: If ``dtype`` is not floating.
    """

    def __init__(self, dim: int, dtype: torch.dtype, device, blocks: dict[str, slice] | None = None) -> None:
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: expected a positive int, got {dim!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype: expected a floating dtype, got {dtype}")
        self.dim, self.dtype, self.device = dim, dtype, torch.device(device)
        self.blocks = {"all": slice(0, dim)} if blocks is None else dict(blocks)
        check_blocks(self.blocks, dim)

    def matvec(self, v: torch.Tensor) -> torch.Tensor:
        """The product ``A v``.

        Args:
            v: ``(dim,)`` in the operator's dtype and on its device.

        Returns:
            ``(dim,)``.

        Raises:
            ValueError: If ``v`` has another shape, dtype or device.
        """
        self._check(v, 1)
        return self._matvec(v)

    def matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        """The product ``A V`` for the columns of ``V``.

        Args:
            vectors: ``(dim, k)`` in the operator's dtype and on its device.

        Returns:
            ``(dim, k)``.

        Raises:
            ValueError: If ``vectors`` has another shape, dtype or device.
        """
        self._check(vectors, 2)
        return self._matmat(vectors)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._matvec(vectors[:, k]) for k in range(vectors.shape[1])], dim=1)

    def to_scipy(self) -> scipy.sparse.linalg.LinearOperator:
        """The operator as a ``scipy.sparse.linalg.LinearOperator`` (float64 NumPy in and out, symmetric, so its
        ``rmatvec`` is its ``matvec``).

        Returns:
            A ``LinearOperator`` of shape ``(dim, dim)``.
        """
        def apply(x):
            x = np.asarray(x)
            column = x.ndim == 2
            t = torch.as_tensor(x.reshape(self.dim, -1), dtype=self.dtype, device=self.device)
            y = self.matmat(t) if t.shape[1] > 1 else self.matvec(t[:, 0]).unsqueeze(1)
            y = y.detach().to("cpu", torch.float64).numpy()
            return y if column else y.reshape(-1)

        return scipy.sparse.linalg.LinearOperator((self.dim, self.dim), matvec=apply, rmatvec=apply, matmat=apply,
                                                  dtype=np.float64)

    def _check(self, x: torch.Tensor, ndim: int) -> None:
        name, shape = ("v", "(dim,)") if ndim == 1 else ("vectors", "(dim, k)")
        if not isinstance(x, torch.Tensor) or x.dim() != ndim or x.shape[0] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name}: expected shape {shape} with dim={self.dim}, got {got}")
        if x.dtype != self.dtype or x.device != self.device:
            raise ValueError(f"{name}: expected dtype {self.dtype} on {self.device}, got {x.dtype} on {x.device}")


class DenseOperator(CurvatureOperator):
    """A symmetric matrix as an operator: the reference the estimators are tested against.

    Args:
        matrix: ``(dim, dim)`` symmetric floating tensor.
        blocks: ``{name: slice}`` of the vector, or None for one block ``"all"``.

    Raises:
        ValueError: If ``matrix`` is not square or not symmetric (relative tolerance 1e-10 in float64, 1e-5
            otherwise), or the blocks do not tile the vector.

    Examples:
        >>> import torch
        >>> op = DenseOperator(torch.diag(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)))
        >>> op.matvec(torch.ones(3, dtype=torch.float64)).tolist()
        [1.0, 2.0, 3.0]
    """

    def __init__(self, matrix: torch.Tensor, blocks: dict[str, slice] | None = None) -> None:
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2 or matrix.shape[0] != matrix.shape[1]:
            got = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
            raise ValueError(f"matrix: expected a square (dim, dim) tensor, got {got}")
        tolerance = 1e-10 if matrix.dtype == torch.float64 else 1e-5
        scale = float(matrix.abs().max()) or 1.0
        if float((matrix - matrix.T).abs().max()) > tolerance * scale:
            raise ValueError("matrix: expected a symmetric matrix")
        super().__init__(matrix.shape[0], matrix.dtype, matrix.device, blocks)
        self.matrix = matrix

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.matrix @ v

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.matrix @ vectors


def check_blocks(blocks: dict[str, slice], dim: int) -> None:
    """Checks that ``blocks`` are contiguous slices that tile ``range(dim)`` in order.

    Args:
        blocks: ``{name: slice}``.
        dim: Length of the vector.

    Raises:
        ValueError: If a block is not a step-1 slice, or the blocks leave a gap, overlap or miss the end.
    """
    position = 0
    for name, block in blocks.items():
        if not isinstance(block, slice) or block.step not in (None, 1) or block.start != position:
            raise ValueError(f"blocks: {name!r} is {block!r}; expected slice({position}, stop): contiguous blocks "
                             "that tile the vector in order")
        if block.stop is None or block.stop <= block.start:
            raise ValueError(f"blocks: {name!r} is {block!r}; expected a non-empty slice")
        position = block.stop
    if position != dim:
        raise ValueError(f"blocks: they cover {position} entries, expected dim={dim}")

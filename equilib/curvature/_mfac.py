"""M-FAC: products with the inverse of a damped empirical Fisher, without any ``d x d`` matrix.

Frantar, Kurtic, Alistarh, "M-FAC: Efficient Matrix-Free Approximations of Second-Order Information", NeurIPS 2021.
The damped empirical Fisher of ``m`` gradients ``g_1 .. g_m`` (the rows of ``G``, shape ``(m, d)``) is

    F = λ I + (1/m) Σ_i g_i g_iᵀ.

Adding the gradients one at a time, ``F_0 = λ I`` and ``F_i = F_{i-1} + g_i g_iᵀ / m``, Sherman-Morrison gives

    F⁻¹ = λ⁻¹ I − Σ_i v_i v_iᵀ / d_i,    v_i = F_{i-1}⁻¹ g_i,    d_i = m + g_iᵀ v_i,

so a product costs ``O(dm)`` and a diagonal entry ``[F⁻¹]_kk = λ⁻¹ − Σ_i v_i[k]² / d_i`` costs ``O(m)``.

- :class:`StaticMFAC` (the paper's static algorithm, for fixed gradients, e.g. pruning): the ``v_i`` from the
  recurrence ``v_i = λ⁻¹ g_i − Σ_{j<i} (v_jᵀ g_i / d_j) v_j`` (``O(dm²)``, ``m x d`` stored).
- :class:`DynamicMFAC` (the dynamic algorithm, for a sliding window of gradients, e.g. the M-FAC optimizer): keeps the
  last ``m`` gradients in a ring buffer with their Gram matrix ``GGᵀ`` and derives from it ``m x m`` coefficients
  only: ``D`` (upper triangular, ``D_ij = g_iᵀ F_{i-1}⁻¹ g_j``, so ``d_i = m + D_ii``) and ``B`` (lower triangular,
  ``v_i = Σ_j B_ij g_j``). Replacing a gradient costs ``O(dm)`` plus an ``O(m³)`` re-factorisation, a product
  ``O(dm + m²)``.

Both expose ``F⁻¹`` (and ``F``) as a :class:`~equilib.curvature.CurvatureOperator` for the estimators.
"""

from __future__ import annotations

import math

import torch

from ._base import CurvatureOperator


class _ProductOperator(CurvatureOperator):
    """A :class:`CurvatureOperator` whose products are given by a function of ``(dim, k)`` blocks."""

    def __init__(self, product, dim: int, dtype: torch.dtype, device, blocks: dict[str, slice] | None) -> None:
        super().__init__(dim, dtype, device, blocks)
        self._product = product

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._product(v.unsqueeze(1)).squeeze(1)

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return self._product(vectors)


def _check_damping(damping) -> float:
    if isinstance(damping, bool) or not isinstance(damping, (int, float)) or not math.isfinite(damping) \
            or damping <= 0:
        raise ValueError(f"damping: expected a positive finite number, got {damping!r}")
    return float(damping)


class _WindowFisher:
    """What both algorithms share: the window ``G`` of ``m`` gradients, the damping, the checks and the operators.

    Subclasses set ``_gradients`` and implement :meth:`_ihvp` on ``(dim, k)`` blocks.
    """

    def __init__(self, dim: int, window: int, damping: float, dtype: torch.dtype, device) -> None:
        self.dim, self.window, self.damping = dim, window, _check_damping(damping)
        self.dtype, self.device = dtype, torch.device(device)

    def ihvp(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse-Fisher product ``F⁻¹ x`` (``O(dm)`` per column).

        Args:
            x: ``(dim,)`` or ``(dim, k)`` in the gradients' dtype and on their device.

        Returns:
            ``F⁻¹ x``, shaped like ``x``.

        Raises:
            ValueError: If ``x`` has another shape, dtype or device.
        """
        if not isinstance(x, torch.Tensor) or x.dim() not in (1, 2) or x.shape[0] != self.dim:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"x: expected shape (dim,) or (dim, k) with dim={self.dim}, got {got}")
        self._check_dtype(x, "x")
        return self._ihvp(x.unsqueeze(1)).squeeze(1) if x.dim() == 1 else self._ihvp(x)

    def inverse_operator(self, blocks: dict[str, slice] | None = None) -> CurvatureOperator:
        """``F⁻¹`` as a :class:`~equilib.curvature.CurvatureOperator` (it follows later updates of the window).

        Args:
            blocks: ``{name: slice}`` of the vector, or None for one block ``"all"``.

        Returns:
            The operator.
        """
        return _ProductOperator(self._ihvp, self.dim, self.dtype, self.device, blocks)

    def fisher_operator(self, blocks: dict[str, slice] | None = None) -> CurvatureOperator:
        """The damped empirical Fisher ``F = λ I + GᵀG / m`` itself as a
        :class:`~equilib.curvature.CurvatureOperator` (it follows later updates of the window).

        Args:
            blocks: ``{name: slice}`` of the vector, or None for one block ``"all"``.

        Returns:
            The operator.
        """
        def product(x):
            return self.damping * x + self._gradients.T @ (self._gradients @ x) / self.window

        return _ProductOperator(product, self.dim, self.dtype, self.device, blocks)

    def _ihvp(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _check_dtype(self, x: torch.Tensor, name: str) -> None:
        if x.dtype != self.dtype or x.device != self.device:
            raise ValueError(f"{name}: expected dtype {self.dtype} on {self.device}, got {x.dtype} on {x.device}")


class StaticMFAC(_WindowFisher):
    """The inverse of the damped empirical Fisher of fixed gradients (M-FAC's static algorithm).

    ``F = damping * I + (1/m) Σ_i g_i g_iᵀ``; the constructor runs the recurrence for ``v_i`` and ``d_i`` in
    ``O(dm²)`` and stores ``m x d`` numbers. Then :meth:`ihvp` costs ``O(dm)`` and each diagonal entry of ``F⁻¹``
    ``O(m)`` (Frantar, Kurtic, Alistarh, NeurIPS 2021).

    Args:
        gradients: ``(m, d)`` floating tensor, one gradient per row (finite).
        damping: ``λ > 0``.

    Attributes:
        dim: ``d``.
        window: ``m``.
        damping: ``λ``.
        dtype: The gradients' dtype.
        device: The gradients' device.

    Raises:
        ValueError: If ``gradients`` is not a 2-D floating tensor with finite entries, or ``damping`` is not
            positive.

    Examples:
        >>> import torch
        >>> fisher = StaticMFAC(torch.tensor([[2.0, 0.0]], dtype=torch.float64), damping=1.0)  # F = diag(5, 1)
        >>> fisher.ihvp(torch.tensor([5.0, 1.0], dtype=torch.float64)).round(decimals=12).tolist()
        [1.0, 1.0]
        >>> fisher.inverse_diagonal().round(decimals=12).tolist()
        [0.2, 1.0]
    """

    def __init__(self, gradients: torch.Tensor, damping: float) -> None:
        if not isinstance(gradients, torch.Tensor) or gradients.dim() != 2 or not gradients.dtype.is_floating_point \
                or gradients.numel() == 0:
            got = (f"{tuple(gradients.shape)} {gradients.dtype}" if isinstance(gradients, torch.Tensor)
                   else type(gradients).__name__)
            raise ValueError(f"gradients: expected a non-empty 2-D (m, d) floating tensor, got {got}")
        if not torch.isfinite(gradients).all():
            raise ValueError("gradients: expected finite entries")
        m, d = gradients.shape
        super().__init__(d, m, damping, gradients.dtype, gradients.device)
        self._gradients = gradients
        self._v = torch.empty_like(gradients)
        self._d = gradients.new_empty(m)
        for i, g in enumerate(gradients):
            coefficients = (self._v[:i] @ g) / self._d[:i]  # v_jᵀ g_i / d_j
            self._v[i] = g / self.damping - coefficients @ self._v[:i]
            self._d[i] = m + g @ self._v[i]

    def inverse_diagonal(self, indices: int | torch.Tensor | None = None) -> torch.Tensor:
        """Diagonal entries ``[F⁻¹]_kk = λ⁻¹ − Σ_i v_i[k]² / d_i``, each in ``O(m)``.

        Args:
            indices: An index ``k``, a 1-D integer tensor of them, or None for the whole diagonal.

        Returns:
            A 0-dim tensor for an int, else ``(len(indices),)`` or ``(dim,)``.

        Raises:
            ValueError: If an index is not an integer in ``[0, dim)``.
        """
        if indices is None:
            columns = self._v
        else:
            index = torch.as_tensor(indices, device=self.device)
            if index.dim() > 1 or index.is_floating_point() or index.is_complex() or index.dtype == torch.bool \
                    or (index.numel() and not bool(((index >= 0) & (index < self.dim)).all())):
                raise ValueError(f"indices: expected integers in [0, {self.dim}), got {indices!r}")
            columns = self._v[:, index]
        return 1.0 / self.damping - self._d.reciprocal() @ columns.square()

    def _ihvp(self, x: torch.Tensor) -> torch.Tensor:
        return x / self.damping - self._v.T @ ((self._v @ x) / self._d.unsqueeze(1))


class DynamicMFAC(_WindowFisher):
    """The inverse of the damped empirical Fisher of a sliding window of gradients (M-FAC's dynamic algorithm).

    A ring buffer holds the last ``window`` gradients ``G`` (it starts as zero rows, which add nothing to ``F``, as in
    the paper) and their Gram matrix ``GGᵀ``; ``F = damping * I + (1/window) Σ_i g_i g_iᵀ`` over the buffer.
    :meth:`update` overwrites the oldest gradient (``O(dm)`` for the new Gram row) and re-derives the ``m x m``
    coefficients in ``O(m³)``; :meth:`ihvp` then costs ``O(dm + m²)`` (Frantar, Kurtic, Alistarh, NeurIPS 2021).

    The coefficients: the unpivoted LU factor of ``A = λ⁻¹ GGᵀ + m I`` is ``U = D + m I`` with
    ``D_ij = g_iᵀ F_{i-1}⁻¹ g_j`` (the buffer's rows in slot order; ``F`` does not depend on it), so
    ``d = diag(U)``; ``B`` with ``v_i = Σ_j B_ij g_j`` solves the paper's recurrence
    ``B[i, :i] = −(D[:i, i] / d[:i])ᵀ B[:i, :i]``, ``B_ii = λ⁻¹``, i.e. ``B = λ⁻¹ L⁻¹`` for the unit lower factor
    ``L = (U / d)ᵀ``. ``A`` is symmetric positive definite, so ``U`` comes from its Cholesky factor, computed in
    float64 whatever the gradients' dtype. Then ``q = B G x`` (``q_i = v_iᵀ x``) and
    ``F⁻¹ x = λ⁻¹ x − Gᵀ Bᵀ (q / d)``.

    Args:
        dim: ``d``, the gradients' length.
        window: ``m``, the number of gradients kept.
        damping: ``λ > 0``.
        dtype: Floating dtype of the gradients and products.
        device: Where the buffer lives.

    Attributes:
        dim: ``d``.
        window: ``m``.
        damping: ``λ``.
        dtype: The buffer's dtype.
        device: The buffer's device.
        updates: How many gradients :meth:`update` has added.

    Raises:
        ValueError: If ``dim`` or ``window`` is not a positive int, ``damping`` is not positive, or ``dtype`` is not
            floating.

    Examples:
        >>> import torch
        >>> fisher = DynamicMFAC(dim=2, window=1, damping=1.0, dtype=torch.float64)
        >>> fisher.update(torch.tensor([5.0, 5.0], dtype=torch.float64))  # replaced by the next one
        >>> fisher.update(torch.tensor([2.0, 0.0], dtype=torch.float64))  # F = diag(5, 1)
        >>> fisher.ihvp(torch.tensor([5.0, 1.0], dtype=torch.float64)).round(decimals=12).tolist()
        [1.0, 1.0]
    """

    def __init__(self, dim: int, window: int, damping: float, dtype: torch.dtype = torch.float32,
                 device="cpu") -> None:
        for name, value in (("dim", dim), ("window", window)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise ValueError(f"dtype: expected a floating torch dtype, got {dtype!r}")
        super().__init__(dim, window, damping, dtype, device)
        self._gradients = torch.zeros(window, dim, dtype=dtype, device=self.device)
        self._gram = torch.zeros(window, window, dtype=torch.float64, device=self.device)
        self._position = 0  # the slot the next gradient overwrites (the oldest)
        self.updates = 0
        self._setup()

    def update(self, g: torch.Tensor) -> None:
        """Replace the oldest gradient of the window by ``g`` (``O(dm + m³)``).

        Args:
            g: ``(dim,)`` finite gradient in the buffer's dtype and on its device.

        Raises:
            ValueError: If ``g`` has another shape, dtype or device, or non-finite entries.
        """
        self._insert(g)

    def update_ihvp(self, g: torch.Tensor) -> torch.Tensor:
        """:meth:`update` with ``g``, then ``F⁻¹ g`` with the new window (sharing the product ``G g``): the
        M-FAC optimizer's step direction.

        Args:
            g: ``(dim,)`` finite gradient in the buffer's dtype and on its device.

        Returns:
            ``(dim,)``.

        Raises:
            ValueError: If ``g`` has another shape, dtype or device, or non-finite entries.
        """
        row = self._insert(g)
        return self._apply(g.unsqueeze(1), row.unsqueeze(1)).squeeze(1)

    def state_dict(self) -> dict:
        """The window, its Gram matrix and position (references, not copies), for :meth:`load_state_dict`.

        Returns:
            ``{"gradients", "gram", "position", "updates", "damping"}``.
        """
        return {"gradients": self._gradients, "gram": self._gram, "position": self._position,
                "updates": self.updates, "damping": self.damping}

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` (copied into this buffer, which keeps its dtype and device); the coefficients
        are re-derived, so the products continue exactly.

        Args:
            state: From :meth:`state_dict` of a ``DynamicMFAC`` with the same ``dim``, ``window`` and ``damping``.

        Raises:
            ValueError: If a key is missing, or the shapes or the damping differ from this one's.
        """
        missing = sorted({"gradients", "gram", "position", "updates", "damping"} - set(state))
        if missing:
            raise ValueError(f"state: missing {', '.join(missing)}")
        if tuple(state["gradients"].shape) != (self.window, self.dim) \
                or tuple(state["gram"].shape) != (self.window, self.window):
            raise ValueError(f"state: gradients of shape {tuple(state['gradients'].shape)}, expected "
                             f"(window, dim) = ({self.window}, {self.dim})")
        if state["damping"] != self.damping:
            raise ValueError(f"state: saved with damping={state['damping']!r}, this one has {self.damping!r}")
        self._gradients.copy_(state["gradients"])
        self._gram.copy_(state["gram"])
        self._position, self.updates = int(state["position"]), int(state["updates"])
        self._setup()

    def _insert(self, g: torch.Tensor) -> torch.Tensor:
        """Write ``g`` over the oldest slot, update the Gram matrix and the coefficients; returns ``G g``."""
        if not isinstance(g, torch.Tensor) or g.shape != (self.dim,):
            got = tuple(g.shape) if isinstance(g, torch.Tensor) else type(g).__name__
            raise ValueError(f"g: expected shape (dim,) with dim={self.dim}, got {got}")
        self._check_dtype(g, "g")
        if not torch.isfinite(g).all():
            raise ValueError("g: expected finite entries")
        self._gradients[self._position] = g
        row = self._gradients @ g
        self._gram[self._position] = row
        self._gram[:, self._position] = row
        self._position = (self._position + 1) % self.window
        self.updates += 1
        self._setup()
        return row

    def _setup(self) -> None:
        """``d`` and ``B`` from the Gram matrix (float64, ``O(m³)``)."""
        m = self.window
        eye = torch.eye(m, dtype=torch.float64, device=self.device)
        upper = torch.linalg.cholesky(self._gram / self.damping + m * eye, upper=True)  # A = RᵀR
        pivots = upper.diagonal()
        self._d = pivots.square()  # U = diag(R) R, so d = diag(U) = diag(R)²
        lower = upper.T / pivots  # L = (U / d)ᵀ
        self._b = torch.linalg.solve_triangular(lower, eye / self.damping, upper=False, unitriangular=True)

    def _apply(self, x: torch.Tensor, gx: torch.Tensor) -> torch.Tensor:
        """``F⁻¹ x`` for ``(dim, k)`` blocks ``x`` given ``G x``."""
        q = self._b @ gx.to(torch.float64)  # q_i = v_iᵀ x
        coefficients = (self._b.T @ (q / self._d.unsqueeze(1))).to(self.dtype)
        return x / self.damping - self._gradients.T @ coefficients

    def _ihvp(self, x: torch.Tensor) -> torch.Tensor:
        return self._apply(x, self._gradients @ x)

"""Dynamical-stability readings of a learning rate against curvature, and Adam's preconditioned sharpness.

Gradient descent with step ``eta`` on a quadratic is stable iff ``eta lambda_max(H) <= 2``; full-batch training
drives ``lambda_max`` up to ``2 / eta`` and hovers there, the edge of stability (Cohen, Kaur, Li, Kolter & Talwalkar,
ICLR 2021). For SGD, Wu & Su (ICML 2023, arXiv:2305.17490) show that a global minimum that is linearly stable for SGD
has ``tr(H) <= 2 / eta``, whereas for GD stability constrains only ``lambda_max``; Wu, Wang & Su (NeurIPS 2022) bound
``||H||_F`` by ``O(sqrt(B) / eta)`` for batch size ``B`` with an alignment constant. These bounds are for plain GD/SGD
near minima of (over-parameterised) square-loss problems: they do not apply to Adam or AdamW as stated.

Adaptive methods step by ``eta P^{-1} m`` with Adam's diagonal ``P = sqrt(v_hat) + eps``; their stability is read
from the preconditioned sharpness ``lambda_max(P^{-1} H) = lambda_max(P^{-1/2} H P^{-1/2})`` (similar matrices),
which during full-batch Adam training equilibrates near ``(2 + 2 beta_1) / ((1 - beta_1) eta)``, ``38 / eta`` for
``beta_1 = 0.9`` (Cohen et al., "Adaptive gradient methods at the edge of stability", arXiv:2207.14484).
:func:`preconditioned_sharpness` computes it with Lanczos on :class:`PreconditionedOperator`;
:func:`adam_preconditioner` reads ``P`` from a ``torch.optim.Adam``/``AdamW`` state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from ._base import CurvatureOperator
from ._checks import check_operator
from ._lanczos import Eigenpairs, top_eigenpairs

THRESHOLD = 2.0  # eta * lambda_max (GD) and eta * tr(H) (SGD) at the stability limit


@dataclass(frozen=True)
class Stability:
    """Step size times curvature, against the stability limit 2.

    ``stable_gd`` is ``gd_ratio <= 2`` (GD, square loss near a minimum); ``stable_sgd`` is ``sgd_ratio <= 2`` (the
    necessary condition of Wu & Su 2023 for SGD at a global minimum), None without a trace. The Frobenius ratio has
    no fixed limit (its bound grows with the square root of the batch size) and is reported as is. None of these
    limits applies to Adam/AdamW; use :func:`preconditioned_sharpness` there.

    Attributes:
        lr: The learning rate ``eta``.
        gd_ratio: ``eta lambda_max``.
        sgd_ratio: ``eta tr(H)``, or None.
        frobenius_ratio: ``eta ||H||_F``, or None.
    """

    lr: float
    gd_ratio: float
    sgd_ratio: float | None
    frobenius_ratio: float | None

    @property
    def stable_gd(self) -> bool:
        """Whether ``eta lambda_max <= 2``."""
        return self.gd_ratio <= THRESHOLD

    @property
    def stable_sgd(self) -> bool | None:
        """Whether ``eta tr(H) <= 2``; None without a trace."""
        return None if self.sgd_ratio is None else self.sgd_ratio <= THRESHOLD


def stability(lr: float, lambda_max: float, trace: float | None = None,
              frobenius: float | None = None) -> Stability:
    """The dynamical-stability ratios ``eta lambda_max`` (GD) and ``eta tr(H)`` (SGD, Wu & Su 2023), against 2.

    Caveat: the limits hold for GD/SGD near minima with the square loss, not for Adam/AdamW as stated.

    Args:
        lr: The learning rate ``eta``, positive.
        lambda_max: The largest Hessian eigenvalue (e.g. from :func:`~equilib.curvature._lanczos.top_eigenpairs`).
        trace: ``tr(H)`` (e.g. from :func:`~equilib.curvature._trace.hutchpp`), or None.
        frobenius: ``||H||_F`` (e.g. from :func:`~equilib.curvature._trace.frobenius_norm`), or None.

    Returns:
        :class:`Stability`.

    Raises:
        ValueError: If ``lr`` is not a finite positive number, or a curvature value is not a finite number.

    Examples:
        >>> reading = stability(lr=0.01, lambda_max=150.0, trace=400.0)
        >>> reading.gd_ratio, reading.stable_gd, reading.sgd_ratio, reading.stable_sgd
        (1.5, True, 4.0, False)
    """
    lr = _number(lr, "lr")
    if lr <= 0:
        raise ValueError(f"lr: expected a finite number > 0, got {lr}")
    ratios = [None if value is None else lr * _number(value, name)
              for value, name in ((trace, "trace"), (frobenius, "frobenius"))]
    return Stability(lr, lr * _number(lambda_max, "lambda_max"), *ratios)


class PreconditionedOperator(CurvatureOperator):
    """``P^{-1/2} A P^{-1/2}`` for a positive diagonal ``P``: the operator whose spectrum is that of ``P^{-1} A``.

    Its eigenvectors ``y`` map to those of ``P^{-1} A`` as ``P^{-1/2} y``. Blocks, dtype and device are ``op``'s.

    Args:
        op: The symmetric operator ``A``.
        preconditioner: ``(dim,)`` positive diagonal of ``P`` (cast to ``op``'s dtype and device).

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator`.
        ValueError: If ``preconditioner`` is not a ``(dim,)`` tensor of finite positive entries.
    """

    def __init__(self, op: CurvatureOperator, preconditioner: torch.Tensor) -> None:
        check_operator(op)
        if not isinstance(preconditioner, torch.Tensor) or tuple(preconditioner.shape) != (op.dim,):
            got = tuple(preconditioner.shape) if isinstance(preconditioner, torch.Tensor) else \
                type(preconditioner).__name__
            raise ValueError(f"preconditioner: expected a (dim,) tensor with dim={op.dim}, got {got}")
        preconditioner = preconditioner.detach().to(device=op.device, dtype=op.dtype)
        if not bool(torch.all(torch.isfinite(preconditioner) & (preconditioner > 0))):
            raise ValueError("preconditioner: expected finite positive entries")
        super().__init__(op.dim, op.dtype, op.device, op.blocks)
        self.op, self.scale = op, preconditioner.rsqrt()

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * self.op.matvec(self.scale * v)

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return self.scale[:, None] * self.op.matmat(self.scale[:, None] * vectors)


def preconditioned_sharpness(op: CurvatureOperator, preconditioner: torch.Tensor, k: int = 1, tol: float = 1e-6,
                             max_steps: int = 200, generator: torch.Generator | None = None) -> Eigenpairs:
    """The largest eigenvalues of ``P^{-1/2} A P^{-1/2}`` (those of ``P^{-1} A``) by Lanczos.

    With ``P`` from :func:`adam_preconditioner`, the first is Adam's preconditioned sharpness, to compare with
    ``(2 + 2 beta_1) / ((1 - beta_1) eta)`` (Cohen et al. 2022).

    Args:
        op: The symmetric operator ``A`` (a loss Hessian).
        preconditioner: ``(dim,)`` positive diagonal of ``P``, in ``op``'s parameter order.
        k: Number of eigenvalues.
        tol: Relative residual tolerance of :func:`~equilib.curvature._lanczos.top_eigenpairs`.
        max_steps: Most Lanczos steps.
        generator: Random source of the Lanczos start.

    Returns:
        :class:`~equilib.curvature._lanczos.Eigenpairs` of the symmetric ``P^{-1/2} A P^{-1/2}``, largest first
        (eigenvectors in its coordinates).

    Raises:
        TypeError: If ``op`` is not a :class:`CurvatureOperator`.
        ValueError: If ``preconditioner`` is not a ``(dim,)`` tensor of finite positive entries.

    Examples:
        >>> import torch
        >>> from equilib.curvature import DenseOperator
        >>> op = DenseOperator(torch.diag(torch.tensor([4.0, 9.0], dtype=torch.float64)))
        >>> pairs = preconditioned_sharpness(op, torch.tensor([2.0, 9.0], dtype=torch.float64))
        >>> round(float(pairs.eigenvalues[0]), 8)
        2.0
    """
    return top_eigenpairs(PreconditionedOperator(op, preconditioner), k=k, which="largest", tol=tol,
                          max_steps=max_steps, generator=generator)


def adam_preconditioner(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> torch.Tensor:
    """Adam's diagonal preconditioner ``P = sqrt(v_hat) + eps`` for ``params``, flattened in their order.

    ``v_hat = v / (1 - beta_2^t)`` is the bias-corrected second moment (``max_exp_avg_sq`` with ``amsgrad``) after
    the optimizer's ``t`` steps, with ``beta_2`` and ``eps`` from each parameter's group: the denominator of the
    step ``torch.optim.Adam``/``AdamW`` took last (Kingma & Ba, ICLR 2015).

    Args:
        optimizer: A ``torch.optim.Adam`` or ``AdamW`` that has taken at least one step.
        params: The parameters, in the order of the operator's vector.

    Returns:
        ``(sum of numels,)`` tensor (the dtype and device of the optimizer state).

    Raises:
        TypeError: If ``optimizer`` is not an Adam/AdamW.
        ValueError: If ``params`` is empty, or a parameter is not in the optimizer or has no state yet.

    Examples:
        >>> import torch
        >>> weight = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        >>> adam = torch.optim.Adam([weight], lr=0.1, eps=1e-8)
        >>> (weight**2).sum().backward()
        >>> adam.step()
        >>> [round(x, 6) for x in adam_preconditioner(adam, [weight]).tolist()]  # sqrt(v_hat) = |g| after a step
        [2.0, 4.0]
    """
    if not isinstance(optimizer, torch.optim.Adam):
        raise TypeError(f"optimizer: expected a torch.optim.Adam or AdamW, got {type(optimizer).__name__}")
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    parts = []
    for index, param in enumerate(params):
        group = groups.get(id(param))
        if group is None:
            raise ValueError(f"params: parameter {index} (shape {tuple(param.shape)}) is not in the optimizer")
        state = optimizer.state.get(param, {})
        if "step" not in state or float(state["step"]) < 1:
            raise ValueError(f"params: parameter {index} has no optimizer state yet; take a step first")
        second = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
        correction = 1.0 - group["betas"][1] ** float(state["step"])
        parts.append(((second / correction).sqrt() + group["eps"]).detach().reshape(-1))
    if not parts:
        raise ValueError("params: expected at least one parameter")
    return torch.cat(parts)


def _number(value, name: str) -> float:
    """``value`` as a finite float (a Python number or a one-element tensor)."""
    try:
        number = float(value)
    except (TypeError, ValueError, RuntimeError):
        number = math.nan
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValueError(f"{name}: expected a finite number, got {value!r}")
    return number

"""The M-FAC optimizer: steps along the inverse damped empirical Fisher of a sliding window of gradients.

Frantar, Kurtic, Alistarh, "M-FAC: Efficient Matrix-Free Approximations of Second-Order Information", NeurIPS 2021:
each step adds the current gradient (all parameters as one flat vector) to a window of the last ``m`` and
moves along ``F⁻¹ g``, with ``F = λ I + (1/m) Σ_i g_i g_iᵀ`` over the window (:class:`DynamicMFAC`).
"""

from __future__ import annotations

import torch

from ._mfac import DynamicMFAC


class MFAC(torch.optim.Optimizer):
    """The M-FAC optimizer (Frantar, Kurtic, Alistarh, NeurIPS 2021).

    Each :meth:`step` concatenates the gradients of all parameters (``g + weight_decay * p`` per parameter; a
    parameter without a gradient contributes zeros), puts ``g`` into the window of the last ``window`` gradients in
    place of the oldest (the window starts as zeros), and computes ``u = F⁻¹ g`` with the damped empirical Fisher
    ``F = damping * I + (1/window) Σ_i g_i g_iᵀ`` of the window (:class:`~equilib.curvature._mfac.DynamicMFAC`,
    ``O(d m + m³)`` for ``d`` parameters). With momentum ``μ`` it keeps, per parameter, ``b ← μ b + (1 − μ) u``
    (the paper's form) and steps ``p ← p − lr * b``; without, ``p ← p − lr * u``.

    The Fisher spans every parameter, so ``damping`` and ``window`` are the optimizer's; ``lr``, ``momentum`` and
    ``weight_decay`` may differ per parameter group. All parameters share one dtype and device, which the window
    uses (``window x d`` numbers; the ``m x m`` coefficients are float64). :meth:`state_dict` holds the window, so
    :meth:`load_state_dict` resumes exactly.

    Args:
        params: Parameters or parameter groups, as for any ``torch.optim.Optimizer``.
        lr: Learning rate (``>= 0``).
        damping: ``λ > 0`` (the paper uses ``1e-5``).
        window: ``m >= 1``, the number of gradients kept (the paper uses 512 or 1024).
        momentum: ``μ`` in ``[0, 1)``.
        weight_decay: L2 coefficient added to the gradient before the preconditioning (``>= 0``).

    Raises:
        ValueError: If a value is out of range, or the parameters differ in dtype or device.

    Examples:
        >>> import torch
        >>> p = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
        >>> optimizer = MFAC([p], lr=0.5, damping=1.0, window=1)
        >>> p.grad = torch.tensor([2.0, 0.0], dtype=torch.float64)  # F = diag(5, 1)
        >>> optimizer.step()
        >>> p.detach().round(decimals=12).tolist()  # p - 0.5 * F⁻¹ g
        [0.8, 1.0]
    """

    def __init__(self, params, lr: float, damping: float, window: int, momentum: float = 0.0,
                 weight_decay: float = 0.0) -> None:
        if not (isinstance(lr, (int, float)) and lr >= 0):
            raise ValueError(f"lr: expected a number >= 0, got {lr!r}")
        if not (isinstance(momentum, (int, float)) and 0 <= momentum < 1):
            raise ValueError(f"momentum: expected a number in [0, 1), got {momentum!r}")
        if not (isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            raise ValueError(f"weight_decay: expected a number >= 0, got {weight_decay!r}")
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        parameters = [p for group in self.param_groups for p in group["params"]]
        kinds = {(p.dtype, p.device) for p in parameters}
        if len(kinds) > 1:
            raise ValueError(f"params: expected one dtype and device, got {sorted(map(str, kinds))}")
        dtype, device = kinds.pop()
        self._fisher = DynamicMFAC(sum(p.numel() for p in parameters), window, damping, dtype, device)

    def add_param_group(self, param_group: dict) -> None:
        """Add a parameter group; only while constructing (the window has a fixed length).

        Args:
            param_group: As for ``torch.optim.Optimizer.add_param_group``.

        Raises:
            ValueError: If called after construction.
        """
        if hasattr(self, "_fisher"):
            raise ValueError("param_group: the M-FAC window spans the parameters given at construction; build a new "
                             "MFAC to add parameters")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """One M-FAC step (see the class).

        Args:
            closure: Optional callable that re-evaluates the model and returns the loss.

        Returns:
            The closure's loss, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pieces = []
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    pieces.append(torch.zeros(p.numel(), dtype=p.dtype, device=p.device))
                elif group["weight_decay"]:
                    pieces.append((p.grad + group["weight_decay"] * p).reshape(-1))
                else:
                    pieces.append(p.grad.reshape(-1))
        direction = self._fisher.update_ihvp(torch.cat(pieces))
        offset = 0
        for group in self.param_groups:
            for p in group["params"]:
                u = direction[offset : offset + p.numel()].view_as(p)
                offset += p.numel()
                if group["momentum"]:
                    state = self.state[p]
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.zeros_like(p)
                    u = state["momentum_buffer"].mul_(group["momentum"]).add_(u, alpha=1 - group["momentum"])
                p.add_(u, alpha=-group["lr"])
        return loss

    def state_dict(self) -> dict:
        """The ``torch.optim.Optimizer`` state plus ``"mfac"``: the gradient window (references, not copies).

        Returns:
            ``{"state", "param_groups", "mfac"}``.
        """
        return {**super().state_dict(), "mfac": self._fisher.state_dict()}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict`; the next step equals that of the optimizer it was saved from.

        Args:
            state_dict: From :meth:`state_dict` of an ``MFAC`` over parameters of the same sizes, with the same
                ``window`` and ``damping``.

        Raises:
            ValueError: If ``state_dict`` has no ``"mfac"`` entry, or its window does not fit.
        """
        if "mfac" not in state_dict:
            raise ValueError("state_dict: no 'mfac' entry (the gradient window); expected MFAC.state_dict()")
        state_dict = dict(state_dict)
        self._fisher.load_state_dict(state_dict.pop("mfac"))
        super().load_state_dict(state_dict)

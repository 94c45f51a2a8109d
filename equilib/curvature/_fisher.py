"""The empirical Fisher matrix: the average outer product of per-sample gradients.

``F = (1/N) sum_i g_i g_i^T`` with ``g_i`` the gradient of sample ``i``'s loss, stored as an ``(N, dim)`` matrix
``G`` so that ``F V = G^T (G V) / N``. The same ``G`` is what M-FAC's inverse-Fisher products start from (Frantar,
Kurtic, Alistarh, NeurIPS 2021; curvature notes 2.4). Unlike the Hessian and the Gauss-Newton matrix, the empirical
Fisher is not a second derivative of the loss; it is positive semi-definite and cheap to apply once ``G`` is known.
"""

from __future__ import annotations

import torch

from ._loss import DataLoss, all_reduce_sum, loss_mode
from ._parameters import ParameterOperator


class EmpiricalFisher(ParameterOperator):
    """The empirical Fisher ``(1/N) sum_i g_i g_i^T`` of per-sample gradients, computed once at construction.

    Each element of ``samples`` is one sample (a batch, e.g. of one structure). ``g_i`` is ``N`` times the gradient
    of the sample's share of the loss over all samples (see :class:`~equilib.curvature.Hessian` for how batches are
    combined), so the ``g_i`` average to the gradient of that loss: for a plain loss with equal weights, ``g_i`` is
    the gradient of the sample's own loss; for a task's loss, of the sample's elements weighted as in the loss over
    all samples (per structure, per atom). Gradients are taken with the model as
    :func:`~equilib.curvature.loss_mode` sets it. Under ``torch.distributed`` each rank holds its own samples'
    gradients, ``N`` counts the samples of all ranks and products are summed over ranks.

    Args:
        model: The ``torch.nn.Module``; the operator works in its parameters' dtype.
        loss: ``loss(model, sample) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        samples: A list (or re-iterable loader) of samples, each a batch.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        weights: With a plain loss, one non-negative weight per sample; None: equal weights.
        blocks: ``"parameter"``, ``"module"`` or ``"all"``.

    Attributes:
        gradients: ``(local samples, dim)``: the ``g_i`` of this rank's samples, rows in order.
        num_samples: ``N``, the number of samples over all ranks.

    Raises:
        TypeError: If ``model`` is not a module, or ``loss`` or ``params`` has the wrong type.
        ValueError: If ``params``, ``blocks``, ``samples`` or ``weights`` are invalid (no sample, for one).

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> samples = [torch.tensor([[1.0]], dtype=torch.float64), torch.tensor([[3.0]], dtype=torch.float64)]
        >>> fisher = EmpiricalFisher(model, lambda model, x: (model(x) - 1).pow(2).sum(), samples)
        >>> fisher.gradients.tolist()  # d/dw (w x - 1)^2 = 2 x (w x - 1) at w = 0
        [[-2.0], [-6.0]]
        >>> fisher.matvec(torch.ones(1, dtype=torch.float64)).tolist()  # (4 + 36) / 2
        [20.0]
    """

    def __init__(self, model: torch.nn.Module, loss, samples, params=None, *, weights=None,
                 blocks: str = "parameter") -> None:
        super().__init__(model, params, blocks)
        data = DataLoss(model, loss, samples, weights, device=self.device)
        self.num_samples = data.num_batches
        rows = []
        with loss_mode(model):
            for term in data.terms():
                with torch.enable_grad():
                    gradient = self.space.gradient(term(model))
                rows.append(self.num_samples * self.space.flatten(gradient))
        empty = torch.zeros(0, self.dim, dtype=self.dtype, device=self.device)
        self.gradients = torch.stack(rows) if rows else empty

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        return all_reduce_sum(self.gradients.T @ (self.gradients @ vectors)) / self.num_samples

"""The generalized Gauss-Newton matrix ``J^T H_L J`` of a loss of a model's outputs.

With outputs ``y(theta)`` and a loss ``L(y)`` convex in them, the Hessian of ``L(y(theta))`` is ``J^T H_L J`` plus
the outputs' curvature weighted by ``dL/dy``; the first part, the generalized Gauss-Newton matrix (GGN), is positive
semi-definite. For a potential's energies and forces ``y = (E, F = -dE/dpos)`` it is the Gauss-Newton matrix of the
force loss, ``J_E^T H_E J_E + J_F^T H_F J_F`` with ``J_F = -d^2E/dpos dtheta`` (the Gauss-Newton of derivative
losses: Dangel, Mueller, Zeinhofer, NeurIPS 2024, arXiv:2405.15603).

Products use reverse mode only, no ``torch.func`` or forward mode: a potential's forces call ``torch.autograd.grad``
inside the model, which ``torch.func`` transforms reject, and torch has no forward-mode derivative of
``aten::silu_backward``, which a force's Jacobian-vector product would need. ``J v`` comes by the double-backward trick
for the R-op (``J^T u`` with a dummy cotangent ``u`` kept as a graph, then its gradient with respect to ``u`` along
``v``, as BackPACK's ``rop`` and the R-op of MLRG Deep Curvature compute it), ``H_L (J v)`` by a double backward of the
loss with respect to the outputs, and ``J^T (H_L J v)`` by a backward pass.
"""

from __future__ import annotations

import torch

from ._loss import DataLoss, TaskLoss, all_reduce_sum, loss_mode
from ._parameters import ParameterOperator


class GGN(ParameterOperator):
    """The generalized Gauss-Newton matrix ``sum_b J_b^T H_b J_b`` of a loss of outputs over one or several batches.

    As for :class:`~equilib.curvature.Hessian`, the loss over several batches is exact (a task's loss is that of the
    union of the batches; a plain loss's batch losses are averaged with ``weights``), products are taken at the
    current parameters with the model as :func:`~equilib.curvature.loss_mode` sets it (potentials keep the graph of
    their forces), and under ``torch.distributed`` they are summed over ranks. The matrix is positive semi-definite
    when the loss is convex in the outputs (mean squared errors, the task losses of equilib); this is not checked.

    Args:
        model: The ``torch.nn.Module``; the operator works in its parameters' dtype.
        outputs: ``outputs(model, batch) -> tensor or {name: tensor}``, e.g. a potential's ``{"energy", "forces"}``;
            None with a :func:`~equilib.curvature.task_loss`, whose task's ``predict`` gives the outputs.
        loss_of_outputs: ``loss_of_outputs(outputs, batch) -> 0-d tensor``, convex in the floating tensors of
            ``outputs``, or :func:`~equilib.curvature.task_loss` of an equilib task (its ``loss`` of its
            prediction).
        data: One batch, a list of batches, or a re-iterable loader yielding the same batches on every pass.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        weights: With a plain loss, one non-negative weight per batch; None: equal weights.
        blocks: ``"parameter"``, ``"module"`` or ``"all"``.

    Raises:
        TypeError: If ``model`` is not a module, or ``outputs``, ``loss_of_outputs`` or ``params`` has the wrong
            type.
        ValueError: If ``outputs`` is missing with a plain loss or given with a task loss, or ``params``,
            ``blocks``, ``data`` or ``weights`` are invalid.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1, dtype=torch.float64)  # linear outputs: the GGN is the Hessian
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
        >>> ggn = GGN(model, lambda model, x: model(x), lambda y, x: y.pow(2).mean(), x)
        >>> ggn.matmat(torch.eye(3, dtype=torch.float64)).tolist()
        [[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]]
    """

    def __init__(self, model: torch.nn.Module, outputs, loss_of_outputs, data, params=None, *, weights=None,
                 blocks: str = "parameter") -> None:
        if outputs is None and not isinstance(loss_of_outputs, TaskLoss):
            raise ValueError("outputs: expected a callable outputs(model, batch) (None only with task_loss(task))")
        super().__init__(model, params, blocks)
        self.loss = DataLoss(model, loss_of_outputs, data, weights, outputs=outputs, device=self.device)

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(vectors)
        columns = [self.space.unflatten(vectors[:, j].detach()) for j in range(vectors.shape[1])]
        with loss_mode(self.model):
            for term in self.loss.terms():
                with torch.enable_grad():
                    self._add_batch(term, columns, out)
        return all_reduce_sum(out)

    def _add_batch(self, term, columns: list[list[torch.Tensor]], out: torch.Tensor) -> None:
        """Add ``J^T H_L J v`` of one batch to each column of ``out``."""
        tensors, rebuild = _tensors_of(term.outputs(self.model))
        moving = [k for k, y in enumerate(tensors) if isinstance(y, torch.Tensor) and y.requires_grad]
        leaves = [y.detach().requires_grad_(True) if k in moving else y for k, y in enumerate(tensors)]
        value = term.loss(rebuild(leaves))
        if not moving or not value.requires_grad:
            return
        slopes = torch.autograd.grad(value, [leaves[k] for k in moving], create_graph=True, allow_unused=True)
        # Outputs the loss is curved in; the others (unused, or entering linearly) have zero rows and columns in H_L.
        curved = [(k, s) for k, s in zip(moving, slopes) if s is not None and s.requires_grad]
        if not curved:
            return
        ys = [tensors[k] for k, _ in curved]
        cotangents = [torch.zeros_like(y, requires_grad=True) for y in ys]
        pullback = torch.autograd.grad(ys, self.space.parameters, grad_outputs=cotangents, create_graph=True,
                                       allow_unused=True)  # J^T u, linear in u
        linked = [i for i, x in enumerate(pullback) if x is not None]
        if not linked:
            return  # the outputs do not depend on the chosen parameters
        for j, pieces in enumerate(columns):
            jv = torch.autograd.grad([pullback[i] for i in linked], cotangents,
                                     grad_outputs=[pieces[i] for i in linked], retain_graph=True, allow_unused=True,
                                     materialize_grads=True)
            dot = sum((s * u).sum() for (_, s), u in zip(curved, jv))
            hjv = torch.autograd.grad(dot, [leaves[k] for k, _ in curved], retain_graph=True, allow_unused=True,
                                      materialize_grads=True)
            product = torch.autograd.grad(ys, self.space.parameters, grad_outputs=hjv, retain_graph=True,
                                          allow_unused=True, materialize_grads=True)
            out[:, j] += self.space.flatten(product)


def _tensors_of(outputs) -> tuple[list, object]:
    """The outputs as a list, and the function that rebuilds their structure from such a list."""
    if isinstance(outputs, torch.Tensor):
        return [outputs], lambda tensors: tensors[0]
    if isinstance(outputs, dict):
        keys = list(outputs)
        return [outputs[key] for key in keys], lambda tensors: dict(zip(keys, tensors))
    raise TypeError(f"outputs: expected outputs(model, batch) to return a tensor or a dict of tensors, got "
                    f"{type(outputs).__name__}")

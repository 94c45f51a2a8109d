"""The Hessian of a model's loss over its parameters, as products with vectors.

Two ways to a product ``H v``: ``"autograd"`` differentiates the gradient (kept with ``create_graph``) along ``v`` -- a
double backward, a triple one for a loss of forces ``-dE/dpos`` -- and ``"fd"`` takes central differences of gradients,
``(g(theta + h v) - g(theta - h v)) / 2h``, which needs no higher derivative than training does (for kernels without
triple backward; it keeps no third-order graph, so it needs only a gradient's memory). Both accumulate the products
batch by batch, so only one batch's graph is alive at a time -- unless ``keep_graph=True``: then the autograd method
keeps every batch's gradient graph between products (as PyHessian does for its one batch), and each later product is
one backward of ``g . v`` per batch instead of a gradient and a backward, for the memory of all those graphs. The
kept graphs are rebuilt when any chosen parameter changes in place (an optimizer step, ``ParameterSpace.assign``).
"""

from __future__ import annotations

import torch

from ._loss import DataLoss, all_reduce_sum, loss_mode
from ._parameters import ParameterOperator

METHODS = ("autograd", "fd")


class Hessian(ParameterOperator):
    """The Hessian of a loss over one or several batches with respect to a model's (chosen) parameters.

    The loss over several batches is exact: a task's loss is that of the union of the batches (each batch's element
    counts per loss part are recorded first, and every batch's loss is divided by the totals: energies per structure,
    forces per atom over all batches); a plain callable's batch losses are averaged with ``weights``. Products are
    taken at the parameters' current values, with the model as :func:`~equilib.curvature.loss_mode` sets it (training
    mode, so that potentials keep the graph of their forces; dropout and normalisation layers in evaluation mode);
    :meth:`check_deterministic` catches other randomness. Under ``torch.distributed`` each rank passes its own
    batches and every rank gets the product of the loss over all of them (the products are summed over ranks; pass
    the same vector on every rank).

    Args:
        model: The ``torch.nn.Module``; the operator works in its parameters' dtype (``model.double()``: float64).
        loss: ``loss(model, batch) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        data: One batch, a list of batches, or a re-iterable loader yielding the same batches on every pass.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        weights: With a plain loss, one non-negative weight per batch (e.g. the batch sizes, for a per-sample mean
            loss); None: equal weights.
        method: ``"autograd"`` (exact up to rounding) or ``"fd"`` (central differences of gradients; relative error
            about 1e-9 in float64 and a few 1e-3 in float32 on a potential's loss).
        fd_eps: With ``"fd"``, the step's length relative to ``max(1, rms(theta))``, the root mean square of the
            chosen parameters (the step is ``fd_eps * max(1, rms(theta)) * v / |v|``: about one rounding-optimal step
            per entry of typical size); None: the cube root of the dtype's machine epsilon.
        blocks: ``"parameter"``, ``"module"`` or ``"all"`` (see :class:`~equilib.curvature.ParameterSpace`).
        keep_graph: With ``"autograd"``, keep each batch's gradient graph between products (faster products for
            the memory of every batch's graph; rebuilt when a parameter changes in place; see the module's notes).

    Raises:
        TypeError: If ``model`` is not a module, or ``loss`` or ``params`` has the wrong type.
        ValueError: If ``method`` is unknown, ``fd_eps`` is not a positive number, or ``params``, ``blocks``,
            ``data`` or ``weights`` are invalid (no batch, a one-shot iterator, a weight per batch missing or
            negative, weights with a task loss), or ``keep_graph`` is asked of ``"fd"``.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1, dtype=torch.float64)  # loss: mean of (w.x + b)^2 over two samples
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
        >>> hessian = Hessian(model, lambda model, x: model(x).pow(2).mean(), x)
        >>> hessian.matmat(torch.eye(3, dtype=torch.float64)).tolist()
        [[1.0, 0.0, 1.0], [0.0, 4.0, 2.0], [1.0, 2.0, 2.0]]
        >>> hessian.blocks
        {'weight': slice(0, 2, None), 'bias': slice(2, 3, None)}
    """

    def __init__(self, model: torch.nn.Module, loss, data, params=None, *, weights=None, method: str = "autograd",
                 fd_eps: float | None = None, blocks: str = "parameter", keep_graph: bool = False) -> None:
        if method not in METHODS:
            raise ValueError(f"method: expected one of {METHODS}, got {method!r}")
        if keep_graph and method != "autograd":
            raise ValueError(f"keep_graph: only the autograd method keeps a graph, got method={method!r}")
        if fd_eps is not None and not (isinstance(fd_eps, (int, float)) and 0 < fd_eps < float("inf")):
            raise ValueError(f"fd_eps: expected a positive number or None, got {fd_eps!r}")
        super().__init__(model, params, blocks)
        self.method = method
        self.fd_eps = torch.finfo(self.dtype).eps ** (1 / 3) if fd_eps is None else float(fd_eps)
        self.loss = DataLoss(model, loss, data, weights, device=self.device)
        self.keep_graph = keep_graph
        self._kept: tuple[tuple[int, ...], list] | None = None  # (parameter versions, per batch (gradient, curved))

    def gradient(self) -> torch.Tensor:
        """The gradient of the loss over all batches (and ranks) at the current parameters.

        Returns:
            ``(dim,)``.
        """
        with loss_mode(self.model):
            return all_reduce_sum(self._local_gradient())

    def _local_gradient(self) -> torch.Tensor:
        total = torch.zeros(self.dim, dtype=self.dtype, device=self.device)
        for term in self.loss.terms():
            with torch.enable_grad():
                gradient = self.space.gradient(term(self.model))
            total += self.space.flatten(gradient)
        return total

    def check_deterministic(self, rtol: float | None = None, seed: int = 0) -> float:
        """:meth:`ParameterOperator.check_deterministic`, with graphs rebuilt for both products even with
        ``keep_graph`` (a kept graph would repeat the randomness it was built with).

        Args:
            rtol: Largest allowed relative difference of the two products; None: the square root of the dtype's
                machine epsilon.
            seed: Seed of the standard normal vector.

        Returns:
            The relative difference of the two products.

        Raises:
            RuntimeError: If it is larger than ``rtol``.
        """
        keep, self.keep_graph, self._kept = self.keep_graph, False, None
        try:
            return super().check_deterministic(rtol, seed)
        finally:
            self.keep_graph = keep

    def _matmat(self, vectors: torch.Tensor) -> torch.Tensor:
        vectors = vectors.detach()
        with loss_mode(self.model):
            local = self._autograd(vectors) if self.method == "autograd" else self._differences(vectors)
        return all_reduce_sum(local)

    def _autograd(self, vectors: torch.Tensor) -> torch.Tensor:
        """Per batch: the gradient with its graph, then one backward of ``g . v`` per column."""
        out = torch.zeros_like(vectors)
        parameters = self.space.parameters
        columns = [self.space.unflatten(vectors[:, j]) for j in range(vectors.shape[1])]
        for gradient, curved in self._gradients_with_graph():
            for j, pieces in enumerate(columns):
                with torch.enable_grad():
                    dot = sum((gradient[k] * pieces[k]).sum() for k in curved)
                product = torch.autograd.grad(dot, parameters, allow_unused=True, materialize_grads=True,
                                              retain_graph=self.keep_graph or j + 1 < len(columns))
                out[:, j] += self.space.flatten(product)
        return out

    def _gradients_with_graph(self):
        """Each batch's gradient with its graph and the indices of the parameters it depends on (the others enter
        the loss linearly); the kept ones while the parameters are unchanged, with ``keep_graph``."""
        versions = tuple(p._version for p in self.space.parameters)
        if self._kept is not None and self._kept[0] == versions:
            yield from self._kept[1]
            return
        self._kept, kept = None, []
        for term in self.loss.terms():
            with torch.enable_grad():
                gradient = self.space.gradient(term(self.model), create_graph=True)
            curved = [k for k, g in enumerate(gradient) if g.requires_grad]
            if not curved:
                continue
            if self.keep_graph:
                kept.append((gradient, curved))
            yield gradient, curved
        if self.keep_graph:
            self._kept = (versions, kept)

    def _differences(self, vectors: torch.Tensor) -> torch.Tensor:
        """Central differences of the gradient along each column; the parameters are restored afterwards."""
        out = torch.zeros_like(vectors)
        theta = self.space.values()
        scale = self.fd_eps * max(1.0, float(theta.norm()) / self.dim ** 0.5)
        try:
            for j in range(vectors.shape[1]):
                norm = float(vectors[:, j].norm())
                if norm == 0:
                    continue
                step = scale / norm
                gradients = []
                for sign in (1.0, -1.0):
                    self.space.assign(theta + sign * step * vectors[:, j])
                    gradients.append(self._local_gradient())
                out[:, j] = (gradients[0] - gradients[1]) / (2 * step)
        finally:
            self.space.assign(theta)
        return out

"""Loss landscapes: the exact loss over data along one or two directions through the current parameters.

``L(theta + a d_1)`` on a line (:func:`loss_slice_1d`) and ``L(theta + a d_1 + b d_2)`` on a grid
(:func:`loss_surface_2d`), with the loss over all batches exactly as the curvature operators define it (a task's
element counts over the union of the batches, or weighted batch means; summed over ranks under ``torch.distributed``)
and the model as :func:`~equilib.curvature.loss_mode` sets it, so the slice along a unit Hessian eigenvector ``v``
from :func:`~equilib.curvature.top_eigenpairs` has second derivative ``v^T H v = lambda`` at 0.

Directions are flat vectors of the chosen parameters (:class:`~equilib.curvature.ParameterSpace`): Hessian
eigenvectors (the columns of an :class:`~equilib.curvature.Eigenpairs` result's ``eigenvectors``), or random
directions with filter normalisation (Li, Xu, Taylor, Studer, Goldstein, "Visualizing the Loss Landscape of Neural
Nets", NeurIPS 2018): a Gaussian direction whose every filter is rescaled to the norm of the same filter of the
weights, ``d_f <- d_f ||theta_f|| / ||d_f||``, so that plots of networks that differ by a rescaling of their weights
compare. A filter is a slice along the first dimension of a parameter of two or more dimensions (a row of a linear
layer's weight, an output channel of a convolution, an embedding's row). Parameters of fewer dimensions (biases,
normalisation scales, the flat weight vectors of e3nn's tensor products and linear layers) get a zero direction by
default (``one_d="zero"``), as in the authors' reference code (``ignore='biasbn'``); ``one_d="keep"`` treats each as
one filter, rescaled to its own norm. Equivariant models built on e3nn keep most of their weights in such flat
vectors: for them ``"zero"`` moves only the few matrix-shaped parameters.

Parameters are moved in place under ``torch.no_grad`` and restored to their exact values in a ``finally``; the loss
itself is evaluated with autograd enabled (potentials differentiate their energy for forces) and detached.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import torch

from ..utils import atomic_savefig
from ._checks import check_count, check_generator, random_vectors
from ._loss import DataLoss, all_reduce_sum, loss_mode
from ._parameters import ParameterSpace

ONE_D = ("zero", "keep")


class LossSlice(NamedTuple):
    """The loss along a line ``theta + a d``.

    Attributes:
        alphas: ``(n,)`` float64 step lengths ``a``.
        losses: ``(n,)`` float64 losses ``L(theta + alphas[i] d)``.
    """

    alphas: torch.Tensor
    losses: torch.Tensor


class LossSurface(NamedTuple):
    """The loss on a plane ``theta + a d_1 + b d_2``.

    Attributes:
        alphas: ``(n,)`` float64 coefficients ``a`` of the first direction.
        betas: ``(m,)`` float64 coefficients ``b`` of the second direction.
        losses: ``(n, m)`` float64 losses, ``losses[i, j] = L(theta + alphas[i] d_1 + betas[j] d_2)``.
    """

    alphas: torch.Tensor
    betas: torch.Tensor
    losses: torch.Tensor


def filter_normalize(model: torch.nn.Module, direction: torch.Tensor, params=None, one_d: str = "zero") -> torch.Tensor:
    """Rescales every filter of a direction to the norm of the same filter of the parameters (Li et al. 2018).

    Args:
        model: The ``torch.nn.Module``.
        direction: ``(dim,)`` flat direction over the chosen parameters.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        one_d: What parameters of fewer than two dimensions get: ``"zero"`` (a zero direction, as in the authors'
            code) or ``"keep"`` (one filter each, rescaled to the parameter's norm).

    Returns:
        ``(dim,)`` in the parameters' dtype: every filter ``d_f`` of ``direction`` times ``||theta_f|| / ||d_f||``.

    Raises:
        TypeError: If ``model`` is not a module, ``params`` has the wrong type or ``direction`` is not a tensor.
        ValueError: If ``one_d`` is unknown, ``params`` selects nothing valid, ``direction`` is not ``(dim,)`` or not
            finite, or a filter it rescales is zero.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 2, dtype=torch.float64)
        >>> with torch.no_grad():
        ...     _ = model.weight.copy_(torch.tensor([[3.0, 4.0], [0.0, 2.0]]))
        >>> d = filter_normalize(model, torch.tensor([1.0, 0.0, 1.0, 1.0, 5.0, 5.0], dtype=torch.float64))
        >>> [round(x, 6) for x in d.tolist()]  # rows scaled to norms 5 and 2; the bias zeroed
        [5.0, 0.0, 1.414214, 1.414214, 0.0, 0.0]
    """
    if one_d not in ONE_D:
        raise ValueError(f"one_d: expected one of {ONE_D}, got {one_d!r}")
    space = ParameterSpace(model, params)
    direction = _check_direction(direction, space, "direction")
    pieces = []
    for name, p, d in zip(space.names, space.parameters, space.unflatten(direction)):
        if d.dim() < 2 and one_d == "zero":
            pieces.append(torch.zeros_like(d))
            continue
        rows = d.reshape(1, -1) if d.dim() < 2 else d.reshape(d.shape[0], -1)
        target = p.detach().reshape(rows.shape).norm(dim=1)
        norms = rows.norm(dim=1)
        if bool((norms == 0).any()):
            raise ValueError(f"direction: filter {int((norms == 0).nonzero()[0])} of {name} is zero and cannot be "
                             "rescaled to the norm of the weights")
        pieces.append((rows * (target / norms)[:, None]).reshape(d.shape))
    return space.flatten(pieces)


def random_direction(model: torch.nn.Module, params=None, one_d: str = "zero",
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """A filter-normalised Gaussian direction (Li et al. 2018), drawn from ``generator``.

    The Gaussian vector is drawn in float64 on the CPU and cast to the parameters' dtype and device (the same seed
    gives the same direction everywhere), then passed to :func:`filter_normalize`.

    Args:
        model: The ``torch.nn.Module``.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        one_d: ``"zero"`` or ``"keep"`` for parameters of fewer than two dimensions (see :func:`filter_normalize`).
        generator: Random source (a CPU ``torch.Generator``), or None for torch's global one.

    Returns:
        ``(dim,)`` in the parameters' dtype.

    Raises:
        TypeError: If ``model``, ``params`` or ``generator`` has the wrong type.
        ValueError: If ``one_d`` is unknown or ``params`` selects nothing valid.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(3, 2)
        >>> d = random_direction(model, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(d[:6].view(2, 3).norm(dim=1), model.weight.detach().norm(dim=1)), d[6:].tolist()
        (True, [0.0, 0.0])
    """
    check_generator(generator)
    space = ParameterSpace(model, params)
    gaussian = random_vectors(space, 1, "gaussian", generator)[:, 0]
    return filter_normalize(model, gaussian, params, one_d)


def loss_slice_1d(model: torch.nn.Module, loss, data, direction: torch.Tensor, alphas, params=None, *,
                  weights=None) -> LossSlice:
    """The exact loss over ``data`` at ``theta + a d`` for every ``a`` in ``alphas``.

    Args:
        model: The ``torch.nn.Module``; its chosen parameters are moved and then restored exactly.
        loss: ``loss(model, batch) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        data: One batch, a list of batches, or a re-iterable loader yielding the same batches on every pass.
        direction: ``(dim,)`` flat direction over the chosen parameters (a Hessian eigenvector, a
            :func:`random_direction`).
        alphas: Step lengths: a non-empty sequence or 1-d tensor of finite numbers.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        weights: With a plain loss, one non-negative weight per batch; None: equal weights.

    Returns:
        The :class:`LossSlice`.

    Raises:
        TypeError: If ``model``, ``loss``, ``params`` or ``direction`` has the wrong type.
        ValueError: If ``direction`` is not a finite ``(dim,)`` tensor, ``alphas`` is empty, not 1-d or not finite,
            or ``params``, ``data`` or ``weights`` are invalid.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)  # loss w^2, at w = 1
        >>> _ = torch.nn.init.ones_(model.weight)
        >>> x = torch.ones(1, 1, dtype=torch.float64)
        >>> line = loss_slice_1d(model, lambda m, x: m(x).pow(2).sum(), x, torch.ones(1, dtype=torch.float64),
        ...                      [-1.0, 0.0, 1.0])
        >>> line.losses.tolist(), model.weight.item()
        ([0.0, 1.0, 4.0], 1.0)
    """
    space = ParameterSpace(model, params)
    direction = _check_direction(direction, space, "direction")
    alphas = _coefficients(alphas, "alphas")
    values = _evaluate(model, loss, data, space, weights, [direction], [(float(a),) for a in alphas])
    return LossSlice(alphas, values)


def loss_surface_2d(model: torch.nn.Module, loss, data, d1: torch.Tensor, d2: torch.Tensor, alphas, betas,
                    params=None, *, weights=None) -> LossSurface:
    """The exact loss over ``data`` at ``theta + a d1 + b d2`` on the grid of ``alphas`` and ``betas``.

    Args:
        model: The ``torch.nn.Module``; its chosen parameters are moved and then restored exactly.
        loss: ``loss(model, batch) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        data: One batch, a list of batches, or a re-iterable loader yielding the same batches on every pass.
        d1: ``(dim,)`` first direction.
        d2: ``(dim,)`` second direction.
        alphas: Coefficients of ``d1``: a non-empty sequence or 1-d tensor of finite numbers.
        betas: Coefficients of ``d2``, likewise.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        weights: With a plain loss, one non-negative weight per batch; None: equal weights.

    Returns:
        The :class:`LossSurface`, ``losses`` of shape ``(len(alphas), len(betas))``.

    Raises:
        TypeError: If ``model``, ``loss``, ``params``, ``d1`` or ``d2`` has the wrong type.
        ValueError: If ``d1`` or ``d2`` is not a finite ``(dim,)`` tensor, ``alphas`` or ``betas`` is empty, not 1-d
            or not finite, or ``params``, ``data`` or ``weights`` are invalid.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1, bias=False, dtype=torch.float64)  # loss |w|^2, at w = 0
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> eye = torch.eye(2, dtype=torch.float64)
        >>> plane = loss_surface_2d(model, lambda m, x: m.weight.pow(2).sum(), None, eye[0], eye[1], [0.0, 1.0],
        ...                         [0.0, 2.0])
        >>> plane.losses.tolist()
        [[0.0, 4.0], [1.0, 5.0]]
    """
    space = ParameterSpace(model, params)
    d1, d2 = _check_direction(d1, space, "d1"), _check_direction(d2, space, "d2")
    alphas, betas = _coefficients(alphas, "alphas"), _coefficients(betas, "betas")
    grid = [(float(a), float(b)) for a in alphas for b in betas]
    values = _evaluate(model, loss, data, space, weights, [d1, d2], grid)
    return LossSurface(alphas, betas, values.view(len(alphas), len(betas)))


def plot_landscape(result: LossSlice | LossSurface, path: str | os.PathLike, levels: int = 20,
                   title: str | None = None) -> Path:
    """Draws a loss slice as a line or a loss surface as filled contours to a PNG file (Agg canvas; atomic write).

    Args:
        result: A :class:`LossSlice` (a line of loss against ``alpha``) or a :class:`LossSurface` (contours over
            ``alpha`` and ``beta``, with a colour bar).
        path: The PNG file to write; its directory must exist.
        levels: Number of contour levels of a surface, at least 2.
        title: Figure title; None: the number of points and the range of the loss.

    Returns:
        ``path`` as a ``pathlib.Path``.

    Raises:
        TypeError: If ``result`` is neither a :class:`LossSlice` nor a :class:`LossSurface`.
        ValueError: If ``levels`` is below 2, or a surface has fewer than two coefficients along an axis.
    """
    if not isinstance(result, (LossSlice, LossSurface)):
        raise TypeError(f"result: expected a LossSlice or a LossSurface, got {type(result).__name__}")
    check_count(levels, "levels")
    if levels < 2:
        raise ValueError(f"levels: expected at least 2, got {levels}")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.6, 4.2))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    if isinstance(result, LossSlice):
        ax.plot(result.alphas.numpy(), result.losses.numpy(), marker=".", linewidth=1.0)
        ax.set(xlabel="alpha", ylabel="loss")
    else:
        if len(result.alphas) < 2 or len(result.betas) < 2:
            raise ValueError(f"result: a contour plot needs at least two alphas and two betas, got "
                             f"{len(result.alphas)} and {len(result.betas)}")
        filled = ax.contourf(result.alphas.numpy(), result.betas.numpy(), result.losses.T.numpy(), levels=levels)
        ax.contour(result.alphas.numpy(), result.betas.numpy(), result.losses.T.numpy(), levels=levels,
                   colors="k", linewidths=0.4)
        figure.colorbar(filled, ax=ax, label="loss")
        ax.set(xlabel="alpha", ylabel="beta")
    if title is None:
        low, high = float(result.losses.min()), float(result.losses.max())
        title = f"{result.losses.numel()} points, loss {low:.4g} to {high:.4g}"
    ax.set_title(title)
    figure.tight_layout()
    return atomic_savefig(figure, path)


def _check_direction(direction, space: ParameterSpace, name: str) -> torch.Tensor:
    if not isinstance(direction, torch.Tensor):
        raise TypeError(f"{name}: expected a tensor, got {type(direction).__name__}")
    if direction.shape != (space.dim,):
        raise ValueError(f"{name}: expected shape ({space.dim},) (the chosen parameters), got {tuple(direction.shape)}")
    if not bool(torch.isfinite(direction).all()):
        raise ValueError(f"{name}: expected finite entries")
    return direction.detach().to(dtype=space.dtype, device=space.device)


def _coefficients(values, name: str) -> torch.Tensor:
    if isinstance(values, (str, bytes)) or not isinstance(values, (Sequence, torch.Tensor)):
        raise ValueError(f"{name}: expected a sequence or 1-d tensor of numbers, got {type(values).__name__}")
    try:
        tensor = torch.as_tensor(values, dtype=torch.float64).detach().cpu()
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValueError(f"{name}: expected numbers ({err})") from None
    if tensor.dim() != 1 or tensor.numel() == 0:
        raise ValueError(f"{name}: expected a non-empty 1-d sequence, got shape {tuple(tensor.shape)}")
    if not all(math.isfinite(x) for x in tensor.tolist()):
        raise ValueError(f"{name}: expected finite numbers, got {tensor.tolist()}")
    return tensor


def _evaluate(model: torch.nn.Module, loss, data, space: ParameterSpace, weights, directions: list[torch.Tensor],
              points: list[tuple[float, ...]]) -> torch.Tensor:
    """The loss over all batches (and ranks) at ``theta + sum_k c_k directions[k]`` for each point ``c``."""
    data_loss = DataLoss(model, loss, data, weights, device=space.device)
    theta = space.values()
    values = torch.zeros(len(points), dtype=torch.float64)
    try:
        with loss_mode(model):
            for i, point in enumerate(points):
                moved = theta.clone()
                for c, direction in zip(point, directions):
                    moved.add_(direction, alpha=c)
                space.assign(moved)
                with torch.enable_grad():  # potentials differentiate their energy for forces
                    values[i] = sum(float(term(model).detach()) for term in data_loss.terms())
    finally:
        space.assign(theta)
    return all_reduce_sum(values)

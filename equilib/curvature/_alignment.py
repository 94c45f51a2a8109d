"""Hessian alignment across domains: a differentiable penalty on the spread of the domains' gradients and Hessians.

Hemati, Zhang, Estiri & Chen ("Understanding Hessian Alignment for Domain Generalization", ICCV 2023) bound the
transfer of a model from a training domain to another by the differences of their loss gradients and Hessians (of
the head's parameters), and penalise both while training. With ``g_e`` the gradient and ``D_e`` the Hessian's
diagonal of the loss of domain ``e`` (of ``E`` in the batch), and ``g_bar``, ``D_bar`` their means over the domains:

    ``penalty = gradient_weight * (1/E) sum_e ||g_e - g_bar||^2 + hessian_weight * (1/E) sum_e ||D_e - D_bar||^2``

(their ``beta`` weighs the gradient term and their ``alpha`` the Hessian term). The diagonals are Hutchinson's
estimates ``D_e = (1/K) sum_k z_k * (H_e z_k)`` over ``K`` Rademacher probes ``z_k`` (Bekas, Kokiopoulou & Saad,
"An estimator for the diagonal of a matrix", 2007; unbiased, with variance ``sum_{j != i} H_ij^2 / K`` per entry),
or the exact diagonal from one product per parameter (``probes=None``, for small parameter sets). All domains share
the same probes, so ``D_bar`` is exactly the estimate of the mean Hessian's diagonal and the probes' noise common to
the domains cancels in ``D_e - D_bar``. Everything is built with ``create_graph=True``, so the penalty is
differentiated like any loss: its gradient takes one derivative more than the Hessian-vector products (a fourth one
for a potential's force loss). The means are not detached (the authors' code detaches them); since the deviations
from an exact mean sum to zero, the penalty's gradient through the means vanishes and is the same either way.

A batch is split into domains by a ``domains(batch)`` callable: a list of sub-batches, or one integer label per
element (per structure of a graph batch), which groups the elements by label in ascending order.
:func:`metal_domains` labels OC20-style adsorbate + slab structures by their slab's metal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch

from ._checks import check_generator, random_vectors
from ._loss import _scalar
from ._parameters import ParameterSpace

ADSORBATE_ELEMENTS = (1, 6, 7, 8)  # H, C, N, O: the adsorbates' elements, not the slab's
ELEMENTS = 119  # atomic numbers 0..118


class Alignment(NamedTuple):
    """The Hessian-alignment penalty of a batch and its two parts.

    Attributes:
        penalty: ``gradient_weight * gradient + hessian_weight * hessian`` (a differentiable 0-d tensor).
        gradient: ``(1/E) sum_e ||g_e - g_bar||^2``, the spread of the domains' gradients.
        hessian: ``(1/E) sum_e ||D_e - D_bar||^2``, the spread of their Hessian diagonals (zero, not computed, when
            ``hessian_weight`` is 0).
        domains: ``E``, the number of domains in the batch (with one, every term is zero).
    """

    penalty: torch.Tensor
    gradient: torch.Tensor
    hessian: torch.Tensor
    domains: int


def hessian_alignment(model: torch.nn.Module, loss, batch, domains: Callable, params=None, *,
                      gradient_weight: float = 1.0, hessian_weight: float = 1.0, probes: int | None = 10,
                      generator: torch.Generator | None = None, normalize: bool = False) -> Alignment:
    """The Hessian-alignment penalty of ``batch`` split into domains (Hemati et al., ICCV 2023).

    Each domain's loss is ``loss(model, sub_batch)`` (its own mean); the model is evaluated as it is (in training,
    in training mode). The penalty keeps its graph: add it to the training loss.

    Args:
        model: The ``torch.nn.Module``.
        loss: ``loss(model, batch) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        batch: The batch (on the model's device).
        domains: ``domains(batch)`` returning a list of sub-batches, or a 1-d integer tensor with one domain label
            per element of the batch (rows of a tensor, a tuple or a dict of tensors; structures of a
            ``torch_geometric`` batch).
        params: Which parameters the gradients and Hessians are taken of (see
            :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones. The authors align the last
            layer's only.
        gradient_weight: Weight of the gradient term (the authors' ``beta``), at least 0.
        hessian_weight: Weight of the Hessian term (the authors' ``alpha``), at least 0.
        probes: Rademacher probes of Hutchinson's diagonal, shared by all domains; None: the exact diagonal, one
            Hessian-vector product per chosen parameter entry and domain.
        generator: Random source of the probes (a CPU ``torch.Generator``; seed it per step for a deterministic
            run), or None for torch's global one.
        normalize: Divide each part by the domains' mean squared norm (detached), so it lies in [0, 1] (see the
            module's notes).

    Returns:
        The :class:`Alignment`.

    Raises:
        TypeError: If ``model``, ``params``, ``domains`` or ``generator`` has the wrong type.
        ValueError: If a weight is negative or not finite, ``probes`` is neither None nor a positive int, ``params``
            selects nothing valid, the domains are empty or do not match the batch, a loss is not 0-d, or
            ``normalize`` is not a bool.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(1, 1, bias=False, dtype=torch.float64)  # loss mean (w x - y)^2, at w = 0
        >>> _ = torch.nn.init.zeros_(model.weight)
        >>> x = torch.tensor([[1.0], [2.0]], dtype=torch.float64)
        >>> batch = (x, torch.tensor([[1.0], [1.0]], dtype=torch.float64))
        >>> mse = lambda model, b: (model(b[0]) - b[1]).pow(2).mean()
        >>> result = hessian_alignment(model, mse, batch, lambda b: torch.tensor([0, 1]), probes=None)
        >>> result.domains, result.gradient.item(), result.hessian.item()  # g = -2, -4; diag H = 2, 8
        (2, 1.0, 9.0)
        >>> scaled = hessian_alignment(model, mse, batch, lambda b: torch.tensor([0, 1]), probes=None, normalize=True)
        >>> scaled.gradient.item(), scaled.hessian.item()  # 1 / ((4 + 16) / 2), 9 / ((4 + 64) / 2)
        (0.1, 0.2647058823529412)
    """
    if not isinstance(normalize, bool):
        raise ValueError(f"normalize: expected True or False, got {normalize!r}")
    for name, value in (("gradient_weight", gradient_weight), ("hessian_weight", hessian_weight)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    _check_probes(probes)
    check_generator(generator)
    space = ParameterSpace(model, params)
    parts = split_domains(batch, domains)
    zero = torch.zeros((), dtype=space.dtype, device=space.device)
    if len(parts) == 1:
        return Alignment(zero, zero, zero, 1)
    vectors = None if probes is None or hessian_weight == 0 else random_vectors(space, probes, "rademacher",
                                                                                  generator)
    gradients, diagonals = [], []
    for part in parts:
        gradient = space.flatten(space.gradient(_scalar(loss(model, part)), create_graph=True))
        gradients.append(gradient)
        if hessian_weight:
            diagonals.append(_diagonal(space, gradient, vectors, create_graph=True))
    spread = _spread(torch.stack(gradients), normalize)
    curvature = _spread(torch.stack(diagonals), normalize) if hessian_weight else zero
    return Alignment(gradient_weight * spread + hessian_weight * curvature, spread, curvature, len(parts))


def hessian_diagonal(model: torch.nn.Module, loss, batch, params=None, probes: int | None = 10,
                     generator: torch.Generator | None = None, create_graph: bool = False) -> torch.Tensor:
    """The diagonal of the Hessian of ``loss(model, batch)``: Hutchinson's estimate or exact.

    Hutchinson's estimate ``(1/K) sum_k z_k * (H z_k)`` over ``K`` Rademacher probes is unbiased, with variance
    ``sum_{j != i} H_ij^2 / K`` in entry ``i`` (Bekas, Kokiopoulou & Saad 2007).

    Args:
        model: The ``torch.nn.Module``.
        loss: ``loss(model, batch) -> 0-d tensor``, or :func:`~equilib.curvature.task_loss` of an equilib task.
        batch: The batch.
        params: Which parameters (see :class:`~equilib.curvature.ParameterSpace`); None: all trainable ones.
        probes: Rademacher probes; None: the exact diagonal, one Hessian-vector product per parameter entry.
        generator: Random source of the probes (a CPU ``torch.Generator``), or None for torch's global one.
        create_graph: Keep the graph (to differentiate the diagonal).

    Returns:
        ``(dim,)`` in the parameters' dtype.

    Raises:
        TypeError: If ``model``, ``params`` or ``generator`` has the wrong type.
        ValueError: If ``probes`` is neither None nor a positive int, ``params`` selects nothing valid, or the loss
            is not 0-d.

    Examples:
        >>> import torch
        >>> model = torch.nn.Linear(2, 1, bias=False, dtype=torch.float64)  # loss (w . x)^2: H = 2 x x^T
        >>> x = torch.tensor([[1.0, 3.0]], dtype=torch.float64)
        >>> hessian_diagonal(model, lambda m, x: m(x).pow(2).sum(), x, probes=None).tolist()
        [2.0, 18.0]
        >>> one = hessian_diagonal(model, lambda m, x: m(x).pow(2).sum(), x, probes=1,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> one.tolist()  # z = (1, -1) or (-1, 1): off by z_1 z_2 H_12 = -6
        [-4.0, 12.0]
    """
    _check_probes(probes)
    check_generator(generator)
    space = ParameterSpace(model, params)
    vectors = None if probes is None else random_vectors(space, probes, "rademacher", generator)
    with torch.enable_grad():
        gradient = space.flatten(space.gradient(_scalar(loss(model, batch)), create_graph=True))
        diagonal = _diagonal(space, gradient, vectors, create_graph)
    return diagonal if create_graph else diagonal.detach()


def metal_domains(batch) -> torch.Tensor:
    """The most frequent element of each structure other than H, C, N and O: the metal of an OC20 slab.

    Ties go to the lighter element; a structure of only H, C, N and O (a gas-phase molecule) is labelled by its most
    frequent element.

    Args:
        batch: A batch of structures with ``atomic_numbers`` (per atom) and ``batch`` (the structure of each atom),
            such as a ``torch_geometric`` batch of :class:`equilib.data.AtomicData`.

    Returns:
        ``(structures,)`` int64 atomic numbers, on the batch's device.

    Raises:
        ValueError: If ``batch`` lacks ``atomic_numbers`` or ``batch``, or they differ in length.

    Examples:
        >>> import torch
        >>> from types import SimpleNamespace
        >>> batch = SimpleNamespace(atomic_numbers=torch.tensor([29, 29, 8, 1, 46, 6, 8, 8, 8, 1]),
        ...                         batch=torch.tensor([0, 0, 0, 0, 1, 1, 1, 2, 2, 2]))
        >>> metal_domains(batch).tolist()
        [29, 46, 8]
    """
    numbers, owner = getattr(batch, "atomic_numbers", None), getattr(batch, "batch", None)
    if not isinstance(numbers, torch.Tensor) or not isinstance(owner, torch.Tensor):
        raise ValueError(f"batch: expected a batch of structures with atomic_numbers and a batch vector (a "
                         f"torch_geometric batch of AtomicData), got {type(batch).__name__}")
    if numbers.shape != owner.shape or numbers.dim() != 1:
        raise ValueError(f"batch: atomic_numbers {tuple(numbers.shape)} and batch {tuple(owner.shape)} must be 1-d "
                         "of one length")
    structures = int(owner.max()) + 1 if owner.numel() else 0
    slots = owner.long() * ELEMENTS + numbers.long()
    every = torch.bincount(slots, minlength=structures * ELEMENTS).view(structures, ELEMENTS)
    metal = every.clone()
    metal[:, list(ADSORBATE_ELEMENTS)] = 0
    counts = torch.where(metal.sum(1, keepdim=True) > 0, metal, every)
    return counts.argmax(1)


def split_domains(batch, domains: Callable) -> list:
    """The sub-batches of ``batch`` that ``domains(batch)`` names.

    Args:
        batch: The batch: a tensor, a tuple or list of tensors, a dict of tensors, or a ``torch_geometric`` batch.
        domains: ``domains(batch)`` returning a non-empty list of sub-batches, or a 1-d integer tensor of one label
            per element (a row of the tensors; a structure of a graph batch).

    Returns:
        The sub-batches, one per distinct label in ascending order (or the list ``domains`` returned).

    Raises:
        TypeError: If ``domains`` is not callable, or the batch cannot be split by labels.
        ValueError: If ``domains`` returns something else, an empty list, or labels that are not integers or do not
            match the batch's elements.

    Examples:
        >>> import torch
        >>> parts = split_domains(torch.arange(5), lambda b: b % 2)
        >>> [p.tolist() for p in parts]
        [[0, 2, 4], [1, 3]]
    """
    if not callable(domains):
        raise TypeError(f"domains: expected a callable domains(batch), got {type(domains).__name__}")
    labels = domains(batch)
    if isinstance(labels, (list, tuple)):
        if not labels:
            raise ValueError("domains: returned an empty list of sub-batches")
        return list(labels)
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"domains: expected it to return a list of sub-batches or a tensor of labels, got "
                         f"{type(labels).__name__}")
    count = _elements(batch)
    if labels.dim() != 1 or labels.dtype.is_floating_point or labels.dtype.is_complex or len(labels) != count:
        raise ValueError(f"domains: expected one integer label per element of the batch ({count}), got "
                         f"{labels.dtype} of shape {tuple(labels.shape)}")
    return [_select(batch, (labels == value).nonzero().squeeze(1)) for value in torch.unique(labels)]


def _elements(batch) -> int:
    """The number of elements of a batch that labels index."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if hasattr(batch, "num_graphs") and hasattr(batch, "index_select"):
        return int(batch.num_graphs)
    values = list(batch.values()) if isinstance(batch, dict) else list(batch) if isinstance(batch, (tuple, list)) \
        else None
    if not values or not all(isinstance(v, torch.Tensor) and v.dim() > 0 for v in values):
        raise TypeError(f"batch: labels split a tensor, a tuple, list or dict of tensors or a torch_geometric batch, "
                        f"not {type(batch).__name__}; let domains return the sub-batches")
    sizes = {len(v) for v in values}
    if len(sizes) != 1:
        raise TypeError(f"batch: its tensors have different lengths {sorted(sizes)}; let domains return the "
                        "sub-batches")
    return sizes.pop()


def _select(batch, index: torch.Tensor):
    """The elements ``index`` of a batch, as a batch of the same kind."""
    if isinstance(batch, torch.Tensor):
        return batch[index.to(batch.device)]
    if isinstance(batch, dict):
        return {key: value[index.to(value.device)] for key, value in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(value[index.to(value.device)] for value in batch)
    from torch_geometric.data import Batch

    return Batch.from_data_list(batch.index_select(index.cpu()))


def _check_probes(probes) -> None:
    if probes is not None and (isinstance(probes, bool) or not isinstance(probes, int) or probes < 1):
        raise ValueError(f"probes: expected None (the exact diagonal) or an int >= 1, got {probes!r}")


def _diagonal(space: ParameterSpace, gradient: torch.Tensor, vectors: torch.Tensor | None,
              create_graph: bool) -> torch.Tensor:
    """``(1/K) sum_k z_k * (H z_k)`` from a flat gradient with its graph; the exact diagonal when ``vectors`` is
    None."""
    if not gradient.requires_grad:  # a loss linear in the parameters
        return torch.zeros_like(gradient)

    def product(dot: torch.Tensor) -> torch.Tensor:
        return space.flatten(torch.autograd.grad(dot, space.parameters, retain_graph=True, create_graph=create_graph,
                                                 allow_unused=True, materialize_grads=True))

    if vectors is None:
        return torch.stack([product(gradient[i])[i] for i in range(space.dim)])
    return sum(z * product(gradient @ z) for z in vectors.T) / vectors.shape[1]


def _spread(values: torch.Tensor, normalize: bool = False) -> torch.Tensor:
    """``(1/E) sum_e ||v_e - v_bar||^2`` of the rows ``v_e``; with ``normalize``, divided by ``(1/E) sum_e ||v_e||^2``
    (detached; 0 if every row is 0)."""
    spread = (values - values.mean(0)).pow(2).sum(1).mean()
    if not normalize:
        return spread
    scale = values.detach().pow(2).sum(1).mean()
    return spread / scale if scale > 0 else spread

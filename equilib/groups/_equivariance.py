"""The equivariance error of a function under a group, and the conformance check every layer and model passes.

For sampled elements g: ``||f(g.x) - g.f(x)|| / ||f(x)||``, the norms taken over all outputs together. The error
is differentiable in the function's parameters (a soft-equivariance regulariser can minimise it), computed in the
inputs' dtype, and batched over the samples when the function accepts a leading batch axis (``batched=True``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from ._element import GroupElement
from ._groups import Group
from ._representations import Representation

TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5}


def _as_tuple(value) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(value)
    return (value,)


def _checked(tensors, reps, what: str, reps_name: str) -> tuple[tuple[torch.Tensor, ...], tuple[Representation, ...]]:
    tensors, reps = _as_tuple(tensors), _as_tuple(reps)
    if len(tensors) != len(reps):
        raise ValueError(f"{reps_name}: expected one representation per {what[:-1]} ({len(tensors)}), got {len(reps)}")
    for k, (tensor, rep) in enumerate(zip(tensors, reps)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{what}[{k}]: expected a tensor, got {type(tensor).__name__}")
        if not isinstance(rep, Representation):
            raise TypeError(f"{reps_name}[{k}]: expected a Representation (equilib.groups), got {type(rep).__name__}")
        rep.check(tuple(tensor.shape), f"{what}[{k}]")
    return tensors, reps


def _transform(g: GroupElement, tensors, reps) -> tuple[torch.Tensor, ...]:
    """``g.x`` for every tensor, each with a leading axis of ``len(g)`` samples."""
    return tuple(rep.act(g, t.unsqueeze(0).expand(len(g), *t.shape)) for t, rep in zip(tensors, reps))


def equivariance_error(
    fn: Callable,
    group: Group,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    in_reps: Representation | Sequence[Representation],
    out_reps: Representation | Sequence[Representation],
    samples: int = 8,
    generator: torch.Generator | None = None,
    batched: bool = False,
    reduction: str = "max",
    elements: GroupElement | None = None,
) -> torch.Tensor:
    """The relative equivariance error ``||f(g.x) - g.f(x)|| / ||f(x)||`` of ``fn`` under ``group``, per element g.

    The norms are taken over all outputs together; the error is differentiable in ``fn``'s parameters and computed in
    the first input's dtype (float64 for integer inputs).

    Args:
        fn: ``fn(*inputs)`` returns a tensor or a tuple of tensors.
        group: The :class:`Group` whose elements are drawn.
        inputs: A tensor or a sequence of tensors (unbatched).
        in_reps: One :class:`Representation` per input.
        out_reps: One :class:`Representation` per output.
        samples: Number of elements drawn (ignored when ``elements`` is given).
        generator: Torch generator for the draw.
        batched: Call ``fn`` once on inputs with a leading axis of the samples (and once with a leading axis of one)
            instead of once per sample.
        reduction: ``"max"`` or ``"mean"`` over the samples, or ``"none"`` for the per-sample errors.
        elements: The elements to use instead of drawn ones.

    Returns:
        A 0-d tensor, or with ``reduction="none"`` a tensor of shape ``(samples,)``.

    Raises:
        ValueError: If ``reduction`` or ``samples`` is invalid, the numbers of tensors and representations differ, a
            tensor's shape does not fit its representation, or ``fn`` returns different numbers of outputs.
        TypeError: If ``group`` is not a :class:`Group`, or an input, output or representation has the wrong type.

    Examples:
        >>> import torch
        >>> from equilib.groups import O3, Positions, Scalars, equivariance_error
        >>> x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> radius = lambda p: (p - p.mean(0)).norm(dim=-1)  # distances to the centroid: E(3)-invariant
        >>> bool(equivariance_error(radius, O3(), x, Positions(), Scalars()) < 1e-12)
        True
        >>> norm = lambda p: p.norm(dim=-1)  # distances to the origin: not invariant under translations
        >>> from equilib.groups import E3
        >>> errors = equivariance_error(norm, E3(), x, Positions(), Scalars(), samples=3, reduction="none")
        >>> errors.shape, bool((errors > 0.01).all())
        (torch.Size([3]), True)
    """
    if reduction not in ("max", "mean", "none"):
        raise ValueError(f"reduction: expected 'max', 'mean' or 'none', got {reduction!r}")
    error, _ = _errors(fn, group, inputs, in_reps, out_reps, samples, generator, batched, elements)
    if reduction == "none":
        return error
    return error.max() if reduction == "max" else error.mean()


def _errors(fn, group, inputs, in_reps, out_reps, samples, generator, batched, elements):
    """The relative error per sampled element, and ``fn``'s outputs on the untransformed inputs."""
    if not isinstance(group, Group):
        raise TypeError(f"group: expected an equilib.groups.Group, got {type(group).__name__}")
    inputs, in_reps = _checked(inputs, in_reps, "inputs", "in_reps")
    dtype, device = inputs[0].dtype, inputs[0].device
    if not dtype.is_floating_point:
        dtype = torch.float64
    if elements is None:
        if not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples: expected a positive int, got {samples!r}")
        elements = group.sample(samples, generator=generator, dtype=torch.float64)
    g = elements.to(dtype=dtype, device=device)
    moved = _transform(g, inputs, in_reps)
    if batched:
        reference = _as_tuple(fn(*(t.unsqueeze(0) for t in inputs)))
        reference = tuple(r.squeeze(0) for r in reference)
        transformed = _as_tuple(fn(*moved))
    else:
        reference = _as_tuple(fn(*inputs))
        per_sample = [_as_tuple(fn(*(t[k] for t in moved))) for k in range(len(g))]
        transformed = tuple(torch.stack(parts) for parts in zip(*per_sample))
    reference, out_reps = _checked(reference, out_reps, "outputs", "out_reps")
    expected = _transform(g, reference, out_reps)
    if len(transformed) != len(expected):
        raise ValueError(f"fn: returned {len(transformed)} outputs on transformed inputs and {len(expected)} on the "
                         "originals")
    difference = sum((a - b).reshape(len(g), -1).pow(2).sum(1) for a, b in zip(transformed, expected))
    scale = sum(r.pow(2).sum() for r in reference).sqrt()
    tiny = torch.finfo(difference.dtype).tiny
    # sqrt has no derivative at 0: an exactly equivariant fn gets the subgradient 0, not NaN
    root = torch.where(difference > 0, difference.clamp(min=tiny).sqrt(), torch.zeros_like(difference))
    return root / scale.clamp(min=torch.finfo(scale.dtype).tiny), reference


def assert_equivariant(
    fn: Callable,
    group: Group,
    inputs: torch.Tensor | Sequence[torch.Tensor],
    in_reps: Representation | Sequence[Representation],
    out_reps: Representation | Sequence[Representation],
    tol: float | None = None,
    samples: int = 4,
    generator: torch.Generator | None = None,
    batched: bool = False,
    elements: GroupElement | None = None,
) -> float:
    """The conformance check of every layer and model: ``fn`` is equivariant under ``group`` to ``tol``.

    Checked on ``samples`` random elements (or the given ``elements``); the output must not be zero (a function that
    returns zeros would pass trivially).

    Args:
        fn: ``fn(*inputs)`` returns a tensor or a tuple of tensors.
        group: The :class:`Group` whose elements are drawn.
        inputs: A tensor or a sequence of tensors (unbatched).
        in_reps: One :class:`Representation` per input.
        out_reps: One :class:`Representation` per output.
        tol: Largest relative error allowed; default ``TOLERANCE`` of the first input's dtype (1e-10 in float64,
            1e-5 in float32).
        samples: Number of elements drawn.
        generator: Torch generator for the draw.
        batched: As for :func:`equivariance_error`.
        elements: The elements to use instead of drawn ones.

    Returns:
        The worst relative error, a float.

    Raises:
        AssertionError: If the output is zero or the error exceeds ``tol`` (or is NaN); the message gives the error
            of each sample.
        ValueError: As for :func:`equivariance_error`.
        TypeError: As for :func:`equivariance_error`.

    Examples:
        >>> import torch
        >>> from equilib.groups import E3, SO3, Positions, Scalars, Vectors, assert_equivariant
        >>> x = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> assert_equivariant(lambda p: p - p.mean(0), E3(), x, Positions(), Vectors()) < 1e-12
        True
        >>> assert_equivariant(lambda p: p, SO3(), x, Positions(), Scalars())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        AssertionError: not equivariant under SO3(): relative error ...
    """
    errors, reference = _errors(fn, group, inputs, in_reps, out_reps, samples, generator, batched, elements)
    if all(r.numel() == 0 or r.abs().max() == 0 for r in reference):
        raise AssertionError(f"{getattr(fn, '__name__', fn)!s}: the output is zero, so equivariance says nothing")
    first = _as_tuple(inputs)[0]
    tol = TOLERANCE.get(first.dtype, 1e-5) if tol is None else tol
    errors = errors.detach()
    worst = float(errors.max())
    if not worst <= tol:  # also catches NaN
        raise AssertionError(f"not equivariant under {group!r}: relative error {worst:.3e} > {tol:.1e} "
                             f"(per sample: {', '.join(f'{float(e):.2e}' for e in errors)})")
    return worst

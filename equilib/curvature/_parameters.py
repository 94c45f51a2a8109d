"""Which parameters of a model a curvature operator acts on, and the flat vector they make.

:class:`ParameterSpace` chooses parameters (all trainable ones, those whose names match patterns, or those of
submodules), concatenates them in ``model.named_parameters()`` order into one flat vector, converts between that
vector and per-parameter tensors, and names its blocks (one per parameter, one per owning module, or one for all).
:class:`ParameterOperator` is the base of the operators of a model's loss (:class:`~equilib.curvature.Hessian`,
:class:`~equilib.curvature.GGN`, :class:`~equilib.curvature.EmpiricalFisher`): the space, and the check that two
products of the same vector agree (curvlinops' ``check_deterministic``).
"""

from __future__ import annotations

import re

import torch

from ._base import CurvatureOperator
from ._checks import random_vectors

BLOCKS = ("parameter", "module", "all")
ROOT = "(root)"  # the block name of parameters the model itself owns, with blocks="module"


class ParameterSpace:
    """The chosen parameters of a model as one flat vector of length ``dim``.

    Parameters are always in ``model.named_parameters()`` order (shared parameters once), so a module's parameters
    are contiguous and every choice of blocks tiles the vector.

    Args:
        model: The ``torch.nn.Module``.
        params: None: every trainable parameter (``requires_grad``); a regular expression (a string or a compiled
            pattern) matched at the start of each parameter's name (``re.match``, so a plain prefix such as
            ``"readout."`` selects a submodule's parameters); a submodule of ``model`` (its trainable parameters); or
            a list or tuple of these (the union).
        blocks: ``"parameter"``: one block per parameter tensor, named by the parameter; ``"module"``: one block
            per module that owns chosen parameters, named by the module (``"(root)"`` for the model's own);
            ``"all"``: one block.

    Attributes:
        names: The chosen parameters' names.
        parameters: The chosen ``torch.nn.Parameter`` objects, in the same order.
        shapes: Their shapes.
        sizes: Their numbers of elements.
        dim: Length of the flat vector.
        dtype: The parameters' (common) floating dtype.
        device: The parameters' (common) device.
        blocks: ``{name: slice}`` of the flat vector.

    Raises:
        TypeError: If ``model`` is not a module, or ``params`` holds something other than patterns and modules.
        ValueError: If a pattern is not a valid regular expression, a pattern or module selects no trainable
            parameter, a module is not a submodule of ``model``, ``blocks`` is unknown, or the chosen parameters
            differ in dtype or device or are not floating.

    Examples:
        >>> import torch
        >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1))
        >>> space = ParameterSpace(model, params="2.", blocks="module")
        >>> space.names, space.dim, space.blocks
        (['2.weight', '2.bias'], 4, {'2': slice(0, 4, None)})
        >>> [tuple(t.shape) for t in space.unflatten(torch.arange(4.0))]
        [(1, 3), (1,)]
    """

    def __init__(self, model: torch.nn.Module, params=None, blocks: str = "parameter") -> None:
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if blocks not in BLOCKS:
            raise ValueError(f"blocks: expected one of {BLOCKS}, got {blocks!r}")
        trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        chosen = _choose(model, trainable, params)
        if not chosen:
            raise ValueError("params: the model has no trainable parameter")
        self.names = [name for name, _ in chosen]
        self.parameters = [p for _, p in chosen]
        first = self.parameters[0]
        for name, p in chosen:
            if not p.dtype.is_floating_point or p.dtype != first.dtype or p.device != first.device:
                raise ValueError(f"params: expected floating parameters of one dtype on one device; {self.names[0]} "
                                 f"is {first.dtype} on {first.device}, {name} is {p.dtype} on {p.device}")
        self.dtype, self.device = first.dtype, first.device
        self.shapes = [p.shape for p in self.parameters]
        self.sizes = [p.numel() for p in self.parameters]
        self.dim = sum(self.sizes)
        self.blocks = self._blocks(blocks)

    def _blocks(self, kind: str) -> dict[str, slice]:
        if kind == "all":
            return {"all": slice(0, self.dim)}
        blocks: dict[str, slice] = {}
        start = 0
        for name, size in zip(self.names, self.sizes):
            key = name if kind == "parameter" else (name.rpartition(".")[0] or ROOT)
            begin = blocks[key].start if key in blocks else start  # a module's parameters are contiguous
            blocks[key] = slice(begin, start + size)
            start += size
        return blocks

    def flatten(self, tensors) -> torch.Tensor:
        """One flat vector from per-parameter tensors (None counts as zeros).

        Args:
            tensors: One tensor (or None) per chosen parameter, shaped like it.

        Returns:
            ``(dim,)`` in the parameters' dtype.
        """
        return torch.cat([torch.zeros(size, dtype=self.dtype, device=self.device) if t is None else t.reshape(-1)
                          for t, size in zip(tensors, self.sizes)])

    def unflatten(self, vector: torch.Tensor) -> list[torch.Tensor]:
        """Per-parameter views of a flat vector.

        Args:
            vector: ``(dim,)``.

        Returns:
            One tensor per chosen parameter, shaped like it (views of ``vector``).
        """
        return [piece.view(shape) for piece, shape in zip(vector.split(self.sizes), self.shapes)]

    def values(self) -> torch.Tensor:
        """The chosen parameters' current values.

        Returns:
            ``(dim,)``, a detached copy.
        """
        return self.flatten([p.detach() for p in self.parameters]).clone()

    @torch.no_grad()
    def assign(self, vector: torch.Tensor) -> None:
        """Set the chosen parameters to the values of a flat vector, in place.

        Args:
            vector: ``(dim,)`` in the parameters' dtype (e.g. :meth:`values`, moved along a direction).
        """
        for p, piece in zip(self.parameters, self.unflatten(vector)):
            p.copy_(piece)

    def gradient(self, value: torch.Tensor, create_graph: bool = False) -> list[torch.Tensor]:
        """The gradient of a 0-d tensor with respect to the chosen parameters.

        Args:
            value: A 0-d tensor computed from the parameters.
            create_graph: Keep the graph of the gradient (for a second derivative).

        Returns:
            One tensor per chosen parameter (zeros where ``value`` does not depend on it).
        """
        if not value.requires_grad:
            return [torch.zeros_like(p) for p in self.parameters]
        return list(torch.autograd.grad(value, self.parameters, create_graph=create_graph, allow_unused=True,
                                        materialize_grads=True))


def _choose(model: torch.nn.Module, trainable: list, params) -> list:
    """The trainable ``(name, parameter)`` pairs that ``params`` selects, in model order."""
    if params is None:
        return trainable
    items = list(params) if isinstance(params, (list, tuple)) else [params]
    if not items:
        raise ValueError("params: expected a pattern, a submodule or a non-empty list of them, got an empty list")
    modules = {id(m): name for name, m in model.named_modules()}
    selected: set[int] = set()
    for item in items:
        if isinstance(item, torch.nn.Module):
            if id(item) not in modules:
                raise ValueError(f"params: {type(item).__name__} is not a submodule of the model")
            own = {id(p) for p in item.parameters()}
            hits = {id(p) for _, p in trainable if id(p) in own}
            what = f"submodule {modules[id(item)] or ROOT!r}"
        elif isinstance(item, (str, re.Pattern)):
            try:
                pattern = re.compile(item)
            except re.error as err:
                raise ValueError(f"params: {item!r} is not a regular expression ({err})") from None
            hits = {id(p) for name, p in trainable if pattern.match(name)}
            what = f"pattern {pattern.pattern!r}"
        else:
            raise TypeError(f"params: expected None, a name pattern (str), a submodule or a list of them, got "
                            f"{type(item).__name__}")
        if not hits:
            names = [name for name, _ in trainable]
            raise ValueError(f"params: {what} selects no trainable parameter (trainable: {names[:8]}"
                             f"{' ...' if len(names) > 8 else ''})")
        selected |= hits
    return [(name, p) for name, p in trainable if id(p) in selected]


class ParameterOperator(CurvatureOperator):
    """A curvature operator on chosen parameters of a model: the base of the operators of its loss.

    Subclasses implement :meth:`_matmat` (``_matvec`` is its one-column case).

    Args:
        model: The ``torch.nn.Module``.
        params: Which parameters (see :class:`ParameterSpace`); None: all trainable ones.
        blocks: ``"parameter"``, ``"module"`` or ``"all"`` (see :class:`ParameterSpace`).

    Attributes:
        model: The model.
        space: The :class:`ParameterSpace` (names, parameters, flat-vector conversions).

    Raises:
        TypeError: If ``model`` is not a module or ``params`` has the wrong type.
        ValueError: If ``params`` or ``blocks`` select nothing valid (see :class:`ParameterSpace`).
    """

    def __init__(self, model: torch.nn.Module, params=None, blocks: str = "parameter") -> None:
        self.model = model
        self.space = ParameterSpace(model, params, blocks)
        super().__init__(self.space.dim, self.space.dtype, self.space.device, self.space.blocks)

    def _matvec(self, v: torch.Tensor) -> torch.Tensor:
        return self._matmat(v.unsqueeze(1)).squeeze(1)

    def check_deterministic(self, rtol: float | None = None, seed: int = 0) -> float:
        """Apply the operator twice to the same random vector and check that the products agree.

        Dropout, random frames or augmentations, a shuffling loader or batch statistics change the operator between
        products, which breaks Lanczos and every other estimator; run this once before them.

        Args:
            rtol: Largest allowed ``|A v - A v'| / |A v|``; None: the square root of the dtype's machine epsilon
                (1.5e-8 in float64, 3.5e-4 in float32: above the rounding of non-deterministic GPU sums, far below
                what randomness gives).
            seed: Seed of the standard normal vector.

        Returns:
            The relative difference of the two products.

        Raises:
            RuntimeError: If it is larger than ``rtol``.
        """
        tolerance = torch.finfo(self.dtype).eps ** 0.5 if rtol is None else rtol
        v = random_vectors(self, 1, "gaussian", torch.Generator().manual_seed(seed))[:, 0]
        first, second = self.matvec(v), self.matvec(v)
        scale = float(first.norm())
        difference = float((first - second).norm()) / (scale if scale > 0 else 1.0)
        if not difference <= tolerance:
            raise RuntimeError(
                f"{type(self).__name__}: two products of the same vector differ by {difference:.3g} (relative), more "
                f"than rtol={tolerance:.3g}: the loss is not deterministic (dropout that is not a torch.nn.Dropout "
                "module, random frames or augmentations, a shuffling or re-drawing loader?)")
        return difference

"""The tensor-product contract shared by every backend, and the backend registry.

Every backend is a ``torch.nn.Module`` subclass of :class:`TensorProduct`, built by
:func:`make_tensor_product` and called as ``tp(x1, x2, weight)`` with e3nn's flat ``mul x ir`` layout at the
boundary. The coupling is channel-wise: a path joins entry ``mul x ir1`` of ``x1`` with entry ``1 x ir2`` of
``x2`` into an output entry ``mul x ir_out`` ("uvu", the message-passing convolution), or joins equal
multiplicities ``mul x ir1``, ``mul x ir2`` channel by channel ("uuu"). See shared/ARCHITECTURE.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch
from e3nn import o3

from ..utils import TableModule


class Path(NamedTuple):
    """One coupling (l1, p1) x (l2, p2) -> (l3, p3) between entries of the two inputs and the output.

    Attributes:
        l1: Degree of the x1 entry.
        p1: Parity of the x1 entry (1 even, -1 odd).
        l2: Degree of the x2 entry.
        p2: Parity of the x2 entry.
        l3: Degree of the output entry.
        p3: Parity of the output entry, ``p1 * p2``.
        i_in1: Index of the entry in ``irreps_in1``.
        i_in2: Index of the entry in ``irreps_in2``.
        i_out: Index of the entry in ``irreps_out``.
        mode: ``"uvu"`` (x2 has one channel) or ``"uuu"`` (channel by channel).
    """

    l1: int
    p1: int
    l2: int
    p2: int
    l3: int
    p3: int
    i_in1: int
    i_in2: int
    i_out: int
    mode: str  # "uvu" (x2 has one channel) or "uuu" (channel by channel)

    @property
    def gaunt_allowed(self) -> bool:
        """Whether a Gaunt-type product (an S^2 function product) can realize it: l1 + l2 + l3 even."""
        return (self.l1 + self.l2 + self.l3) % 2 == 0


def as_irreps(value, name: str) -> o3.Irreps:
    """``value`` as e3nn Irreps, with an error naming the argument otherwise.

    Args:
        value: Irreps string, list, tuple, e3nn Irrep or Irreps.
        name: Name of the argument in error messages.

    Returns:
        ``o3.Irreps``.

    Raises:
        TypeError: If ``value`` is of another type.
        ValueError: If e3nn cannot parse it.
    """
    if isinstance(value, o3.Irreps):
        return value
    if not isinstance(value, (str, list, tuple, o3.Irrep)):
        raise TypeError(f"{name}: expected an irreps string such as '32x0e+32x1o' or e3nn Irreps, "
                        f"got {type(value).__name__}")
    try:
        return o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"{name}: expected an irreps string such as '32x0e+32x1o', got {value!r} ({err})") from None


def coupling_paths(irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_out: o3.Irreps) -> list[Path]:
    """All channel-wise couplings between the entries that O(3) allows.

    A path joins entries with ``ir_out`` in ``ir1 x ir2`` (triangle and parity), ``mul_out == mul1`` and either
    ``mul2 == 1`` ('uvu') or ``mul2 == mul1`` ('uuu').

    Args:
        irreps_in1: Irreps of x1.
        irreps_in2: Irreps of x2.
        irreps_out: Irreps of the output.

    Returns:
        The :class:`Path` list, ordered by x1 entry, x2 entry, output entry.

    Examples:
        >>> from e3nn import o3
        >>> from equilib.ops import coupling_paths
        >>> paths = coupling_paths(o3.Irreps("4x0e+4x1o"), o3.Irreps("0e+1o"), o3.Irreps("4x0e+4x1o+4x1e"))
        >>> [(p.l1, p.l2, p.l3, p.gaunt_allowed) for p in paths]  # 1o x 1o -> 1e: the cross product
        [(0, 0, 0, True), (0, 1, 1, True), (1, 0, 1, True), (1, 1, 0, True), (1, 1, 1, False)]
    """
    paths = []
    for i1, (mul1, ir1) in enumerate(irreps_in1):
        for i2, (mul2, ir2) in enumerate(irreps_in2):
            if mul2 == 1:
                mode = "uvu"
            elif mul2 == mul1:
                mode = "uuu"
            else:
                continue
            for io, (mul_out, ir_out) in enumerate(irreps_out):
                if mul1 == 0 or mul_out != mul1 or ir_out not in ir1 * ir2:
                    continue
                paths.append(Path(ir1.l, ir1.p, ir2.l, ir2.p, ir_out.l, ir_out.p, i1, i2, io, mode))
    return paths


def check_outputs_reached(
    backend: str, irreps_out: o3.Irreps, all_paths: list[Path], realized: list[Path], why_missing: str
) -> None:
    """Check that every output entry is reached by a realized path.

    Args:
        backend: Name of the backend in the message.
        irreps_out: Irreps of the output.
        all_paths: Every O(3)-allowed path (:func:`coupling_paths`).
        realized: The paths the backend realizes.
        why_missing: Why the other paths are not realized, for the message.

    Raises:
        ValueError: Naming, for each unreached output entry, the paths that would reach it (or that none does).
    """
    problems = []
    for io, (mul, ir) in enumerate(irreps_out):
        if mul == 0 or any(p.i_out == io for p in realized):
            continue
        lost = [p for p in all_paths if p.i_out == io]
        if lost:
            names = ", ".join(f"{p.l1}{_pc(p.p1)} x {p.l2}{_pc(p.p2)} -> {p.l3}{_pc(p.p3)}" for p in lost)
            problems.append(f"{mul}x{ir} (entry {io}) is reached only by {names}, which {why_missing}")
        else:
            problems.append(
                f"{mul}x{ir} (entry {io}) is reached by no coupling of the inputs: a path needs ir_out in ir1 x ir2 "
                "and multiplicities mul2 == 1 and mul_out == mul1 ('uvu') or mul1 == mul2 == mul_out ('uuu')"
            )
    if problems:
        raise ValueError(f"irreps_out: backend {backend!r} cannot produce " + "; ".join(problems))


def _pc(p: int) -> str:
    return "e" if p == 1 else "o"


class TensorProduct(TableModule):
    """Base class of every tensor-product backend: argument checks, batching and introspection.

    ``tp(x1, x2, weight)`` computes the channel-wise product in e3nn's flat ``mul x ir`` layout; ``tp.paths`` are the
    realized :class:`Path` s, ``tp.weight_numel`` the size of one sample's weights and ``tp.exact`` whether the op
    is exactly equivariant. Subclasses set ``weight_numel``, ``paths`` and ``irreps_out`` and implement
    ``_forward(x1, x2, weight)`` on flat inputs ``(batch, dim)`` with ``weight`` None, ``(weight_numel,)`` or
    ``(batch, weight_numel)``. A subclass that sets ``_row_size`` (elements per sample of its largest intermediate)
    gets its samples in chunks on a CPU (``_forward_chunks``). Precomputed floating tables are registered with
    ``register_table`` (float64 sources), so ``.to(dtype)`` gives the tables of ``dtype=``.

    Args:
        irreps_in1: Irreps of x1 (string or e3nn Irreps).
        irreps_in2: Irreps of x2.
        irreps_out: Irreps of the output.
        shared_weights: Hold one set of weights as a parameter (``tp.weight``) instead of taking them per call.

    Raises:
        TypeError: If an irreps argument is not irreps-like or ``shared_weights`` is not a bool.
        ValueError: If an irreps string cannot be parsed.
    """

    backend: str = ""
    exact: bool = True
    CHUNK_BYTES = 4 * 2**20
    _row_size = 0

    def __init__(self, irreps_in1, irreps_in2, irreps_out, *, shared_weights: bool = False) -> None:
        super().__init__()
        self.irreps_in1 = as_irreps(irreps_in1, "irreps_in1")
        self.irreps_in2 = as_irreps(irreps_in2, "irreps_in2")
        self.irreps_out = as_irreps(irreps_out, "irreps_out")
        if not isinstance(shared_weights, bool):
            raise TypeError(f"shared_weights: expected a bool, got {shared_weights!r}")
        self.shared_weights = shared_weights
        # plain ints for the hot path (torch.compile cannot guard on e3nn's Irrep objects)
        self._dims = (self.irreps_in1.dim, self.irreps_in2.dim, self.irreps_out.dim)
        self.paths: tuple[Path, ...] = ()
        self.weight_numel = 0

    def _init_shared_weight(self, dtype: torch.dtype) -> None:
        """Create the internal weights (one set for every sample) when ``shared_weights=True``."""
        if self.shared_weights and self.weight_numel > 0:
            self.weight = torch.nn.Parameter(torch.randn(self.weight_numel, dtype=dtype))
        else:
            self.register_parameter("weight", None)

    def _module_dtype(self) -> torch.dtype | None:
        for t in list(self.buffers()) + list(self.parameters()):
            if t.is_floating_point():
                return t.dtype
        return None

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The tensor product of ``x1`` and ``x2`` with ``weight``, batched by broadcasting.

        Args:
            x1: (..., irreps_in1.dim) features in e3nn's flat layout.
            x2: (..., irreps_in2.dim) features.
            weight: (..., weight_numel) per-sample weights or (weight_numel,) for every sample; None when the op has no
                weights or holds them (``shared_weights=True``).

        Returns:
            (..., irreps_out.dim), the batch shape being the broadcast of the inputs' batch shapes.

        Raises:
            TypeError: If ``x1``, ``x2`` or ``weight`` is not a tensor.
            ValueError: If a last axis does not match the irreps or ``weight_numel``, the dtypes differ from each other
                or from the module's, ``weight`` is missing or given against ``shared_weights``, or the batch shapes do
                not broadcast.

        Examples:
            >>> import torch
            >>> from equilib.ops import make_tensor_product
            >>> tp = make_tensor_product("cg", "4x0e+4x1o", "0e+1o", "4x0e+4x1o+4x1e", dtype=torch.float64)
            >>> g = torch.Generator().manual_seed(0)
            >>> x1 = torch.randn(10, tp.irreps_in1.dim, generator=g, dtype=torch.float64)
            >>> x2 = torch.randn(10, tp.irreps_in2.dim, generator=g, dtype=torch.float64)
            >>> tp(x1, x2, torch.randn(10, tp.weight_numel, generator=g, dtype=torch.float64)).shape
            torch.Size([10, 28])
            >>> tp(x1[0], x2, torch.ones(tp.weight_numel, dtype=torch.float64)).shape  # one x1 for every x2
            torch.Size([10, 28])
        """
        for name, x, dim in (("x1", x1, self._dims[0]), ("x2", x2, self._dims[1])):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
            if x.dim() == 0 or x.shape[-1] != dim:
                irreps = self.irreps_in1 if name == "x1" else self.irreps_in2
                raise ValueError(f"{name}: expected shape (..., {dim}) for irreps {irreps}, got {tuple(x.shape)}")
        if x1.dtype != x2.dtype or not x1.is_floating_point():
            raise ValueError(f"x1, x2: expected one floating dtype, got {x1.dtype} and {x2.dtype}")
        dtype = self._module_dtype()
        if dtype is not None and x1.dtype != dtype:
            raise ValueError(
                f"x1: dtype {x1.dtype} does not match the module's {dtype}; convert the module with .to({x1.dtype})"
            )
        shapes = [x1.shape[:-1], x2.shape[:-1]]
        weight = self._check_weight(weight, x1.dtype)
        if weight is not None and weight.dim() > 1:
            shapes.append(weight.shape[:-1])
        try:
            batch = torch.broadcast_shapes(*shapes)
        except RuntimeError:
            raise ValueError(
                "x1, x2, weight: batch shapes " + ", ".join(str(tuple(s)) for s in shapes) + " do not broadcast"
            ) from None
        n = batch.numel()
        x1 = x1.expand(batch + x1.shape[-1:]).reshape(n, x1.shape[-1])
        x2 = x2.expand(batch + x2.shape[-1:]).reshape(n, x2.shape[-1])
        if weight is not None and weight.dim() > 1:
            weight = weight.expand(batch + weight.shape[-1:]).reshape(n, weight.shape[-1])
        out = self._forward_chunks(x1, x2, weight)
        return out.reshape(batch + (self._dims[2],))

    def convolution(self, x: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None, source: torch.Tensor,
                    target: torch.Tensor) -> torch.Tensor:
        """Message passing with this product: ``out[i] = sum_(e: target[e] = i) tp(x[source[e]], x2[e], weight[e])``.

        The default gathers, calls the op and sums; a backend may compute the same without making the per-edge inputs
        or outputs (grid's ``blocks``).

        Args:
            x: (nodes, irreps_in1.dim) node features.
            x2: (edges, irreps_in2.dim) edge features (e.g. spherical harmonics of the edge vectors).
            weight: (edges, weight_numel) per-edge weights, or as for ``tp(...)``: (weight_numel,), or None.
            source: (edges,) torch.long node each message is read from.
            target: (edges,) torch.long node each message is summed into.

        Returns:
            (nodes, irreps_out.dim); nodes without incoming edges get zeros.

        Raises:
            ValueError: If ``x`` or ``x2`` has the wrong shape, ``source`` or ``target`` is not a torch.long tensor of
                one node per edge, or ``weight`` has a row count other than the number of edges; and as for ``tp(...)``.

        Examples:
            >>> import torch
            >>> from equilib.ops import make_tensor_product
            >>> tp = make_tensor_product("cg", "4x0e+4x1o", "0e+1o", "4x0e+4x1o", dtype=torch.float64)
            >>> g = torch.Generator().manual_seed(0)
            >>> x = torch.randn(3, tp.irreps_in1.dim, generator=g, dtype=torch.float64)
            >>> source, target = torch.tensor([0, 1, 2, 2]), torch.tensor([1, 0, 0, 1])
            >>> x2 = torch.randn(4, tp.irreps_in2.dim, generator=g, dtype=torch.float64)
            >>> w = torch.randn(4, tp.weight_numel, generator=g, dtype=torch.float64)
            >>> out = tp.convolution(x, x2, w, source, target)
            >>> out.shape, bool(torch.allclose(out, torch.zeros_like(out).index_add(0, target, tp(x[source], x2, w))))
            (torch.Size([3, 16]), True)
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != self._dims[0]:
            raise ValueError(f"x: expected node features of shape (nodes, {self._dims[0]}) for irreps "
                             f"{self.irreps_in1}, got {tuple(getattr(x, 'shape', ()))}")
        if not isinstance(x2, torch.Tensor) or x2.dim() != 2 or x2.shape[1] != self._dims[1]:
            raise ValueError(f"x2: expected edge features of shape (edges, {self._dims[1]}) for irreps "
                             f"{self.irreps_in2}, got {tuple(getattr(x2, 'shape', ()))}")
        for name, index in (("source", source), ("target", target)):
            if not isinstance(index, torch.Tensor) or index.dtype != torch.long or index.shape != x2.shape[:1]:
                raise ValueError(f"{name}: expected a torch.long tensor of shape ({x2.shape[0]},) (one node per edge), "
                                 f"got {getattr(index, 'dtype', type(index).__name__)} of shape "
                                 f"{tuple(getattr(index, 'shape', ()))}")
        if weight is not None and weight.dim() == 2 and weight.shape[0] != x2.shape[0]:
            raise ValueError(f"weight: expected one row per edge, ({x2.shape[0]}, {self.weight_numel}), "
                             f"got {tuple(weight.shape)}")
        return self._convolution(x, x2, weight, source, target)

    def _convolution(self, x, x2, weight, source, target) -> torch.Tensor:
        messages = self(x.index_select(0, source), x2, weight)  # index_select: its backward is an index_add
        return messages.new_zeros(x.shape[0], messages.shape[1]).index_add(0, target, messages)

    def _forward_chunks(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        """``_forward`` in chunks of samples on a CPU.

        On a CPU, each chunk's largest intermediate is about ``CHUNK_BYTES``, so that the intermediates stay in cache
        from one step to the next. On other devices, and for ops without ``_row_size``, one piece.
        """
        n = x1.shape[0]
        if x1.device.type != "cpu" or not self._row_size:
            return self._forward(x1, x2, weight)
        rows = max(1, self.CHUNK_BYTES // (self._row_size * x1.element_size()))
        if rows >= n:
            return self._forward(x1, x2, weight)
        # split, not slicing: the backward of a split concatenates the chunks' gradients once
        weights = weight.split(rows) if weight is not None and weight.dim() == 2 else [weight] * -(-n // rows)
        return torch.cat([self._forward(*chunk) for chunk in zip(x1.split(rows), x2.split(rows), weights)])

    def _check_weight(self, weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
        if self.weight_numel == 0:
            if weight is not None and weight.shape[-1] != 0:
                raise ValueError(f"weight: this tensor product has no weights, got shape {tuple(weight.shape)}")
            return None
        if self.shared_weights:
            if weight is not None:
                raise ValueError("weight: this tensor product has internal weights (shared_weights=True); pass none")
            return self.weight
        if weight is None:
            raise ValueError(f"weight: expected a tensor of shape (..., {self.weight_numel}), got None")
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"weight: expected a torch.Tensor, got {type(weight).__name__}")
        if weight.dim() == 0 or weight.shape[-1] != self.weight_numel:
            raise ValueError(f"weight: expected shape (..., {self.weight_numel}), got {tuple(weight.shape)}")
        if weight.dtype != dtype:
            raise ValueError(f"weight: expected dtype {dtype} like x1, got {weight.dtype}")
        return weight

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:  # one line: backend, irreps, paths (the tables inside are not interesting)
        return f"{type(self).__name__}({self.extra_repr()})"

    def extra_repr(self) -> str:
        """The one-line description of the op (``repr(tp)``).

        Returns:
            Backend, irreps, number of paths, ``weight_numel`` and ``exact``.
        """
        return (
            f"backend={self.backend!r}, {self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
            f"paths={len(self.paths)}, weight_numel={self.weight_numel}, exact={self.exact}"
        )


_BACKENDS: dict[str, type[TensorProduct]] = {}


def register_backend(name: str) -> Callable[[type[TensorProduct]], type[TensorProduct]]:
    """Class decorator: make a :class:`TensorProduct` subclass available to :func:`make_tensor_product` as ``name``.

    Args:
        name: The backend's name; it is also set as the class's ``backend``.

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        ValueError: When the decorator is applied and ``name`` is already registered.
    """

    def decorate(cls: type[TensorProduct]) -> type[TensorProduct]:
        if name in _BACKENDS:
            raise ValueError(f"name: backend {name!r} is already registered")
        cls.backend = name
        _BACKENDS[name] = cls
        return cls

    return decorate


def available_backends() -> list[str]:
    """Names of the registered tensor-product backends.

    Returns:
        The sorted list of names.

    Examples:
        >>> from equilib.ops import available_backends
        >>> available_backends()
        ['cg', 'cp', 'gaunt', 'grid']
    """
    return sorted(_BACKENDS)


def make_tensor_product(backend: str, irreps_in1, irreps_in2, irreps_out, **options) -> TensorProduct:
    """Build the tensor product ``backend`` for the given irreps.

    Args:
        backend: A registered backend: ``"cg"``, ``"grid"``, ``"gaunt"`` or ``"cp"``.
        irreps_in1: Irreps of x1 (string or e3nn Irreps).
        irreps_in2: Irreps of x2.
        irreps_out: Irreps of the output.
        **options: The backend's options (``dtype``, ``shared_weights``, ``transform``, ``rank``, ...).

    Returns:
        The :class:`TensorProduct` module.

    Raises:
        ValueError: If ``backend`` is not registered; the backend's own errors otherwise (e.g. an output it cannot
            reach).
        TypeError: If an option is unknown to the backend or of the wrong type.

    Examples:
        >>> from equilib.ops import make_tensor_product
        >>> tp = make_tensor_product("grid", "8x0e+8x1o", "0e+1o", "8x0e+8x1o")
        >>> tp.weight_numel, tp.exact, tp.grid_shape
        (32, True, (2, 4))
        >>> make_tensor_product("grid", "4x1o", "1o", "4x1e")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
            ...
        ValueError: irreps_out: backend 'grid' cannot produce 4x1e (entry 0) is reached only by 1o x 1o -> 1e, ...
    """
    if backend not in _BACKENDS:
        raise ValueError(f"backend: unknown tensor-product backend {backend!r}; available: {available_backends()}")
    return _BACKENDS[backend](irreps_in1, irreps_in2, irreps_out, **options)

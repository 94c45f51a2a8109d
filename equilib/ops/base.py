"""The tensor-product contract shared by every backend, and the backend registry.

Every backend is a ``torch.nn.Module`` subclass of :class:`TensorProduct`, built by
:func:`make_tensor_product` and called as ``tp(x1, x2, weight)`` with e3nn's flat ``mul x ir`` layout at the
boundary. The coupling is channel-wise: a path joins entry ``mul x ir1`` of ``x1`` with entry ``1 x ir2`` of
``x2`` into an output entry ``mul x ir_out`` ("uvu", the message-passing convolution), or joins equal
multiplicities ``mul x ir1``, ``mul x ir2`` channel by channel ("uuu"). See shared/ARCHITECTURE.md.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import torch
from e3nn import o3

from ..utils import TableModule


class Path(NamedTuple):
    """One coupling (l1, p1) x (l2, p2) -> (l3, p3) between entries ``i_in1``, ``i_in2``, ``i_out``."""

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
    """``value`` as e3nn Irreps; a clear error naming the argument otherwise."""
    if isinstance(value, o3.Irreps):
        return value
    if not isinstance(value, (str, list, tuple, o3.Irrep)):
        raise TypeError(f"{name}: expected an irreps string such as '32x0e+32x1o' or e3nn Irreps, got {type(value).__name__}")
    try:
        return o3.Irreps(value)
    except (ValueError, AssertionError, TypeError) as err:
        raise ValueError(f"{name}: expected an irreps string such as '32x0e+32x1o', got {value!r} ({err})") from None


def coupling_paths(irreps_in1: o3.Irreps, irreps_in2: o3.Irreps, irreps_out: o3.Irreps) -> list[Path]:
    """All channel-wise couplings allowed by O(3): triangle, parity, and compatible multiplicities."""
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
    """Raise a ValueError for every output entry that no realized path reaches, naming the missing paths."""
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

    Subclasses set ``weight_numel``, ``paths``, ``irreps_out`` and implement ``_forward(x1, x2, weight)`` on
    flat 2D inputs ``(batch, dim)`` with ``weight`` either ``None``, ``(weight_numel,)`` or
    ``(batch, weight_numel)``. A subclass that sets ``_row_size`` (elements per sample of its largest
    intermediate) gets its samples in chunks on a CPU, see ``_forward_chunks``. Precomputed floating tables are
    registered with ``register_table`` (float64 sources), so ``.to(dtype)`` gives the tables of ``dtype=``.
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
        """Message passing with this product: ``out[i] = sum over edges e with target[e] = i of
        tp(x[source[e]], x2[e], weight[e])``.

        ``x`` (nodes, irreps_in1.dim) node features; ``x2`` (edges, irreps_in2.dim) and ``weight`` (edges,
        weight_numel) per edge (or as for ``tp(...)``: (weight_numel,), None with shared weights); ``source`` and
        ``target`` (edges,) node indices. Returns (nodes, irreps_out.dim). The default gathers, calls the op and sums;
        a backend may compute the same without making the per-edge inputs or outputs (grid's ``blocks``).
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
        """On a CPU, ``_forward`` on chunks of samples whose largest intermediate is about ``CHUNK_BYTES``, so that
        the intermediates stay in cache from one step to the next (scripts/bench_tp.py --chunk-mib, 2 cores, L = 6:
        gaunt 1.8x, cp 2.0x, grid-dense 1.7x faster than in one piece). On other devices, and for ops without
        ``_row_size``, one piece."""
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
        return (
            f"backend={self.backend!r}, {self.irreps_in1} x {self.irreps_in2} -> {self.irreps_out}, "
            f"paths={len(self.paths)}, weight_numel={self.weight_numel}, exact={self.exact}"
        )


_BACKENDS: dict[str, type[TensorProduct]] = {}


def register_backend(name: str) -> Callable[[type[TensorProduct]], type[TensorProduct]]:
    """Class decorator: make a :class:`TensorProduct` subclass available to :func:`make_tensor_product`."""

    def decorate(cls: type[TensorProduct]) -> type[TensorProduct]:
        if name in _BACKENDS:
            raise ValueError(f"name: backend {name!r} is already registered")
        cls.backend = name
        _BACKENDS[name] = cls
        return cls

    return decorate


def available_backends() -> list[str]:
    """Names of the registered tensor-product backends."""
    return sorted(_BACKENDS)


def make_tensor_product(backend: str, irreps_in1, irreps_in2, irreps_out, **options) -> TensorProduct:
    """Build the tensor product ``backend`` ('cg', 'grid', ...) for the given irreps (strings or e3nn Irreps)."""
    if backend not in _BACKENDS:
        raise ValueError(f"backend: unknown tensor-product backend {backend!r}; available: {available_backends()}")
    return _BACKENDS[backend](irreps_in1, irreps_in2, irreps_out, **options)

"""Gaunt products as products of signals on the sphere: the machinery the ``grid`` and ``gaunt`` backends share.

Xie et al., "The Price of Freedom" (ICML 2025) and Luo et al., "Enabling Efficient Equivariant Operations in the
Fourier Basis via Gaunt Tensor Products" (ICLR 2024): the Gaunt product of two inputs is the product of the functions
on S^2 whose real SH coefficients they are, projected back onto the output degrees. The two backends differ only in
how a function is represented for the product (values on a quadrature grid, or 2D Fourier coefficients on the
torus); everything else is here.

Signals and parity. An entry ``mul x (l, p)`` is a function on S^2 of "S^2 parity" ``p (-1)^l``; entries of one
input with the same multiplicity and S^2 parity form one signal (:class:`Signal`). The product of signals of S^2
parities p and q feeds the outputs of S^2 parity p q; :class:`Plan` says which signals meet into which output group.
Paths with l1 + l2 + l3 odd (e.g. the cross product 1o x 1o -> 1e) are not realized; asking for an output that only
such paths reach is an error.

Weights act per (channel, l), never per path: ``weighted`` picks among ``"in1"`` (each in1 entry that takes part,
``mul`` weights), ``"in2"`` (each in2 entry that takes part, one weight per channel of x1; x2 then becomes a
multi-channel signal) and ``"out"`` (each output entry, ``mul`` weights). The weight vector is these blocks in
the order in1, in2, out, each entry-major then channel. :meth:`SphereSignalProduct.path_weights` decodes it into
per-path weights. Couplings: 'uvu' (x2 entries of multiplicity 1) and 'uuu' (x2 multiplicity equal to x1's).

Normalisation (``normalization``): ``"none"`` is the plain Gaunt product; ``"component"`` (default) multiplies each
output degree by a constant (``tp.output_scale`` per output entry) so that unit-variance inputs give unit-variance
outputs, as e3nn's component normalisation does for the CG product. A constant per output changes no path's
weight relative to another path into the same output.

The interface. A backend is a :class:`SphereSignalProduct` whose ``_make_tables`` returns :class:`SignalTables`:

- ``shape``: the sampling grid (reported as ``tp.grid_shape``);
- ``layout(ls, transform)``: the columns, (l, m) or None for padding, of one channel of a signal with degrees ``ls``
  (:func:`signal_layout`: l-major, or m-major for per-order tables);
- ``gather(...)``: a module taking a flat input (and the weights) to the signal's coefficients in that layout, with
  its (channel, l) weights applied, shaped as the analysis reads them;
- ``analysis_module(ls, transform, dtype)``: coefficients -> the representation the product works in;
- ``synthesis_module(ls, transform, scale, dtype)``: a product in that representation -> coefficients
  (batch, channels, layout columns), each degree l times ``scale[l]``; both None when the product works on the
  coefficients themselves;
- ``points(transform)``: values per channel of one analysed signal (for the size of chunks).

and implements ``_resolve_transform`` (checks the ``transform`` option and resolves ``"auto"``); ``_multiply`` (the
product of two analysed signals: pointwise by default) and ``_build`` (more modules) are optional.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np
import torch

from ..so3 import gaunt_w3j_factor
from ..utils import TableModule
from .base import TensorProduct, check_outputs_reached, coupling_paths

WEIGHTED = ("in1", "in2", "out")


@dataclass
class Signal:
    """Entries of one input with one multiplicity and one S^2 parity, at most one entry per degree."""

    mul: int
    s2_parity: int
    entries: dict[int, int] = field(default_factory=dict)  # l -> entry index

    @property
    def ls(self) -> list[int]:
        return sorted(self.entries)


def signals(irreps) -> list[Signal]:
    """The signals of an input, in order of first appearance."""
    found: list[Signal] = []
    for i, (mul, ir) in enumerate(irreps):
        parity = ir.p * (-1) ** ir.l
        home = next((s for s in found if s.mul == mul and s.s2_parity == parity and ir.l not in s.entries), None)
        if home is None:
            home = Signal(mul, parity)
            found.append(home)
        home.entries[ir.l] = i
    return found


def signal_dim(ls) -> int:
    """Dimension of one channel of a signal with degrees ``ls``."""
    return sum(2 * l + 1 for l in ls)


def signal_layout(ls: list[int], m_major: bool) -> list[tuple[int, int] | None]:
    """Columns of a signal with degrees ``ls``: (l, m) per column; None is padding. l-major and unpadded, or
    ``m_major``: m = -top..top, with every l of ``ls`` per m (padding where l < |m|)."""
    if not m_major:
        return [(l, m) for l in ls for m in range(-l, l + 1)]
    top = max(ls)
    return [(l, m) if l >= abs(m) else None for m in range(-top, top + 1) for l in ls]


@dataclass
class Plan:
    """Which signals meet, into which outputs: the structure of one Gaunt product, derived from the irreps."""

    signals1: list[Signal]
    signals2: list[Signal]
    groups: dict[tuple[int, int], list[tuple[int, int]]]  # (mul, S^2 parity) of outputs -> (signal1, signal2) pairs
    out_ls: dict[tuple[int, int], list[int]]
    degree: int  # L1 + L2 + Lout, what a quadrature must integrate exactly
    lmax: int

    @classmethod
    def build(cls, irreps_in1, irreps_in2, irreps_out, paths: list) -> Plan:
        sig1, sig2 = signals(irreps_in1), signals(irreps_in2)
        groups: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for p in paths:
            mul, ir = irreps_out[p.i_out]
            a = next(k for k, s in enumerate(sig1) if s.entries.get(p.l1) == p.i_in1)
            b = next(k for k, s in enumerate(sig2) if s.entries.get(p.l2) == p.i_in2)
            pairs = groups.setdefault((mul, ir.p * (-1) ** ir.l), [])
            if (a, b) not in pairs:
                pairs.append((a, b))
        out_ls = {
            key: sorted({ir.l for mul, ir in irreps_out if (mul, ir.p * (-1) ** ir.l) == key}) for key in groups
        }
        degree = max(
            max(max(sig1[a].ls) + max(sig2[b].ls) for a, b in pairs) + max(out_ls[key]) for key, pairs in groups.items()
        )
        lmax = max(max(sig1[a].ls + sig2[b].ls + out_ls[key]) for key, pairs in groups.items() for a, b in pairs)
        return cls(sig1, sig2, groups, out_ls, degree, lmax)

    def used(self, which: int) -> list[int]:
        """Signals of input ``which`` (0: x1, 1: x2) that take part."""
        return sorted({pair[which] for pairs in self.groups.values() for pair in pairs})


def gather_indices(irreps, signal: Signal, layout, channels: int, weight_base: dict[int, int],
                   channels_inner: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices into a flat input and into the weights giving a (channels, columns) view of ``signal``, or with
    ``channels_inner`` a (columns, channels) view. ``weight_base``: offset of each entry's channel weights."""
    starts = np.cumsum([0] + [mul * ir.dim for mul, ir in irreps])
    order = ([(u, col) for col in layout for u in range(channels)] if channels_inner
             else [(u, col) for u in range(channels) for col in layout])
    src, wsrc = [], []
    for u, col in order:
        if col is None:  # padding: any valid index, the tables are zero there
            src.append(0)
            wsrc.append(0)
            continue
        l, m = col
        i = signal.entries[l]
        src.append(starts[i] + (u % signal.mul) * (2 * l + 1) + l + m)
        wsrc.append(weight_base.get(i, 0) + u)
    return torch.tensor(src, dtype=torch.long), torch.tensor(wsrc, dtype=torch.long)


class TableSet(TableModule):
    """Holds float64-computed tables (None: absent) as tables in the module's dtype."""

    def __init__(self, dtype: torch.dtype, **tables: np.ndarray | None) -> None:
        super().__init__()
        for name, t in tables.items():
            self.register_table(name, t, dtype)


class SignalTables(ABC):
    """How a backend represents signals for the product (module docs). ``transform`` is the resolved strategy."""

    shape: tuple[int, int]

    @abstractmethod
    def layout(self, ls: list[int], transform: str) -> list[tuple[int, int] | None]:
        """Columns of one channel of a signal with degrees ``ls``, as :func:`signal_layout` gives them."""

    @abstractmethod
    def gather(self, irreps, signal: Signal, layout, weight_channels: int, weight_base: dict[int, int],
               weighted: bool) -> torch.nn.Module:
        """``module(x, weight)``: the flat input's ``signal`` in ``layout``, times its (channel, l) weights when
        ``weighted`` (``weight_channels`` per entry from ``weight_base``), shaped as the analysis reads it."""

    @abstractmethod
    def analysis_module(self, ls: list[int], transform: str, dtype: torch.dtype) -> torch.nn.Module | None:
        """Gathered coefficients -> the product's representation; None: the product takes the coefficients."""

    @abstractmethod
    def synthesis_module(self, ls: list[int], transform: str, scale: dict[int, float],
                         dtype: torch.dtype) -> torch.nn.Module | None:
        """A product -> (batch, channels, layout columns), degree l times ``scale[l]``; None with no analysis."""

    @abstractmethod
    def points(self, transform: str) -> int:
        """Values per channel of one analysed signal."""


class SphereSignalProduct(TensorProduct):
    """A Gaunt product of signals on S^2: options, paths, weights, normalisation, gathering and scattering.

    The shared base of the ``grid`` and ``gaunt`` backends (module docs): it realizes the paths of
    :func:`~equilib.ops.coupling_paths` with l1 + l2 + l3 even (``tp.paths``; the others are ``tp.missing_paths``).
    Backends set ``TRANSFORMS`` and implement ``_make_tables`` and ``_resolve_transform``.

    Args:
        irreps_in1: Irreps of x1 (string or e3nn Irreps).
        irreps_in2: Irreps of x2; entries of multiplicity 1 ('uvu') or equal to x1's ('uuu').
        irreps_out: Irreps of the output; every entry must be reached by a path with l1 + l2 + l3 even.
        shared_weights: Hold one set of weights as a parameter (``tp.weight``) instead of taking them per call.
        weighted: Which weight blocks exist, among ``"in1"`` (per x1 entry and channel), ``"in2"`` (per x2 entry and
            x1 channel) and ``"out"`` (per output entry and channel); ``()`` for an unweighted product.
        transform: The strategy, one of ``TRANSFORMS`` (``"auto"`` picks one from the irreps).
        normalization: ``"component"`` (unit-variance outputs for unit-variance inputs) or ``"none"`` (the plain Gaunt
            product).
        dtype: Dtype of the tables and weights; default torch's default dtype.

    Raises:
        ValueError: If ``normalization``, ``weighted`` or ``transform`` is invalid for the irreps, an output entry
            is reached only by paths with l1 + l2 + l3 odd (or by none), or ``"in2"`` is weighted while the x1
            entries that take part have different multiplicities.
        TypeError: If an irreps argument is not irreps-like or ``shared_weights`` is not a bool.
    """

    TRANSFORMS: tuple[str, ...] = ()

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        *,
        shared_weights: bool = False,
        weighted: tuple[str, ...] | list[str] = ("in1", "out"),
        transform: str = "auto",
        normalization: str = "component",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(irreps_in1, irreps_in2, irreps_out, shared_weights=shared_weights)
        if normalization not in ("component", "none"):
            raise ValueError(f"normalization: expected 'component' or 'none', got {normalization!r}")
        self.normalization = normalization
        weighted = tuple(weighted)
        if any(w not in WEIGHTED for w in weighted) or len(set(weighted)) != len(weighted):
            raise ValueError(f"weighted: expected distinct names among {WEIGHTED}, got {weighted!r}")
        if transform not in self.TRANSFORMS:
            raise ValueError(f"transform: expected one of {self.TRANSFORMS}, got {transform!r}")
        dtype = dtype or torch.get_default_dtype()
        self.weighted = weighted

        all_paths = coupling_paths(self.irreps_in1, self.irreps_in2, self.irreps_out)
        realized = [p for p in all_paths if p.gaunt_allowed]
        check_outputs_reached(
            self.backend, self.irreps_out, all_paths, realized,
            "have l1 + l2 + l3 odd: a Gaunt (S^2 function) product realizes only l1 + l2 + l3 even; use backend 'cg'",
        )
        self.paths = tuple(realized)
        self.missing_paths = tuple(p for p in all_paths if not p.gaunt_allowed)
        plan = Plan.build(self.irreps_in1, self.irreps_in2, self.irreps_out, realized)
        tables = self._make_tables(plan)
        self.grid_shape = tables.shape
        self.transform = self._resolve_transform(plan, tables, transform)

        channels = sorted({self.irreps_in1[p.i_in1].mul for p in realized})
        if "in2" in weighted and len(channels) != 1:
            raise ValueError("weighted: 'in2' needs one multiplicity across the entries of irreps_in1 that take part, "
                             f"got {channels}")
        weight_bases = self._weight_layout(realized, channels[0])
        self._init_shared_weight(dtype)
        self._groups = list(plan.groups.items())
        scales = {key: {l3: self._normalization(plan, pairs, l3) for l3 in plan.out_ls[key]}
                  for key, pairs in self._groups}
        self.output_scale = tuple(scales[(mul, ir.p * (-1) ** ir.l)][ir.l] if (mul, ir.p * (-1) ** ir.l) in scales
                                  else 1.0 for mul, ir in self.irreps_out)
        self._build(plan, tables, channels[0], weight_bases, scales, dtype)

    def _make_tables(self, plan: Plan) -> SignalTables:
        """The backend's representation of the plan's signals."""
        raise NotImplementedError

    def _resolve_transform(self, plan: Plan, tables: SignalTables, transform: str) -> str:
        """The strategy to use: ``transform`` checked against the irreps and options, or the pick for ``"auto"``."""
        raise NotImplementedError

    def _x2_one_channel(self, plan: Plan) -> bool:
        """Whether x2 is one channel per sample: every x2 signal of multiplicity 1 and no 'in2' weights."""
        return "in2" not in self.weighted and all(plan.signals2[b].mul == 1 for b in plan.used(1))

    def _build(self, plan: Plan, tables: SignalTables, channels: int, weight_bases, scales, dtype) -> None:
        """The modules of the product: each signal's gathering and analysis, each output group's synthesis, and the
        indices that put the groups' columns into the flat output."""
        w_in1, w_in2, w_out = weight_bases
        self._in1 = torch.nn.ModuleDict()
        self._in2 = torch.nn.ModuleDict()
        self._analysis = torch.nn.ModuleDict()
        for which, irreps, signals_, base in (("1", self.irreps_in1, plan.signals1, w_in1),
                                              ("2", self.irreps_in2, plan.signals2, w_in2)):
            for k in plan.used(int(which) - 1):
                sig = signals_[k]
                lay = tables.layout(sig.ls, self.transform)
                weight_channels = sig.mul if which == "1" else channels if "in2" in self.weighted else 1
                holder = self._in1 if which == "1" else self._in2
                holder[str(k)] = tables.gather(irreps, sig, lay, weight_channels, base, f"in{which}" in self.weighted)
                analysis = tables.analysis_module(sig.ls, self.transform, dtype)
                if analysis is not None:
                    self._analysis[f"{which}_{k}"] = analysis

        # Output: each group is projected onto its degrees; the flat output gathers from the concatenation.
        self._synthesis = torch.nn.ModuleList()
        group_layouts, group_start, total = {}, {}, 0
        for key, _ in self._groups:
            ls = plan.out_ls[key]
            group_layouts[key] = tables.layout(ls, self.transform)
            group_start[key] = total
            total += key[0] * len(group_layouts[key])
            synthesis = tables.synthesis_module(ls, self.transform, scales[key], dtype)
            if synthesis is not None:
                self._synthesis.append(synthesis)
        self._row_size = self._intermediate_size(plan, tables)
        perm, wperm = [], []
        for i, (mul, ir) in enumerate(self.irreps_out):
            key = (mul, ir.p * (-1) ** ir.l)
            lay = group_layouts[key]
            for u in range(mul):
                for m in range(-ir.l, ir.l + 1):
                    perm.append(group_start[key] + u * len(lay) + lay.index((ir.l, m)))
                    wperm.append(w_out.get(i, 0) + u)
        self.register_buffer("_out_src", torch.tensor(perm, dtype=torch.long), persistent=False)
        self.register_buffer("_out_w", torch.tensor(wperm, dtype=torch.long), persistent=False)

    def _intermediate_size(self, plan: Plan, tables: SignalTables) -> int:
        """Elements per sample of the largest intermediate (for chunking): x1's analysed signals."""
        return sum(plan.signals1[a].mul for a in plan.used(0)) * tables.points(self.transform)

    def _normalization(self, plan: Plan, pairs, l3: int) -> float:
        """Output scale of degree l3: 1 for normalization='none'; for 'component', the inverse standard deviation
        of an output component when all inputs are independent with unit variance (sum over the paths into it of
        |Gaunt block|^2 / (2 l3 + 1), |block|^2 = gaunt_w3j_factor^2)."""
        if self.normalization == "none":
            return 1.0
        variance = sum(
            gaunt_w3j_factor(l1, l2, l3) ** 2 / (2 * l3 + 1)
            for a, b in pairs
            for l1 in plan.signals1[a].ls
            for l2 in plan.signals2[b].ls
            if abs(l1 - l2) <= l3 <= l1 + l2 and (l1 + l2 + l3) % 2 == 0
        )
        return 1.0 / math.sqrt(variance) if variance > 0 else 1.0

    def _weight_layout(self, paths, channels: int) -> list[dict[int, int]]:
        """Offsets of the weight blocks: in1 entries (mul each), in2 entries (channels each), out entries (mul
        each); sets ``weight_numel`` and the indices of :meth:`path_weights`."""
        offset = 0
        blocks = []
        for name, entries, size in (
            ("in1", sorted({p.i_in1 for p in paths}), lambda i: self.irreps_in1[i].mul),
            ("in2", sorted({p.i_in2 for p in paths}), lambda i: channels),
            ("out", range(len(self.irreps_out)), lambda i: self.irreps_out[i].mul),
        ):
            base = {}
            if name in self.weighted:
                for i in entries:
                    base[i] = offset
                    offset += size(i)
            blocks.append(base)
        self.weight_numel = offset
        index = []  # per weighted block, its weight of each path and channel
        for name, entry, base in zip(WEIGHTED, ("i_in1", "i_in2", "i_out"), blocks):
            if name in self.weighted:
                index.append([base[getattr(p, entry)] + u for p in paths for u in range(self.irreps_in1[p.i_in1].mul)])
        n_path_weights = sum(self.irreps_in1[p.i_in1].mul for p in paths)
        index = torch.tensor(index, dtype=torch.long).view(len(index), n_path_weights)
        self.register_buffer("_path_weight_index", index, persistent=False)
        return blocks

    def path_weights(self, weight: torch.Tensor) -> torch.Tensor:
        """The per-path weights this op applies, in the layout of ``paths``.

        A path's weight of channel u is the product of its in1, in2 and out entries' weights of u (1 for a block that is
        not in ``weighted``). e3nn's ``o3.TensorProduct`` with instructions ``(i_in1, i_in2, i_out, mode, True,
        (gaunt_w3j_factor(l1, l2, l3) * output_scale[i_out])^2)`` over ``paths`` (component normalisations off) computes
        this op with them.

        Args:
            weight: (..., weight_numel) weights of this op.

        Returns:
            Tensor of shape (..., sum over ``paths`` of x1's multiplicity), path-major in the order of ``paths``, then
            channel.

        Raises:
            TypeError: If ``weight`` is not a tensor.
            ValueError: If the last axis of ``weight`` is not ``weight_numel``.

        Examples:
            >>> import torch
            >>> from equilib.ops import make_tensor_product
            >>> tp = make_tensor_product("grid", "8x0e+8x1o", "0e+1o", "8x0e+8x1o", dtype=torch.float64)
            >>> len(tp.paths), tp.weight_numel  # weights per (entry, channel) of x1 and of the output
            (4, 32)
            >>> tp.path_weights(torch.ones(5, tp.weight_numel, dtype=torch.float64)).shape  # 4 paths x 8 channels
            torch.Size([5, 32])
        """
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"weight: expected a torch.Tensor, got {type(weight).__name__}")
        if weight.dim() == 0 or weight.shape[-1] != self.weight_numel:
            raise ValueError(f"weight: expected shape (..., {self.weight_numel}), got {tuple(weight.shape)}")
        index = self._path_weight_index
        if len(index) == 0:
            return weight.new_ones(*weight.shape[:-1], index.shape[1])
        out = weight.index_select(-1, index[0])
        for row in index[1:]:
            out = out * weight.index_select(-1, row)
        return out

    def _multiply(self, values1: torch.Tensor, values2: torch.Tensor, g: int, a: int, b: int) -> torch.Tensor:
        """The product of signal ``a`` of x1 and ``b`` of x2 into output group ``g``, analysed: pointwise."""
        return values1 * values2

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        n = x1.shape[0]
        coeff1 = {k: m(x1, weight) for k, m in self._in1.items()}
        coeff2 = {k: m(x2, weight) for k, m in self._in2.items()}
        if self._analysis:
            coeff1 = {k: self._analysis[f"1_{k}"](c) for k, c in coeff1.items()}
            coeff2 = {k: self._analysis[f"2_{k}"](c) for k, c in coeff2.items()}
        outs = []
        for g, (_, pairs) in enumerate(self._groups):
            total = None
            for a, b in pairs:
                term = self._multiply(coeff1[str(a)], coeff2[str(b)], g, a, b)
                total = term if total is None else total + term
            if self._synthesis:
                total = self._synthesis[g](total)
            outs.append(total.reshape(n, total.shape[1] * total.shape[2]))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        out = out.index_select(-1, self._out_src)
        if "out" in self.weighted:
            out = out * weight.index_select(-1, self._out_w)
        return out

    def extra_repr(self) -> str:
        """The one-line description of the op.

        Returns:
            :meth:`TensorProduct.extra_repr` with the grid shape, the resolved transform and the weighted blocks.
        """
        return (super().extra_repr()
                + f", grid={self.grid_shape}, transform={self.transform!r}, weighted={self.weighted}")

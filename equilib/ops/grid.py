"""Gaunt tensor product computed on an exact quadrature grid on the sphere.

Xie, Daigavane, Kotak, Smidt, "The Price of Freedom: Exploring Expressivity and Runtime Tradeoffs in
Equivariant Tensor Products" (ICML 2025). Each input is read as functions on S^2 (one per channel), evaluated on
a Gauss-Legendre x uniform grid, multiplied pointwise, and projected back onto the output degrees. With
``ceil((D+1)/2) x (D+1)`` points, D = L1 + L2 + Lout, the projection is exact: the result equals the
Clebsch-Gordan product restricted to paths with l1 + l2 + l3 even, each scaled by
``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>`` (see :mod:`equilib.so3`).

Signals and parity. An entry ``mul x (l, p)`` is a function on S^2 of "S^2 parity" ``p (-1)^l``; entries of one
input with the same multiplicity and S^2 parity form one signal. The product of signals of S^2 parities p and q
feeds the outputs of S^2 parity p q. Paths with l1 + l2 + l3 odd (e.g. the cross product 1o x 1o -> 1e) are not
realized; asking for an output that only such paths reach is an error.

Weights act per (channel, l), never per path: ``weighted`` picks among ``"in1"`` (each in1 entry that takes part,
``mul`` weights), ``"in2"`` (each in2 entry that takes part, one weight per channel of x1; x2 then becomes a
multi-channel signal) and ``"out"`` (each output entry, ``mul`` weights). The weight vector is these blocks in
the order in1, in2, out, each entry-major then channel. Couplings: 'uvu' (x2 entries of multiplicity 1) and
'uuu' (x2 multiplicity equal to x1's).

Normalisation (``normalization``): ``"none"`` is the plain Gaunt product; ``"component"`` (default) multiplies each
output degree by a constant (``tp.output_scale`` per output entry) so that unit-variance inputs give unit-variance
outputs, as e3nn's component normalisation does for the CG product. A constant per output changes no path's
weight relative to another path into the same output.

Strategies (``transform``), all exact and equal to round-off: ``"dense"`` evaluates the SH on all grid points
with one matrix product each way; ``"separable"`` does an associated-Legendre transform in beta per order m, then a
matrix product in alpha; ``"coupling"`` (single-channel, unweighted x2 only) integrates the Gaunt coupling tensor on
the grid once, in float64, and contracts each sample's x2 with it into a matrix applied to all channels, so no
per-channel grid values are made; ``"blocks"`` (same condition) does the same contraction entry by entry on e3nn's
flat layout, with no gathering or permuting of channels (:mod:`._blocks`). ``"auto"`` takes ``coupling`` or
``dense``, whichever needs fewer multiply-adds, then ``blocks`` instead of ``coupling`` when it touches less memory:
when x1 or the output has a single degree, as in the first (scalars in) and last (scalars out) layers of a
potential. scripts/bench_tp.py measured ``coupling`` fastest among the others for L = 1..8 at 32 channels and
``separable`` slower than ``dense`` up to L = 8 on 2 CPU cores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

from ..so3 import associated_legendre, azimuthal_harmonics, exact_grid_size, gauss_legendre_grid, gaunt_w3j_factor
from ..utils import TableModule
from ._blocks import Block, BlockCoupling, memory_traffic
from .base import TensorProduct, check_outputs_reached, coupling_paths, register_backend

TRANSFORMS = ("auto", "dense", "separable", "coupling", "blocks")
WEIGHTED = ("in1", "in2", "out")


@dataclass
class _Signal:
    """Entries of one input with one multiplicity and one S^2 parity, at most one entry per degree."""

    mul: int
    s2_parity: int
    entries: dict[int, int] = field(default_factory=dict)  # l -> entry index

    @property
    def ls(self) -> list[int]:
        return sorted(self.entries)


def _signals(irreps) -> list[_Signal]:
    signals: list[_Signal] = []
    for i, (mul, ir) in enumerate(irreps):
        parity = ir.p * (-1) ** ir.l
        home = next((s for s in signals if s.mul == mul and s.s2_parity == parity and ir.l not in s.entries), None)
        if home is None:
            home = _Signal(mul, parity)
            signals.append(home)
        home.entries[ir.l] = i
    return signals


class _GridTables:
    """The quadrature grid with its SH factors; columns (l, m) laid out per transform.

    Grid points are alpha-major for the dense transform and beta-major for the separable one (each product uses
    one transform throughout, so the two never meet).
    """

    def __init__(self, degree: int, lmax: int) -> None:
        self.grid = gauss_legendre_grid(*exact_grid_size(degree))
        self.legendre = associated_legendre(lmax, np.cos(self.grid.beta))  # (n_beta, (lmax+1)^2)
        self.azimuth = azimuthal_harmonics(lmax, self.grid.alpha)  # (n_alpha, 2 lmax + 1)
        self.alpha_weight = np.full(len(self.grid.alpha), 2.0 * np.pi / len(self.grid.alpha))
        self.lmax = lmax
        self.shape = self.grid.shape

    @staticmethod
    def layout(ls: list[int], transform: str) -> list[tuple[int, int] | None]:
        """Columns of a signal with degrees ``ls``: (l, m) per column; None is padding. ``"dense"``: l-major,
        unpadded; otherwise m-major (m = -top..top) with every l of ``ls`` per m."""
        if transform == "dense":
            return [(l, m) for l in ls for m in range(-l, l + 1)]
        top = max(ls)
        return [(l, m) if l >= abs(m) else None for m in range(-top, top + 1) for l in ls]

    @staticmethod
    def layout_kind(transform: str) -> str:
        return "separable" if transform == "separable" else "dense"

    def points(self, transform: str) -> int:
        """Values per channel of a signal on the grid."""
        return self.shape[0] * self.shape[1]

    def analysis_module(self, ls: list[int], transform: str, dtype: torch.dtype) -> torch.nn.Module:
        return _Analysis(self.analysis(ls, self.layout_kind(transform)), dtype)

    def synthesis_module(self, ls: list[int], transform: str, scale: dict[int, float],
                         dtype: torch.dtype) -> torch.nn.Module:
        return _Synthesis(self.synthesis(ls, self.layout_kind(transform), scale), dtype)

    def _factors(self, ls: list[int]):
        top = max(ls)
        n_l = len(ls)
        leg = np.zeros((2 * top + 1, n_l, len(self.grid.beta)))
        for k, (l_m) in enumerate(self.layout(ls, "separable")):
            if l_m is not None:
                l, m = l_m
                leg[m + top, k % n_l] = self.legendre[:, l * l + l + m]
        azi = self.azimuth[:, self.lmax - top : self.lmax + top + 1]  # (n_alpha, n_m)
        return leg, azi

    def analysis(self, ls: list[int], transform: str) -> dict[str, np.ndarray]:
        """Tables that take coefficients (layout order) to grid values."""
        if transform == "dense":
            cols = self.layout(ls, "dense")
            y = np.stack([self.legendre[:, l * l + l + m][None, :] * self.azimuth[:, self.lmax + m][:, None] for l, m in cols])
            return {"matrix": y.reshape(len(cols), -1)}  # (cols, n_alpha * n_beta)
        leg, azi = self._factors(ls)
        return {"legendre": leg, "azimuth": azi.T.copy()}  # (n_m, n_l, n_beta), (n_m, n_alpha)

    def synthesis(self, ls: list[int], transform: str, scale: dict[int, float]) -> dict[str, np.ndarray]:
        """Tables that project grid values onto coefficients (layout order), quadrature weights included, each
        output degree l multiplied by ``scale[l]``."""
        wb, wa = self.grid.beta_weights, self.alpha_weight
        if transform == "dense":
            y = self.analysis(ls, "dense")["matrix"].reshape(-1, len(wa), len(wb)) * wa[:, None] * wb[None, :]
            y = y * np.array([scale[l] for l, _ in self.layout(ls, "dense")])[:, None, None]
            return {"matrix": y.reshape(y.shape[0], -1).T.copy()}  # (n_alpha * n_beta, cols)
        leg, azi = self._factors(ls)
        leg = leg * np.array([scale[l] for l in ls])[None, :, None]
        return {"legendre": (leg * wb).transpose(0, 2, 1).copy(), "azimuth": azi * wa[:, None]}  # (n_m, n_beta, n_l), (n_alpha, n_m)


class _TableModule(TableModule):
    """Holds float64-computed tables (None: absent) as tables in the module's dtype."""

    def __init__(self, dtype: torch.dtype, **tables: np.ndarray | None) -> None:
        super().__init__()
        for name, t in tables.items():
            self.register_table(name, t, dtype)


class _GridTransform(_TableModule):
    """One grid transform's tables: a dense ``matrix``, or separable ``legendre`` and ``azimuth`` tables."""

    def __init__(self, tables: dict[str, np.ndarray], dtype: torch.dtype) -> None:
        super().__init__(dtype, **tables)
        self.dense = "matrix" in tables


class _Analysis(_GridTransform):
    """Coefficients (batch, channels, columns) -> values on the grid (batch, channels, points)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return x @ self.matrix
        b, c, _ = x.shape
        n_m, n_l, n_beta = self.legendre.shape
        t = torch.einsum("xml,mlb->xbm", x.reshape(b * c, n_m, n_l), self.legendre)  # Legendre step, per m
        return (t.reshape(b * c * n_beta, n_m) @ self.azimuth).reshape(b, c, n_beta * self.azimuth.shape[1])


class _Synthesis(_GridTransform):
    """Values on the grid (batch, channels, points) -> coefficients (batch, channels, columns)."""

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        if self.dense:
            return values @ self.matrix
        b, c, _ = values.shape
        n_m, n_beta, n_l = self.legendre.shape
        u = (values.reshape(b * c * n_beta, self.azimuth.shape[0]) @ self.azimuth).view(b * c, n_beta, n_m)
        return torch.einsum("xbm,mbl->xml", u, self.legendre).reshape(b, c, n_m * n_l)


@dataclass
class _Plan:
    """Which signals meet, on which grid: the structure of one grid product, derived from the irreps."""

    signals1: list[_Signal]
    signals2: list[_Signal]
    groups: dict[tuple[int, int], list[tuple[int, int]]]  # (mul, S^2 parity) of outputs -> (signal1, signal2) pairs
    out_ls: dict[tuple[int, int], list[int]]
    degree: int  # L1 + L2 + Lout, what the grid must integrate exactly
    lmax: int

    @classmethod
    def build(cls, irreps_in1, irreps_in2, irreps_out, paths: list) -> "_Plan":
        sig1, sig2 = _signals(irreps_in1), _signals(irreps_in2)
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
        return sorted({pair[which] for pairs in self.groups.values() for pair in pairs})


def _dim(ls) -> int:
    """Dimension of one channel of a signal with degrees ``ls``."""
    return sum(2 * l + 1 for l in ls)


def _choose_transform(plan: _Plan, grid_points: int, coupling_ok: bool) -> str:
    """transform='auto': the strategy with the fewest multiply-adds per sample (dense grid or coupling)."""
    if not coupling_ok:
        return "dense"
    grid_cost = coupling_cost = 0
    for key, pairs in plan.groups.items():
        d3 = _dim(plan.out_ls[key])
        for a, b in pairs:
            d1, d2 = _dim(plan.signals1[a].ls), _dim(plan.signals2[b].ls)
            grid_cost += key[0] * (d1 + d3) * grid_points + d2 * grid_points
            coupling_cost += d1 * d2 * d3 + key[0] * d1 * d3
    return "coupling" if coupling_cost < grid_cost else "dense"


def _gather_indices(irreps, signal: _Signal, layout, channels: int, weight_base: dict[int, int],
                    channels_inner: bool = False):
    """Indices into a flat input and into the weights giving a (channels, columns) view of ``signal``, or with
    ``channels_inner`` a (columns, channels) view."""
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


class _SignalInput(torch.nn.Module):
    """Gathers one signal from a flat input into (batch, channels, columns) and applies its weights."""

    def __init__(self, irreps, signal, layout, weight_channels, weight_base, weighted: bool):
        super().__init__()
        src, _ = _gather_indices(irreps, signal, layout, signal.mul, {})
        _, wsrc = _gather_indices(irreps, signal, layout, weight_channels, weight_base)
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("wsrc", wsrc, persistent=False)
        self.channels, self.n_cols = signal.mul, len(layout)
        self.weight_channels, self.weighted = weight_channels, weighted

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        coeff = x.index_select(-1, self.src).view(x.shape[0], self.channels, self.n_cols)
        if self.weighted:
            w = weight.index_select(-1, self.wsrc)
            coeff = coeff * w.view(*w.shape[:-1], self.weight_channels, self.n_cols)
        return coeff


@register_backend("grid")
class GridTensorProduct(TensorProduct):
    """Gaunt product on an exact S^2 grid: parity-even paths only, weights per (channel, l). See module docs."""

    exact = True
    TRANSFORMS = TRANSFORMS
    _signal_input = _SignalInput  # the module that gathers one signal, in the layout the analysis reads

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
        plan = _Plan.build(self.irreps_in1, self.irreps_in2, self.irreps_out, realized)
        tables = self._make_tables(plan)
        self.grid_shape = tables.shape

        coupling_ok = ("coupling" in self.TRANSFORMS and "in2" not in weighted
                       and all(plan.signals2[b].mul == 1 for b in plan.used(1)))
        if transform in ("coupling", "blocks") and not coupling_ok:
            raise ValueError(
                f"transform: {transform!r} needs x2 entries of multiplicity 1 and no 'in2' in weighted; use 'dense'"
            )
        channels = sorted({self.irreps_in1[p.i_in1].mul for p in realized})
        if "in2" in weighted and len(channels) != 1:
            raise ValueError(
                f"weighted: 'in2' needs one multiplicity across the entries of irreps_in1 that take part, got {channels}"
            )
        w_in1, w_in2, w_out = self._weight_layout(realized, channels[0])
        self._init_shared_weight(dtype)
        self._groups = list(plan.groups.items())
        scales = {key: {l3: self._normalization(plan, pairs, l3) for l3 in plan.out_ls[key]} for key, pairs in self._groups}
        self.output_scale = tuple(scales[(mul, ir.p * (-1) ** ir.l)][ir.l] if (mul, ir.p * (-1) ** ir.l) in scales
                                  else 1.0 for mul, ir in self.irreps_out)
        blocks = self._gaunt_blocks(tables, realized) if coupling_ok and transform in ("auto", "blocks") else None
        if transform == "auto":
            transform = self._auto_transform(plan, tables, coupling_ok)
            if transform == "coupling" and blocks is not None:
                mul = {i: self.irreps_in1[i].mul for i in {b.i1 for b in blocks}}
                by_block, channel_major = memory_traffic(blocks, mul, bool(weighted))
                transform = "blocks" if by_block < channel_major else "coupling"
        self.transform = transform
        if transform == "blocks":
            self._blocks = BlockCoupling(
                blocks, [mul * ir.dim for mul, ir in self.irreps_in1],
                [(mul, ir.dim) for mul, ir in self.irreps_out], {i: self.irreps_in1[i].mul for i in range(len(self.irreps_in1))},
                w_in1, w_out, dtype)
            # not chunked: its intermediates are no larger than the output, and chunks only add operations (the
            # potential's training step at lmax 3: 124 ms in one piece, 135 ms in 4 MiB chunks)
            return
        layout = tables.layout_kind(transform)

        self._in1 = torch.nn.ModuleDict()
        self._in2 = torch.nn.ModuleDict()
        self._analysis = torch.nn.ModuleDict()
        for which, irreps, signals, base in (("1", self.irreps_in1, plan.signals1, w_in1), ("2", self.irreps_in2, plan.signals2, w_in2)):
            for k in plan.used(int(which) - 1):
                sig = signals[k]
                lay = tables.layout(sig.ls, layout)
                weight_channels = sig.mul if which == "1" else channels[0] if "in2" in weighted else 1
                holder = self._in1 if which == "1" else self._in2
                holder[str(k)] = self._signal_input(irreps, sig, lay, weight_channels, base, f"in{which}" in weighted)
                if transform != "coupling":
                    self._analysis[f"{which}_{k}"] = tables.analysis_module(sig.ls, transform, dtype)

        # Output: each group is projected onto its degrees; the flat output gathers from the concatenation.
        self._synthesis = torch.nn.ModuleList()
        group_layouts, group_start, total = {}, {}, 0
        for g, (key, pairs) in enumerate(self._groups):
            ls = plan.out_ls[key]
            group_layouts[key] = tables.layout(ls, layout)
            group_start[key] = total
            total += key[0] * len(group_layouts[key])
            scale = scales[key]
            if transform != "coupling":
                self._synthesis.append(tables.synthesis_module(ls, transform, scale, dtype))
                continue
            synthesis = tables.synthesis(ls, layout, scale)
            for a, b in pairs:  # Gaunt coupling tensor of the pair, by exact quadrature in float64
                a1 = tables.analysis(plan.signals1[a].ls, "dense")["matrix"]
                a2 = tables.analysis(plan.signals2[b].ls, "dense")["matrix"]
                t = np.einsum("ig,jg,gk->jik", a1, a2, synthesis["matrix"]).reshape(a2.shape[0], -1)
                self.register_table(f"_coupling_{g}_{a}_{b}", t, dtype)
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

    def _make_tables(self, plan: _Plan) -> _GridTables:
        """The sampling scheme: here the exact Gauss-Legendre x uniform grid for the plan's degree."""
        return _GridTables(plan.degree, plan.lmax)

    def _auto_transform(self, plan: _Plan, tables: _GridTables, coupling_ok: bool) -> str:
        return _choose_transform(plan, len(tables.grid.beta) * len(tables.grid.alpha), coupling_ok)

    def _gaunt_blocks(self, tables: _GridTables, paths) -> list[Block]:
        """The Gaunt coupling of every (x1 entry, output entry) pair, by exact quadrature in float64: for each path,
        ``T[j, i, k] = int Y_j Y_i Y_k`` (x2 column j, x1 column i, output column k) times the output's scale."""
        dim2 = self.irreps_in2.dim
        starts2 = np.cumsum([0] + [mul * ir.dim for mul, ir in self.irreps_in2])
        tensors: dict[tuple[int, int], np.ndarray] = {}
        for p in paths:
            a1, a2 = (tables.analysis([l], "dense")["matrix"] for l in (p.l1, p.l2))
            synthesis = tables.synthesis([p.l3], "dense", {p.l3: self.output_scale[p.i_out]})["matrix"]
            t = tensors.setdefault((p.i_in1, p.i_out), np.zeros((dim2, 2 * p.l1 + 1, 2 * p.l3 + 1)))
            t[starts2[p.i_in2] : starts2[p.i_in2 + 1]] += np.einsum("ig,jg,gk->jik", a1, a2, synthesis)
        return [Block(i1, io, t.shape[1], t.shape[2], t) for (i1, io), t in sorted(tensors.items())]

    def _multiply(self, values1: torch.Tensor, values2: torch.Tensor) -> torch.Tensor:
        """The product of two signals in the representation the analysis produced: pointwise on the grid."""
        return values1 * values2

    def _intermediate_size(self, plan: _Plan, tables) -> int:
        """Elements per sample of the largest intermediate (for chunking): x1's values on the grid (all signals),
        or for 'coupling' the per-sample matrices and x1's coefficients."""
        used = [plan.signals1[a] for a in plan.used(0)]
        if self.transform != "coupling":
            return sum(s.mul for s in used) * tables.points(self.transform)
        matrices = sum(_dim(plan.signals1[a].ls) * _dim(plan.out_ls[key]) for key, pairs in self._groups for a, _ in pairs)
        return matrices + sum(s.mul * _dim(s.ls) for s in used)

    def _normalization(self, plan: _Plan, pairs, l3: int) -> float:
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

    def _weight_layout(self, paths, channels: int):
        """Offsets of the weight blocks: in1 entries (mul each), in2 entries (channels each), out entries (mul each)."""
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
        return blocks

    def _convolution(self, x, x2, weight, source, target) -> torch.Tensor:
        if self.transform != "blocks":
            return super()._convolution(x, x2, weight, source, target)
        return self._blocks.convolution(x, x2, self._check_weight(weight, x.dtype), source, target)

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if self.transform == "blocks":
            return self._blocks(x1, x2, weight)
        n = x1.shape[0]
        coeff1 = {k: m(x1, weight) for k, m in self._in1.items()}
        coeff2 = {k: m(x2, weight) for k, m in self._in2.items()}
        if self.transform != "coupling":
            coeff1 = {k: self._analysis[f"1_{k}"](c) for k, c in coeff1.items()}
            coeff2 = {k: self._analysis[f"2_{k}"](c) for k, c in coeff2.items()}
        outs = []
        for g, (key, pairs) in enumerate(self._groups):
            total = None
            for a, b in pairs:
                c1, c2 = coeff1[str(a)], coeff2[str(b)]
                if self.transform == "coupling":
                    table = getattr(self, f"_coupling_{g}_{a}_{b}")
                    matrix = (c2.reshape(n, c2.shape[-1]) @ table).view(n, c1.shape[-1], table.shape[1] // c1.shape[-1])
                    term = torch.bmm(c1, matrix)
                else:
                    term = self._multiply(c1, c2)
                total = term if total is None else total + term
            if self.transform != "coupling":
                total = self._synthesis[g](total)
            outs.append(total.reshape(n, total.shape[1] * total.shape[2]))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        out = out.index_select(-1, self._out_src)
        if "out" in self.weighted:
            out = out * weight.index_select(-1, self._out_w)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f", grid={self.grid_shape}, transform={self.transform!r}, weighted={self.weighted}"

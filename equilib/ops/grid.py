"""Gaunt tensor product computed on an exact quadrature grid on the sphere.

Xie, Daigavane, Kotak, Smidt, "The Price of Freedom: Exploring Expressivity and Runtime Tradeoffs in
Equivariant Tensor Products" (ICML 2025). Each input is read as functions on S^2 (one per channel), evaluated on
a Gauss-Legendre x uniform grid, multiplied pointwise, and projected back onto the output degrees. With
``ceil((D+1)/2) x (D+1)`` points, D = L1 + L2 + Lout, the projection is exact: the result equals the
Clebsch-Gordan product restricted to paths with l1 + l2 + l3 even, each scaled by
``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>`` (see :mod:`equilib.so3`). Signals and parity, the
weights (``weighted``, per (channel, l), never per path; ``tp.path_weights`` decodes them into per-path weights) and
``normalization`` are those of every Gaunt-type backend: :mod:`._sphere_signals`.

Strategies (``transform``), all exact and equal to round-off: ``"dense"`` evaluates the SH on all grid points
with one matrix product each way; ``"separable"`` does an associated-Legendre transform in beta per order m, then a
matrix product in alpha; ``"coupling"`` (single-channel, unweighted x2 only) integrates the Gaunt coupling tensor on
the grid once, in float64, and contracts each sample's x2 with it into a matrix applied to all channels, so no
per-channel grid values are made; ``"blocks"`` (same condition) does the same contraction entry by entry on e3nn's
flat layout, with no gathering or permuting of channels (:mod:`._blocks`). ``"auto"`` takes ``coupling`` or
``dense``, whichever needs fewer multiply-adds, then ``blocks`` instead of ``coupling`` when it touches less memory:
when x1 or the output has a single degree, as in the first (scalars in) and last (scalars out) layers of a
potential. ``"fused"`` runs the dense tables through one Triton kernel per signal pair (:mod:`._fused_grid`; on CUDA,
or under Triton's interpreter), which ``"auto"`` does not pick. Timings of the strategies are in docs/benchmarks.md.
"""

from __future__ import annotations

import numpy as np
import torch

from ..so3 import associated_legendre, azimuthal_harmonics, exact_grid_size, gauss_legendre_grid
from ._blocks import Block, BlockCoupling, memory_traffic
from ._fused_grid import fused_grid_product
from ._sphere_signals import (
    Plan,
    Signal,
    SignalTables,
    SphereSignalProduct,
    TableSet,
    gather_indices,
    signal_dim,
    signal_layout,
)
from .base import register_backend

TRANSFORMS = ("auto", "dense", "separable", "coupling", "blocks", "fused")


class _GridTables(SignalTables):
    """The quadrature grid with its SH factors; columns (l, m) l-major, or m-major for the separable transform.

    Grid points are alpha-major for the dense transform and beta-major for the separable one (each product uses
    one transform throughout, so the two never meet). ``coupling`` has no analysis or synthesis modules: its
    coupling tensors are made from the dense tables.
    """

    def __init__(self, degree: int, lmax: int) -> None:
        self.grid = gauss_legendre_grid(*exact_grid_size(degree))
        self.legendre = associated_legendre(lmax, np.cos(self.grid.beta))  # (n_beta, (lmax+1)^2)
        self.azimuth = azimuthal_harmonics(lmax, self.grid.alpha)  # (n_alpha, 2 lmax + 1)
        self.alpha_weight = np.full(len(self.grid.alpha), 2.0 * np.pi / len(self.grid.alpha))
        self.lmax = lmax
        self.shape = self.grid.shape

    def layout(self, ls: list[int], transform: str) -> list[tuple[int, int] | None]:
        return signal_layout(ls, m_major=transform == "separable")

    def points(self, transform: str) -> int:
        return self.shape[0] * self.shape[1]

    def gather(self, irreps, signal, layout, weight_channels, weight_base, weighted) -> torch.nn.Module:
        return _SignalInput(irreps, signal, layout, weight_channels, weight_base, weighted)

    def analysis_module(self, ls: list[int], transform: str, dtype: torch.dtype) -> torch.nn.Module | None:
        return None if transform in ("coupling", "fused") else _Analysis(self.analysis(ls, transform), dtype)

    def synthesis_module(self, ls: list[int], transform: str, scale: dict[int, float],
                         dtype: torch.dtype) -> torch.nn.Module | None:
        return None if transform in ("coupling", "fused") else _Synthesis(self.synthesis(ls, transform, scale), dtype)

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
        """Tables that take coefficients (layout order) to grid values: ``"dense"`` or ``"separable"``."""
        if transform == "dense":
            cols = self.layout(ls, "dense")
            y = np.stack([self.legendre[:, l * l + l + m][None, :] * self.azimuth[:, self.lmax + m][:, None]
                          for l, m in cols])
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
        # (n_m, n_beta, n_l), (n_alpha, n_m)
        return {"legendre": (leg * wb).transpose(0, 2, 1).copy(), "azimuth": azi * wa[:, None]}


class _GridTransform(TableSet):
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


def _choose_transform(plan: Plan, grid_points: int, coupling_ok: bool) -> str:
    """transform='auto': the strategy with the fewest multiply-adds per sample (dense grid or coupling)."""
    if not coupling_ok:
        return "dense"
    grid_cost = coupling_cost = 0
    for key, pairs in plan.groups.items():
        d3 = signal_dim(plan.out_ls[key])
        for a, b in pairs:
            d1, d2 = signal_dim(plan.signals1[a].ls), signal_dim(plan.signals2[b].ls)
            grid_cost += key[0] * (d1 + d3) * grid_points + d2 * grid_points
            coupling_cost += d1 * d2 * d3 + key[0] * d1 * d3
    return "coupling" if coupling_cost < grid_cost else "dense"


class _SignalInput(torch.nn.Module):
    """Gathers one signal from a flat input into (batch, channels, columns) and applies its weights."""

    def __init__(self, irreps, signal: Signal, layout, weight_channels, weight_base, weighted: bool):
        super().__init__()
        src, _ = gather_indices(irreps, signal, layout, signal.mul, {})
        _, wsrc = gather_indices(irreps, signal, layout, weight_channels, weight_base)
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
class GridTensorProduct(SphereSignalProduct):
    """Gaunt product on an exact S^2 grid: paths with l1 + l2 + l3 even only, weights per (channel, l).

    ``transform``: ``"auto"``, ``"dense"``, ``"separable"``, ``"coupling"``, ``"blocks"`` or ``"fused"`` (module
    docs); all give the same values to round-off. ``tp.grid_shape`` is the (n_beta, n_alpha) grid.

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

    Examples:
        >>> import torch
        >>> from equilib.ops import make_tensor_product
        >>> kwargs = dict(dtype=torch.float64, transform="dense")
        >>> tp = make_tensor_product("grid", "8x0e+8x1o+8x2e", "0e+1o+2e", "8x0e+8x1o+8x2e", **kwargs)
        >>> tp.grid_shape, len(tp.paths)  # ceil((D + 1) / 2) x (D + 1) points for D = 2 + 2 + 2
        ((4, 7), 11)
    """

    exact = True
    TRANSFORMS = TRANSFORMS

    def _make_tables(self, plan: Plan) -> _GridTables:
        """The sampling scheme: here the exact Gauss-Legendre x uniform grid for the plan's degree."""
        return _GridTables(plan.degree, plan.lmax)

    def _resolve_transform(self, plan: Plan, tables: _GridTables, transform: str) -> str:
        """'coupling' and 'blocks' need a single-channel x2; 'auto' picks by multiply-adds, then by memory traffic
        (module docs)."""
        coupling_ok = self._x2_one_channel(plan)
        if transform in ("coupling", "blocks") and not coupling_ok:
            raise ValueError(
                f"transform: {transform!r} needs x2 entries of multiplicity 1 and no 'in2' in weighted; use 'dense'"
            )
        if transform != "auto":
            return transform
        transform = _choose_transform(plan, tables.points("dense"), coupling_ok)
        if transform == "coupling":
            shapes = sorted({(p.i_in1, p.i_out, 2 * p.l1 + 1, 2 * p.l3 + 1) for p in self.paths})
            mul = {i1: self.irreps_in1[i1].mul for i1, *_ in shapes}
            by_block, channel_major = memory_traffic(shapes, mul, bool(self.weighted))
            transform = "blocks" if by_block < channel_major else "coupling"
        return transform

    def _build(self, plan: Plan, tables: _GridTables, channels: int, weight_bases, scales, dtype) -> None:
        """'blocks': one :class:`BlockCoupling` instead of the signal modules; 'coupling': the signal gathering and
        output indices, with a Gaunt coupling tensor per signal pair in place of analysis and synthesis; 'fused': the
        same, with the dense analysis and synthesis tables for :func:`fused_grid_product`."""
        w_in1, _, w_out = weight_bases
        if self.transform == "blocks":
            self._blocks = BlockCoupling(
                self._gaunt_blocks(tables), [mul * ir.dim for mul, ir in self.irreps_in1],
                [(mul, ir.dim) for mul, ir in self.irreps_out],
                {i: self.irreps_in1[i].mul for i in range(len(self.irreps_in1))}, w_in1, w_out, dtype)
            # not chunked: its intermediates are no larger than the output, and chunks only add operations
            return
        super()._build(plan, tables, channels, weight_bases, scales, dtype)
        if self.transform == "fused":  # the dense tables, for one fused kernel per signal pair
            for which, signals in enumerate((plan.signals1, plan.signals2)):
                for k in plan.used(which):
                    matrix = tables.analysis(signals[k].ls, "dense")["matrix"]
                    self.register_table(f"_fused_analysis{which + 1}_{k}", matrix, dtype)
            for g, (key, _) in enumerate(self._groups):
                self.register_table(f"_fused_synthesis_{g}",
                                    tables.synthesis(plan.out_ls[key], "dense", scales[key])["matrix"], dtype)
        if self.transform != "coupling":
            return
        for g, (key, pairs) in enumerate(self._groups):
            synthesis = tables.synthesis(plan.out_ls[key], "dense", scales[key])
            for a, b in pairs:  # Gaunt coupling tensor of the pair, by exact quadrature in float64
                a1 = tables.analysis(plan.signals1[a].ls, "dense")["matrix"]
                a2 = tables.analysis(plan.signals2[b].ls, "dense")["matrix"]
                t = np.einsum("ig,jg,gk->jik", a1, a2, synthesis["matrix"]).reshape(a2.shape[0], -1)
                self.register_table(f"_coupling_{g}_{a}_{b}", t, dtype)

    def _gaunt_blocks(self, tables: _GridTables) -> list[Block]:
        """The Gaunt coupling of every (x1 entry, output entry) pair, by exact quadrature in float64: for each path,
        ``T[j, i, k] = int Y_j Y_i Y_k`` (x2 column j, x1 column i, output column k) times the output's scale."""
        dim2 = self.irreps_in2.dim
        starts2 = np.cumsum([0] + [mul * ir.dim for mul, ir in self.irreps_in2])
        tensors: dict[tuple[int, int], np.ndarray] = {}
        for p in self.paths:
            a1, a2 = (tables.analysis([l], "dense")["matrix"] for l in (p.l1, p.l2))
            synthesis = tables.synthesis([p.l3], "dense", {p.l3: self.output_scale[p.i_out]})["matrix"]
            t = tensors.setdefault((p.i_in1, p.i_out), np.zeros((dim2, 2 * p.l1 + 1, 2 * p.l3 + 1)))
            t[starts2[p.i_in2] : starts2[p.i_in2 + 1]] += np.einsum("ig,jg,gk->jik", a1, a2, synthesis)
        return [Block(i1, io, t.shape[1], t.shape[2], t) for (i1, io), t in sorted(tensors.items())]

    def _multiply(self, values1: torch.Tensor, values2: torch.Tensor, g: int, a: int, b: int) -> torch.Tensor:
        """Pointwise on the grid; 'coupling': x2's coefficients with the pair's coupling tensor make one matrix per
        sample, applied to x1's coefficients (all channels); 'fused': the pair's analysis, product and synthesis in
        one :func:`fused_grid_product` (grid values stay on chip where the Triton kernel runs)."""
        if self.transform == "fused":
            return fused_grid_product(values1, getattr(self, f"_fused_analysis1_{a}"), values2,
                                      getattr(self, f"_fused_analysis2_{b}"), getattr(self, f"_fused_synthesis_{g}"))
        if self.transform != "coupling":
            return values1 * values2
        n = values1.shape[0]
        table = getattr(self, f"_coupling_{g}_{a}_{b}")
        d1 = values1.shape[-1]
        matrix = (values2.reshape(n, values2.shape[-1]) @ table).view(n, d1, table.shape[1] // d1)
        return torch.bmm(values1, matrix)

    def _intermediate_size(self, plan: Plan, tables: _GridTables) -> int:
        """x1's values on the grid (all signals), or for 'coupling' the per-sample matrices and x1's coefficients."""
        if self.transform != "coupling":
            return super()._intermediate_size(plan, tables)
        matrices = sum(signal_dim(plan.signals1[a].ls) * signal_dim(plan.out_ls[key])
                       for key, pairs in self._groups for a, _ in pairs)
        return matrices + sum(plan.signals1[a].mul * signal_dim(plan.signals1[a].ls) for a in plan.used(0))

    def _convolution(self, x, x2, weight, source, target) -> torch.Tensor:
        if self.transform != "blocks":
            return super()._convolution(x, x2, weight, source, target)
        return self._blocks.convolution(x, x2, self._check_weight(weight, x.dtype), source, target)

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if self.transform == "blocks":
            return self._blocks(x1, x2, weight)
        return super()._forward(x1, x2, weight)

"""Gaunt tensor product through the 2D Fourier basis of the torus.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor
Products" (ICLR 2024). Each signal's real SH coefficients become 2D Fourier coefficients on the torus (polar angle
b, azimuth a) with exact float64 tables (:mod:`equilib.so3._fourier`). Everything is real: ``Y_lm`` is
``S_m(a) Theta_lm(b)`` with ``S_m`` one of ``sqrt 2 cos(m a)``, ``1``, ``sqrt 2 sin(|m| a)`` (azimuthal frequency
``|m|``) and ``Theta_lm`` a cosine series in b for even ``|m|``, a sine series for odd ``|m|`` (the real form of the
complex coefficients, which are real and even or imaginary and odd in u). So a signal is one polar Fourier series
per order m: one small matrix product per m takes its coefficients to the series' coefficients ``u = 0..L``.

The product of two signals is the 2D convolution of their Fourier coefficients. Along the polar frequency u it is
computed by the DFT: the polar series are evaluated on ``L12 + 1`` nodes ``b_j = pi (j + 1/2) / (L12 + 1)`` of
``[0, pi]`` (a cosine or sine series of degree ``<= L12 = L1 + L2`` is fixed by its values there; this uses the
torus symmetry ``f(2 pi - b, a + pi) = f(b, a)`` to halve the paper's ``2 L12 + 1`` polar samples), multiplied
there, and transformed back to ``u = 0..L12`` by the inverse DCT/DST matrix. Along the azimuthal frequency:

- ``transform="fft"``: also by the DFT, on ``L12 + Lout + 1`` uniform azimuths (no aliasing into ``|m| <= Lout``):
  pointwise products on the torus grid, the paper's FFT method. The DFTs are real matrix products (of at most a few
  dozen points), so no complex tensors are made.
- ``transform="direct"``: directly, the convolution of the azimuthal coefficients (``S_m1 S_m2 = sum_m
  A[m1, m2, m] S_m``, A from the Fourier coefficients of ``S_m``). x2's coefficients at each polar node are
  contracted with A into one ``(2 L1 + 1) x (2 Lout + 1)`` matrix per sample and node, applied to all channels.

The product's coefficients are projected onto the output degrees with the closed-form polar integral (one matrix
product per order m). It computes the same function as the ``grid`` backend (the Gaunt product: paths with
l1 + l2 + l3 even, each scaled by ``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>``), with the same
signals, parities, weights (``weighted``) and ``normalization`` (:mod:`._sphere_signals`); only the way of
computing differs.

``transform="auto"`` picks ``direct`` when every x2 signal is one channel per sample (no 'in2' weights), else
``fft``: a per-channel x2 would make the direct convolution's matrices per channel. Each signal is gathered
order-major, ``(n_m, n_l, batch, channels)``, with its weights (one per channel and degree) broadcast over the
orders, so the per-order matrix products read contiguous memory. Timings against ``grid`` are in
docs/benchmarks.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..so3 import azimuth_fourier, projection_fourier, sh_index, theta_fourier
from ._sphere_signals import Plan, Signal, SignalTables, SphereSignalProduct, TableSet, gather_indices, signal_layout
from .base import register_backend


def _azimuth_coefficients(m: int, vmax: int) -> np.ndarray:
    """Fourier coefficients of ``S_m(a)`` for v = -vmax..vmax."""
    s = np.zeros(2 * vmax + 1, dtype=complex)
    for v, c in azimuth_fourier(m).items():
        s[v + vmax] = c
    return s


class _FourierTables(SignalTables):
    """The torus grid of one product (polar nodes in [0, pi], uniform azimuths) and its real Fourier tables
    (float64). Tables are per order m, m = -top..top, as the m-major layout wants."""

    def __init__(self, plan: Plan) -> None:
        pairs = [pair for pairs in plan.groups.values() for pair in pairs]
        self.l12 = max(max(plan.signals1[a].ls) + max(plan.signals2[b].ls) for a, b in pairs)
        self.lout = max(max(ls) for ls in plan.out_ls.values())
        self.lmax = plan.lmax
        self.n_b, self.n_a = self.l12 + 1, self.l12 + self.lout + 1
        self.shape = (self.n_b, self.n_a)
        self.b = math.pi * (np.arange(self.n_b) + 0.5) / self.n_b
        self.a = 2.0 * math.pi * np.arange(self.n_a) / self.n_a
        self.t = theta_fourier(plan.lmax)  # ((lmax+1)^2, 2 lmax + 1), u = -lmax..lmax
        self.p = projection_fourier(plan.lmax, self.l12)  # ((lmax+1)^2, 2 l12 + 1), u = -l12..l12

    def layout(self, ls: list[int], transform: str) -> list[tuple[int, int] | None]:
        return signal_layout(ls, m_major=True)  # as the per-order tables want

    def gather(self, irreps, signal, layout, weight_channels, weight_base, weighted) -> torch.nn.Module:
        return _OrderMajorInput(irreps, signal, layout, weight_channels, weight_base, weighted)

    def points(self, transform: str) -> int:
        """Values per channel of a signal: on the torus grid (fft) or per order on the polar nodes (direct)."""
        return self.n_b * (self.n_a if transform == "fft" else 2 * self.lmax + 1)

    def polar_basis(self, m: int, n_u: int) -> np.ndarray:
        """(n_b, n_u): cos(u b_j) for even |m|, sin(u b_j) for odd |m|, u = 0..n_u-1 (the inverse DCT / DST)."""
        return (np.cos if m % 2 == 0 else np.sin)(np.outer(self.b, np.arange(n_u)))

    def azimuth_basis(self, top: int) -> np.ndarray:
        """(n_a, 2 top + 1): S_m(a_k) for m = -top..top, from its Fourier coefficients."""
        waves = np.exp(1j * np.outer(self.a, np.arange(-top, top + 1)))
        return np.stack([(waves @ _azimuth_coefficients(m, top)).real for m in range(-top, top + 1)], axis=1)

    def azimuth_product(self) -> np.ndarray:
        """``A[m2, m1, m]`` with ``S_m1 S_m2 = sum_m A S_m``, m1, m2 = -lmax..lmax, m = -lout..lout: the convolution
        of the Fourier coefficients, ``sum_v1,v2 s_m1[v1] s_m2[v2] conj(s_m[v1 + v2])``."""
        top, out = self.lmax, self.lout
        s = np.stack([_azimuth_coefficients(m, top) for m in range(-top, top + 1)])  # (m, v)
        s_out = np.stack([_azimuth_coefficients(m, 2 * top) for m in range(-out, out + 1)])  # v = -2 top..2 top
        n = 2 * top + 1
        conv = np.zeros((n, n, 4 * top + 1), dtype=complex)  # (m2, m1, v1 + v2)
        for v2 in range(n):
            conv[:, :, v2 : v2 + n] += s[:, None, v2, None] * s[None, :, :]
        return np.einsum("ijv,kv->ijk", conv, s_out.conj()).real

    def analysis_module(self, ls: list[int], transform: str, dtype: torch.dtype) -> torch.nn.Module:
        """Coefficients -> polar Fourier coefficients (per m) -> values on the polar nodes, and (fft) on the torus."""
        top = max(ls)
        fourier = np.zeros((2 * top + 1, top + 1, len(ls)))
        nodes = np.zeros((2 * top + 1, self.n_b, top + 1))
        u = np.arange(top + 1)
        for k, m in enumerate(range(-top, top + 1)):
            nodes[k] = self.polar_basis(m, top + 1)
            for j, l in enumerate(ls):
                if l >= abs(m):
                    t = self.t[sh_index(l, m)]  # Theta = sum_u t[u] e^{iub}, u = -lmax..lmax
                    plus, minus = t[self.lmax + u], t[self.lmax - u]
                    if m % 2 == 0:  # cos(ub): t[u] + t[-u] (t[0] once)
                        fourier[k, :, j] = (plus + minus - (u == 0) * plus).real
                    else:  # sin(ub): i (t[u] - t[-u])
                        fourier[k, :, j] = (1j * (plus - minus)).real
        azimuth = self.azimuth_basis(top) if transform == "fft" else None
        return _PolarAnalysis(nodes @ fourier, azimuth, dtype)

    def synthesis_module(self, ls: list[int], transform: str, scale: dict[int, float],
                         dtype: torch.dtype) -> torch.nn.Module:
        """Products on the polar nodes (per m, or fft: on the torus) -> polar Fourier coefficients u = 0..L12
        (inverse DCT / DST) -> coefficients, by the projection tables."""
        top, n_u = max(ls), self.l12 + 1
        from_nodes = np.zeros((2 * top + 1, n_u, self.n_b))
        projection = np.zeros((2 * top + 1, len(ls), n_u))
        u = np.arange(n_u)
        for k, m in enumerate(range(-top, top + 1)):
            odd = m % 2
            basis = self.polar_basis(m, n_u + odd)[:, odd:]  # sine series: sin(1 b)..sin(n_b b), square
            from_nodes[k, odd:] = np.linalg.inv(basis)[: n_u - odd]
            for j, l in enumerate(ls):
                if l >= abs(m):
                    p = self.p[sh_index(l, m)]  # int_0^pi sin(b) e^{iub} Theta_lm(b) db, u = -l12..l12
                    plus, minus = p[self.l12 + u], p[self.l12 - u]
                    polar = (plus + minus) / 2 if not odd else (plus - minus) / 2j
                    projection[k, j] = 2.0 * math.pi * scale[l] * polar.real  # 2 pi: the azimuthal integral
        azimuth = self.azimuth_basis(top).T / self.n_a if transform == "fft" else None
        return _PolarSynthesis(azimuth, projection @ from_nodes, self.lout, dtype)


class _OrderMajorInput(torch.nn.Module):
    """Gathers one signal from a flat input into (n_m, n_l, batch, channels), m-major as the per-order polar tables
    read it, and applies its weights: one per channel and degree, the same for every order. The (l, m) columns are
    gathered once, then spread to the padded layout as whole (batch, channels) rows (padding repeats a row: the
    tables are zero there) rather than gathering the padding column by column, forward and backward."""

    def __init__(self, irreps, signal: Signal, layout, weight_channels, weight_base, weighted: bool):
        super().__init__()
        columns = [col for col in layout if col is not None]
        src, _ = gather_indices(irreps, signal, columns, signal.mul, {}, channels_inner=True)
        rows = [columns.index(col) if col is not None else 0 for col in layout]
        wsrc = [weight_base.get(signal.entries[l], 0) + u for l in signal.ls for u in range(weight_channels)]
        self.register_buffer("src", src, persistent=False)
        self.register_buffer("rows", torch.tensor(rows, dtype=torch.long), persistent=False)
        self.register_buffer("wsrc", torch.tensor(wsrc, dtype=torch.long), persistent=False)
        self.channels, self.n_l, self.n_m = signal.mul, len(signal.ls), len(layout) // len(signal.ls)
        self.weight_channels, self.weighted = weight_channels, weighted

    def forward(self, x: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        b = x.shape[0]
        coeff = x.index_select(-1, self.src).view(b, len(self.src) // self.channels, self.channels)
        coeff = coeff.transpose(0, 1).index_select(0, self.rows)
        coeff = coeff.view(self.n_m, self.n_l, b, self.channels)
        if self.weighted:
            w = weight.index_select(-1, self.wsrc).view(*weight.shape[:-1], self.n_l, self.weight_channels)
            coeff = coeff * (w.transpose(0, 1) if w.dim() == 3 else w[:, None])  # (n_l, batch or 1, channels)
        return coeff


class _PolarAnalysis(TableSet):
    """(n_m, n_l, batch, channels) -> values on the polar nodes, (n_m, n_b, batch, channels), or with an
    azimuth table on the torus grid, (n_a, n_b, batch, channels). ``polar``: per m, the polar Fourier series of
    each degree evaluated on the nodes (the Fourier table and the inverse DCT / DST, multiplied in float64)."""

    def __init__(self, polar, azimuth, dtype) -> None:
        super().__init__(dtype, polar=polar, azimuth=azimuth)  # (n_m, n_b, n_l), (n_a, n_m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n_m, n_l, b, c = x.shape
        n_b = self.polar.shape[1]
        values = torch.bmm(self.polar, x.reshape(n_m, n_l, b * c))  # (n_m, n_b, b c)
        if self.azimuth is not None:
            values = self.azimuth @ values.reshape(n_m, -1)
        return values.reshape(values.shape[0], n_b, b, c)


class _PolarSynthesis(TableSet):
    """Products on the polar nodes (n_m, n_b, batch, channels) with m = -lout..lout, or with an azimuth table on the
    torus grid (n_a, n_b, batch, channels) -> (batch, channels, m-major columns). ``polar``: per m, the inverse
    DCT / DST followed by the projection onto each degree (multiplied in float64)."""

    def __init__(self, azimuth, polar, lout, dtype) -> None:
        super().__init__(dtype, azimuth=azimuth, polar=polar)  # (n_m, n_a), (n_m, n_l, n_b)
        self.lout = lout

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        _, n_b, b, c = values.shape
        n_m, n_l, _ = self.polar.shape
        if self.azimuth is not None:
            values = self.azimuth @ values.reshape(values.shape[0], -1)
        elif values.shape[0] != n_m:  # the rows of this output's orders
            values = values[self.lout - n_m // 2 : self.lout + n_m // 2 + 1]
        out = torch.bmm(self.polar, values.reshape(n_m, n_b, b * c))
        return out.reshape(n_m * n_l, b * c).t().reshape(b, c, n_m * n_l)


def _convolve_azimuth(values1: torch.Tensor, values2: torch.Tensor, product: torch.Tensor) -> torch.Tensor:
    """Direct convolution along the azimuthal frequency of two signals on the polar nodes, (n_m1, n_b, batch,
    channels) and (n_m2, ...): x2's coefficients with ``product`` (A[m2, m1, m], m's centred) make one (n_m, n_m1)
    matrix per sample, node and channel of x2, applied to the channels of x1 it meets. -> (n_m, n_b, batch,
    channels)."""
    if values2.shape[-1] > values1.shape[-1]:  # the product is symmetric: let x2 be the one with fewer channels
        values1, values2 = values2, values1
    (m1, n_b, b, c1), m2, c2 = values1.shape, values2.shape[0], values2.shape[-1]
    lmax, n_m = product.shape[0] // 2, product.shape[-1]
    table = product[lmax - m2 // 2 : lmax + m2 // 2 + 1, lmax - m1 // 2 : lmax + m1 // 2 + 1].transpose(1, 2)
    matrices = (values2.reshape(m2, -1).t() @ table.reshape(m2, n_m * m1)).view(n_b * b * c2, n_m, m1)
    out = torch.bmm(matrices, values1.reshape(m1, n_b * b * c2, c1 // c2).transpose(0, 1))  # (n_b b c2, m, c1/c2)
    return out.view(n_b, b, c2, n_m, c1 // c2).permute(3, 0, 1, 2, 4).reshape(n_m, n_b, b, c1)


@register_backend("gaunt")
class GauntFourierTensorProduct(SphereSignalProduct):
    """Gaunt product through 2D Fourier coefficients on the torus (Luo et al. 2024); the same function as ``grid``.

    ``transform``: ``"fft"`` (pointwise products on the torus grid) or ``"direct"`` (the azimuthal convolution);
    ``"auto"`` takes ``direct`` when every x2 signal is one channel per sample, else ``fft`` (module docs).

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
        >>> irreps = ("8x0e+8x1o+8x2e", "0e+1o+2e", "8x0e+8x1o+8x2e")
        >>> gaunt = make_tensor_product("gaunt", *irreps, dtype=torch.float64)
        >>> grid = make_tensor_product("grid", *irreps, dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> x1, x2 = (torch.randn(10, d, generator=g, dtype=torch.float64) for d in (72, 9))
        >>> w = torch.randn(10, gaunt.weight_numel, generator=g, dtype=torch.float64)
        >>> bool(torch.allclose(gaunt(x1, x2, w), grid(x1, x2, w)))
        True
    """

    exact = True
    TRANSFORMS = ("auto", "fft", "direct")

    def _make_tables(self, plan: Plan) -> _FourierTables:
        return _FourierTables(plan)

    def _resolve_transform(self, plan: Plan, tables: _FourierTables, transform: str) -> str:
        """``auto``: ``direct`` when every x2 signal is one channel (no 'in2' weights), else ``fft`` (module docs)."""
        if transform != "auto":
            return transform
        return "direct" if self._x2_one_channel(plan) else "fft"

    def _build(self, plan: Plan, tables: _FourierTables, channels: int, weight_bases, scales, dtype) -> None:
        """The signal modules, and for ``direct`` the azimuthal product table."""
        super()._build(plan, tables, channels, weight_bases, scales, dtype)
        self._tables = tables
        self.register_table("_azimuth_product", tables.azimuth_product() if self.transform == "direct" else None, dtype)

    def _multiply(self, values1: torch.Tensor, values2: torch.Tensor, g: int, a: int, b: int) -> torch.Tensor:
        if self.transform == "fft":  # samples on the torus grid: pointwise
            return super()._multiply(values1, values2, g, a, b)
        return _convolve_azimuth(values1, values2, self._azimuth_product)

"""Gaunt tensor product through the 2D Fourier basis of the torus.

Luo, Chen, Krishnapriyan, "Enabling Efficient Equivariant Operations in the Fourier Basis via Gaunt Tensor
Products" (ICLR 2024). Each signal's real SH coefficients become 2D Fourier coefficients on the torus (polar angle
b in [0, 2 pi), azimuth a) with exact float64 tables (:mod:`equilib.so3._fourier`), using that ``Y_lm`` has only the
azimuthal frequencies ``v = +-|m|``: one small matrix product per order m. The product of two signals is the 2D
convolution of their coefficient arrays, computed by FFT: inverse real FFT to samples on a uniform
``(2 L12 + 1) x (L12 + Lout + 1)`` torus grid (L12 = L1 + L2, enough that the product's coefficients up to the
output degree do not alias), pointwise product, forward real FFT (``transform="fft"``); or directly, summing
shifted copies of one coefficient array weighted by the other's coefficients (``transform="direct"``, cheaper for
small degrees). The product's coefficients are projected onto the output degrees with the closed-form polar
integral (again one matrix product per order m).

It computes the same function as the ``grid`` backend (the Gaunt product: paths with l1 + l2 + l3 even, each
scaled by ``sqrt((2l1+1)(2l2+1) / (4 pi (2l3+1))) <l1 0 l2 0 | l3 0>``), with the same signals, parities, weights
(``weighted``) and ``normalization``; only the way of computing differs. Compared with the Gauss-Legendre grid the
uniform torus grid has about ``2 L12 / ceil((D+1)/2)`` times more polar samples (it covers b in [0, 2 pi) and
cannot use Gauss-Legendre nodes), and its transforms are FFTs instead of matrix products.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..so3 import azimuth_fourier, projection_fourier, sh_index, theta_fourier
from .base import register_backend
from .grid import GridTensorProduct, _GridTables, _Plan


def _fft_order(n: int) -> np.ndarray:
    """Frequencies u of the FFT's output positions 0..n-1 (n odd): 0, 1, .., n//2, -n//2, .., -1."""
    k = np.arange(n)
    return np.where(k <= n // 2, k, k - n)


class _FourierTables:
    """The torus grid of one product and the per-m Fourier tables of its signals (float64)."""

    def __init__(self, plan: _Plan) -> None:
        pairs = [pair for pairs in plan.groups.values() for pair in pairs]
        l12 = max(max(plan.signals1[a].ls) + max(plan.signals2[b].ls) for a, b in pairs)
        lout = max(max(ls) for ls in plan.out_ls.values())
        top_in = max(max(plan.signals1[a].ls + plan.signals2[b].ls) for a, b in pairs)
        self.n_b = 2 * l12 + 1  # every polar frequency of the product, |u| <= L12, without aliasing
        self.n_a = max(l12 + lout + 1, 2 * top_in + 1)  # azimuthal frequencies <= Lout free of aliasing
        self.shape = (self.n_b, self.n_a)
        self.t = theta_fourier(plan.lmax)  # ((lmax+1)^2, 2 lmax + 1), u = -lmax..lmax
        self.p = projection_fourier(plan.lmax, l12)  # ((lmax+1)^2, 2 l12 + 1), u = -l12..l12
        self.lmax, self.l12, self.lout = plan.lmax, l12, lout
        self.u = _fft_order(self.n_b)

    layout = staticmethod(_GridTables.layout)

    @staticmethod
    def layout_kind(transform: str) -> str:
        return "separable"  # m-major, as the per-m tables want

    def analysis_module(self, ls: list[int], transform: str, dtype: torch.dtype) -> torch.nn.Module:
        """Coefficients (m-major layout) -> Fourier coefficients through per-m tables, then (fft) samples on the
        torus grid by irfft2, or (direct) the full coefficient array."""
        top, n_l = max(ls), len(ls)
        u = self.u if transform == "fft" else np.arange(-top, top + 1)
        table = np.zeros((2 * top + 1, n_l, len(u)))
        imaginary = np.zeros(2 * top + 1, dtype=bool)
        inside = np.abs(u) <= self.lmax
        for k, m in enumerate(range(-top, top + 1)):
            s = azimuth_fourier(m)[abs(m)]  # the v = |m| coefficient; v = -|m| follows by conjugate symmetry
            for j, l in enumerate(ls):
                if l >= abs(m):
                    row = np.zeros(len(u), dtype=complex)
                    row[inside] = self.t[sh_index(l, m), u[inside] + self.lmax] * s
                    imaginary[k] = abs(row.imag).max() > abs(row.real).max()
                    table[k, j] = row.imag if imaginary[k] else row.real
        # Each v = k >= 0 gets its real part from one of m = +-k and its imaginary part from the other.
        real_from = [top + k if not imaginary[top + k] else top - k for k in range(top + 1)]
        imag_from = [2 * top + 1 if k == 0 else (top + k if imaginary[top + k] else top - k) for k in range(top + 1)]
        if transform == "direct":
            return _FourierCoefficients(table, real_from, imag_from, dtype)
        return _FourierAnalysis(table, real_from, imag_from, self.shape, dtype)

    def synthesis_module(self, ls: list[int], transform: str, scale: dict[int, float],
                         dtype: torch.dtype) -> torch.nn.Module:
        """Samples on the torus grid -> coefficients (m-major layout), through rfft2 and the projection tables."""
        top, n_l = max(ls), len(ls)
        u = self.u if transform == "fft" else np.arange(-self.l12, self.l12 + 1)
        table = np.zeros((2 * top + 1, n_l, 2 * len(u)))
        for k, m in enumerate(range(-top, top + 1)):
            pair = 2.0 if m != 0 else 1.0  # v = +|m| and its conjugate v = -|m| contribute equally
            s = azimuth_fourier(m)[-abs(m)]
            for j, l in enumerate(ls):
                if l >= abs(m):
                    w = 2.0 * math.pi * pair * s * scale[l] * self.p[sh_index(l, m), u + self.l12]
                    table[k, j] = np.concatenate([w.real, -w.imag])  # Re(G w) = G_re w_re - G_im w_im
        columns = [abs(m) for m in range(-top, top + 1)]
        shape = self.shape if transform == "fft" else None
        return _FourierSynthesis(table, columns, shape, dtype)


class _HalfSpectrum(torch.nn.Module):
    """Coefficients (batch, channels, m-major columns) -> Fourier coefficients for v >= 0, by one matrix product per
    order m: real and imaginary parts, each (batch * channels, v = 0..top, u)."""

    def __init__(self, table, real_from, imag_from, dtype) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=dtype), persistent=False)  # (n_m, n_l, n_u)
        self.register_buffer("real_from", torch.tensor(real_from), persistent=False)
        self.register_buffer("imag_from", torch.tensor(imag_from), persistent=False)

    def half_spectrum(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, c, _ = x.shape
        n_m, n_l, n_u = self.table.shape
        r = torch.einsum("xml,mlu->xmu", x.reshape(b * c, n_m, n_l), self.table)
        r = torch.cat([r, r.new_zeros(b * c, 1, n_u)], dim=1)  # a zero row: the imaginary part of v = 0
        return r.index_select(1, self.real_from), r.index_select(1, self.imag_from)


class _FourierAnalysis(_HalfSpectrum):
    """(batch, channels, m-major columns) -> (batch, channels, n_b * n_a) real samples on the torus (irfft2)."""

    def __init__(self, table, real_from, imag_from, shape, dtype) -> None:
        super().__init__(table, real_from, imag_from, dtype)
        self.n_b, self.n_a = shape

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _ = x.shape
        if b * c == 0:  # MKL's FFT rejects empty batches
            return x.new_zeros(b, c, self.n_b * self.n_a)
        spectrum = torch.complex(*self.half_spectrum(x))  # (x, v, u), u in FFT order
        spectrum = torch.nn.functional.pad(spectrum.transpose(1, 2), (0, self.n_a // 2 + 1 - spectrum.shape[1]))
        samples = torch.fft.irfft2(spectrum, s=(self.n_b, self.n_a), norm="forward")
        return samples.reshape(b, c, self.n_b * self.n_a)


class _FourierCoefficients(_HalfSpectrum):
    """(batch, channels, m-major columns) -> the full coefficient array, real and imaginary parts, flattened:
    (batch, channels, 2 * (2 top + 1)^2), u and v = -top..top."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, _ = x.shape
        n_u = self.table.shape[2]
        real, imag = self.half_spectrum(x)  # (x, v >= 0, u)
        # v < 0 by conjugate symmetry of a real function: F[u, -v] = conj(F[-u, v])
        real = torch.cat([real[:, 1:].flip(1, 2), real], dim=1)
        imag = torch.cat([-imag[:, 1:].flip(1, 2), imag], dim=1)
        return torch.stack([real, imag], dim=1).transpose(2, 3).reshape(b, c, 2 * n_u * n_u)


class _FourierSynthesis(torch.nn.Module):
    """(batch, channels, n_b * n_a) samples (fft) or (batch, channels, 2 * n_u * n_v) coefficients with v = 0..
    (direct) -> (batch, channels, m-major columns)."""

    def __init__(self, table, columns, shape, dtype) -> None:
        super().__init__()
        self.register_buffer("table", torch.as_tensor(table, dtype=dtype), persistent=False)  # (n_m, n_l, 2 n_u)
        self.register_buffer("columns", torch.tensor(columns), persistent=False)
        self.shape = shape

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        b, c, _ = values.shape
        if b * c == 0:
            return values.new_zeros(b, c, self.table.shape[0] * self.table.shape[1])
        n_u = self.table.shape[2] // 2
        if self.shape is not None:
            spectrum = torch.fft.rfft2(values.reshape(b * c, *self.shape), norm="forward")
            real, imag = spectrum.real, spectrum.imag  # (x, n_u, n_v), u in FFT order
        else:
            real, imag = values.reshape(b * c, 2, n_u, -1).unbind(1)
        g = torch.cat([real, imag], dim=1).index_select(-1, self.columns)  # (x, 2 n_u, n_m): v = |m| per m
        out = torch.einsum("xum,mlu->xml", g, self.table)
        return out.reshape(b, c, -1)


def _convolve(values1: torch.Tensor, values2: torch.Tensor, l12: int, lout: int) -> torch.Tensor:
    """Direct 2D convolution of two full coefficient arrays (as made by :class:`_FourierCoefficients`), kept for
    u = -l12..l12 and v = 0..lout: (batch, channels, 2 * (2 l12 + 1) * (lout + 1))."""
    b = values1.shape[0]
    size1, size2 = (int(round(math.sqrt(v.shape[-1] // 2))) for v in (values1, values2))
    if size2 > size1:  # loop over the smaller array's entries
        values1, values2, size1, size2 = values2, values1, size2, size1
    a = values1.reshape(b, values1.shape[1], 2, size1, size1)
    k = values2.reshape(b, values2.shape[1], 2, size2, size2)
    top1, top2 = size1 // 2, size2 // 2
    channels = max(a.shape[1], k.shape[1])
    out = a.new_zeros(b, channels, 2, 2 * l12 + 1, lout + 1)
    for du in range(size2):
        for dv in range(size2):
            shift_u, shift_v = du - top2, dv - top2
            # output v = v1 + shift_v must lie in 0..lout: v1 in [max(-top1, -shift_v), min(top1, lout - shift_v)]
            first, last = max(-top1, -shift_v), min(top1, lout - shift_v)
            if first > last:
                continue
            k_re, k_im = k[:, :, 0, du, dv, None, None], k[:, :, 1, du, dv, None, None]
            a_re = a[:, :, 0, :, first + top1 : last + top1 + 1]
            a_im = a[:, :, 1, :, first + top1 : last + top1 + 1]
            u0 = l12 - top1 + shift_u
            rows = slice(u0, u0 + size1)
            cols = slice(first + shift_v, last + shift_v + 1)
            out[:, :, 0, rows, cols] += a_re * k_re - a_im * k_im
            out[:, :, 1, rows, cols] += a_re * k_im + a_im * k_re
    return out.reshape(b, channels, 2 * (2 * l12 + 1) * (lout + 1))


@register_backend("gaunt")
class GauntFourierTensorProduct(GridTensorProduct):
    """Gaunt product through 2D Fourier coefficients on the torus (Luo et al. 2024). See module docs; options as
    for ``grid`` except ``transform``: ``"fft"`` or ``"direct"`` convolution (``"auto"``: see ``_auto_transform``)."""

    TRANSFORMS = ("auto", "fft", "direct")

    def _make_tables(self, plan: _Plan) -> _FourierTables:
        self._tables = _FourierTables(plan)
        return self._tables

    def _auto_transform(self, plan: _Plan, tables: _FourierTables, coupling_ok: bool) -> str:
        return "fft"

    def _multiply(self, values1: torch.Tensor, values2: torch.Tensor) -> torch.Tensor:
        if self.transform == "fft":
            return values1 * values2  # samples on the torus grid
        return _convolve(values1, values2, self._tables.l12, self._tables.lout)

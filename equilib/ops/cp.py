"""CP-decomposed tensor product with path-weight sharing: Tensor Decomposition Networks (TDN, 2025).

The channel-wise Clebsch-Gordan map of the op, over every O(3)-allowed path with the ``cg`` backend's normalisation,
is a 3-way tensor ``T[i, j, k]`` on the single-channel spaces of x1, x2 and the output (all degrees concatenated).
It is replaced by a rank-R CP decomposition ``T ~ sum_r A[i, r] B[j, r] C[k, r]``, so one channel of one sample
costs ``(d1 + d3) R`` multiply-adds plus ``d2 R`` per sample for x2, instead of the CG's sum over paths:

    out[n, u, k] = w[n, u] * sum_r C[k, r] (sum_i A[i, r] x1[n, u, i]) (sum_j B[j, r] x2[n, j])

Weights (``weight_sharing``): ``"shared"`` (default, TDN's path-weight sharing) puts one weight per channel on all
paths at once, so ``weight_numel`` is the number of channels whatever the number of paths; ``"per-path"``
decomposes each path's CG block separately and weights each path's components by that path's channel weight:
``weight_numel`` and the weight layout are exactly ``cg``'s, and with unit-error factors it equals ``cg``.

Rank (``rank``): total number of components; default TDN's schedule ``7 L^2`` (L the largest degree of the op).
The components are shared out over the independent blocks of T (below) in proportion to each block's exact-rank
bound (see :mod:`._cp_decomposition`); a block given at least its bound is decomposed exactly (one component per
non-zero fiber), otherwise fitted by deterministic float64 ALS to ``tol`` (or until it stalls) and cached on disk
(``$EQUILIB_CACHE/cp``, or ``cache_dir``). ``tp.fit_error`` is the relative Frobenius error of the whole
decomposition; ``tp.exact`` is True only when every block is exact.

Parity. T contains only O(3)-allowed paths, odd ones (l1 + l2 + l3 odd, e.g. the cross product 1o x 1o -> 1e)
included, which Gaunt products cannot realize. With ``parity="approximate"`` (default, as TDN) the whole tensor is
one decomposition: its factors mix parities, so a fitted op leaks ``O(fit_error)`` into parity-forbidden outputs
and is approximately equivariant under rotations and inversion alike. ``parity="exact"`` decomposes the four blocks
(parity of x1) x (parity of x2) separately, each on its own rows, columns and output parity: exactly equivariant
under inversion, but the blocks share no components, so at equal rank each block is fitted with fewer of them.
``"per-path"`` blocks have one parity each and are always exact under inversion. Under rotations every fitted op
is approximate, with an error of the order of ``fit_error`` (``scripts/cp_rank_sweep.py``).

Contraction (``contraction``): ``"channels"`` works channel by channel as above, ``C (d1 + d3) R`` multiply-adds
per sample; ``"sample"`` (single-channel x2, shared weights) makes one ``(d1, d3)`` matrix per sample,
``sum_r b_r A[:, r] C[:, r]^T`` with ``b = B x2``, and applies it to all channels, ``d1 d3 (R + C)``; ``"auto"``
(default) takes the one with fewer multiply-adds.

Couplings: 'uvu' (x2 entries of multiplicity 1) and 'uuu' (x2 multiplicity equal to x1's). Channels are grouped
by multiplicity (a path needs ``mul_out == mul1``); each group has its own decomposition.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from . import _cp_decomposition as cpd
from .base import Path, TensorProduct, check_outputs_reached, coupling_paths, make_tensor_product, register_backend

WEIGHT_SHARING = ("shared", "per-path")
PARITY = ("approximate", "exact")
CONTRACTIONS = ("auto", "channels", "sample")


def default_rank(lmax: int) -> int:
    """TDN's rank schedule, quadratic in the largest degree: ``7 L^2`` (at least 1).

    Args:
        lmax: The largest degree L of the op's irreps.

    Returns:
        The number of CP components.
    """
    return max(1, 7 * lmax * lmax)


@dataclass
class _Block:
    """An independent block of a group's tensor: its rows in the group's x1, x2 and output columns."""

    rows1: np.ndarray
    rows2: np.ndarray
    rows3: np.ndarray
    tensor: np.ndarray
    path: int | None = None  # index into the op's paths ('per-path' blocks)
    bound: int = field(init=False)  # components of its exact slice decomposition

    def __post_init__(self) -> None:
        self.bound = cpd.exact_rank_bound(self.tensor)


class _Group:
    """The channels of one multiplicity: its entries, gather indices and single-channel CG tensor."""

    def __init__(self, mul: int, paths: list[tuple[int, Path]], irreps1, irreps2, irreps_out) -> None:
        self.mul = mul
        self.paths = paths  # (index in the op's paths, path)
        self.in1 = sorted({p.i_in1 for _, p in paths})
        self.in2 = sorted({p.i_in2 for _, p in paths})
        self.out = sorted({p.i_out for _, p in paths})
        self.x2_channels = 1 if all(irreps2[i].mul == 1 for i in self.in2) else mul
        self.cols1 = self._columns(irreps1, self.in1)
        self.cols2 = self._columns(irreps2, self.in2)
        self.cols3 = self._columns(irreps_out, self.out)

    @staticmethod
    def _columns(irreps, entries) -> list[tuple[int, int, int]]:
        """Single-channel columns: (entry, parity, offset within the entry's irrep)."""
        return [(i, irreps[i].ir.p, k) for i in entries for k in range(irreps[i].ir.dim)]

    def tensor(self, irreps1, irreps2, irreps_out) -> np.ndarray:
        """T[i, j, k] of one channel, every path with weight 1, from the cg backend in float64."""
        single = [
            "+".join(f"1x{irreps[i].ir}" for i in entries)
            for irreps, entries in ((irreps1, self.in1), (irreps2, self.in2), (irreps_out, self.out))
        ]
        cg = make_tensor_product("cg", *single, dtype=torch.float64)
        d1, d2 = len(self.cols1), len(self.cols2)
        x1 = torch.eye(d1, dtype=torch.float64).repeat_interleave(d2, dim=0)
        x2 = torch.eye(d2, dtype=torch.float64).repeat(d1, 1)
        with torch.no_grad():
            return cg(x1, x2, torch.ones(cg.weight_numel, dtype=torch.float64)).reshape(d1, d2, -1).numpy()

    def blocks(self, irreps1, irreps2, irreps_out, weight_sharing: str, parity: str) -> list[_Block]:
        """The all-paths tensor as one block ('shared'), or split by the parities of x1 and x2 (parity='exact'), or
        one block per path ('per-path': a path's tensor is the all-paths tensor on its entries' rows)."""
        t = self.tensor(irreps1, irreps2, irreps_out)
        if weight_sharing == "per-path":
            blocks = []
            for index, p in self.paths:
                rows = [np.array([c for c, col in enumerate(cols) if col[0] == entry], dtype=int)
                        for cols, entry in ((self.cols1, p.i_in1), (self.cols2, p.i_in2), (self.cols3, p.i_out))]
                blocks.append(_Block(*rows, t[np.ix_(*rows)], path=index))
            return blocks
        if parity == "approximate":
            return [_Block(*(np.arange(len(c)) for c in (self.cols1, self.cols2, self.cols3)), t)]
        blocks = []
        for p1 in (1, -1):
            for p2 in (1, -1):
                rows = [np.array([c for c, col in enumerate(cols) if col[1] == sign], dtype=int)
                        for cols, sign in ((self.cols1, p1), (self.cols2, p2), (self.cols3, p1 * p2))]
                sub = t[np.ix_(*rows)]
                if sub.size and np.abs(sub).max() > 0:
                    blocks.append(_Block(*rows, sub))
        return blocks


def _share_out(rank: int, bounds: list[int]) -> list[int]:
    """Components per block: all of its bound when ``rank`` covers every bound, else in proportion to the bounds
    (largest remainders first), at least one each and never above a block's bound."""
    if rank < len(bounds):
        raise ValueError(f"rank: expected at least {len(bounds)} (one component per independent block), got {rank}")
    total = sum(bounds)
    if rank >= total:
        return list(bounds)
    share = [max(1, min(b, rank * b // total)) for b in bounds]
    while sum(share) > rank:  # the minimum of one each overshot: take back from the largest
        share[int(np.argmax(share))] -= 1
    order = np.argsort([-(rank * b / total - s) for b, s in zip(bounds, share)], kind="stable")
    k = 0
    while sum(share) < rank:
        i = order[k % len(bounds)]
        if share[i] < bounds[i]:
            share[i] += 1
        k += 1
    return share


def _flat_index(irreps, cols, channels: int) -> np.ndarray:
    """Index into the flat e3nn layout for (channel, single-channel column); channels beyond an entry's multiplicity
    (x2 entries of multiplicity 1) read its only channel."""
    starts = np.cumsum([0] + [mul * ir.dim for mul, ir in irreps])
    return np.array([[starts[i] + (u % irreps[i].mul) * irreps[i].ir.dim + k for i, _, k in cols]
                     for u in range(channels)])


@register_backend("cp")
class CPTensorProduct(TensorProduct):
    """CP-decomposed CG product over all O(3)-allowed paths (TDN), approximately equivariant. See module docs.

    ``tp.rank`` is the number of components in use, ``tp.fit_error`` the relative Frobenius error of the
    decomposition, ``tp.exact`` whether every block is decomposed exactly.

    Args:
        irreps_in1: Irreps of x1.
        irreps_in2: Irreps of x2; entries of multiplicity 1 ('uvu') or equal to x1's ('uuu').
        irreps_out: Irreps of the output; every entry must be reached by an allowed path.
        shared_weights: Hold one set of weights as a parameter (``tp.weight``) instead of taking them per call.
        rank: Total number of components; None: ``7 L^2`` (:func:`default_rank`). Blocks given at least their
            exact-rank bound are exact, the others fitted by ALS and cached on disk.
        weight_sharing: ``"shared"`` (one weight per channel on all paths) or ``"per-path"`` (``cg``'s weights).
        parity: ``"approximate"`` (one decomposition) or ``"exact"`` (separate blocks per input parities).
        contraction: ``"auto"``, ``"channels"`` or ``"sample"`` (single-channel x2 and shared weights only).
        tol: Relative error at which the ALS fit stops, in (0, 1).
        cache_dir: Folder of fitted factors; default ``$EQUILIB_CACHE/cp`` or ``~/.cache/equilib/cp``.
        dtype: Dtype of the tables and weights; default torch's default dtype.

    Raises:
        ValueError: If an option is invalid, ``rank`` is smaller than the number of independent blocks, an output
            entry is reached by no allowed path, or ``contraction="sample"`` is asked for without a single-channel
            x2 and shared weights.
        TypeError: If an irreps argument is not irreps-like or ``shared_weights`` is not a bool.

    Examples:
        >>> import torch
        >>> from equilib.ops import make_tensor_product
        >>> irreps = ("4x0e+4x1o", "0e+1o", "4x0e+4x1o")
        >>> cp = make_tensor_product("cp", *irreps, rank=64, dtype=torch.float64)  # enough for exact blocks
        >>> cp.rank, cp.exact, cp.weight_numel
        (10, True, 4)
        >>> cg = make_tensor_product("cg", *irreps, dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> x1, x2 = (torch.randn(5, d, generator=g, dtype=torch.float64) for d in (16, 4))
        >>> w = torch.randn(5, cp.weight_numel, generator=g, dtype=torch.float64)
        >>> bool(torch.allclose(cp(x1, x2, w), cg(x1, x2, cp.cg_weights(w))))
        True
    """

    exact = False

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        *,
        shared_weights: bool = False,
        rank: int | None = None,
        weight_sharing: str = "shared",
        parity: str = "approximate",
        contraction: str = "auto",
        tol: float = 1e-7,
        cache_dir: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(irreps_in1, irreps_in2, irreps_out, shared_weights=shared_weights)
        if weight_sharing not in WEIGHT_SHARING:
            raise ValueError(f"weight_sharing: expected one of {WEIGHT_SHARING}, got {weight_sharing!r}")
        if parity not in PARITY:
            raise ValueError(f"parity: expected one of {PARITY}, got {parity!r}")
        if contraction not in CONTRACTIONS:
            raise ValueError(f"contraction: expected one of {CONTRACTIONS}, got {contraction!r}")
        if rank is not None and (isinstance(rank, bool) or not isinstance(rank, int) or rank < 1):
            raise ValueError(f"rank: expected a positive integer or None (TDN's 7 L^2), got {rank!r}")
        if not (isinstance(tol, float) and 0 < tol < 1):
            raise ValueError(f"tol: expected a float in (0, 1), got {tol!r}")
        dtype = dtype or torch.get_default_dtype()
        paths = coupling_paths(self.irreps_in1, self.irreps_in2, self.irreps_out)
        check_outputs_reached("cp", self.irreps_out, paths, paths, "")
        self.paths = tuple(paths)
        self.weight_sharing, self.parity = weight_sharing, parity
        lmax = max(ir.l for irreps in (self.irreps_in1, self.irreps_in2, self.irreps_out) for _, ir in irreps)

        by_mul: dict[int, list[tuple[int, Path]]] = {}
        for index, p in enumerate(paths):
            by_mul.setdefault(self.irreps_in1[p.i_in1].mul, []).append((index, p))
        groups = [_Group(mul, members, self.irreps_in1, self.irreps_in2, self.irreps_out)
                  for mul, members in by_mul.items()]
        blocks = [g.blocks(self.irreps_in1, self.irreps_in2, self.irreps_out, weight_sharing, parity) for g in groups]
        flat_blocks = [b for bs in blocks for b in bs]
        shares = iter(_share_out(default_rank(lmax) if rank is None else rank, [b.bound for b in flat_blocks]))
        self.rank = 0  # components in use: the requested rank, or fewer where exact decompositions need fewer
        squared_error = squared_norm = 0.0
        self.exact = True
        path_offsets = np.cumsum([0] + [self.irreps_in1[p.i_in1].mul for p in paths])
        shared_offsets = np.cumsum([0] + [g.mul for g in groups])
        self._groups, self._per_sample, self._row_size = [], [], 0
        for g, (group, group_blocks) in enumerate(zip(groups, blocks)):
            factors = [np.zeros((len(cols), 0)) for cols in (group.cols1, group.cols2, group.cols3)]
            weight_index = []
            for block in group_blocks:
                r = next(shares)
                if r >= block.bound:
                    parts, error = cpd.slice_decomposition(block.tensor), 0.0
                else:
                    *parts, error = cpd.fitted_factors(block.tensor, r, tol, cache_dir)
                self.exact &= error == 0.0
                norm2 = float(np.sum(block.tensor**2))
                squared_error += error**2 * norm2
                squared_norm += norm2
                for f, (rows, part) in enumerate(zip((block.rows1, block.rows2, block.rows3), parts)):
                    embedded = np.zeros((len(factors[f]), part.shape[1]))
                    embedded[rows] = part
                    factors[f] = np.concatenate([factors[f], embedded], axis=1)
                if block.path is not None:
                    weight_index += [path_offsets[block.path]] * part.shape[1]
            self.rank += factors[0].shape[1]
            if weight_sharing == "per-path":  # weight of channel u, component r: cg's layout, path-major
                w = np.array(weight_index)[None, :] + np.arange(group.mul)[:, None]
            else:
                w = shared_offsets[g] + np.arange(group.mul)[:, None]
            names = {"A": factors[0], "B": factors[1], "C": factors[2].T.copy()}
            for name, table in names.items():
                self.register_table(f"_{name}{g}", table, dtype)
            for name, index in (("in1", _flat_index(self.irreps_in1, group.cols1, group.mul)),
                                ("in2", _flat_index(self.irreps_in2, group.cols2, group.x2_channels)),
                                ("w", w)):
                self.register_buffer(f"_{name}{g}", torch.as_tensor(index.reshape(-1), dtype=torch.long),
                                     persistent=False)
            self._groups.append((group.mul, len(group.cols1), len(group.cols2), group.x2_channels, w.shape[1]))
            d1, d3, rank = len(group.cols1), len(group.cols3), factors[0].shape[1]
            sample_ok = group.x2_channels == 1 and w.shape[1] == 1
            if contraction == "sample" and not sample_ok:
                raise ValueError("contraction: 'sample' needs x2 entries of multiplicity 1 and weight_sharing='shared'")
            cheaper = d1 * d3 * (rank + group.mul) < group.mul * (d1 + d3) * rank
            self._per_sample.append(contraction == "sample" or (contraction == "auto" and sample_ok and cheaper))
            self._row_size += d1 * rank if self._per_sample[-1] else group.mul * rank  # (for chunking) A b, or x1 A
        self.fit_error = float(np.sqrt(squared_error / squared_norm)) if squared_norm else 0.0
        out_columns = [_flat_index(self.irreps_out, g.cols3, g.mul).reshape(-1) for g in groups]
        order = np.argsort(np.concatenate(out_columns))  # every output column is reached exactly once
        self.register_buffer("_out_src", torch.as_tensor(order, dtype=torch.long), persistent=False)
        self.weight_numel = int(path_offsets[-1] if weight_sharing == "per-path" else shared_offsets[-1])
        group_of = {p: g for g, group in enumerate(groups) for p, _ in group.paths}
        cg_index = (np.arange(self.weight_numel) if weight_sharing == "per-path" else np.concatenate(
            [shared_offsets[group_of[p]] + np.arange(self.irreps_in1[path.i_in1].mul) for p, path in enumerate(paths)]))
        self.register_buffer("_cg_weight_index", torch.as_tensor(cg_index, dtype=torch.long), persistent=False)
        self._init_shared_weight(dtype)

    def cg_weights(self, weight: torch.Tensor) -> torch.Tensor:
        """The ``cg`` backend's weights (same irreps) under which ``cg`` computes what this op approximates.

        Each path gets its entries' channel weights ('shared') or the same weights ('per-path').

        Args:
            weight: (..., weight_numel) weights of this op.

        Returns:
            (..., cg weight_numel) weights in ``cg``'s layout.
        """
        return weight.index_select(-1, self._cg_weight_index)

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        n = x1.shape[0]
        outs = []
        for g, (mul, d1, d2, x2_channels, w_cols) in enumerate(self._groups):
            a_table, c_table = getattr(self, f"_A{g}"), getattr(self, f"_C{g}")
            x1g = x1.index_select(-1, getattr(self, f"_in1{g}")).view(n, mul, d1)
            b = x2.index_select(-1, getattr(self, f"_in2{g}")).view(n, x2_channels, d2) @ getattr(self, f"_B{g}")
            w = weight.index_select(-1, getattr(self, f"_w{g}")).view(-1, mul, w_cols)  # (1 or n, mul, R or 1)
            if self._per_sample[g]:  # one (d1, d3) matrix per sample, sum_r b_r A[:, r] C[:, r]^T, for all channels
                out = torch.bmm(x1g, (a_table * b) @ c_table) * w
            else:
                product = (x1g @ a_table) * b
                if w_cols > 1:  # per path: weights on the components
                    product = product * w
                out = product @ c_table  # (n, mul, d3)
                if w_cols == 1:
                    out = out * w
            outs.append(out.reshape(n, out.shape[1] * out.shape[2]))
        out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=-1)
        return out.index_select(-1, self._out_src)

    def extra_repr(self) -> str:
        """The one-line description of the op.

        Returns:
            :meth:`TensorProduct.extra_repr` with the rank in use, the weight sharing and the fit error.
        """
        return super().extra_repr() + (
            f", rank={self.rank}, weight_sharing={self.weight_sharing!r}, fit_error={self.fit_error:.1e}"
        )

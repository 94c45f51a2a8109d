"""How much of the space of equivariant bilinear maps a tensor product can express.

Following Xie, Daigavane, Kotak, Smidt ("The Price of Freedom", ICML 2025): the expressivity of an op
``T: X' x Y' -> Z'`` is the dimension of the space spanned by the bilinear maps ``Lin_Z o T_w o (Lin_X, Lin_Y)``
over all equivariant linear maps ``Lin_X: X -> X'``, ``Lin_Y: Y -> Y'``, ``Lin_Z: Z' -> Z`` and all weights ``w``,
for ``X``, ``Y``, ``Z`` with one copy of each irrep. Every equivariant bilinear map ``X x Y -> Z`` is a sum over
couplings ``(ir1, ir2, ir3)`` allowed by O(3) of a multiple of the Clebsch-Gordan map, so the full space has one
dimension per allowed coupling; a Gaunt product reaches only those with l1 + l2 + l3 even.

Computed numerically: each random draw of the linear maps and weights gives one bilinear map, summarised by its
values on fixed random probes ``<z_p, B(x_p, y_p)>``; the rank of many such summaries (SVD, float64) is the
dimension. A coupling is reachable when the maps restricted to its blocks of X, Y and Z are not all zero.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from e3nn import o3

from .base import TensorProduct


@dataclass(frozen=True)
class Expressivity:
    """How much of the space of equivariant bilinear maps an op reaches (:func:`expressivity`).

    ``fraction`` is ``dimension / full_dimension`` (1.0 when the full dimension is 0).

    Attributes:
        dimension: Dimension of the reachable space.
        full_dimension: Number of O(3)-allowed couplings into the op's output degrees, both parities.
        reachable: Couplings ``(ir1, ir2, ir3)`` (irrep strings) the op reaches.
        missing: Allowed couplings it does not reach.
    """

    dimension: int
    full_dimension: int
    reachable: tuple[tuple[str, str, str], ...]
    missing: tuple[tuple[str, str, str], ...]

    @property
    def fraction(self) -> float:
        return self.dimension / self.full_dimension if self.full_dimension else 1.0


def _distinct(irreps: o3.Irreps) -> list[o3.Irrep]:
    return sorted({ir for mul, ir in irreps if mul > 0}, key=lambda ir: (ir.l, -ir.p))


def _full_couplings(xs, ys, lmax_out: int) -> list[tuple[o3.Irrep, o3.Irrep, o3.Irrep]]:
    return [(a, b, c) for a in xs for b in ys for c in a * b if c.l <= lmax_out]


def _random_linear(source: list[o3.Irrep], target: o3.Irreps, generator, dtype, transpose: bool = False):
    """A random equivariant linear map between ``source`` (one copy of each irrep) and ``target`` (entries with
    multiplicities), as a dense matrix (source.dim, target.dim), or (target.dim, source.dim) if ``transpose``."""
    source_start, offset = {}, 0
    for ir in source:
        source_start[ir] = offset
        offset += ir.dim
    matrix = torch.zeros(offset, target.dim, dtype=dtype)
    start = 0
    for mul, ir in target:
        if ir in source_start:
            s = source_start[ir]
            coeff = torch.randn(mul, generator=generator, dtype=dtype)
            eye = torch.eye(ir.dim, dtype=dtype)
            for u in range(mul):
                matrix[s : s + ir.dim, start + u * ir.dim : start + (u + 1) * ir.dim] = coeff[u] * eye
        start += mul * ir.dim
    return matrix.T if transpose else matrix


def expressivity(tp, draws: int | None = None, probes: int | None = None, seed: int = 0,
                 rtol: float | None = None) -> Expressivity:
    """The expressivity of ``tp`` (any :class:`~equilib.ops.TensorProduct`), see the module docstring.

    Evaluated in float64 on a float64 copy of the op (whose tables are exact whatever dtype it was built in). For an
    approximate op (``cp`` at a fitted rank) the count means something only for a good fit (``fit_error`` well below
    0.01): its small non-equivariant part would otherwise count as extra dimensions.

    Args:
        tp: The op.
        draws: Number of random maps; default twice the full dimension plus 8.
        probes: Number of probe triples; default twice the full dimension plus 8.
        seed: Seed of the draws and probes.
        rtol: Relative size below which a singular value or a coupling's response counts as zero: default 1e-9, and
            at least 10 times the op's ``fit_error``. It also decides what counts as reached.

    Returns:
        The :class:`Expressivity`.

    Raises:
        TypeError: If ``tp`` is not a :class:`~equilib.ops.TensorProduct`.
        ValueError: If ``draws`` or ``probes`` is not positive.

    Examples:
        >>> from equilib.ops import expressivity, make_tensor_product
        >>> e = expressivity(make_tensor_product("grid", "0e+1o", "0e+1o", "0e+1o"))
        >>> e.dimension, e.full_dimension, e.missing  # a Gaunt product cannot make the cross product
        (4, 5, (('1o', '1o', '1e'),))
    """
    if not isinstance(tp, TensorProduct):
        raise TypeError(f"tp: expected a TensorProduct (from make_tensor_product), got {type(tp).__name__}")
    for name, value in (("draws", draws), ("probes", probes)):
        if value is not None and value < 1:
            raise ValueError(f"{name}: expected a positive number, got {value}")
    if rtol is None:
        rtol = max(1e-9, 10 * getattr(tp, "fit_error", 0.0))
    op = copy.deepcopy(tp).to(torch.float64)
    generator = torch.Generator().manual_seed(seed)
    xs, ys, zs_op = _distinct(op.irreps_in1), _distinct(op.irreps_in2), _distinct(op.irreps_out)
    lmax_out = max(ir.l for ir in zs_op)
    couplings = _full_couplings(xs, ys, lmax_out)
    zs = sorted({c for _, _, c in couplings} | set(zs_op), key=lambda ir: (ir.l, -ir.p))
    full = len(couplings)
    draws = draws or 2 * full + 8
    probes = probes or 2 * full + 8
    dim_x, dim_y, dim_z = (sum(ir.dim for ir in s) for s in (xs, ys, zs))

    x = torch.randn(probes, dim_x, generator=generator, dtype=torch.float64)
    y = torch.randn(probes, dim_y, generator=generator, dtype=torch.float64)
    z = torch.randn(probes, dim_z, generator=generator, dtype=torch.float64)
    # Three probes per coupling living only in its blocks of X, Y and Z, all couplings in one batch.
    xb, yb, zb = (torch.cat([_mask(s, key[k]) * v[:3] for key in couplings])
                  for k, (s, v) in enumerate(((xs, x), (ys, y), (zs, z))))

    summaries, block_norms = [], torch.zeros(full, dtype=torch.float64)
    with torch.no_grad():
        for _ in range(draws):
            lin_x = _random_linear(xs, op.irreps_in1, generator, torch.float64)
            lin_y = _random_linear(ys, op.irreps_in2, generator, torch.float64)
            lin_z = _random_linear(zs, op.irreps_out, generator, torch.float64, transpose=True)
            w = torch.randn(op.weight_numel, generator=generator, dtype=torch.float64) if op.weight_numel else None

            def bilinear(xv, yv):  # called only within this iteration, on this draw's maps
                out = op(xv @ lin_x, yv @ lin_y, None if w is None else w.expand(len(xv), -1))  # noqa: B023
                return out @ lin_z  # noqa: B023

            summaries.append((bilinear(x, y) * z).sum(-1))
            response = (bilinear(xb, yb) * zb).sum(-1).abs().view(full, 3).amax(-1)
            block_norms = torch.maximum(block_norms, response)
    matrix = torch.stack(summaries)
    singular = torch.linalg.svdvals(matrix)
    dimension = int((singular > rtol * singular[0]).sum()) if len(singular) and singular[0] > 0 else 0
    scale = float(block_norms.max()) if full else 0.0
    reached = [key for key, norm in zip(couplings, block_norms.tolist()) if scale > 0 and norm > rtol * scale]
    name = lambda key: tuple(str(ir) for ir in key)  # noqa: E731
    return Expressivity(dimension, full, tuple(map(name, reached)),
                        tuple(name(key) for key in couplings if key not in reached))


def _mask(irreps: list[o3.Irrep], keep: o3.Irrep) -> torch.Tensor:
    """1 on the components of ``keep`` in the concatenation of ``irreps`` (one copy each), 0 elsewhere."""
    parts = [torch.full((ir.dim,), 1.0 if ir == keep else 0.0, dtype=torch.float64) for ir in irreps]
    return torch.cat(parts)

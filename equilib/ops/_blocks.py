"""Channel-wise products computed block by block on e3nn's flat layout: one small coupling per (x1 entry, output
entry), no permutation of the inputs or outputs.

For a single-channel x2 ('uvu') every path from x1 entry ``i1`` (``C x l1``) into output entry ``io`` (``C x l3``) is
``out_io[n, u] += x1_i1[n, u] @ M[n]``, with ``M[n] = sum_j x2[n, j] T[j]`` a ``(2 l1 + 1, 2 l3 + 1)`` matrix per
sample made from the coupling tensor ``T`` of the pair (all x2 entries that join them, summed). ``x1_i1`` is a view of
the flat input and ``out_io`` a block of the flat output, so nothing is gathered or permuted. The per-(entry,
channel) weights of x1 (``w1``) and of the output (``w3``) commute with the contraction over components, so each goes
where it multiplies fewest numbers: ``w1`` before the contraction when ``2 l1 + 1 <= 2 l3 + 1`` (once per entry),
after it otherwise; ``w3`` on the sum of an output's pairs, or with ``w1`` on the x1 side when an output has a single
pair with ``2 l1 + 1 <= 2 l3 + 1`` (the first layer of a potential, scalars in: the contraction is then an outer
product). This touches far less memory than gathering x1 into a channel-major layout, weighting, contracting and
permuting back when x1 or the output is a single degree (the first and last layers of a potential); with every
degree on both sides the channel-major contraction touches less, see :func:`memory_traffic`.

Force training differentiates the product twice. The outer product (scalars in) and the contraction to one
component (scalars out) are autograd functions whose derivatives are each other (:class:`_Outer`,
:class:`_ContractLast`, :class:`_ContractChannels`), so every derivative is a broadcast product or a bmm, whichever
its shape wants.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..utils import TableModule


@dataclass(frozen=True)
class Block:
    """The coupling of x1 entry ``i1`` (``2 l1 + 1 = d1`` columns per channel) into output entry ``io`` (``d3``)."""

    i1: int
    io: int
    d1: int
    d3: int
    tensor: np.ndarray  # (x2 dim, d1, d3): T[j] for every column j of the flat x2 (zero rows for entries not joined)


def memory_traffic(blocks: list[tuple[int, int, int, int]], channels: dict[int, int],
                   weighted: bool) -> tuple[int, int]:
    """Elements read and written per sample, (blocks, channel-major), for choosing between them: each elementwise
    step reads and writes its operands once. ``blocks``: (i1, io, d1, d3) of each :class:`Block`; ``channels``:
    multiplicity of each x1 entry."""
    d1 = {i1: (channels[i1], n1) for i1, _, n1, _ in blocks}
    d3 = {io: (channels[i1], n3) for i1, io, _, n3 in blocks}
    x1 = sum(c * d for c, d in d1.values())
    out = sum(c * d for c, d in d3.values())
    # channel-major: gather x1 (2), expand and apply its weights (1 + 3), contract (1 + 1 on the output side),
    # permute the output (2), expand and apply its weights (1 + 3)
    channel_major = (2 + 4 * weighted + 1) * x1 + (1 + 2 + 4 * weighted) * out
    by_block = 2 * out  # concatenating the output blocks
    terms = {}
    for i1, io, n1, n3 in blocks:
        c = channels[i1]
        by_block += 3 * c * min(n1, n3) * weighted + c * (n1 + n3)  # weights on the smaller side, contraction
        terms[io] = terms.get(io, -1) + 1
    by_block += sum(3 * d3[io][0] * d3[io][1] * extra for io, extra in terms.items())  # summing the pairs' terms
    return by_block, channel_major


class BlockCoupling(TableModule):
    """``out = concat_io w3_io * sum_i1 (w1_i1 * x1_i1) @ (x2 @ T_(i1, io))`` on flat e3nn layouts (module docs).

    ``sizes1``: flat size of each x1 entry; ``out_entries``: (multiplicity, dimension) of each output entry;
    ``channels``: multiplicity of each x1 entry (an output entry has its x1 entries' multiplicity); ``w1``/``w3``:
    offset of each entry's channel weights in the weight vector (absent: not weighted); together they must tile the
    weight vector. Output entries that no block reaches are zeros. Inputs, matrices and weights are cut into their
    blocks with ``split`` (its backward concatenates the blocks' gradients once; slicing's would make a zero tensor
    of the whole input per slice).
    """

    def __init__(self, blocks: list[Block], sizes1: list[int], out_entries: list[tuple[int, int]],
                 channels: dict[int, int], w1: dict[int, int], w3: dict[int, int], dtype: torch.dtype) -> None:
        super().__init__()
        pieces = sorted([(offset, channels[i]) for i, offset in w1.items()]
                        + [(offset, out_entries[io][0]) for io, offset in w3.items()])
        if any(a + size != b for (a, size), (b, _) in zip(pieces, pieces[1:])) or (pieces and pieces[0][0] != 0):
            raise ValueError("w1, w3: the channel weights must tile the weight vector")
        piece = {offset: k for k, (offset, _) in enumerate(pieces)}
        self._sizes1, self._weight_sizes = list(sizes1), [size for _, size in pieces]
        self._plan, columns = [], []
        for io, (mul, d3) in enumerate(out_entries):
            pairs = []
            for b in (b for b in blocks if b.io == io):
                pairs.append((b.i1, channels[b.i1], b.d1, len(columns), piece.get(w1.get(b.i1)), piece.get(w3.get(io))))
                columns.append(b.tensor.reshape(len(b.tensor), -1))
            self._plan.append((mul, d3, pairs))
        self._matrix_sizes = [c.shape[1] for c in columns]
        self.register_table("table", np.concatenate(columns, axis=1), dtype)

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        entries = x1.split(self._sizes1, dim=1)
        return concat(self._products(lambda i1: entries[i1], x2, weight))

    def convolution(self, x, x2, weight, source, target) -> torch.Tensor:
        """``out[i] = sum_(e: target[e] = i) forward(x[source[e]], x2[e], weight[e])``: each x1 entry is gathered to
        the edges on its own and each output entry summed into the nodes on its own, so no per-edge array of all
        entries is made (nor split or concatenated, forward or backward)."""
        nodes, gathered = x.split(self._sizes1, dim=1), {}

        def entry(i1):
            if i1 not in gathered:
                gathered[i1] = nodes[i1].index_select(0, source)
            return gathered[i1]

        outs = self._products(entry, x2, weight)
        return torch.cat([out.new_zeros(x.shape[0], out.shape[1]).index_add(0, target, out) for out in outs], dim=1)

    def _products(self, entry, x2: torch.Tensor, weight: torch.Tensor | None) -> list[torch.Tensor]:
        """Each output entry, (samples, mul d3); ``entry(i1)`` gives x1's entry i1, (samples, c d1)."""
        # out_io = w3_io * sum_i1 w1_i1 * (x_i1 @ m): the weights are per channel, so they commute with the
        # contraction over components and go where they multiply the fewest numbers
        n = x2.shape[0]
        matrices = (x2 @ self.table).split(self._matrix_sizes, dim=1)  # every pair's per-sample matrix
        weights = [w.unsqueeze(-1) for w in weight.split(self._weight_sizes, dim=-1)] if self._weight_sizes else ()
        weighted_x: dict[int, torch.Tensor] = {}  # x_i1 * w1_i1, made once per entry
        outs = []
        for mul, d3, pairs in self._plan:
            total, w3 = None, None
            for i1, c, d1, k, w1, w3 in pairs:
                x = entry(i1).view(n, c, d1)
                m = matrices[k].view(n, d1, d3)
                early = d1 <= d3  # w1 on the x side
                if early and w1 is not None:
                    if i1 not in weighted_x:
                        weighted_x[i1] = x * weights[w1]
                    x = weighted_x[i1]
                if early and w3 is not None and len(pairs) == 1:  # w3 on the x side too
                    x, w3 = x * weights[w3], None
                if d1 == 1:
                    term = _Outer.apply(x, m)
                elif d3 == 1:
                    term = _ContractLast.apply(x, m.transpose(1, 2))
                else:
                    term = torch.bmm(x, m)
                if not early and w1 is not None:
                    term = term * weights[w1]
                total = term if total is None else total + term
            if total is None:
                outs.append(x2.new_zeros(n, mul * d3))
                continue
            outs.append((total if w3 is None else total * weights[w3]).reshape(n, mul * d3))
        return outs


class _Concat(torch.autograd.Function):
    """``torch.cat`` along the last dimension whose backward is a ``split`` (whose own backward is a ``cat``).
    ``torch.cat``'s backward slices its gradient, and the backward of a slice makes a zero tensor of the whole
    gradient per slice: in the double backward of force training that was a full-size fill per output block.

    These functions are written for ``torch.func`` too (``setup_context``, ``jvp`` and a generated vmap rule), so
    ``torch.func.grad``, ``jvp``, ``vjp`` and ``vmap`` (and curvature code built on them) run through them."""

    generate_vmap_rule = True

    @staticmethod
    def forward(sizes, *tensors):
        return torch.cat(tensors, dim=-1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.sizes = inputs[0]

    @staticmethod
    def backward(ctx, grad):
        return (None, *grad.split(ctx.sizes, dim=-1))

    @staticmethod
    def jvp(ctx, _, *tangents):
        return torch.cat(tangents, dim=-1)


def concat(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.cat(tensors, dim=-1)`` with a split for backward (see ``_Concat``)."""
    return tensors[0] if len(tensors) == 1 else _Concat.apply([t.shape[-1] for t in tensors], *tensors)


class _Bilinear(torch.autograd.Function):
    """A product bilinear in its two inputs: ``setup_context`` keeps both, and the forward-mode derivative is the
    product of each tangent with the other input (a missing tangent is zero)."""

    generate_vmap_rule = True

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs)
        ctx.save_for_forward(*inputs)

    @classmethod
    def jvp(cls, ctx, da, db):
        a, b = ctx.saved_tensors
        terms = [cls.apply(da, b) if da is not None else None, cls.apply(a, db) if db is not None else None]
        terms = [t for t in terms if t is not None]
        return terms[0] if len(terms) == 1 else terms[0] + terms[1]


class _Outer(_Bilinear):
    """``x * m``: (n, c, 1) and (n, 1, d) -> (n, c, d). With :class:`_ContractLast` and :class:`_ContractChannels` it
    makes a family closed under differentiation: an outer product is computed by broadcasting, a contraction by bmm
    (a broadcast product and a sum would make an (n, c, d) temporary). Force training differentiates twice; with
    autograd's own formulas the second derivative of a broadcast product goes through bmm outer products."""

    @staticmethod
    def forward(x, m):
        return x * m

    @staticmethod
    def backward(ctx, grad):
        x, m = ctx.saved_tensors
        return (_ContractLast.apply(grad, m) if ctx.needs_input_grad[0] else None,
                _ContractChannels.apply(x, grad) if ctx.needs_input_grad[1] else None)


class _ContractLast(_Bilinear):
    """``sum_d g[n, c, d] m[n, 0, d]``: (n, c, d) and (n, 1, d) -> (n, c, 1)."""

    @staticmethod
    def forward(g, m):
        return torch.bmm(g, m.transpose(1, 2))

    @staticmethod
    def backward(ctx, grad):
        g, m = ctx.saved_tensors
        return (_Outer.apply(grad, m) if ctx.needs_input_grad[0] else None,
                _ContractChannels.apply(grad, g) if ctx.needs_input_grad[1] else None)


class _ContractChannels(_Bilinear):
    """``sum_c x[n, c, 0] g[n, c, d]``: (n, c, 1) and (n, c, d) -> (n, 1, d)."""

    @staticmethod
    def forward(x, g):
        return torch.bmm(x.transpose(1, 2), g)

    @staticmethod
    def backward(ctx, grad):
        x, g = ctx.saved_tensors
        return (_ContractLast.apply(g, grad) if ctx.needs_input_grad[0] else None,
                _Outer.apply(x, grad) if ctx.needs_input_grad[1] else None)

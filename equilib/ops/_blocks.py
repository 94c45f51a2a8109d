"""Channel-wise products computed block by block on e3nn's flat layout: one small coupling per (x1 entry, output
entry), no permutation of the inputs or outputs.

For a single-channel x2 ('uvu') every path from x1 entry ``i1`` (``C x l1``) into output entry ``io`` (``C x l3``) is
``out_io[n, u] += x1_i1[n, u] @ M[n]``, with ``M[n] = sum_j x2[n, j] T[j]`` a ``(2 l1 + 1, 2 l3 + 1)`` matrix per
sample made from the coupling tensor ``T`` of the pair (all x2 entries that join them, summed). ``x1_i1`` is a view of
the flat input and ``out_io`` a block of the flat output, so nothing is gathered or permuted. Per-(entry, channel)
weights of x1 (``w1``) and of the output (``w3``) multiply the pair's product as ``w1 * w3``, on whichever side is
smaller: before the contraction when ``2 l1 + 1 <= 2 l3 + 1`` (the first layer of a potential, scalars in: then the
contraction is a broadcast outer product), after it otherwise (the last layer, scalars out). This touches far less
memory than gathering x1 into a channel-major layout, weighting, contracting and permuting back when x1 or the
output is a single degree; with every degree on both sides the channel-major contraction touches less, see
:func:`memory_traffic`.
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


def memory_traffic(blocks: list[Block], channels: dict[int, int], weighted: bool) -> tuple[int, int]:
    """Elements read and written per sample, (blocks, channel-major), for choosing between them: each elementwise
    step reads and writes its operands once. ``channels``: multiplicity of each x1 entry."""
    d1 = {b.i1: (channels[b.i1], b.d1) for b in blocks}
    d3 = {b.io: (channels[b.i1], b.d3) for b in blocks}
    x1 = sum(c * d for c, d in d1.values())
    out = sum(c * d for c, d in d3.values())
    # channel-major: gather x1 (2), expand and apply its weights (1 + 3), contract (1 + 1 on the output side),
    # permute the output (2), expand and apply its weights (1 + 3)
    channel_major = (2 + 4 * weighted + 1) * x1 + (1 + 2 + 4 * weighted) * out
    by_block = 2 * out  # concatenating the output blocks
    terms = {}
    for b in blocks:
        c = channels[b.i1]
        by_block += 3 * c * min(b.d1, b.d3) * weighted + c * (b.d1 + b.d3)  # weights on the smaller side, contraction
        terms[b.io] = terms.get(b.io, -1) + 1
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
        pieces = sorted((offset, channels[i]) for i, offset in w1.items()) + sorted(
            (offset, out_entries[io][0]) for io, offset in w3.items())
        pieces.sort()
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
        self.row_size = max(c * (b.d1 + b.d3) for b in blocks for c in [channels[b.i1]])

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        n = x1.shape[0]
        entries = x1.split(self._sizes1, dim=1)
        matrices = (x2 @ self.table).split(self._matrix_sizes, dim=1)  # every pair's per-sample matrix
        weights = weight.split(self._weight_sizes, dim=-1) if self._weight_sizes else ()
        outs = []
        for mul, d3, pairs in self._plan:
            total = None
            for i1, c, d1, k, w1, w3 in pairs:
                x = entries[i1].view(n, c, d1)
                m = matrices[k].view(n, d1, d3)
                scale = None
                for w in (w1, w3):
                    if w is not None:
                        scale = weights[w].unsqueeze(-1) if scale is None else scale * weights[w].unsqueeze(-1)
                if scale is not None and d1 <= d3:
                    x = x * scale
                term = x * m if d1 == 1 else torch.bmm(x, m)  # a bmm of (c, 1) x (1, d3) is many times slower
                if scale is not None and d1 > d3:
                    term = term * scale
                total = term if total is None else total + term
            outs.append(total.reshape(n, mul * d3) if total is not None else x1.new_zeros(n, mul * d3))
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)

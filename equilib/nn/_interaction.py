"""An equivariant message-passing block whose convolution is any ``equilib.ops`` tensor product.

The NequIP/MACE interaction (Batzner et al. 2022; Batatia et al., "MACE", NeurIPS 2022): node features are mixed
by a linear map, sent along edges through ``TP(h_j, Y(r_ij); R(|r_ij|))`` with per-edge weights from a radial MLP,
summed at the receiving atom and divided by the square root of the average number of neighbors (NequIP), mixed
again, passed through a gated nonlinearity (Weiler et al. 2018), and added to a species-dependent self-connection
(residual update).
"""

from __future__ import annotations

import torch
from e3nn import o3

from ..ops import make_tensor_product
from ._layers import EquivariantLinear, Gate, RadialMLP, SpeciesSelfConnection


class InteractionBlock(torch.nn.Module):
    """One message-passing layer; ``backend`` and ``tp_options`` choose the tensor product."""

    def __init__(self, irreps_in: o3.Irreps, irreps_out: o3.Irreps, irreps_sh: o3.Irreps, num_species: int,
                 num_radial: int, radial_hidden: int, avg_num_neighbors: float, backend: str,
                 tp_options: dict | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.irreps_in, self.irreps_out = o3.Irreps(irreps_in), o3.Irreps(irreps_out)
        self.avg_num_neighbors = float(avg_num_neighbors)
        self.linear_up = EquivariantLinear(self.irreps_in, self.irreps_in, dtype)
        self.tp = make_tensor_product(backend, self.irreps_in, irreps_sh, self.irreps_out,
                                      dtype=dtype, **(tp_options or {}))
        self.radial = RadialMLP([num_radial, radial_hidden, radial_hidden, self.tp.weight_numel], dtype)
        self.gate = Gate(o3.Irreps([(mul, ir) for mul, ir in self.irreps_out if ir.l == 0]),
                         o3.Irreps([(mul, ir) for mul, ir in self.irreps_out if ir.l > 0]))
        self.linear_down = EquivariantLinear(self.irreps_out, self.gate.irreps_in, dtype)
        self.self_connection = SpeciesSelfConnection(self.irreps_in, num_species, self.irreps_out, dtype)

    def forward(self, x, species, edge_index, edge_sh, edge_radial):
        """``x`` (nodes, irreps_in), ``species`` (nodes,) indices into the model's species, ``edge_index`` (2, edges)
        neighbor j then center i, ``edge_sh`` and ``edge_radial`` per edge."""
        source, target = edge_index
        h = self.linear_up(x)
        aggregated = self.tp.convolution(h, edge_sh, self.radial(edge_radial), source, target)
        aggregated = aggregated / self.avg_num_neighbors**0.5
        return self.gate(self.linear_down(aggregated)) + self.self_connection(x, species)

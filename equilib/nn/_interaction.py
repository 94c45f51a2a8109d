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
    """One message-passing layer; ``backend`` and ``tp_options`` choose the tensor product.

    ``out = gate(linear_down(conv(linear_up(x)) / sqrt(avg_num_neighbors))) + self_connection(x, species)``, with
    ``conv`` the product's :meth:`~equilib.ops.TensorProduct.convolution` weighted per edge by a radial MLP.

    Args:
        irreps_in: Irreps of the node features.
        irreps_out: Irreps of the output features (its scalars gate its l > 0 entries).
        irreps_sh: Irreps of the edge spherical harmonics.
        num_species: Number of species of the self-connection.
        num_radial: Size of the per-edge radial features.
        radial_hidden: Width of the radial MLP's two hidden layers.
        avg_num_neighbors: Normaliser of the message sums (square root taken).
        backend: Tensor-product backend (``"cg"``, ``"grid"``, ``"gaunt"``, ``"cp"``).
        tp_options: Options of the backend.
        dtype: Dtype of the parameters and tables; default torch's default dtype.

    Raises:
        ValueError: As :func:`~equilib.ops.make_tensor_product` for a backend that cannot produce ``irreps_out``.

    Examples:
        >>> import torch
        >>> from equilib.nn import InteractionBlock
        >>> _ = torch.manual_seed(0)
        >>> block = InteractionBlock("4x0e+4x1o", "4x0e+4x1o", "0e+1o", num_species=2, num_radial=3, radial_hidden=8,
        ...                          avg_num_neighbors=2.0, backend="grid", dtype=torch.float64)
        >>> x = torch.randn(3, 16, dtype=torch.float64)
        >>> edge_index = torch.tensor([[1, 2, 0, 0], [0, 0, 1, 2]])  # (neighbor j, center i)
        >>> edge_sh, edge_radial = torch.randn(4, 4, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
        >>> block(x, torch.tensor([0, 1, 1]), edge_index, edge_sh, edge_radial).shape
        torch.Size([3, 16])
    """

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
        """One interaction: messages along the edges, summed at the centers, gated, plus the self-connection.

        Args:
            x: (nodes, irreps_in.dim) node features.
            species: (nodes,) torch.long indices into the model's species.
            edge_index: (2, edges) neighbor j (source), then center i (target).
            edge_sh: (edges, irreps_sh.dim) spherical harmonics of the edge vectors.
            edge_radial: (edges, num_radial) radial features of the edges.

        Returns:
            (nodes, irreps_out.dim) node features.
        """
        source, target = edge_index
        h = self.linear_up(x)
        aggregated = self.tp.convolution(h, edge_sh, self.radial(edge_radial), source, target)
        aggregated = aggregated / self.avg_num_neighbors**0.5
        return self.gate(self.linear_down(aggregated)) + self.self_connection(x, species)

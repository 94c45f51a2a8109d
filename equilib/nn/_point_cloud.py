"""Models of point-cloud dynamics: from positions, velocities and per-point charges, the positions a time step later.

``EquivariantDynamicsNet`` is E(3)-equivariant message passing (NequIP-style interaction blocks, Batzner et al.
2022, whose convolutions are any ``equilib.ops`` tensor product) on the complete graph of each system: velocities
and positions relative to the centroid enter as l = 1 features, charges select the self-connection, and each edge's
radial network sees Gaussians of the distance and the same Gaussians times q_i q_j; with ``scalar_messages`` it also
sees both ends' invariant features (layer-normalised), so that messages are nonlinear in them as in EGNN's edge
network, and the readout starts at zero (no motion). It predicts a displacement (an l = 1 output), so the prediction
moves with the inputs under rotations, reflections and translations.
``PlainDynamicsGNN`` is the non-equivariant message-passing baseline of EGNN's n-body experiment (Satorras et al.
2021, "GNN"): raw coordinates and velocities as node features, q_i q_j on the edges.
"""

from __future__ import annotations

import torch
from e3nn import o3

from ._harmonics import SphericalHarmonics
from ._interaction import InteractionBlock
from ._layers import EquivariantLinear


def complete_graph(systems: int, points: int, device=None) -> torch.Tensor:
    """``edge_index`` of every ordered pair of distinct points within each system, points numbered system by system.

    Args:
        systems: Number of systems.
        points: Points per system.
        device: Device of the result.

    Returns:
        (2, systems * points * (points - 1)) torch.long: (source j, target i), grouped by target.

    Examples:
        >>> from equilib.nn import complete_graph
        >>> complete_graph(2, 3)
        tensor([[1, 2, 0, 2, 0, 1, 4, 5, 3, 5, 3, 4],
                [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]])
    """
    i, j = torch.meshgrid(torch.arange(points, device=device), torch.arange(points, device=device), indexing="ij")
    keep = i != j
    offsets = (torch.arange(systems, device=device) * points).view(-1, 1)
    return torch.stack([(j[keep] + offsets).reshape(-1), (i[keep] + offsets).reshape(-1)])


def check_dynamics_inputs(positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> None:
    if positions.dim() < 2 or positions.shape[-1] != 3:
        raise ValueError(f"positions: expected shape (..., points, 3), got {tuple(positions.shape)}")
    if velocities.shape != positions.shape:
        raise ValueError(f"velocities: expected shape {tuple(positions.shape)} like positions, "
                         f"got {tuple(velocities.shape)}")
    if charges.shape != positions.shape[:-1]:
        raise ValueError(f"charges: expected shape {tuple(positions.shape[:-1])}, got {tuple(charges.shape)}")


class GaussianBasis(torch.nn.Module):
    """``num`` Gaussians of width ``max_radius / num`` centred on [0, max_radius].

    Args:
        max_radius: The last centre.
        num: Number of Gaussians.
        dtype: Dtype of the centres; default torch's default dtype.
    """

    def __init__(self, max_radius: float, num: int, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.register_buffer("centres", torch.linspace(0.0, max_radius, num, dtype=dtype or torch.get_default_dtype()))
        self.width = max_radius / num

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        """The basis at distances ``r``.

        Args:
            r: Distances, any shape.

        Returns:
            ``(*r.shape, num)``.
        """
        return torch.exp(-(((r.unsqueeze(-1) - self.centres) / self.width) ** 2))


class EquivariantDynamicsNet(torch.nn.Module):
    """E(3) x S_n-equivariant prediction of positions after a time step; ``backend`` picks the tensor product.

    Args:
        backend: Tensor-product backend of the interaction blocks.
        channels: Channels per irrep.
        lmax: Largest degree of the hidden features and edge spherical harmonics.
        num_layers: Number of interaction blocks.
        num_radial: Number of Gaussian radial basis functions of the distance.
        radial_hidden: Width of the radial network.
        max_radius: The Gaussians' centres span [0, max_radius].
        tp_options: Options of the backend.
        scalar_messages: Edge weights also see both ends' layer-normalised invariant features (readout starts at
            zero).
        coordinate_updates: EGNN-style: every layer moves the points and the next one sees the moved geometry.
        dtype: Dtype of the parameters and tables; default torch's default dtype.

    Examples:
        >>> import torch
        >>> from equilib.groups import E3, OnSet, Permutations, Positions, Scalars, Vectors, assert_equivariant
        >>> from equilib.nn import EquivariantDynamicsNet
        >>> _ = torch.manual_seed(0)
        >>> net = EquivariantDynamicsNet(channels=4, lmax=1, num_layers=1, num_radial=4, radial_hidden=8,
        ...                              dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> x, v = torch.randn(2, 5, 3, generator=g, dtype=torch.float64)  # positions, velocities
        >>> q = torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
        >>> net(x, v, q).shape
        torch.Size([5, 3])
        >>> reps = (OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))
        >>> assert_equivariant(net, E3() * Permutations(5), (x, v, q), reps, OnSet(Positions())) < 1e-10
        True
    """

    def __init__(self, backend: str = "grid", channels: int = 32, lmax: int = 2, num_layers: int = 4,
                 num_radial: int = 16, radial_hidden: int = 64, max_radius: float = 10.0,
                 tp_options: dict | None = None, scalar_messages: bool = False,
                 coordinate_updates: bool = False, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        dtype = dtype or torch.get_default_dtype()
        c = channels
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        hidden = o3.Irreps([(c, (l, (-1) ** l)) for l in range(lmax + 1)])
        self.irreps_in = o3.Irreps(f"{c}x0e+2x1o")  # embedded scalars; velocity, position from the centroid
        self.embedding = torch.nn.Linear(3, c, dtype=dtype)  # charge, speed, distance from the centroid
        self.radial_basis = GaussianBasis(max_radius, num_radial, dtype)
        self.spherical_harmonics = SphericalHarmonics(lmax, dtype=dtype)
        self.channels, self.scalar_messages = c, scalar_messages
        edge_inputs = 2 * num_radial + (2 * c if scalar_messages else 0)
        self.layers = torch.nn.ModuleList(
            InteractionBlock(self.irreps_in if k == 0 else hidden, hidden, self.irreps_sh, num_species=2,
                             num_radial=edge_inputs, radial_hidden=radial_hidden, avg_num_neighbors=4.0,
                             backend=backend, tp_options=tp_options, dtype=dtype)
            for k in range(num_layers))
        self.readout = EquivariantLinear(hidden, "1x1o", dtype)
        self.updates = torch.nn.ModuleList(
            EquivariantLinear(self.irreps_in if k == 0 else hidden, "1x1o", dtype)
            for k in range(num_layers if coordinate_updates else 0))
        if scalar_messages or coordinate_updates:
            with torch.no_grad():  # start from "nothing moves" rather than from large random displacements
                for linear in [self.readout, *self.updates]:
                    linear.weight.zero_()

    def _edges(self, x, source, target, qq):
        """Each edge's radial features (Gaussians of |r_ij|, and the same times q_i q_j) and spherical harmonics."""
        vectors = x.index_select(0, source) - x.index_select(0, target)
        rbf = self.radial_basis(vectors.norm(dim=-1))
        return torch.cat([rbf, qq * rbf], dim=-1), self.spherical_harmonics(vectors)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """Predicted positions: the input positions plus an equivariant displacement.

        Args:
            positions: (..., points, 3) positions.
            velocities: (..., points, 3) velocities.
            charges: (..., points) charges.

        Returns:
            (..., points, 3) predicted positions.

        Raises:
            ValueError: If the shapes do not match (``positions`` (..., points, 3), ``velocities`` the same,
                ``charges`` (..., points)).
        """
        check_dynamics_inputs(positions, velocities, charges)
        shape = positions.shape
        points = shape[-2]
        x = positions.reshape(-1, points, 3)
        v = velocities.reshape(-1, points, 3)
        q = charges.reshape(-1, points)
        relative = x - x.mean(dim=1, keepdim=True)
        scalars = torch.stack([q, v.norm(dim=-1), relative.norm(dim=-1)], dim=-1)
        h = torch.cat([self.embedding(scalars), v, relative], dim=-1).reshape(-1, self.irreps_in.dim)
        edge_index = complete_graph(x.shape[0], points, device=x.device)
        source, target = edge_index
        flat_x, flat_q = x.reshape(-1, 3), q.reshape(-1)
        qq = (flat_q.index_select(0, source) * flat_q.index_select(0, target)).unsqueeze(-1)
        species = (flat_q > 0).long()
        if not self.updates:  # one geometry for every layer
            edge_radial, edge_sh = self._edges(flat_x, source, target, qq)
        for k, layer in enumerate(self.layers):
            if self.updates:  # EGNN-style: each layer moves the points, and the next one sees the moved geometry
                flat_x = flat_x + self.updates[k](h)
                edge_radial, edge_sh = self._edges(flat_x, source, target, qq)
            edge_features = edge_radial
            if self.scalar_messages:  # both ends' invariant features condition the edge weights (normalised)
                scalars = torch.nn.functional.layer_norm(h[:, : self.channels], (self.channels,))
                edge_features = torch.cat([edge_radial, scalars.index_select(0, source),
                                           scalars.index_select(0, target)], dim=-1)
            h = layer(h, species, edge_index, edge_sh, edge_features)
        return flat_x.reshape(shape) + self.readout(h).reshape(shape)


class PlainDynamicsGNN(torch.nn.Module):
    """EGNN's non-equivariant "GNN" baseline.

    Node features from (x, v), edge messages from (h_i, h_j, q_i q_j) (and ``|x_i - x_j|^2`` with ``distances``, as
    EGNN and FA-GNN give their edges), residual node updates, and a decoder to a displacement.

    Args:
        hidden: Width of the node and edge networks.
        num_layers: Number of message-passing layers.
        distances: Add the squared distance of the input positions to the edge features.
        dropout: Dropout probability after each hidden activation in training (0: none); a regulariser, off in
            evaluation mode.
        dtype: Dtype of the parameters; default torch's default dtype.

    Raises:
        ValueError: If ``dropout`` is not in [0, 1).
    """

    def __init__(self, hidden: int = 64, num_layers: int = 4, distances: bool = False, dropout: float = 0.0,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a probability in [0, 1), got {dropout!r}")
        dtype = dtype or torch.get_default_dtype()
        act = torch.nn.SiLU

        def mlp(n_in: int, n_out: int) -> torch.nn.Sequential:
            drop = [torch.nn.Dropout(dropout)] if dropout > 0 else []
            return torch.nn.Sequential(torch.nn.Linear(n_in, hidden, dtype=dtype), act(), *drop,
                                       torch.nn.Linear(hidden, n_out, dtype=dtype))

        self.distances = distances
        self.check_inputs = check_dynamics_inputs
        edge_features = 2 if distances else 1
        self.embedding = torch.nn.Linear(6, hidden, dtype=dtype)
        self.edge_mlps = torch.nn.ModuleList(mlp(2 * hidden + edge_features, hidden) for _ in range(num_layers))
        self.node_mlps = torch.nn.ModuleList(mlp(2 * hidden, hidden) for _ in range(num_layers))
        self.decoder = mlp(hidden, 3)

    def edges(self, positions: torch.Tensor, charges: torch.Tensor):
        """The complete graph of each system and its edge features.

        Args:
            positions: ``(S, points, 3)`` positions.
            charges: ``(S, points)`` charges.

        Returns:
            ``(source, target)`` node indices over the ``S * points`` flattened nodes and ``(E, 1 or 2)`` features
            ``q_i q_j`` (and ``|x_i - x_j|^2``).
        """
        systems, points = charges.shape
        source, target = complete_graph(systems, points, device=charges.device)
        q = charges.reshape(-1)
        features = [(q.index_select(0, source) * q.index_select(0, target)).unsqueeze(-1)]
        if self.distances:
            x = positions.reshape(-1, 3)
            features.append((x.index_select(0, source) - x.index_select(0, target)).square().sum(-1, keepdim=True))
        return source, target, torch.cat(features, -1)

    def layer(self, k: int, h: torch.Tensor, source: torch.Tensor, target: torch.Tensor,
              edge_features: torch.Tensor) -> torch.Tensor:
        """Message-passing layer ``k``: summed edge messages and a residual node update.

        Args:
            k: Layer index.
            h: ``(nodes, hidden)`` node features.
            source: ``(E,)`` sending node of each edge.
            target: ``(E,)`` receiving node.
            edge_features: ``(E, 1 or 2)`` invariant edge features.

        Returns:
            The updated ``(nodes, hidden)`` features.
        """
        messages = self.edge_mlps[k](torch.cat([h.index_select(0, target), h.index_select(0, source), edge_features],
                                               dim=-1))
        summed = torch.zeros_like(h).index_add_(0, target, messages)
        return h + self.node_mlps[k](torch.cat([h, summed], dim=-1))

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """Predicted positions: the input positions plus a decoded displacement.

        Args:
            positions: (..., points, 3) positions.
            velocities: (..., points, 3) velocities.
            charges: (..., points) charges.

        Returns:
            (..., points, 3) predicted positions.

        Raises:
            ValueError: If the shapes do not match (``positions`` (..., points, 3), ``velocities`` the same,
                ``charges`` (..., points)).
        """
        check_dynamics_inputs(positions, velocities, charges)
        shape = positions.shape
        points = shape[-2]
        h = self.embedding(torch.cat([positions, velocities], dim=-1).reshape(-1, 6))
        source, target, features = self.edges(positions.reshape(-1, points, 3), charges.reshape(-1, points))
        for k in range(len(self.edge_mlps)):
            h = self.layer(k, h, source, target, features)
        return positions + self.decoder(h).reshape(shape)

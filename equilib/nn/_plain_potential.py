"""A plain (not rotation-invariant) message-passing potential on raw Cartesian edge vectors: the backbone that frame
averaging (Puny et al., ICLR 2022, "Frame Averaging for Invariant and Equivariant Network Design") makes exact.

Each layer sends messages ``m_ij = MLP([h_i, h_j, e_ij]) u(r_ij)`` along the edges of the neighbor list, where
``e_ij`` embeds the Bessel basis of ``r_ij`` together with the raw components of the edge vector ``x_j - x_i +
shifts . cell`` (divided by the cutoff), and ``u`` is NequIP's polynomial envelope, so energies and forces are smooth
as atoms cross the cutoff. Node updates are residual, ``h_i += MLP([h_i, sum_j m_ij / avg_num_neighbors])``, and an
MLP reads the atomic outputs ``y_i``. The Cartesian components make it translation- and permutation-invariant but
not rotation-invariant; :class:`equilib.frames.FrameAveragedPotential` averages it over frames. The atomic energies,
forces and stress follow :class:`equilib.nn.EquivariantPotential` (``E_i = scale * y_i + shift + E0[Z_i]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..data import edge_vectors_and_lengths
from ._potential import InteratomicPotential, check_config


@dataclass
class PlainPotentialConfig:
    """Hyper-parameters of :class:`PlainPotential`; saved with the model.

    Attributes:
        species: Distinct atomic numbers the model knows, in embedding order.
        cutoff: Neighbor cutoff in Angstrom (the envelope vanishes there).
        channels: Width of the node features and of every MLP.
        num_layers: Number of message-passing layers.
        num_radial: Number of Bessel radial basis functions.
        avg_num_neighbors: Normaliser of the message sums.
        e0s: ``{Z: eV}`` per-element reference energies added to the atomic energies (0 for species not listed).
        scale: Scale of the atomic energies (eV).
        shift: Shift of the atomic energies (eV).
        dtype: ``"float32"`` or ``"float64"``.

    Raises:
        ValueError: If ``species`` is empty or repeats an element, ``dtype`` is unknown, a size or ``cutoff`` is not
            positive, or ``num_layers`` is below 1.
    """

    species: list[int]
    cutoff: float = 5.0
    channels: int = 32
    num_layers: int = 2
    num_radial: int = 8
    avg_num_neighbors: float = 20.0
    e0s: dict = field(default_factory=dict)  # {Z: eV}
    scale: float = 1.0
    shift: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_config(self, ("cutoff", "channels", "num_radial", "avg_num_neighbors"))
        if self.num_layers < 1:
            raise ValueError(f"num_layers: expected >= 1, got {self.num_layers}")
        self.e0s = {int(z): float(e) for z, e in self.e0s.items()}


def _mlp(n_in: int, hidden: int, n_out: int, dtype: torch.dtype) -> torch.nn.Sequential:
    return torch.nn.Sequential(torch.nn.Linear(n_in, hidden, dtype=dtype), torch.nn.SiLU(),
                               torch.nn.Linear(hidden, n_out, dtype=dtype))


class PlainPotential(InteratomicPotential):
    """A message-passing potential that sees raw Cartesian edge vectors: not rotation-invariant by itself.

    Same call and outputs as :class:`~equilib.nn.EquivariantPotential` (``energy``, ``energies``, ``forces``,
    ``stress``), the same normalisation and save/load. :meth:`atomic_outputs` evaluates the network on any graph of
    edge vectors, which is how :class:`equilib.frames.FrameAveragedPotential` runs it on copies of a structure seen in
    each of its frames.

    Args:
        config: The hyper-parameters (the model's dtype is ``config.dtype``).

    Examples:
        >>> import torch
        >>> from ase.build import molecule
        >>> from equilib.data import AtomicData
        >>> from equilib.nn import PlainPotential, PlainPotentialConfig
        >>> _ = torch.manual_seed(0)
        >>> model = PlainPotential(PlainPotentialConfig(species=[1, 8], cutoff=3.0, channels=8, dtype="float64"))
        >>> out = model(AtomicData.from_ase(molecule("H2O"), cutoff=3.0))
        >>> {key: tuple(value.shape) for key, value in out.items()}
        {'energy': (1,), 'energies': (3,), 'forces': (3, 3)}
        >>> bool(out["forces"].sum(0).abs().max() < 1e-12)  # translation-invariant: no net force
        True
    """

    Config = PlainPotentialConfig

    def __init__(self, config: PlainPotentialConfig) -> None:
        super().__init__()
        dtype = self._species_and_radial_layers(config)
        c = config.channels
        self.edge_embedding = _mlp(config.num_radial + 3, c, c, dtype)
        self.messages = torch.nn.ModuleList(_mlp(3 * c, c, c, dtype) for _ in range(config.num_layers))
        self.updates = torch.nn.ModuleList(_mlp(2 * c, c, c, dtype) for _ in range(config.num_layers))
        self.readout = _mlp(c, c, 1, dtype)

    def atomic_outputs(self, vectors: torch.Tensor, lengths: torch.Tensor, species: torch.Tensor,
                       edge_index: torch.Tensor, pool: torch.Tensor | None = None) -> torch.Tensor:
        """The network's outputs ``y`` (before the normalisation) on a graph given by its edge vectors.

        Frame averaging runs it on a graph of copies (each node a copy of an atom seen in one frame, each edge a
        copy of an edge with its vector in that frame). With ``pool`` (the atom each node copies) the node features
        are averaged over the copies of each atom after every layer, so the next layer's messages see features that
        no longer depend on the frame (what local frame averaging needs).

        Args:
            vectors: ``(E, 3)`` edge vectors.
            lengths: ``(E,)`` their lengths.
            species: ``(N,)`` species indices (:meth:`species`) of the nodes.
            edge_index: ``(2, E)`` neighbor list, ``edge_index[1]`` the node that receives the message.
            pool: ``(N,)`` torch.long atom of each node, or None.

        Returns:
            ``(N,)`` outputs of the nodes.

        Raises:
            ValueError: If the shapes do not fit (``vectors`` (E, 3), ``lengths`` (E,), ``edge_index`` (2, E),
                ``pool`` (N,)).
        """
        num_edges, num_nodes = edge_index.shape[-1], species.shape[0]
        if (tuple(vectors.shape) != (num_edges, 3) or tuple(lengths.shape) != (num_edges,) or edge_index.dim() != 2
                or edge_index.shape[0] != 2 or (pool is not None and tuple(pool.shape) != (num_nodes,))):
            raise ValueError(f"vectors, lengths, edge_index, pool: expected shapes (E, 3), (E,), (2, E), (N,), got "
                             f"{tuple(vectors.shape)}, {tuple(lengths.shape)}, {tuple(edge_index.shape)}, "
                             f"{None if pool is None else tuple(pool.shape)}")
        source, target = edge_index[0], edge_index[1]
        envelope = self.envelope(lengths).unsqueeze(-1)
        edges = self.edge_embedding(torch.cat([self.radial_basis(lengths), vectors / self.config.cutoff], dim=-1))
        h = self.embedding(species)
        if pool is not None:
            copies = torch.bincount(pool).to(h.dtype).unsqueeze(-1)
        for message, update in zip(self.messages, self.updates):
            m = message(torch.cat([h.index_select(0, target), h.index_select(0, source), edges], dim=-1)) * envelope
            summed = torch.zeros(num_nodes, m.shape[-1], dtype=m.dtype, device=m.device)
            summed = summed.index_add(0, target, m) / self.config.avg_num_neighbors
            h = h + update(torch.cat([h, summed], dim=-1))
            if pool is not None:
                atoms = torch.zeros(copies.shape[0], h.shape[-1], dtype=h.dtype, device=h.device)
                h = (atoms.index_add(0, pool, h) / copies).index_select(0, pool)
        return self.readout(h).squeeze(-1)

    def atomic_energies(self, data, pos: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The atomic energies: the network on the lab-frame edge vectors, normalised.

        Args:
            data: The :class:`~equilib.data.AtomicData` or ``Batch`` (neighbor list, atomic numbers).
            pos: ``(atoms, 3)`` positions in the model's dtype.
            cell: ``(graphs, 3, 3)`` cells in the model's dtype.
            batch: ``(atoms,)`` graph of each atom.

        Returns:
            ``(atoms,)`` energies in eV.
        """
        vectors, lengths = edge_vectors_and_lengths(pos, cell, data.edge_index, data.cell_offsets, batch)
        species = self.species(data.atomic_numbers)
        return self.normalise(self.atomic_outputs(vectors, lengths, species, data.edge_index), species)

"""An E(3)-equivariant interatomic potential in the NequIP/MACE family on any ``equilib.ops`` backend, and what every
equilib potential shares (:class:`InteratomicPotential`).

Energy is a sum of atomic energies ``E_i = scale * y_i + shift + E0[Z_i]``; forces are ``-dE/dpos`` by autograd;
stress is ``(1/V) dE/d(strain)`` under a symmetric displacement of positions and cell (the route NequIP and MACE
take), in eV/A^3 with ASE's sign convention (checked against ``ase.calculators.fd`` in the tests).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from e3nn import o3

from .. import __version__
from ..data import MAX_ATOMIC_NUMBER, batch_index, edge_vectors_and_lengths
from ..utils import atomic_save, scatter_sum
from ._harmonics import SphericalHarmonics
from ._interaction import InteractionBlock
from ._layers import EquivariantLinear
from ._radial import BesselBasis, PolynomialCutoff


@dataclass
class PotentialConfig:
    """Hyper-parameters of :class:`EquivariantPotential`; saved with the model.

    Attributes:
        species: Distinct atomic numbers the model knows, in one-hot order.
        cutoff: Neighbor cutoff in Angstrom (the radial basis and envelope vanish there).
        channels: Channels per irrep of the hidden features.
        lmax: Largest degree of the hidden features and edge spherical harmonics.
        num_layers: Number of interaction blocks.
        num_radial: Number of Bessel radial basis functions.
        radial_hidden: Width of the radial MLP.
        backend: Tensor-product backend of the interaction blocks.
        tp_options: Options of the backend.
        avg_num_neighbors: Normaliser of the message sums.
        e0s: ``{Z: eV}`` per-element reference energies added to the atomic energies (0 for species not listed).
        scale: Scale of the atomic energies (eV).
        shift: Shift of the atomic energies (eV).
        dtype: ``"float32"`` or ``"float64"``.

    Raises:
        ValueError: If ``species`` is empty or repeats an element, ``dtype`` is unknown, a size or ``cutoff`` is not
            positive, ``lmax`` is negative or ``num_layers`` is below 1.
    """

    species: list[int]  # atomic numbers the model knows, in one-hot order
    cutoff: float = 5.0
    channels: int = 32
    lmax: int = 2
    num_layers: int = 2
    num_radial: int = 8
    radial_hidden: int = 32
    backend: str = "grid"
    tp_options: dict = field(default_factory=dict)
    avg_num_neighbors: float = 20.0
    e0s: dict = field(default_factory=dict)  # {Z: eV}
    scale: float = 1.0
    shift: float = 0.0
    dtype: str = "float32"

    def __post_init__(self) -> None:
        check_config(self, ("cutoff", "channels", "num_radial", "radial_hidden", "avg_num_neighbors"))
        if self.lmax < 0 or self.num_layers < 1:
            raise ValueError(f"lmax, num_layers: expected >= 0 and >= 1, got {self.lmax}, {self.num_layers}")
        self.e0s = {int(z): float(e) for z, e in self.e0s.items()}


def check_config(config, positive: tuple[str, ...]) -> None:
    """The checks every potential's config shares: distinct species, a known dtype, positive sizes.

    Args:
        config: A config dataclass with ``species`` and ``dtype`` fields.
        positive: Names of the fields that must be positive.

    Raises:
        ValueError: If ``species`` is empty or repeats an element, ``dtype`` is unknown or a field in ``positive``
            is not positive.
    """
    if not config.species or len(set(config.species)) != len(config.species):
        raise ValueError(f"species: expected distinct atomic numbers, got {config.species!r}")
    if config.dtype not in ("float32", "float64"):
        raise ValueError(f"dtype: expected 'float32' or 'float64', got {config.dtype!r}")
    for name in positive:
        if not getattr(config, name) > 0:
            raise ValueError(f"{name}: expected a positive value, got {getattr(config, name)!r}")


def species_table(species: list[int]) -> torch.Tensor:
    """The index of each atomic number in ``species``, -1 for the others.

    Args:
        species: Distinct atomic numbers.

    Returns:
        ``(MAX_ATOMIC_NUMBER + 1,)`` torch.long.
    """
    table = torch.full((MAX_ATOMIC_NUMBER + 1,), -1, dtype=torch.long)
    table[torch.tensor(species)] = torch.arange(len(species))
    return table


def reference_energies(species: list[int], e0s: dict, dtype: torch.dtype) -> torch.Tensor:
    """The per-element reference energies in species order (0 for the elements ``e0s`` does not list).

    Args:
        species: Atomic numbers, in the model's order.
        e0s: ``{Z: eV}``.
        dtype: Dtype of the result.

    Returns:
        ``(len(species),)`` tensor.
    """
    e0 = torch.zeros(len(species), dtype=dtype)
    for k, z in enumerate(species):
        e0[k] = e0s.get(z, 0.0)
    return e0


def _read_model_file(path: str | os.PathLike, map_location) -> dict:
    try:
        blob = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:  # noqa: BLE001
        raise ValueError(f"{path}: not an equilib model file ({type(err).__name__}: {err})") from None
    if not isinstance(blob, dict) or not isinstance(blob.get("kind"), str) or "config" not in blob:
        raise ValueError(f"{path}: not an equilib model file (no 'kind' and 'config')")
    return blob


class InteratomicPotential(torch.nn.Module):
    """What every equilib potential shares: the call, forces and stress by autograd, the normalisation, save/load.

    A subclass builds its layers from ``config`` (a dataclass with a ``dtype`` field; ``Config`` names its class)
    and implements :meth:`atomic_energies`; :meth:`forward` differentiates the sum of the atomic energies. Forces
    are ``-dE/dpos``; stress is ``(1/V) dE/d(strain)`` under the symmetric strain that moves positions and cell
    together, in eV/A^3 with ASE's sign. Subclasses that hold ``e0`` and ``species_index`` buffers get
    :meth:`normalise` and :meth:`species` from here; a message-passing potential makes them, its species embedding,
    radial basis and envelope with :meth:`_species_and_radial_layers`.
    """

    Config: ClassVar[type]
    config: object
    e0: torch.Tensor
    species_index: torch.Tensor

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the model computes in."""
        return self.e0.dtype

    def _species_and_radial_layers(self, config) -> torch.dtype:
        """Keep ``config`` and make what every message-passing potential starts from: the species lookup and the
        E0s (buffers), the species embedding (``config.channels`` wide, N(0, 1): unit-variance features), the
        Bessel radial basis and the envelope. Returns the model's dtype."""
        self.config = config
        dtype = getattr(torch, config.dtype)
        self.register_buffer("species_index", species_table(config.species), persistent=False)
        self.register_buffer("e0", reference_energies(config.species, config.e0s, dtype))
        self.embedding = torch.nn.Embedding(len(config.species), config.channels, dtype=dtype)
        self.radial_basis = BesselBasis(config.cutoff, config.num_radial, dtype=dtype)
        self.envelope = PolynomialCutoff(config.cutoff)
        return dtype

    @property
    def cutoff(self) -> float:
        """The neighbor cutoff (Angstrom) its inputs' neighbor lists need."""
        return float(self.config.cutoff)

    def _apply(self, fn, recurse: bool = True):
        """``torch.nn.Module._apply``; after a conversion to float32 or float64 the config names the new dtype, so
        that :meth:`save` and checkpoints rebuild the model in the dtype it computes in."""
        super()._apply(fn, recurse)
        name = str(self.dtype).removeprefix("torch.")
        if name in ("float32", "float64") and name != self.config.dtype:
            self.config = dataclasses.replace(self.config, dtype=name)
        return self

    def species(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Each atom's index in the model's species list.

        Args:
            atomic_numbers: ``(atoms,)`` torch.long.

        Returns:
            ``(atoms,)`` torch.long indices into ``config.species``.

        Raises:
            ValueError: If an element is not among ``config.species`` (the message names it).
        """
        index = self.species_index.index_select(0, atomic_numbers)
        if (index < 0).any():
            unknown = sorted(set(atomic_numbers[index < 0].tolist()))
            raise ValueError(f"atomic_numbers: elements {unknown} are not among the model's species "
                             f"{self.config.species}")
        return index

    def normalise(self, y: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """Atomic energies ``scale * y + shift + E0[species]`` from the network's outputs ``y``.

        Args:
            y: ``(atoms,)`` network outputs.
            species: ``(atoms,)`` species indices (from :meth:`species`).

        Returns:
            ``(atoms,)`` atomic energies in eV.
        """
        return self.config.scale * y + self.config.shift + self.e0.index_select(0, species)

    def atomic_energies(self, data, pos: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The atomic energies of ``data`` at positions ``pos`` and cells ``cell`` (what :meth:`forward` sums).

        Args:
            data: The :class:`~equilib.data.AtomicData` or ``Batch`` (neighbor list, atomic numbers).
            pos: ``(atoms, 3)`` positions in the model's dtype (differentiable: forces and stress flow through them).
            cell: ``(graphs, 3, 3)`` cells in the model's dtype (strained for the stress).
            batch: ``(atoms,)`` graph of each atom.

        Returns:
            ``(atoms,)`` energies in eV.
        """
        raise NotImplementedError

    def forward(self, data, compute_forces: bool = True, compute_stress: bool = False) -> dict[str, torch.Tensor]:
        """Energy, atomic energies and (optionally) forces and stress of ``data``.

        Positions and cells are converted to the model's dtype. Forces are ``-dE/dpos``; stress is
        ``(1/V) dE/d(strain)`` in eV/A^3 (ASE's sign). In training mode the derivatives keep their graph (force
        training differentiates them again).

        Args:
            data: An :class:`~equilib.data.AtomicData` or a ``Batch`` with ``edge_index`` and ``cell_offsets``.
            compute_forces: Also return ``forces``.
            compute_stress: Also return ``stress`` (needs non-degenerate cells).

        Returns:
            ``{"energy": (graphs,), "energies": (atoms,)}``, plus ``"forces"`` (atoms, 3) in eV/A and ``"stress"``
            (graphs, 3, 3) when asked for.

        Raises:
            ValueError: If ``data`` has no neighbor list, or holds an element that is not among ``config.species``.
        """
        if "edge_index" not in data:
            raise ValueError("data: expected a neighbor list (edge_index, cell_offsets); build it with a cutoff")
        pos = data.pos.to(self.dtype)
        cell = data.cell.to(self.dtype).reshape(-1, 3, 3)
        batch = batch_index(data)
        num_graphs = cell.shape[0]
        leaf = pos.detach().requires_grad_(True) if compute_forces else pos
        pos = leaf
        strain = None
        if compute_stress:
            strain = torch.zeros(num_graphs, 3, 3, dtype=self.dtype, device=pos.device, requires_grad=True)
            symmetric = 0.5 * (strain + strain.transpose(1, 2))
            pos = pos + torch.einsum("ni,nij->nj", pos, symmetric[batch])
            cell = cell + torch.bmm(cell, symmetric)
        energies = self.atomic_energies(data, pos, cell, batch)
        energy = scatter_sum(energies, batch, dim=0, dim_size=num_graphs)
        out = {"energy": energy, "energies": energies}
        inputs = [t for t, wanted in ((leaf, compute_forces), (strain, compute_stress)) if wanted]
        if inputs:
            grads = torch.autograd.grad(energy.sum(), inputs, create_graph=self.training)
            if compute_forces:
                out["forces"] = -grads[0]
            if compute_stress:
                volume = torch.linalg.det(cell).abs().clamp(min=1e-12)
                out["stress"] = grads[-1] / volume.view(-1, 1, 1)
        return out

    def save(self, path: str | os.PathLike) -> None:
        """Write one file with the model's kind (class name), config, weights and the package version, atomically.

        Args:
            path: The file to write (``torch.save`` format).
        """
        atomic_save({"equilib_version": __version__, "kind": type(self).__name__,
                     "config": dataclasses.asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def from_config(cls, values: dict) -> InteratomicPotential:
        """A freshly initialised model from its config as plain values (what :meth:`save` writes).

        Args:
            values: ``dataclasses.asdict`` of the config.

        Returns:
            The model.
        """
        return cls(cls.Config(**values))

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> InteratomicPotential:
        """A model of this class saved by :meth:`save`.

        Args:
            path: The file.
            map_location: Device to load onto (CPU by default).

        Returns:
            The model in the dtype it was saved in, on ``map_location``.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not an equilib model file of this class.
        """
        blob = _read_model_file(path, map_location)
        if blob["kind"] != cls.__name__:
            raise ValueError(f"{path}: not an equilib model file (no 'kind': '{cls.__name__}'; it holds a "
                             f"{blob['kind']!r})")
        model = cls.from_config(blob["config"])
        model.load_state_dict(blob["state_dict"])
        return model.to(map_location)


class EquivariantPotential(InteratomicPotential):
    """Energies, forces and stress of batches of :class:`equilib.data.AtomicData` with neighbor lists.

    Args:
        config: The hyper-parameters (the model's dtype is ``config.dtype``).

    Examples:
        >>> import torch
        >>> from ase.build import molecule
        >>> from equilib.data import AtomicData
        >>> from equilib.nn import EquivariantPotential, PotentialConfig
        >>> _ = torch.manual_seed(0)
        >>> config = PotentialConfig(species=[1, 8], cutoff=3.0, channels=4, lmax=1, num_layers=1, num_radial=4,
        ...                          radial_hidden=8, dtype="float64")
        >>> model = EquivariantPotential(config)
        >>> out = model(AtomicData.from_ase(molecule("H2O"), cutoff=3.0))
        >>> {key: tuple(value.shape) for key, value in out.items()}
        {'energy': (1,), 'energies': (3,), 'forces': (3, 3)}
        >>> bool(out["forces"].sum(0).abs().max() < 1e-12)  # no net force on an isolated molecule
        True
    """

    Config = PotentialConfig

    def __init__(self, config: PotentialConfig) -> None:
        super().__init__()
        dtype = self._species_and_radial_layers(config)
        c, lmax = config.channels, config.lmax
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        hidden = o3.Irreps([(c, (l, (-1) ** l)) for l in range(lmax + 1)])
        self.spherical_harmonics = SphericalHarmonics(lmax, dtype=dtype)
        # The last layer makes only the scalars the readout reads (as NequIP and MACE): its l > 0 outputs would be
        # computed and thrown away.
        scalars = o3.Irreps(f"{c}x0e")
        self.layers = torch.nn.ModuleList()
        for k in range(config.num_layers):
            self.layers.append(InteractionBlock(
                scalars if k == 0 else hidden, scalars if k == config.num_layers - 1 else hidden, self.irreps_sh,
                len(config.species), config.num_radial, config.radial_hidden, config.avg_num_neighbors,
                config.backend, config.tp_options, dtype))
        self.readout = EquivariantLinear(scalars, scalars, dtype)
        self.readout_mlp = torch.nn.Sequential(torch.nn.Linear(c, c, dtype=dtype), torch.nn.SiLU(),
                                               torch.nn.Linear(c, 1, dtype=dtype))

    def atomic_energies(self, data, pos: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The atomic energies: interaction blocks on the edge spherical harmonics and radial basis, then a readout.

        Args:
            data: The :class:`~equilib.data.AtomicData` or ``Batch`` (neighbor list, atomic numbers).
            pos: ``(atoms, 3)`` positions in the model's dtype.
            cell: ``(graphs, 3, 3)`` cells in the model's dtype.
            batch: ``(atoms,)`` graph of each atom.

        Returns:
            ``(atoms,)`` energies in eV.
        """
        vectors, lengths = edge_vectors_and_lengths(pos, cell, data.edge_index, data.cell_offsets, batch)
        edge_sh = self.spherical_harmonics(vectors)
        edge_radial = self.radial_basis(lengths) * self.envelope(lengths).unsqueeze(-1)
        species = self.species(data.atomic_numbers)
        x = self.embedding(species)
        for layer in self.layers:
            x = layer(x, species, data.edge_index, edge_sh, edge_radial)
        y = self.readout_mlp(self.readout(x)).squeeze(-1)
        return self.normalise(y, species)

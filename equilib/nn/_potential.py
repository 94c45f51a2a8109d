"""An E(3)-equivariant interatomic potential in the NequIP/MACE family on any ``equilib.ops`` backend.

Energy is a sum of atomic energies ``E_i = scale * y_i + shift + E0[Z_i]``; forces are ``-dE/dpos`` by autograd;
stress is ``(1/V) dE/d(strain)`` under a symmetric displacement of positions and cell (the route NequIP and MACE
take), in eV/A^3 with ASE's sign convention (checked against ``ase.calculators.fd`` in the tests).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

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
        if not self.species or len(set(self.species)) != len(self.species):
            raise ValueError(f"species: expected distinct atomic numbers, got {self.species!r}")
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")
        for name in ("cutoff", "channels", "num_radial", "radial_hidden", "avg_num_neighbors"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: expected a positive value, got {getattr(self, name)!r}")
        if self.lmax < 0 or self.num_layers < 1:
            raise ValueError(f"lmax, num_layers: expected >= 0 and >= 1, got {self.lmax}, {self.num_layers}")
        self.e0s = {int(z): float(e) for z, e in self.e0s.items()}


class EquivariantPotential(torch.nn.Module):
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

    def __init__(self, config: PotentialConfig) -> None:
        super().__init__()
        self.config = config
        dtype = getattr(torch, config.dtype)
        c, lmax = config.channels, config.lmax
        self.irreps_sh = o3.Irreps.spherical_harmonics(lmax)
        hidden = o3.Irreps([(c, (l, (-1) ** l)) for l in range(lmax + 1)])
        self.register_buffer("species_index", self._species_table(config.species), persistent=False)
        self.embedding = torch.nn.Embedding(len(config.species), c, dtype=dtype)  # N(0, 1): unit-variance features
        self.radial_basis = BesselBasis(config.cutoff, config.num_radial, dtype=dtype)
        self.envelope = PolynomialCutoff(config.cutoff)
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
        e0 = torch.zeros(len(config.species), dtype=dtype)
        for k, z in enumerate(config.species):
            e0[k] = config.e0s.get(z, 0.0)
        self.register_buffer("e0", e0)

    @staticmethod
    def _species_table(species: list[int]) -> torch.Tensor:
        table = torch.full((MAX_ATOMIC_NUMBER + 1,), -1, dtype=torch.long)
        table[torch.tensor(species)] = torch.arange(len(species))
        return table

    @property
    def dtype(self) -> torch.dtype:
        return self.e0.dtype

    def _apply(self, fn, recurse: bool = True):
        """``torch.nn.Module._apply``; after a conversion to float32 or float64 the config names the new dtype, so
        that :meth:`save` and checkpoints rebuild the model in the dtype it computes in."""
        super()._apply(fn, recurse)
        name = str(self.dtype).removeprefix("torch.")
        if name in ("float32", "float64") and name != self.config.dtype:
            self.config = dataclasses.replace(self.config, dtype=name)
        return self

    def _species(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Each atom's index in the model's species list; an error names elements the model does not know."""
        index = self.species_index.index_select(0, atomic_numbers)
        if (index < 0).any():
            unknown = sorted(set(atomic_numbers[index < 0].tolist()))
            raise ValueError(f"atomic_numbers: elements {unknown} are not among the model's species "
                             f"{self.config.species}")
        return index

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
        vectors, lengths = edge_vectors_and_lengths(pos, cell, data.edge_index, data.cell_offsets, batch)
        edge_sh = self.spherical_harmonics(vectors)
        edge_radial = self.radial_basis(lengths) * self.envelope(lengths).unsqueeze(-1)
        species = self._species(data.atomic_numbers)
        x = self.embedding(species)
        for layer in self.layers:
            x = layer(x, species, data.edge_index, edge_sh, edge_radial)
        y = self.readout_mlp(self.readout(x)).squeeze(-1)
        energies = self.config.scale * y + self.config.shift + self.e0.index_select(0, species)
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
        """Write one file with the config, the weights and the package version, atomically.

        Args:
            path: The file to write (``torch.save`` format).
        """
        atomic_save({"equilib_version": __version__, "kind": "EquivariantPotential",
                     "config": dataclasses.asdict(self.config), "state_dict": self.state_dict()}, path)

    @classmethod
    def load(cls, path: str | os.PathLike, map_location: str | torch.device = "cpu") -> EquivariantPotential:
        """A model saved by :meth:`save`.

        Args:
            path: The file.
            map_location: Device to load onto (CPU by default).

        Returns:
            The :class:`EquivariantPotential` in the dtype it was saved in, on ``map_location``.

        Raises:
            FileNotFoundError: If ``path`` does not exist.
            ValueError: If the file is not an equilib model file.
        """
        try:
            blob = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{path}: not an equilib model file ({type(err).__name__}: {err})") from None
        if not isinstance(blob, dict) or blob.get("kind") != "EquivariantPotential":
            raise ValueError(f"{path}: not an equilib model file (no 'kind': 'EquivariantPotential')")
        model = cls(PotentialConfig(**blob["config"]))
        model.load_state_dict(blob["state_dict"])
        return model.to(map_location)


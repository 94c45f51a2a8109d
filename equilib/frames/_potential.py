"""Frame-averaged interatomic potentials (Puny et al., ICLR 2022, "Frame Averaging for Invariant and Equivariant
Network Design"): a plain Cartesian message-passing potential made exactly E(3)-invariant by averaging over PCA
frames, of each structure ("global") or of each atom's neighbourhood (the paper's local variant, "local").

The backbone (:class:`equilib.nn.PlainPotential`) sees edge vectors ``v = x_j - x_i + shifts . cell``. A frame is an
orthogonal matrix ``R`` (PCA eigenvectors as columns, times a sign choice); the backbone runs on ``R^T v``. Under
``x -> Q x + t`` (the cell rotating with the atoms) every edge vector becomes ``Q v`` and the set of frames becomes
``{Q R}``, so the set of framed vectors, hence the average, is unchanged. The neighbor list is made once in the lab
frame; it stays valid because the cell rotates with the atoms. Frames are differentiated through ``eigh``, so forces
are the exact negative gradient of the averaged energy (conservative).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass

import torch

from ..data import batch_index, edge_vectors_and_lengths
from ..nn import InteratomicPotential, PlainPotential, PlainPotentialConfig
from ..utils import SamplingModule
from ._frame_set import FrameSet, exclusive_cumsum, frame_set, random_frames
from ._pca import GROUPS, TOLERANCE, group_name, relative_gaps

MODES = ("global", "local")
ON_DEGENERATE = ("expand", "warn", "raise", "ignore")


@dataclass
class FrameAveragedPotentialConfig:
    """What :class:`FrameAveragedPotential` saves: its backbone's config and the frame options.

    Attributes:
        backbone: The :class:`~equilib.nn.PlainPotentialConfig` of the backbone (a dict is converted).
        frames: ``"global"`` (PCA frames of each structure's atoms) or ``"local"`` (of each atom's neighbourhood).
        group: ``"E3"``/``"O3"`` (8 frames, rotations and reflections) or ``"SE3"``/``"SO3"`` (4 proper frames).
        stochastic: One random frame per structure (global) or per atom (local) in training mode.
        tolerance: Relative eigenvalue gap below which a spectrum is degenerate (> 0).
        on_degenerate: ``"expand"`` (exact tie-break frames), ``"warn"``, ``"raise"`` or ``"ignore"`` when a
            spectrum is degenerate.

    Raises:
        ValueError: If an option is unknown or ``tolerance`` is not positive.
        TypeError: If ``backbone`` is neither a PlainPotentialConfig nor a dict.
    """

    backbone: PlainPotentialConfig
    frames: str = "global"
    group: str = "E3"
    stochastic: bool = False
    tolerance: float = TOLERANCE
    on_degenerate: str = "expand"

    def __post_init__(self) -> None:
        if isinstance(self.backbone, dict):
            self.backbone = PlainPotentialConfig(**self.backbone)
        if not isinstance(self.backbone, PlainPotentialConfig):
            raise TypeError(f"backbone: expected a PlainPotentialConfig (or its dict), got "
                            f"{type(self.backbone).__name__}")
        self.group = check_frame_options(self.frames, self.group, self.stochastic, self.tolerance, self.on_degenerate)


def check_frame_options(frames: str, group, stochastic: bool, tolerance: float, on_degenerate: str) -> str:
    """Checks the frame options of :class:`FrameAveragedPotential`.

    Args:
        frames: ``"global"`` or ``"local"``.
        group: A group name or object (``E3``, ``SE3``, ``O3``, ``SO3``).
        stochastic: A bool.
        tolerance: A positive number.
        on_degenerate: ``"expand"``, ``"warn"``, ``"raise"`` or ``"ignore"``.

    Returns:
        The group's name.

    Raises:
        ValueError: If an option is unknown or of the wrong type, or ``tolerance`` is not positive.
    """
    if frames not in MODES:
        raise ValueError(f"frames: expected one of {MODES}, got {frames!r}")
    name = group_name(group)
    if not isinstance(stochastic, bool):
        raise ValueError(f"stochastic: expected a bool, got {stochastic!r}")
    if isinstance(tolerance, bool) or not (isinstance(tolerance, (int, float)) and tolerance > 0):
        raise ValueError(f"tolerance: expected a positive number, got {tolerance!r}")
    if on_degenerate not in ON_DEGENERATE:
        raise ValueError(f"on_degenerate: expected one of {ON_DEGENERATE}, got {on_degenerate!r}")
    return name


class FrameAveragedPotential(InteratomicPotential, SamplingModule):
    """A :class:`~equilib.nn.PlainPotential` averaged over PCA frames: exactly E(3)-invariant energies.

    **Global frames** (``frames="global"``): per structure, the PCA frames of its atoms' positions
    (:func:`~equilib.frames.pca_frames` with the batch vector; 8 for E3/O3, 4 for SE3/SO3). The whole backbone runs
    once per frame on the edge vectors rotated into it, and the atomic energies are averaged over the frames.

    **Local frames** (``frames="local"``, FA-Local): per atom, the PCA frames of its neighbourhood: the second moment
    ``sum_j w_ij v_ij v_ij^T / sum_j w_ij`` of the edge vectors to its neighbours within the cutoff, weighted by the
    backbone's smooth envelope ``w_ij = u(r_ij)`` (so a frame changes continuously as neighbours cross the cutoff).
    In every layer the messages into atom ``i`` see its incoming edge vectors expressed in each of ``i``'s frames,
    and ``i``'s updated features are averaged over those frames, so every layer, hence every atomic energy, is
    invariant (a multi-layer network cannot keep one frame index across atoms: each atom's eigenvector signs flip
    independently under a rotation).

    **Periodic cells.** Global frames come from the atoms' Cartesian positions as stored: exactly E(3)-invariant
    (the cell rotating and translating with the atoms), but *not* invariant to re-wrapping an atom into the cell or
    to any lattice translation of one atom (another periodic image changes the PCA, so the energy changes although
    the crystal is the same). Local frames depend only on edge vectors, which are the same for every periodic image,
    so local-frame energies are exactly invariant to wrapping and lattice translations too.

    **Degenerate spectra** (relative eigenvalue gap below ``tolerance``: symmetric molecules; in local mode
    high-symmetry sites such as ideal lattice sites, or atoms with one neighbour): with ``on_degenerate="expand"``
    (default) they get the tie-break frames of :func:`~equilib.frames.frame_set` (the orbit of their point group, a
    varying number per structure or atom), which keep the average exactly invariant; ``"warn"``, ``"raise"`` or
    ``"ignore"`` keep the arbitrary PCA frames, whose contributions are then not exactly invariant. Either way they
    never give NaN: their frames are held fixed in the derivatives (the derivative of ``eigh`` diverges there), so
    their forces are the gradient at fixed frames. Atoms without neighbours (local) have no edge to frame.

    **Stochastic frames** (``stochastic=True``): in training mode one random frame per structure (global) or per
    atom (local), drawn from ``generator`` (torch's global generator when None, which training checkpoints keep): an
    unbiased, cheap estimate of the average. In eval mode all frames are averaged.

    Args:
        backbone: The :class:`~equilib.nn.PlainPotential`; its species, cutoff, normalisation and dtype are the
            model's.
        frames: ``"global"`` or ``"local"``.
        group: ``"E3"`` (default) or ``"O3"`` (8 frames: rotations and reflections), ``"SE3"`` or ``"SO3"`` (4
            proper frames), or the :mod:`equilib.groups` object. Edge vectors do not translate, so E3 and O3 (SE3
            and SO3) give the same model.
        stochastic: One random frame in training mode.
        generator: Torch generator of the stochastic draws.
        tolerance: Relative eigenvalue gap below which a spectrum is degenerate (> 0).
        on_degenerate: ``"expand"`` (default), ``"warn"``, ``"raise"`` or ``"ignore"``.

    Raises:
        TypeError: If ``backbone`` is not a PlainPotential.
        ValueError: If an option is unknown or ``tolerance`` is not positive.

    Examples:
        >>> import torch
        >>> from ase.build import molecule
        >>> from equilib.data import AtomicData
        >>> from equilib.frames import FrameAveragedPotential
        >>> from equilib.nn import PlainPotential, PlainPotentialConfig
        >>> _ = torch.manual_seed(0)
        >>> backbone = PlainPotential(PlainPotentialConfig(species=[1, 6, 8], cutoff=3.0, channels=8, dtype="float64"))
        >>> model = FrameAveragedPotential(backbone, frames="local")
        >>> out = model(AtomicData.from_ase(molecule("CH3OH"), cutoff=3.0))
        >>> {key: tuple(value.shape) for key, value in out.items()}
        {'energy': (1,), 'energies': (6,), 'forces': (6, 3)}
    """

    Config = FrameAveragedPotentialConfig

    def __init__(self, backbone: PlainPotential, frames: str = "global", group="E3", stochastic: bool = False,
                 generator: torch.Generator | None = None, tolerance: float = TOLERANCE,
                 on_degenerate: str = "expand") -> None:
        super().__init__()
        if not isinstance(backbone, PlainPotential):
            raise TypeError(f"backbone: expected an equilib.nn.PlainPotential, got {type(backbone).__name__}")
        options = FrameAveragedPotentialConfig(backbone.config, frames, group, stochastic, tolerance, on_degenerate)
        self.backbone = backbone
        self.frames, self.group, self.stochastic = options.frames, options.group, options.stochastic
        self.tolerance, self.on_degenerate = float(options.tolerance), options.on_degenerate
        self.generator = generator

    @property
    def config(self) -> FrameAveragedPotentialConfig:
        """The backbone's config and the frame options (what :meth:`save` writes)."""
        return FrameAveragedPotentialConfig(self.backbone.config, self.frames, self.group, self.stochastic,
                                            self.tolerance, self.on_degenerate)

    @property
    def dtype(self) -> torch.dtype:
        """The backbone's dtype."""
        return self.backbone.dtype

    @property
    def cutoff(self) -> float:
        """The backbone's cutoff."""
        return self.backbone.cutoff

    @property
    def num_frames(self) -> int:
        """Frames per structure (global) or atom (local) with a simple spectrum: 8 for E3/O3, 4 for SE3/SO3."""
        return GROUPS[self.group]

    def _apply(self, fn, recurse: bool = True):
        return torch.nn.Module._apply(self, fn, recurse)  # the backbone's own _apply keeps its config's dtype

    @classmethod
    def from_config(cls, values: dict) -> FrameAveragedPotential:
        """A freshly initialised model from its config as plain values (what :meth:`save` writes).

        Args:
            values: ``dataclasses.asdict`` of a :class:`FrameAveragedPotentialConfig`.

        Returns:
            The model (deterministic frames: a loaded model has no generator).
        """
        config = FrameAveragedPotentialConfig(**values)
        options = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "backbone"}
        return cls(PlainPotential(config.backbone), **options)

    def species(self, atomic_numbers: torch.Tensor) -> torch.Tensor:
        """Each atom's index in the backbone's species list.

        Args:
            atomic_numbers: ``(atoms,)`` torch.long.

        Returns:
            ``(atoms,)`` torch.long.
        """
        return self.backbone.species(atomic_numbers)

    def normalise(self, y: torch.Tensor, species: torch.Tensor) -> torch.Tensor:
        """The backbone's normalisation ``scale * y + shift + E0[species]``.

        Args:
            y: ``(atoms,)`` frame-averaged network outputs.
            species: ``(atoms,)`` species indices.

        Returns:
            ``(atoms,)`` atomic energies in eV.
        """
        return self.backbone.normalise(y, species)

    def atomic_energies(self, data, pos: torch.Tensor, cell: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
        """The frame-averaged atomic energies.

        The backbone runs once on a graph of copies: every atom once per frame of its structure (global) or of
        itself (local), every edge once per frame of the atom it points to, with its vector ``R^T v`` in that frame.
        Global copies of a structure are separate graphs, averaged per atom at the end; local copies of an atom are
        averaged after every layer (sources are seen through their averaged features).

        Args:
            data: The :class:`~equilib.data.AtomicData` or ``Batch`` (neighbor list, atomic numbers).
            pos: ``(atoms, 3)`` positions in the model's dtype (global frames are differentiated through them).
            cell: ``(graphs, 3, 3)`` cells in the model's dtype.
            batch: ``(atoms,)`` graph of each atom.

        Returns:
            ``(atoms,)`` energies in eV.

        Raises:
            ValueError: If ``on_degenerate="raise"`` and a spectrum is degenerate.
        """
        edge_index = data.edge_index
        vectors, lengths = edge_vectors_and_lengths(pos, cell, edge_index, data.cell_offsets, batch)
        species = self.species(data.atomic_numbers)
        frames = self._frame_set(pos, batch, cell.shape[0], vectors, lengths, edge_index[1])
        if self.stochastic and self.training:
            frames = frames.one_per_cloud(random_frames(frames.counts, self.generator))  # per structure or atom
        counts = frames.counts
        offsets = exclusive_cumsum(counts)
        owner = batch if self.frames == "global" else torch.arange(pos.shape[0], device=pos.device)
        copies = counts.index_select(0, owner)  # frames of each atom
        atom, first, k = _repeat(copies)  # the copies of the atoms: atom, its first copy, frame index k
        node_frame = offsets.index_select(0, owner).index_select(0, atom) + k
        edge, _, k = _repeat(copies.index_select(0, edge_index[1]))  # every edge once per frame of its center
        target = first.index_select(0, edge_index[1, edge]) + k
        source = first.index_select(0, edge_index[0, edge])
        if self.frames == "global":
            source = source + k  # the source's copy in the same frame (same structure)
        rotations = frames.rotations.index_select(0, node_frame.index_select(0, target))
        framed = torch.einsum("eij,ei->ej", rotations, vectors.index_select(0, edge))  # R^T v
        y = self.backbone.atomic_outputs(framed, lengths.index_select(0, edge), species.index_select(0, atom),
                                         torch.stack([source, target]), pool=atom if self.frames == "local" else None)
        y = torch.zeros(pos.shape[0], dtype=y.dtype, device=y.device).index_add(0, atom, y) / copies.to(y.dtype)
        return self.normalise(y, species)

    def frame_set(self, data) -> FrameSet:
        """The frames the model averages ``data`` over (all of them, as in eval mode).

        Args:
            data: The :class:`~equilib.data.AtomicData` or ``Batch`` (with a neighbor list).

        Returns:
            A :class:`~equilib.frames.FrameSet` over the structures (global) or the atoms (local; ``centroids`` zero).

        Raises:
            ValueError: If ``on_degenerate="raise"`` and a spectrum is degenerate.
        """
        pos = data.pos.to(self.dtype)
        cell = data.cell.to(self.dtype).reshape(-1, 3, 3)
        batch = batch_index(data)
        vectors, lengths = edge_vectors_and_lengths(pos, cell, data.edge_index, data.cell_offsets, batch)
        with torch.no_grad():
            return self._frame_set(pos, batch, cell.shape[0], vectors, lengths, data.edge_index[1])

    def _frame_set(self, pos, batch, num_graphs: int, vectors, lengths, center) -> FrameSet:
        if self.frames == "global":
            return self.global_frames(pos, batch, num_graphs)
        return self.local_frames(vectors, lengths, center, pos.shape[0])

    def global_frames(self, pos: torch.Tensor, batch: torch.Tensor, num_graphs: int) -> FrameSet:
        """The frames of each structure's atom positions (uniform weights).

        Args:
            pos: ``(atoms, 3)`` positions.
            batch: ``(atoms,)`` graph of each atom.
            num_graphs: Number of structures.

        Returns:
            The :class:`~equilib.frames.FrameSet` of the structures, differentiable in ``pos`` (held fixed where
            degenerate).

        Raises:
            ValueError: If ``on_degenerate="raise"`` and a spectrum is degenerate, or a structure has no atoms.
        """
        counts = torch.bincount(batch, minlength=num_graphs)
        if bool((counts == 0).any()):
            raise ValueError(f"data: structures {torch.nonzero(counts == 0).flatten().tolist()[:10]} have no atoms")
        weights = torch.ones(pos.shape[0], dtype=pos.dtype, device=pos.device)
        return self._frames(pos, batch, weights, "structure")

    def local_frames(self, vectors: torch.Tensor, lengths: torch.Tensor, center: torch.Tensor,
                     num_atoms: int) -> FrameSet:
        """The frames of each atom's neighbourhood: of its envelope-weighted second moment of edge vectors.

        The second moment about the atom (not about the neighbours' centroid) is the covariance of the symmetric
        cloud ``{v_ij, -v_ij}``, whose centroid is zero, so :func:`~equilib.frames.pca_frames` computes it. Atoms
        without a neighbour of positive weight get the identity as their one frame (no message reaches them).

        Args:
            vectors: ``(E, 3)`` edge vectors.
            lengths: ``(E,)`` their lengths.
            center: ``(E,)`` the atom each edge points from (``edge_index[1]``).
            num_atoms: Number of atoms.

        Returns:
            The :class:`~equilib.frames.FrameSet` of the atoms (``centroids`` zero), differentiable in the vectors
            (held fixed where degenerate).

        Raises:
            ValueError: If ``on_degenerate="raise"`` and a neighbourhood is degenerate.
        """
        weights = self.backbone.envelope(lengths).clamp(min=0)  # rounding makes u slightly negative at the cutoff
        total = torch.zeros(num_atoms, dtype=weights.dtype, device=weights.device)
        total = total.index_add(0, center, weights.detach())
        framed_atoms = torch.nonzero(total > 0).flatten()
        compact = torch.full((num_atoms,), -1, dtype=torch.long, device=center.device)
        compact[framed_atoms] = torch.arange(len(framed_atoms), device=center.device)
        owner = compact.index_select(0, center)
        keep = owner >= 0
        points, owner, w = vectors[keep], owner[keep], weights[keep]
        with warnings.catch_warnings():  # a collinear neighbourhood's frames turn freely about its axis, but the
            # framed vectors are its own edges, which lie on the axis: their framed values are still exact
            warnings.filterwarnings("ignore", message=".*continuous stabiliser", category=RuntimeWarning)
            frames = self._frames(torch.cat([points, -points]), torch.cat([owner, owner]), torch.cat([w, w]), "atom",
                                  labels=framed_atoms)
        counts = torch.ones(num_atoms, dtype=torch.long, device=center.device)
        counts[framed_atoms] = frames.counts
        graph = torch.arange(num_atoms, device=center.device).repeat_interleave(counts)
        identity = torch.eye(3, dtype=vectors.dtype, device=vectors.device).expand(num_atoms, 3, 3)
        rotations = identity.index_select(0, graph).index_copy(0, torch.nonzero(total.index_select(0, graph) > 0)
                                                               .flatten(), frames.rotations)
        spectrum = torch.zeros(num_atoms, 3, dtype=vectors.dtype, device=vectors.device)
        return FrameSet(torch.zeros_like(spectrum), rotations, graph,
                        spectrum.index_copy(0, framed_atoms, frames.spectrum.detach()))

    def _frames(self, points: torch.Tensor, index: torch.Tensor, weights: torch.Tensor, what: str,
                labels: torch.Tensor | None = None) -> FrameSet:
        """The frames of the clouds ``index`` groups: differentiable PCA frames where the spectrum is simple; where
        it is degenerate, the tie-break frames of :func:`~equilib.frames.frame_set` (``"expand"``) or the arbitrary
        PCA frames (reported), held fixed in the derivatives either way.

        The backward of a batched ``eigh`` is NaN for every matrix with a repeated eigenvalue, even one whose frames
        get no gradient, so where a cloud is degenerate the frames of the regular clouds come from a second ``eigh``
        on them alone."""
        if index.numel() == 0:  # no cloud
            empty = points.new_zeros(0, 3)
            return FrameSet(empty, points.new_zeros(0, 3, 3), index.new_zeros(0), empty)
        frames = frame_set(points, index, weights, self.group, self.tolerance, on_degenerate="ignore")
        gaps = relative_gaps(frames.spectrum.detach())
        degenerate = (gaps < self.tolerance).any(-1)
        if not bool(degenerate.any()):
            return frames
        if self.on_degenerate == "expand":
            fixed = frame_set(points.detach(), index, weights.detach(), self.group, self.tolerance)
        else:
            self._report(degenerate, gaps, what, labels)
            fixed = frames
        regular = torch.nonzero(~degenerate).flatten()
        if len(regular) == 0 or not frames.rotations.requires_grad:
            return fixed._replace(rotations=fixed.rotations.detach())
        compact = torch.full_like(degenerate, -1, dtype=torch.long)
        compact[regular] = torch.arange(len(regular), device=regular.device)
        owner = compact.index_select(0, index)
        keep = owner >= 0
        exact = frame_set(points[keep], owner[keep], weights[keep], self.group, self.tolerance, on_degenerate="ignore")
        slots = torch.nonzero(~degenerate.index_select(0, fixed.graph)).flatten()
        return fixed._replace(rotations=fixed.rotations.detach().index_copy(0, slots, exact.rotations))

    def _report(self, degenerate: torch.Tensor, gaps: torch.Tensor, what: str, labels: torch.Tensor | None) -> None:
        if self.on_degenerate == "ignore":
            return
        which = torch.nonzero(degenerate).flatten()
        named = which if labels is None else labels.index_select(0, which)
        shown = ", ".join(f"{what} {int(n)}: ({float(gaps[k, 0]):.2e}, {float(gaps[k, 1]):.2e})"
                          for k, n in zip(which[:5], named[:5]))
        more = "" if len(which) <= 5 else f", ... ({len(which) - 5} more)"
        source = "neighbourhoods (local frames)" if what == "atom" else "atom positions (global frames)"
        message = (f"frame-averaged potential: {len(which)} of {len(degenerate)} {what}s have a degenerate PCA "
                   f"spectrum of their {source}: relative eigenvalue gaps (l2-l1, l3-l2)/l3 below "
                   f"tolerance={self.tolerance:g} ({shown}{more}); their frames are arbitrary (not exactly "
                   "invariant) and held fixed in the derivatives")
        if self.on_degenerate == "raise":
            raise ValueError(message)
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _repeat(counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Item ``n`` repeated ``counts[n]`` times: for every repeat, its item, the position of the item's first repeat,
    and its index ``k`` among the item's repeats."""
    item = torch.arange(counts.shape[0], device=counts.device).repeat_interleave(counts)
    first = exclusive_cumsum(counts)
    return item, first, torch.arange(item.shape[0], device=counts.device) - first.index_select(0, item)

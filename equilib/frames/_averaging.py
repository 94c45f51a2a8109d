"""Frame averaging (Puny et al., ICLR 2022): any backbone made exactly equivariant by averaging over its input's frames.

For a frame ``g_F = (R_F, c)`` (``x -> R_F x + c``; no translation part for O3/SO3) the inputs are brought into the
canonical frame by ``g_F^-1`` acting through their representations, the backbone runs there, and its outputs are
mapped back by ``g_F``; the result is the mean over the frames. The frames of ``h.x`` are ``h g_F`` (as a set), so
the canonical inputs, hence the averaged outputs, transform exactly with ``h``. The frames are those of
:func:`~equilib.frames.frame_set`: PCA frames, with tie-break frames for degenerate spectra, a varying number per
system; the backbone runs once on all (system, frame) copies.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..groups import GroupElement, OnSet, Positions, Representation
from ..utils import SamplingModule
from ._frame_set import MAX_FRAMES, ON_DEGENERATE, exclusive_cumsum, frame_set, random_frames
from ._pca import GROUPS, TOLERANCE, group_name


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


def _repeat_groups(group: torch.Tensor, copies: torch.Tensor, num_groups: int):
    """Rows of every copy: for each copy ``c`` (of group ``copies[c]``) the items of that group, in a stable order.

    Returns ``(item, copy, start)``: the item and copy of each new row, and the first row of each copy.
    """
    order = torch.argsort(group, stable=True)
    sizes = torch.bincount(group, minlength=num_groups)
    first = exclusive_cumsum(sizes)
    rows_per_copy = sizes.index_select(0, copies)
    copy = torch.arange(len(copies), device=group.device).repeat_interleave(rows_per_copy)
    start = exclusive_cumsum(rows_per_copy)
    within = torch.arange(len(copy), device=group.device) - start.index_select(0, copy)
    item = order.index_select(0, first.index_select(0, copies).index_select(0, copy) + within)
    return item, copy, start


class FrameAveraged(torch.nn.Module, SamplingModule):
    """A backbone averaged over the frames of its input point cloud: exactly equivariant under ``group``.

    The inputs and outputs are described by :mod:`equilib.groups` representations; the first input whose
    representation is ``OnSet(Positions())`` gives the frames (:func:`~equilib.frames.frame_set`). Positions get the
    centroid removed (E3/SE3) and are rotated into the frame; vectors are rotated only; scalars are unchanged; irreps
    transform by their Wigner D matrices, all through the representations' ``act``. The backbone need not be
    equivariant; if it is permutation-equivariant, so is the average. Two layouts:

    - Systems of equal size: inputs with the leading axes of the positions ``(*B, m, 3)``. The backbone is called
      as ``backbone(*inputs)`` with one leading axis of (system, frame) copies: ``(C, m, ...)``.
    - Graphs of different sizes (PyG): ``batch`` gives the graph of each row of ``positions`` ``(N, 3)``. Inputs
      with an ``OnSet`` representation are per point (``N`` rows), the others per graph (``G`` rows). The backbone is
      called as ``backbone(*inputs, batch=copy)`` with the rows of all (graph, frame) copies and ``copy`` the copy of
      each row (a batch vector over ``C`` copies), plus ``edge_index=`` the edges replicated into every copy when
      ``edge_index`` is given. Per-point outputs (``OnSet``) are averaged over the copies of each point, per-copy
      outputs over the copies of each graph.

    Padded systems of equal size: give ``weights`` (a 0/1 mask, or masses) so padding takes no part in the frames,
    and pass the mask as an input (``OnSet(Scalars())``) if the backbone needs it.

    In training mode with ``stochastic=True`` one random frame per system is used per forward (drawn from
    ``generator``): an unbiased estimate of the average, equivariant in distribution. In eval mode (or
    ``stochastic=False``) all frames are averaged.

    Args:
        backbone: The module (or callable) to average.
        in_reps: One :class:`~equilib.groups.Representation` per input, e.g.
            ``(OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))`` for n-body.
        out_reps: One representation per output, e.g. ``OnSet(Positions())``.
        group: ``"E3"`` (default), ``"SE3"``, ``"O3"`` or ``"SO3"`` (or the group object); O3/SO3 frames have no
            translation part (the origin is kept).
        stochastic: Use one random frame per system in training mode.
        generator: Torch generator of the stochastic frame draws.
        tolerance: Relative eigenvalue gap below which a spectrum is degenerate (see
            :func:`~equilib.frames.frame_set`).
        on_degenerate: ``"expand"`` (default: tie-break frames, exact), ``"warn"``, ``"raise"`` or ``"ignore"``.
        max_frames: Most frames of one degenerate system.

    Raises:
        TypeError: If ``backbone`` is not callable or a representation is not a Representation.
        ValueError: If the group or ``on_degenerate`` is unknown, or no input is ``OnSet(Positions())`` in 3-D.

    Examples:
        >>> import torch
        >>> from equilib.groups import E3, OnSet, Positions, Vectors, assert_equivariant
        >>> mlp = torch.nn.Sequential(torch.nn.Flatten(-2), torch.nn.Linear(12, 12, dtype=torch.float64),
        ...                           torch.nn.Unflatten(-1, (4, 3)))
        >>> model = FrameAveraged(mlp, OnSet(Positions()), OnSet(Vectors()))
        >>> x = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> model(x).shape
        torch.Size([4, 3])
        >>> assert_equivariant(model, E3(), x, OnSet(Positions()), OnSet(Vectors())) < 1e-10
        True
    """

    def __init__(
        self,
        backbone,
        in_reps: Representation | Sequence[Representation],
        out_reps: Representation | Sequence[Representation],
        group="E3",
        stochastic: bool = False,
        generator: torch.Generator | None = None,
        tolerance: float = TOLERANCE,
        on_degenerate: str = "expand",
        max_frames: int = MAX_FRAMES,
    ) -> None:
        super().__init__()
        if not callable(backbone):
            raise TypeError(f"backbone: expected a callable, got {type(backbone).__name__}")
        self.backbone = backbone
        self.in_reps, self.out_reps = _as_tuple(in_reps), _as_tuple(out_reps)
        for what, reps in (("in_reps", self.in_reps), ("out_reps", self.out_reps)):
            for k, rep in enumerate(reps):
                if not isinstance(rep, Representation):
                    raise TypeError(f"{what}[{k}]: expected a Representation (equilib.groups), got "
                                    f"{type(rep).__name__}")
        self.group = group_name(group)
        if on_degenerate not in ON_DEGENERATE:
            raise ValueError(f"on_degenerate: expected one of {ON_DEGENERATE}, got {on_degenerate!r}")
        self.position_index = next((k for k, rep in enumerate(self.in_reps) if isinstance(rep, OnSet)
                                    and type(rep.item) is Positions and rep.item.shape == (3,)), None)
        if self.position_index is None:
            raise ValueError(f"in_reps: expected an input with representation OnSet(Positions()) (3-D) to build the "
                             f"frames from, got {self.in_reps!r}")
        self.stochastic = stochastic
        self.generator = generator
        self.tolerance = tolerance
        self.on_degenerate = on_degenerate
        self.max_frames = max_frames

    @property
    def num_frames(self) -> int:
        """Number of PCA frames of a system with a simple spectrum: 8 for O3/E3, 4 for SO3/SE3."""
        return GROUPS[self.group]

    def frame_elements(self, positions: torch.Tensor, batch: torch.Tensor | None = None,
                       weights: torch.Tensor | None = None) -> tuple[GroupElement, torch.Tensor]:
        """The frames of each system as group elements ``g_F = (R_F, c)`` (no translation for O3/SO3).

        Args:
            positions: ``(*B, m, 3)`` positions, or ``(N, 3)`` with ``batch``.
            batch: ``(N,)`` graph of each point, or None.
            weights: Weights of the points in the frames (see :func:`~equilib.frames.frame_set`), or None.

        Returns:
            The frames as one :class:`~equilib.groups.GroupElement` (system by system) and ``(C,)`` the system of
            each.
        """
        frames = frame_set(positions, batch, weights, group=self.group, tolerance=self.tolerance,
                           on_degenerate=self.on_degenerate, max_frames=self.max_frames)
        translation = None
        if self.group in ("E3", "SE3"):
            translation = frames.centroids.index_select(0, frames.graph)
        return GroupElement(linear=frames.rotations, translation=translation), frames.graph

    def _choose(self, g: GroupElement, graph: torch.Tensor, systems: int, frames: torch.Tensor | None):
        """Keeps one frame per system (``frames``, or a random one in stochastic training), or all of them."""
        if frames is None and not (self.stochastic and self.training):
            return g, graph
        counts = torch.bincount(graph, minlength=systems)
        if frames is None:
            frames = random_frames(counts, self.generator)
        frames = frames.to(graph.device)
        if (frames.shape != (systems,) or frames.dtype != torch.long or bool((frames < 0).any())
                or bool((frames >= counts).any())):
            raise ValueError(f"frames: expected a torch.long tensor of shape ({systems},) with values below each "
                             f"system's number of frames {counts.tolist()[:10]}, got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        pick = exclusive_cumsum(counts) + frames
        return GroupElement(**{name: part.index_select(0, pick) for name, part in g.parts().items()}), \
            torch.arange(systems, device=graph.device)

    def forward(self, *inputs: torch.Tensor, batch: torch.Tensor | None = None, weights: torch.Tensor | None = None,
                edge_index: torch.Tensor | None = None, frames: torch.Tensor | None = None):
        """The frame-averaged outputs.

        Args:
            *inputs: One tensor per input representation: with the leading axes ``B`` of the positions
                ``(*B, m, 3)``; or, with ``batch``, ``N`` rows (per-point inputs) or ``G`` rows (per-graph inputs).
            batch: ``(N,)`` torch.long graph of each point (PyG), or None for systems of equal size.
            weights: Non-negative weights of the points in the frames (masses, a padding mask), the shape of the
                positions without the last axis; None: uniform.
            edge_index: ``(2, E)`` edges within the graphs (with ``batch`` only), replicated into every copy and
                passed to the backbone as ``edge_index=``.
            frames: ``(systems,)`` torch.long index of the one frame to use for each system instead of the average
                (or the stochastic draw); None: as the mode says.

        Returns:
            A tensor (one output representation) or a tuple of tensors: with leading axes ``B``; or, with
            ``batch``, ``N`` rows (per-point outputs) or ``G`` rows (per-graph outputs).

        Raises:
            ValueError: If the number of inputs differs from ``in_reps``, a shape does not fit its representation
                or the layout, the point cloud is empty, the backbone's outputs do not match ``out_reps``, or
                ``frames``, ``batch`` or ``edge_index`` are malformed.
            TypeError: If an input is not a tensor.
        """
        if len(inputs) != len(self.in_reps):
            raise ValueError(f"inputs: expected {len(self.in_reps)} tensors (one per in_reps), got {len(inputs)}")
        for k, (x, rep) in enumerate(zip(inputs, self.in_reps)):
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"inputs[{k}]: expected a tensor, got {type(x).__name__}")
            rep.check(tuple(x.shape), f"inputs[{k}]")
        positions = inputs[self.position_index]
        if positions.dim() < 2 or positions.shape[-2] == 0:
            raise ValueError(f"inputs[{self.position_index}]: expected a non-empty point cloud (..., m, 3), got shape "
                             f"{tuple(positions.shape)}")
        if batch is None:
            if edge_index is not None:
                raise ValueError("edge_index: needs a batch vector (graphs given by batch)")
            return self._forward_equal_size(inputs, weights, frames)
        return self._forward_graphs(inputs, batch, weights, edge_index, frames)

    def _forward_equal_size(self, inputs, weights, frames):
        positions = inputs[self.position_index]
        lead = tuple(positions.shape[:-2])
        for k, x in enumerate(inputs):
            if tuple(x.shape[:len(lead)]) != lead:
                raise ValueError(f"inputs[{k}]: expected the leading axes {lead} of the positions, got shape "
                                 f"{tuple(x.shape)}")
        systems = positions[..., 0, 0].numel()
        g, graph = self.frame_elements(positions, weights=weights)
        g, graph = self._choose(g.to(dtype=positions.dtype), graph, systems, frames)
        g_inverse = g.inverse()
        canonical = [rep.act(g_inverse, x.reshape(systems, *x.shape[len(lead):]).index_select(0, graph))
                     for x, rep in zip(inputs, self.in_reps)]
        outputs = self._outputs(self.backbone(*canonical), len(graph))
        share = (1.0 / torch.bincount(graph, minlength=systems).to(positions.dtype)).index_select(0, graph)
        averaged = []
        for y, rep in zip(outputs, self.out_reps):
            back = rep.act(g, y) * share.view(-1, *([1] * (y.dim() - 1)))
            total = back.new_zeros(systems, *y.shape[1:]).index_add_(0, graph, back)
            averaged.append(total.reshape(*lead, *y.shape[1:]))
        return averaged[0] if len(averaged) == 1 else tuple(averaged)

    def _forward_graphs(self, inputs, batch, weights, edge_index, frames):
        positions = inputs[self.position_index]
        if positions.dim() != 2:
            raise ValueError(f"inputs[{self.position_index}]: expected (N, 3) positions with a batch vector, got shape "
                             f"{tuple(positions.shape)}")
        points = positions.shape[0]
        g, graph = self.frame_elements(positions, batch=batch, weights=weights)  # checks batch
        systems = int(batch.max()) + 1
        for k, (x, rep) in enumerate(zip(inputs, self.in_reps)):
            rows = points if isinstance(rep, OnSet) else systems
            if x.shape[0] != rows:
                raise ValueError(f"inputs[{k}]: expected {rows} rows (one per {'point' if rows == points else 'graph'}"
                                 f"), got shape {tuple(x.shape)}")
        g, graph = self._choose(g.to(dtype=positions.dtype), graph, systems, frames)
        copies = len(graph)
        node, row_copy, row_start = _repeat_groups(batch, graph, systems)
        g_rows = GroupElement(**{name: part.index_select(0, row_copy) for name, part in g.parts().items()})
        canonical = [rep.act(g_rows.inverse(), x.index_select(0, node)) if isinstance(rep, OnSet)
                     else rep.act(g.inverse(), x.index_select(0, graph)) for x, rep in zip(inputs, self.in_reps)]
        extra = {"batch": row_copy}
        if edge_index is not None:
            extra["edge_index"] = self._replicate_edges(edge_index, batch, graph, row_start, systems)
        outputs = self._outputs(self.backbone(*canonical, **extra), None)
        counts = torch.bincount(graph, minlength=systems).to(positions.dtype)
        averaged = []
        for k, (y, rep) in enumerate(zip(outputs, self.out_reps)):
            per_point = isinstance(rep, OnSet)
            rows, index, element = (len(node), node, g_rows) if per_point else (copies, graph, g)
            if y.shape[0] != rows:
                raise ValueError(f"outputs[{k}]: expected {rows} rows (one per {'point' if per_point else 'graph'} "
                                 f"of each copy), got {tuple(y.shape)}")
            share = (1.0 / counts).index_select(0, graph if not per_point else graph.index_select(0, row_copy))
            back = rep.act(element, y) * share.view(-1, *([1] * (y.dim() - 1)))
            size = points if per_point else systems
            averaged.append(back.new_zeros(size, *y.shape[1:]).index_add_(0, index, back))
        return averaged[0] if len(averaged) == 1 else tuple(averaged)

    @staticmethod
    def _replicate_edges(edge_index, batch, graph, row_start, systems):
        if (not isinstance(edge_index, torch.Tensor) or edge_index.dtype != torch.long or edge_index.dim() != 2
                or edge_index.shape[0] != 2):
            what = f"{getattr(edge_index, 'dtype', type(edge_index))} {tuple(getattr(edge_index, 'shape', ()))}"
            raise ValueError(f"edge_index: expected a torch.long tensor of shape (2, E), got {what}")
        if edge_index.numel() and (int(edge_index.min()) < 0 or int(edge_index.max()) >= len(batch)):
            raise ValueError(f"edge_index: node indices must lie in 0..{len(batch) - 1}")
        edge_graph = batch.index_select(0, edge_index[0])
        if not torch.equal(edge_graph, batch.index_select(0, edge_index[1])):
            raise ValueError("edge_index: an edge joins two different graphs")
        order = torch.argsort(batch, stable=True)
        first = exclusive_cumsum(torch.bincount(batch, minlength=systems))
        rank = torch.empty_like(batch)
        sorted_graph = batch.index_select(0, order)
        rank[order] = torch.arange(len(batch), device=batch.device) - first.index_select(0, sorted_graph)
        edge, edge_copy, _ = _repeat_groups(edge_graph, graph, systems)
        return rank[edge_index.index_select(1, edge)] + row_start.index_select(0, edge_copy)

    def _outputs(self, outputs, rows: int | None) -> tuple:
        outputs = _as_tuple(outputs)
        if len(outputs) != len(self.out_reps):
            raise ValueError(f"out_reps: the backbone returned {len(outputs)} outputs, expected {len(self.out_reps)}")
        for k, (y, rep) in enumerate(zip(outputs, self.out_reps)):
            if not isinstance(y, torch.Tensor) or y.dim() == 0 or (rows is not None and y.shape[0] != rows):
                raise ValueError(f"outputs[{k}]: expected a tensor with a leading axis of {rows} "
                                 f"(systems x frames), got {tuple(getattr(y, 'shape', ()))}")
            per_point = rows is None and isinstance(rep, OnSet)  # (rows of all copies, *item): the set axis first
            rep.check(tuple(y.shape) if per_point else tuple(y.shape[1:]), f"outputs[{k}]")
        return outputs

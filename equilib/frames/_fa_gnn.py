"""FA-GNN (Puny et al., ICLR 2022, n-body): a plain message-passing GNN made E(3)-equivariant by frame averaging at
every layer, not only around the whole network.

The input cloud is centred and expressed in each of its frames (:func:`equilib.frames.frame_set`); the GNN layers
of :class:`equilib.nn.PlainDynamicsGNN` (edges with ``q_i q_j`` and ``|x_i - x_j|^2``) run on every (system, frame)
copy. Between layers the hidden features are read as ``hidden / 3`` vectors per point, mapped back to the lab frame
and averaged over the frames (so they are equivariant vectors), and a new frame set is computed from that latent
cloud of ``points * hidden / 3`` vectors, in which the next layer sees them. The decoded displacement is mapped back
with the last frames and averaged, then added to the input positions. As in the paper's code the frames are
constants for the backward pass (no gradient through ``eigh``); the output is exactly equivariant either way.
"""

from __future__ import annotations

import torch

from ..nn import PlainDynamicsGNN
from ..utils import SamplingModule
from ._frame_set import frame_set, sample_frame_set

LATENT_GROUPS = {"E3": "O3", "SE3": "SO3"}


class FrameAveragedDynamicsGNN(PlainDynamicsGNN, SamplingModule):
    """FA-GNN: :class:`~equilib.nn.PlainDynamicsGNN` layers, frame-averaged, with the latent vectors re-framed between
    them.

    Args:
        hidden: Width of the node and edge networks: ``hidden / 3`` latent vectors per point (a multiple of 3).
        num_layers: Number of message-passing layers.
        group: ``"E3"`` (8 frames per cloud, reflections included) or ``"SE3"`` (4 proper frames).
        stochastic: In training mode, one random frame per system at every layer instead of all of them.
        generator: Torch generator of the stochastic draws (None: torch's global one).
        tolerance: Relative eigenvalue gap below which a spectrum counts as degenerate.
        on_degenerate: What a degenerate input cloud does (see :func:`~equilib.frames.frame_set`); latent clouds
            get the tie-break frames with ``"expand"``, else their PCA frames without a warning.
        centre_latent: Subtract each system's latent centroid (the mean of its ``points * hidden / 3`` latent vectors)
            before expressing the latent cloud in its new frames, as the paper's code does (on n-body it trained
            to a higher error than keeping the centroid; see docs/frames.md).
        dropout: Dropout probability after each hidden activation in training (see
            :class:`~equilib.nn.PlainDynamicsGNN`).
        dtype: Dtype of the parameters.

    Raises:
        ValueError: If ``hidden`` is not a positive multiple of 3 or ``group`` is not E3/SE3.

    Examples:
        >>> import torch
        >>> from equilib.groups import E3, OnSet, Positions, Scalars, Vectors, assert_equivariant
        >>> _ = torch.manual_seed(0)
        >>> model = FrameAveragedDynamicsGNN(hidden=12, num_layers=2, dtype=torch.float64)
        >>> x, v = torch.randn(2, 5, 3, dtype=torch.float64), torch.randn(2, 5, 3, dtype=torch.float64)
        >>> q = torch.randn(2, 5, dtype=torch.float64).sign()
        >>> model(x, v, q).shape
        torch.Size([2, 5, 3])
        >>> reps = (OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))
        >>> assert_equivariant(model, E3(), (x, v, q), reps, OnSet(Positions()), batched=True) < 1e-10
        True
    """

    def __init__(self, hidden: int = 60, num_layers: int = 4, group: str = "E3", stochastic: bool = False,
                 generator: torch.Generator | None = None, tolerance: float = 1e-3, on_degenerate: str = "expand",
                 centre_latent: bool = False, dropout: float = 0.0, dtype: torch.dtype | None = None) -> None:
        if not (isinstance(hidden, int) and hidden > 0 and hidden % 3 == 0):
            raise ValueError(f"hidden: expected a positive multiple of 3 (hidden / 3 latent vectors), got {hidden!r}")
        if group not in LATENT_GROUPS:
            raise ValueError(f"group: expected one of {sorted(LATENT_GROUPS)}, got {group!r}")
        super().__init__(hidden=hidden, num_layers=num_layers, distances=True, dropout=dropout, dtype=dtype)
        self.group, self.stochastic, self.generator = group, stochastic, generator
        self.tolerance, self.on_degenerate, self.centre_latent = tolerance, on_degenerate, centre_latent

    def _frames(self, cloud: torch.Tensor, group: str, on_degenerate: str) -> tuple[torch.Tensor, torch.Tensor]:
        """``(C, 3, 3)`` frames of the ``(S, m, 3)`` clouds (all, or one per system when sampling) and each one's
        system."""
        if self.stochastic and self.training:
            frames = sample_frame_set(cloud.detach(), group=group, tolerance=self.tolerance,
                                      on_degenerate=on_degenerate, generator=self.generator)
        else:
            frames = frame_set(cloud.detach(), group=group, tolerance=self.tolerance, on_degenerate=on_degenerate)
        return frames.rotations, frames.graph

    @staticmethod
    def _copies(tensor: torch.Tensor, graph: torch.Tensor, systems: int) -> torch.Tensor:
        """``tensor`` (one row per system) repeated for each frame's copy; itself with one frame per system."""
        return tensor if len(graph) == systems else tensor.index_select(0, graph)

    @staticmethod
    def _average(vectors: torch.Tensor, rotations: torch.Tensor, graph: torch.Tensor, systems: int) -> torch.Tensor:
        """Rows ``(C, ..., 3)`` in their frames mapped back to the lab frame (``R v``) and averaged per system."""
        lab = (vectors.reshape(len(graph), -1, 3) @ rotations.transpose(-1, -2)).reshape(vectors.shape)  # rows R v
        if len(graph) == systems:  # one frame per system (stochastic training): nothing to average
            return lab
        counts = torch.bincount(graph, minlength=systems).to(vectors.dtype)
        share = (1.0 / counts).index_select(0, graph).view(-1, *([1] * (vectors.dim() - 1)))
        return (lab * share).new_zeros(systems, *vectors.shape[1:]).index_add_(0, graph, lab * share)

    def forward(self, positions: torch.Tensor, velocities: torch.Tensor, charges: torch.Tensor) -> torch.Tensor:
        """Predicted positions: the input positions plus the frame-averaged decoded displacement.

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
        self.check_inputs(positions, velocities, charges)
        shape, points = positions.shape, positions.shape[-2]
        x, v, q = positions.reshape(-1, points, 3), velocities.reshape(-1, points, 3), charges.reshape(-1, points)
        systems = x.shape[0]
        centred = x - x.mean(-2, keepdim=True)
        rotations, graph = self._frames(centred, "O3" if self.group == "E3" else "SO3", self.on_degenerate)
        # rows in a frame R: coordinates R^T x, i.e. x @ R
        framed = torch.cat([self._copies(centred, graph, systems) @ rotations,
                            self._copies(v, graph, systems) @ rotations], -1)
        h = self.embedding(framed.reshape(-1, 6))
        copies = len(graph)
        source, target, features = self.edges(self._copies(x, graph, systems), self._copies(q, graph, systems))
        vectors_per_point = h.shape[-1] // 3
        for k in range(len(self.edge_mlps)):
            h = self.layer(k, h, source, target, features)
            if k == len(self.edge_mlps) - 1:
                break
            latent = self._average(h.reshape(copies, points, vectors_per_point, 3), rotations, graph, systems)
            if self.centre_latent:
                latent = latent - latent.mean((1, 2), keepdim=True)
            rotations, graph = self._frames(latent.reshape(systems, -1, 3), LATENT_GROUPS[self.group], "ignore"
                                            if self.on_degenerate != "expand" else "expand")
            if len(graph) != copies:  # a different number of frames: rebuild the copies' graph
                copies = len(graph)
                source, target, features = self.edges(self._copies(x, graph, systems), self._copies(q, graph, systems))
            framed = self._copies(latent, graph, systems).reshape(copies, -1, 3) @ rotations  # rows R^T v
            h = framed.reshape(-1, 3 * vectors_per_point)
        displacement = self._average(self.decoder(h).reshape(copies, points, 3), rotations, graph, systems)
        return positions + displacement.reshape(shape)

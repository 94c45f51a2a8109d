"""Frame averaging (Puny et al., ICLR 2022): any backbone made exactly equivariant by averaging over PCA frames.

For a frame ``g_F = (R_F, c)`` (``x -> R_F x + c``; no translation part for O3/SO3) the inputs are brought into the
canonical frame by ``g_F^-1`` acting through their representations, the backbone runs there, and its outputs are
mapped back by ``g_F``; the result is the mean over the frames. The frames of ``h.x`` are ``h g_F`` (as a set), so
the canonical inputs, hence the averaged outputs, transform exactly with ``h``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..groups import GroupElement, OnSet, Positions, Representation
from ._pca import GROUPS, ON_DEGENERATE, TOLERANCE, group_name, pca_frames


def _as_tuple(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value,)


class FrameAveraged(torch.nn.Module):
    """A backbone averaged over the PCA frames of its input point cloud: exactly equivariant under ``group``.

    The backbone ``f(*inputs)`` is called with a leading batch axis of (systems x frames); the inputs and outputs
    are described by :mod:`equilib.groups` representations. The first input whose representation is
    ``OnSet(Positions())`` gives the frames. Inputs carry the same leading axes as the positions: ``(m, ...)`` for
    one point cloud, ``(*B, m, ...)`` for a batch of systems of equal size.

    Positions get the centroid removed (E3/SE3) and are rotated into the frame; vectors are rotated only; scalars
    are unchanged; irreps transform by their Wigner D matrices, all through the representations' ``act``. The
    backbone need not be equivariant; if it is permutation-equivariant, so is the average.

    In training mode with ``stochastic=True`` one random frame per system is used per forward (drawn from
    ``generator``): an unbiased estimate of the average, equivariant in distribution. In eval mode (or
    ``stochastic=False``) all frames are averaged.

    Args:
        backbone: The module (or callable) ``f(*inputs)`` returning a tensor or a tuple of tensors, called with
            inputs of shape ``(n, ...)``: a leading batch axis of ``n`` = systems x frames.
        in_reps: One :class:`~equilib.groups.Representation` per input, e.g.
            ``(OnSet(Positions()), OnSet(Vectors()), OnSet(Scalars()))`` for n-body.
        out_reps: One representation per output, e.g. ``OnSet(Positions())``.
        group: ``"E3"`` (default), ``"SE3"``, ``"O3"`` or ``"SO3"`` (or the group object); O3/SO3 frames have no
            translation part (the origin is kept).
        stochastic: Use one random frame per system in training mode.
        generator: Torch generator of the stochastic frame draws.
        tolerance: Relative eigenvalue gap below which a spectrum is degenerate (see
            :func:`~equilib.frames.pca_frames`).
        on_degenerate: ``"warn"``, ``"raise"`` or ``"ignore"``.

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
        >>> x = x * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
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
        on_degenerate: str = "warn",
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

    @property
    def num_frames(self) -> int:
        """Number of frames per system: 8 for O3/E3, 4 for SO3/SE3."""
        return GROUPS[self.group]

    def frame_elements(self, positions: torch.Tensor) -> GroupElement:
        """The frames of each system as group elements ``g_F = (R_F, c)`` (no translation for O3/SO3).

        Args:
            positions: ``(*B, m, 3)`` positions.

        Returns:
            A :class:`~equilib.groups.GroupElement` of ``prod(B) * F`` elements, system-major.
        """
        frames = pca_frames(positions, group=self.group, tolerance=self.tolerance,
                            on_degenerate=self.on_degenerate)
        count = self.num_frames
        linear = frames.rotations.reshape(-1, 3, 3)
        translation = None
        if self.group in ("E3", "SE3"):
            translation = frames.centroids.reshape(-1, 1, 3).expand(-1, count, 3).reshape(-1, 3)
        return GroupElement(linear=linear, translation=translation)

    def forward(self, *inputs: torch.Tensor, frames: torch.Tensor | None = None):
        """The frame-averaged outputs.

        Args:
            *inputs: One tensor per input representation, with the leading axes ``B`` of the positions
                ``(*B, m, 3)``.
            frames: ``(prod(B),)`` torch.long index of the frame to use for each system instead of the average (or
                the stochastic draw); None: as the mode says.

        Returns:
            A tensor (one output representation) or a tuple of tensors, with leading axes ``B``.

        Raises:
            ValueError: If the number of inputs differs from ``in_reps``, a shape does not fit its representation
                or the leading axes, the point cloud is empty, the backbone's outputs do not match ``out_reps``, or
                ``frames`` has the wrong shape or range.
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
        lead = tuple(positions.shape[:-2])
        for k, x in enumerate(inputs):
            if tuple(x.shape[:len(lead)]) != lead:
                raise ValueError(f"inputs[{k}]: expected the leading axes {lead} of the positions, got shape "
                                 f"{tuple(x.shape)}")
        systems = positions[..., 0, 0].numel()
        count = self.num_frames
        g = self.frame_elements(positions)
        if frames is None and self.stochastic and self.training:
            frames = torch.randint(count, (systems,), generator=self.generator, device=torch.device("cpu"))
        if frames is not None:
            frames = frames.to(positions.device)
            if frames.shape != (systems,) or frames.dtype != torch.long or bool(((frames < 0) | (frames >= count))
                                                                                .any()):
                raise ValueError(f"frames: expected a torch.long tensor of shape ({systems},) with values in "
                                 f"0..{count - 1}, got {frames.dtype} {tuple(frames.shape)}")
            pick = torch.arange(systems, device=positions.device) * count + frames
            g = GroupElement(**{name: part.index_select(0, pick) for name, part in g.parts().items()})
            count = 1
        g = g.to(dtype=positions.dtype)
        g_inverse = g.inverse()
        canonical = []
        for x, rep in zip(inputs, self.in_reps):
            flat = x.reshape(systems, *x.shape[len(lead):])
            flat = flat.unsqueeze(1).expand(systems, count, *flat.shape[1:]).reshape(systems * count, *flat.shape[1:])
            canonical.append(rep.act(g_inverse, flat))
        outputs = _as_tuple(self.backbone(*canonical))
        if len(outputs) != len(self.out_reps):
            raise ValueError(f"out_reps: the backbone returned {len(outputs)} outputs, expected {len(self.out_reps)}")
        averaged = []
        for k, (y, rep) in enumerate(zip(outputs, self.out_reps)):
            if not isinstance(y, torch.Tensor) or y.dim() == 0 or y.shape[0] != systems * count:
                raise ValueError(f"outputs[{k}]: expected a tensor with a leading axis of {systems * count} "
                                 f"(systems x frames), got {tuple(getattr(y, 'shape', ()))}")
            rep.check(tuple(y.shape[1:]), f"outputs[{k}]")
            back = rep.act(g, y)
            back = back.reshape(systems, count, *y.shape[1:]).mean(1)
            averaged.append(back.reshape(*lead, *y.shape[1:]))
        return averaged[0] if len(averaged) == 1 else tuple(averaged)

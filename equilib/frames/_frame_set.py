"""Frame sets of point clouds: the PCA frames, with exactly equivariant extra frames where the spectrum is degenerate.

PCA frames (Puny et al., ICLR 2022) exist only for a simple covariance spectrum. Where two or three eigenvalues
coincide (relative gap below ``tolerance``), :func:`frame_set` keeps what is still well defined, the eigenspaces, and
breaks the tie with the points themselves: inside a degenerate eigenspace, every point whose projection is the
longest (``w_i |p_i|`` within ``tolerance`` of the largest, ``w`` the invariant weights) proposes an axis. The
proposals move with the cloud, so the set of frames built from all of them is exactly equivariant, and for a
symmetric cloud it is an orbit of its point group (24 frames for a regular tetrahedron, 48 for a cube, 24 for
benzene under O(3)). Clouds with a continuous stabiliser (collinear or coincident points: no point off the axis)
keep the arbitrary PCA frames; for them only outputs that the stabiliser leaves alone (invariants, vectors along the
axis) are exact, and they are reported.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import torch

from ._pca import (
    GROUPS,
    TOLERANCE,
    check_degenerate,
    group_name,
    principal_axes,
    relative_gaps,
    sign_choices,
    sign_frames,
)

ON_DEGENERATE = ("expand", "warn", "raise", "ignore")
MAX_FRAMES = 128


class FrameSet(NamedTuple):
    """The frames of a batch of point clouds, a varying number per cloud.

    Attributes:
        centroids: ``(G, 3)`` weighted centroid of each cloud.
        rotations: ``(C, 3, 3)`` orthogonal frames of all clouds, cloud by cloud.
        graph: ``(C,)`` torch.long cloud of each frame (non-decreasing).
        spectrum: ``(G, 3)`` ascending covariance eigenvalues.
    """

    centroids: torch.Tensor
    rotations: torch.Tensor
    graph: torch.Tensor
    spectrum: torch.Tensor

    @property
    def counts(self) -> torch.Tensor:
        """``(G,)`` number of frames of each cloud."""
        return torch.bincount(self.graph, minlength=self.centroids.shape[0])

    def one_per_cloud(self, frames: torch.Tensor) -> FrameSet:
        """The set with one frame of each cloud: ``frames[g]``, an index among cloud ``g``'s frames.

        Args:
            frames: ``(G,)`` torch.long, each below its cloud's number of frames.

        Returns:
            The :class:`FrameSet` of ``G`` frames, cloud ``g``'s ``g``-th.
        """
        pick = exclusive_cumsum(self.counts) + frames.to(self.graph.device)
        return FrameSet(self.centroids, self.rotations.index_select(0, pick),
                        torch.arange(len(pick), device=self.graph.device), self.spectrum)


def exclusive_cumsum(counts: torch.Tensor) -> torch.Tensor:
    """Where each group starts when groups of ``counts`` elements follow one another: ``cumsum(counts) - counts``."""
    return torch.cumsum(counts, 0) - counts


def random_frames(counts: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A uniformly random index below each count (one frame of each cloud, for stochastic frame averaging), drawn
    in float64 on the CPU from ``generator`` (torch's global generator when None).

    Args:
        counts: ``(G,)`` positive numbers of frames.
        generator: A CPU ``torch.Generator``, or None.

    Returns:
        ``(G,)`` torch.long on ``counts``' device.
    """
    return _indices_below(counts.cpu(), len(counts), generator).to(counts.device)


def _indices_below(counts, n: int, generator: torch.Generator | None) -> torch.Tensor:
    """``n`` uniform indices on the CPU, each below its count (``counts`` a CPU tensor of ``n``, or one int for all):
    ``floor(u * count)`` of a float64 uniform ``u``, the one draw :func:`random_frames` and
    :func:`sample_frame_set` share."""
    draw = torch.rand(n, generator=generator, dtype=torch.float64)
    return (draw * counts).long().clamp(max=counts - 1)


def frame_set(
    positions: torch.Tensor,
    batch: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    group="O3",
    tolerance: float = TOLERANCE,
    on_degenerate: str = "expand",
    max_frames: int = MAX_FRAMES,
) -> FrameSet:
    """The frames of point clouds: PCA sign frames, and tie-break frames where the spectrum is degenerate.

    A simple spectrum gives the frames of :func:`~equilib.frames.pca_frames` (8 for O3/E3, 4 proper ones for
    SO3/SE3). With ``on_degenerate="expand"`` (default), a cloud with two eigenvalues within ``tolerance`` (relative
    gap) gets, for every point ``i`` of longest weighted projection onto the degenerate plane, the frames whose first
    in-plane axis is that projection, the other in-plane axis the normal's cross product, and the normal of either
    sign (4 per point for O3, 2 for SO3); a cloud with three equal eigenvalues gets, for every longest point ``i`` and
    every longest projection ``j`` orthogonal to it, the frame ``(a_i, b_ij, +-a_i x b_ij)``. Ties within
    ``tolerance`` all count (the second axis prefers, among them, the points furthest along the first), so the set is
    exactly equivariant (and permutation-invariant). The extra frames are
    built in a Python loop over the degenerate clouds only; the rest is batched.

    Args:
        positions: ``(N, 3)`` points with ``batch``, or ``(..., N, 3)`` (each leading index a cloud).
        batch: ``(N,)`` torch.long cloud of each point, or None.
        weights: Non-negative invariant weights per point (masses, a 0/1 mask), ``positions.shape[:-1]``; default
            uniform. Points of weight 0 take no part.
        group: ``"O3"``, ``"E3"``, ``"SO3"``, ``"SE3"`` (or the group object).
        tolerance: Relative eigenvalue gap below which eigenvalues count as equal, and relative margin of the
            longest-projection ties.
        on_degenerate: ``"expand"`` (the tie-break frames above), or ``"warn"``, ``"raise"``, ``"ignore"`` to keep the
            ill-defined PCA frames (see :func:`~equilib.frames.pca_frames`).
        max_frames: Most frames a degenerate cloud may get (a near-spherical cloud with many tied points could
            otherwise get thousands); beyond it the first ``max_frames`` are kept, with a warning.

    Returns:
        :class:`FrameSet` over ``G`` clouds, flattened in the order of the leading axes (or the batch vector).

    Raises:
        TypeError: If ``positions`` is not a floating tensor.
        ValueError: For an unknown group or ``on_degenerate``, a bad shape, an empty cloud, bad weights, or (with
            ``"raise"``) a degenerate spectrum.

    Examples:
        >>> import torch
        >>> cube = torch.cartesian_prod(*[torch.tensor([-1.0, 1.0], dtype=torch.float64)] * 3)
        >>> frame_set(cube).counts.tolist()  # |O_h| = 48 frames, the cube's symmetries
        [48]
        >>> frame_set(cube, group="SO3").counts.tolist()  # its 24 rotations
        [24]
    """
    proper, clouds, degenerate = _checked_axes(positions, batch, weights, group, tolerance, on_degenerate, max_frames)
    return _frames_of(clouds, degenerate, proper, tolerance, on_degenerate, max_frames)


def _checked_axes(positions, batch, weights, group, tolerance: float, on_degenerate: str, max_frames: int):
    """:func:`frame_set`'s argument checks, the clouds' principal axes and which spectra are degenerate (warned about
    or raised as ``on_degenerate`` says, unless it is ``"expand"``); and whether the frames are proper."""
    name = group_name(group)
    if on_degenerate not in ON_DEGENERATE:
        raise ValueError(f"on_degenerate: expected one of {ON_DEGENERATE}, got {on_degenerate!r}")
    if not isinstance(max_frames, int) or max_frames < 1:
        raise ValueError(f"max_frames: expected a positive int, got {max_frames!r}")
    clouds = principal_axes(positions, batch, weights)
    degenerate = check_degenerate(clouds.spectrum, tolerance, "ignore" if on_degenerate == "expand" else on_degenerate)
    return GROUPS[name] == 4, clouds, degenerate


def _frames_of(clouds, degenerate: torch.Tensor, proper: bool, tolerance: float, on_degenerate: str,
               max_frames: int) -> FrameSet:
    """The :class:`FrameSet` of :func:`frame_set` from the clouds' principal axes."""
    frames = sign_frames(clouds.vectors, proper)  # (G, F, 3, 3)
    num_graphs, count = frames.shape[:2]
    graph = torch.arange(num_graphs, device=frames.device).repeat_interleave(count)
    if on_degenerate != "expand" or not bool(degenerate.any()):
        return FrameSet(clouds.centroids, frames.reshape(-1, 3, 3), graph, clouds.spectrum)
    pieces, continuous, capped = [], [], []
    for k in range(num_graphs):
        extra = None
        if bool(degenerate[k]):
            members = clouds.index == k
            extra = _tie_break_frames(clouds.centred[members], clouds.weights[members], clouds.spectrum[k],
                                      clouds.vectors[k], tolerance, proper)
            if extra is None:
                continuous.append(k)
            elif len(extra) > max_frames:
                capped.append(k)
                extra = extra[:max_frames]
        pieces.append(frames[k] if extra is None else extra)
    if continuous:
        warnings.warn(f"{len(continuous)} of {num_graphs} graphs (e.g. graph {continuous[0]}) have a continuous "
                      "stabiliser (collinear or coincident points): their frames are arbitrary about the axis, so only "
                      "outputs it leaves alone (invariants, vectors along the axis) are exactly equivariant",
                      RuntimeWarning, stacklevel=3)
    if capped:
        warnings.warn(f"{len(capped)} graphs (e.g. graph {capped[0]}) have more than max_frames={max_frames} tie-break "
                      "frames; only the first are kept, which breaks exact equivariance for them", RuntimeWarning,
                      stacklevel=3)
    counts = torch.tensor([len(p) for p in pieces], device=frames.device)
    graph = torch.arange(num_graphs, device=frames.device).repeat_interleave(counts)
    return FrameSet(clouds.centroids, torch.cat(pieces), graph, clouds.spectrum)


def sample_frame_set(
    positions: torch.Tensor,
    batch: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    group="O3",
    tolerance: float = TOLERANCE,
    on_degenerate: str = "expand",
    max_frames: int = MAX_FRAMES,
    generator: torch.Generator | None = None,
) -> FrameSet:
    """One frame of each cloud, drawn uniformly among those of :func:`frame_set` (stochastic frame averaging): the
    same frame as ``frame_set(...).one_per_cloud(random_frames(counts, generator))``, but where no spectrum needs
    tie-break frames only the drawn sign frame of each cloud is built.

    Args:
        positions: ``(N, 3)`` points with ``batch``, or ``(..., N, 3)``.
        batch: ``(N,)`` torch.long cloud of each point, or None.
        weights: Non-negative invariant weights per point, ``positions.shape[:-1]``; default uniform.
        group: ``"O3"``, ``"E3"``, ``"SO3"``, ``"SE3"`` (or the group object).
        tolerance: As in :func:`frame_set`.
        on_degenerate: As in :func:`frame_set`.
        max_frames: As in :func:`frame_set`.
        generator: CPU generator of the draw (torch's global one when None).

    Returns:
        :class:`FrameSet` with one frame per cloud, in cloud order.

    Raises:
        TypeError: If ``positions`` is not a floating tensor.
        ValueError: As :func:`frame_set`.
    """
    proper, clouds, degenerate = _checked_axes(positions, batch, weights, group, tolerance, on_degenerate, max_frames)
    if on_degenerate == "expand" and bool(degenerate.any()):
        full = _frames_of(clouds, degenerate, proper, tolerance, on_degenerate, max_frames)
        return full.one_per_cloud(random_frames(full.counts, generator))
    vectors = clouds.vectors
    choices = sign_choices(vectors, proper)  # (G, 8 or 4, 3), the order of sign_frames
    clouds_count, count = choices.shape[:2]
    drawn = _indices_below(count, clouds_count, generator).to(vectors.device)
    chosen = choices[torch.arange(clouds_count, device=vectors.device), drawn]
    rotations = vectors * chosen.unsqueeze(-2)  # scales column k of V by the k-th sign
    return FrameSet(clouds.centroids, rotations, torch.arange(clouds_count, device=vectors.device), clouds.spectrum)


def _longest(vectors, weights, floor: float, tolerance: float, along: torch.Tensor | None = None) -> torch.Tensor:
    """Indices of the vectors of longest weighted norm (ties within ``tolerance``), ignoring those below ``floor``;
    among the tied ones, with ``along``, those whose original points reach furthest along it (ties again kept)."""
    norms = vectors.norm(dim=-1)
    key = torch.where((norms > floor) & (weights > 0), weights * norms, torch.zeros_like(norms))
    top = key.max()
    if not bool(top > 0):
        return torch.zeros(0, dtype=torch.long, device=vectors.device)
    chosen = key >= top * (1 - tolerance)
    if along is not None:
        height = torch.where(chosen, along, torch.full_like(along, -torch.inf))
        chosen &= height >= height.max() - tolerance * norms.max()
    return torch.nonzero(chosen).flatten()


def _tie_break_frames(points, weights, spectrum, vectors, tolerance: float, proper: bool) -> torch.Tensor | None:
    """The tie-break frames ``(F, 3, 3)`` of one degenerate cloud (centred points), or None if it has none."""
    if not bool(spectrum[-1] > 0):
        return None
    floor = tolerance * float(spectrum[-1].detach().sqrt())
    gaps = relative_gaps(spectrum.detach())
    candidates = []
    if bool((gaps < tolerance).all()):  # three equal eigenvalues: two axes from the points
        for i in _longest(points, weights, floor, tolerance):
            a = points[i] / points[i].norm()
            across = points - (points @ a).unsqueeze(-1) * a
            for j in _longest(across, weights, floor, tolerance, along=points @ a):
                b = across[j] / across[j].norm()
                c = torch.linalg.cross(a, b)
                candidates += [torch.stack([a, b, c], -1), torch.stack([a, b, -c], -1)]
    else:  # two equal eigenvalues: the simple one's axis, an in-plane axis from the points
        low = bool(gaps[0] < tolerance)  # the equal pair is (l1, l2), the axis the largest; else (l2, l3), the smallest
        axis = vectors[:, 2] if low else vectors[:, 0]
        in_plane = points - (points @ axis).unsqueeze(-1) * axis
        for i in _longest(in_plane, weights, floor, tolerance):
            a = in_plane[i] / in_plane[i].norm()
            for u in (axis, -axis):
                b = torch.linalg.cross(u, a)
                for columns in ((a, b, u), (a, -b, u)):
                    candidates.append(torch.stack(columns if low else columns[::-1], -1))
    if not candidates:
        return None
    frames = torch.stack(candidates)
    if proper:
        frames = frames[torch.linalg.det(frames) > 0]
    return frames

"""PCA frames of point clouds: centroids, covariance eigenvectors with every sign choice, and degeneracy checks.

Convention (exactly equivariant): the centroid ``c = sum_i w_i x_i / sum_i w_i`` and the covariance
``C = sum_i w_i (x_i - c)(x_i - c)^T / sum_i w_i`` of each graph; ``torch.linalg.eigh`` gives ascending eigenvalues
``l1 <= l2 <= l3`` and eigenvectors ``V`` (columns, in that order). The frames are ``V S`` for the diagonal sign
matrices ``S``: all 8 for O(3)/E(3), the 4 with ``det(V S) = +1`` for SO(3)/SE(3). Under ``x -> R x + t`` the
centroid moves to ``R c + t`` and ``C`` to ``R C R^T``, whose eigenvectors are ``R V`` up to the signs of the
columns, so the set of frames moves to ``{R F}``: the set (not its order) is equivariant, which is all frame
averaging needs. This holds when the spectrum is simple; degenerate spectra are detected here (``frame_set``
repairs them).
"""

from __future__ import annotations

import itertools
import warnings
from typing import NamedTuple

import torch

from ..groups import E3, O3, SE3, SO3, Group
from ..utils import scatter

GROUPS = {"O3": 8, "E3": 8, "SO3": 4, "SE3": 4}
ON_DEGENERATE = ("warn", "raise", "ignore")
TOLERANCE = 1e-3


class Frames(NamedTuple):
    """The PCA frames of one or more point clouds.

    Attributes:
        centroids: ``(G, 3)`` weighted centroid of each cloud.
        rotations: ``(G, F, 3, 3)`` orthogonal frames: the covariance eigenvectors as columns (ascending eigenvalues)
            times each admissible sign choice; F = 8 for O3/E3, 4 (det +1) for SO3/SE3.
        spectrum: ``(G, 3)`` ascending covariance eigenvalues.
    """

    centroids: torch.Tensor
    rotations: torch.Tensor
    spectrum: torch.Tensor


def group_name(group) -> str:
    """The name (``"O3"``, ``"SO3"``, ``"E3"`` or ``"SE3"``) of a group given by name or as a group object.

    Args:
        group: One of the names, or an instance of :class:`~equilib.groups.O3`, ``SO3``, ``E3``, ``SE3``.

    Returns:
        The name.

    Raises:
        ValueError: If the group is none of these.
    """
    if isinstance(group, str) and group in GROUPS:
        return group
    if isinstance(group, Group):
        for cls in (O3, SO3, E3, SE3):  # exact types: O3 subclasses SO3
            if type(group) is cls:
                return cls.__name__
    raise ValueError(f"group: expected one of {sorted(GROUPS)} (a name or an equilib.groups object), got {group!r}")


_SIGNS = torch.tensor(sorted(itertools.product((1.0, -1.0), repeat=3), key=lambda s: -s[0] * s[1] * s[2]),
                      dtype=torch.float64)


def sign_matrices(dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
    """The 8 diagonal sign choices as ``(8, 3)`` rows, the 4 with product +1 first.

    Args:
        dtype: Dtype of the result.
        device: Device of the result.

    Returns:
        ``(8, 3)`` tensor of +-1.
    """
    return _SIGNS.to(dtype=dtype, device=device)


def relative_gaps(spectrum: torch.Tensor) -> torch.Tensor:
    """The gaps between consecutive eigenvalues relative to the largest: ``(l2 - l1, l3 - l2) / l3``.

    Args:
        spectrum: ``(..., 3)`` ascending eigenvalues (non-negative).

    Returns:
        ``(..., 2)`` relative gaps; 0 where the spectrum is zero (a single point, or coincident points).
    """
    scale = spectrum[..., -1:].clamp(min=torch.finfo(spectrum.dtype).tiny)
    return (spectrum[..., 1:] - spectrum[..., :-1]) / scale


def pca_frames(
    positions: torch.Tensor,
    batch: torch.Tensor | None = None,
    weights: torch.Tensor | None = None,
    group="O3",
    tolerance: float = TOLERANCE,
    on_degenerate: str = "warn",
) -> Frames:
    """The PCA frames of point clouds: per graph the centroid and the covariance eigenvectors with all sign choices.

    Graphs are given either by a PyG-style ``batch`` vector over the rows of ``positions`` (graphs of different
    sizes) or by leading axes of ``positions`` (systems of equal size). Centroids and 3 x 3 covariances are scatter
    sums (batch vector) or sums over the point axis (leading axes), diagonalised in one batched ``torch.linalg.eigh``;
    no Python loop over graphs. Gradients flow through the
    frames (well defined for a simple spectrum).

    Convention: the frames are ``V S`` with ``V`` the eigenvectors (columns, ascending eigenvalues) and ``S`` the
    sign choices (all 8 for O3/E3, the 4 with det +1 for SO3/SE3); for ``g = (R, t)`` the frames of ``g.x`` are
    ``R`` times the frames of ``x`` as a set and the centroid is ``R c + t``.

    Degenerate spectra (a relative eigenvalue gap ``(l_{k+1} - l_k) / l_3`` below ``tolerance``: symmetric
    molecules, planar rings, linear molecules, a single point) make the eigenvectors, hence the frames, ill-defined;
    they are detected and reported here; :func:`~equilib.frames.frame_set` repairs them with exact tie-break
    frames.

    Args:
        positions: ``(N, 3)`` points with ``batch``, or ``(..., N, 3)`` without (each leading index a system).
        batch: ``(N,)`` torch.long graph index of each point (every graph in ``0 .. max`` non-empty), or None.
        weights: Non-negative invariant weights per point (masses), ``positions.shape[:-1]``; default uniform.
        group: ``"O3"``, ``"E3"`` (8 frames) or ``"SO3"``, ``"SE3"`` (4 frames), or the group object.
        tolerance: Smallest relative eigenvalue gap accepted as non-degenerate.
        on_degenerate: ``"warn"`` (default), ``"raise"`` or ``"ignore"`` when a graph is degenerate.

    Returns:
        :class:`Frames` with leading shape ``(G,)`` with ``batch`` (G = max + 1), else ``positions.shape[:-2]``.

    Raises:
        TypeError: If ``positions`` is not a floating tensor.
        ValueError: If the group or ``on_degenerate`` is unknown, a shape does not fit, a point cloud (or graph) is
            empty, the weights are negative or sum to zero, or (with ``on_degenerate="raise"``) a spectrum is
            degenerate.

    Examples:
        >>> import torch
        >>> x = torch.randn(6, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        >>> frames = pca_frames(x * torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64))
        >>> frames.centroids.shape, frames.rotations.shape, frames.spectrum.shape
        (torch.Size([3]), torch.Size([8, 3, 3]), torch.Size([3]))
        >>> pca_frames(x, group="SO3", on_degenerate="ignore").rotations.det().round().tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    name = group_name(group)
    if on_degenerate not in ON_DEGENERATE:
        raise ValueError(f"on_degenerate: expected one of {ON_DEGENERATE}, got {on_degenerate!r}")
    clouds = principal_axes(positions, batch, weights)
    check_degenerate(clouds.spectrum, tolerance, on_degenerate)
    rotations = sign_frames(clouds.vectors, GROUPS[name] == 4)
    lead = clouds.lead
    return Frames(clouds.centroids.reshape(*lead, 3), rotations.reshape(*lead, rotations.shape[1], 3, 3),
                  clouds.spectrum.reshape(*lead, 3))


class PrincipalAxes(NamedTuple):
    """Point clouds flattened to one batch vector, with their weighted centroids and covariance eigenbases.

    Attributes:
        centred: ``(N, 3)`` points minus their graph's centroid.
        weights: ``(N,)`` the points' weights.
        index: ``(N,)`` graph of each point.
        lead: Leading shape of the per-graph results: ``(G,)`` with a batch vector, else the positions' leading axes.
        centroids: ``(G, 3)``.
        spectrum: ``(G, 3)`` ascending covariance eigenvalues.
        vectors: ``(G, 3, 3)`` the eigenvectors as columns.
    """

    centred: torch.Tensor
    weights: torch.Tensor
    index: torch.Tensor
    lead: tuple
    centroids: torch.Tensor
    spectrum: torch.Tensor
    vectors: torch.Tensor


def principal_axes(positions: torch.Tensor, batch: torch.Tensor | None, weights: torch.Tensor | None) -> PrincipalAxes:
    """Checks the clouds of :func:`pca_frames` and diagonalises their weighted covariances (one batched ``eigh``).

    Args:
        positions: ``(N, 3)`` with ``batch``, or ``(..., N, 3)``.
        batch: ``(N,)`` graph index of each point, or None.
        weights: Non-negative weights of shape ``positions.shape[:-1]``, or None (uniform).

    Returns:
        The :class:`PrincipalAxes`.

    Raises:
        TypeError: If ``positions`` is not a floating tensor.
        ValueError: If a shape does not fit, a cloud is empty, or weights are negative or sum to zero.
    """
    if not isinstance(positions, torch.Tensor) or not positions.is_floating_point():
        raise TypeError(f"positions: expected a floating tensor, got {getattr(positions, 'dtype', type(positions))}")
    lead: tuple[int, ...]
    if batch is None:
        if positions.dim() < 2 or positions.shape[-1] != 3:
            raise ValueError(f"positions: expected shape (..., N, 3), got {tuple(positions.shape)}")
        lead, n = tuple(positions.shape[:-2]), positions.shape[-2]
        if n == 0:
            raise ValueError(f"positions: empty point cloud(s), shape {tuple(positions.shape)}")
        count = 1
        for size in lead:
            count *= size
        if count == 0:
            raise ValueError(f"positions: no point clouds, shape {tuple(positions.shape)}")
        flat = positions.reshape(count * n, 3)
        index = torch.arange(count, device=positions.device).view(-1, 1).expand(count, n).reshape(-1)
        num_graphs = count
    else:
        if positions.dim() != 2 or positions.shape[-1] != 3:
            raise ValueError(f"positions: expected shape (N, 3) with a batch vector, got {tuple(positions.shape)}")
        if (not isinstance(batch, torch.Tensor) or batch.dtype != torch.long or batch.dim() != 1
                or batch.shape[0] != positions.shape[0]):
            raise ValueError(f"batch: expected a torch.long tensor of shape ({positions.shape[0]},), got "
                             f"{getattr(batch, 'dtype', type(batch))} {tuple(getattr(batch, 'shape', ()))}")
        if positions.shape[0] == 0:
            raise ValueError("positions: empty point cloud (no rows)")
        if int(batch.min()) < 0:
            raise ValueError("batch: negative graph index")
        num_graphs = int(batch.max()) + 1
        sizes = torch.bincount(batch, minlength=num_graphs)
        if bool((sizes == 0).any()):
            empty = torch.nonzero(sizes == 0).flatten().tolist()
            raise ValueError(f"batch: graphs {empty[:10]} are empty (no points)")
        flat, index, lead = positions, batch, (num_graphs,)
    if weights is None:
        w = torch.ones(flat.shape[0], dtype=flat.dtype, device=flat.device)
    else:
        if not isinstance(weights, torch.Tensor) or tuple(weights.shape) != tuple(positions.shape[:-1]):
            raise ValueError(f"weights: expected shape {tuple(positions.shape[:-1])}, got "
                             f"{tuple(getattr(weights, 'shape', ()))}")
        w = weights.reshape(-1).to(flat.dtype)
        if bool((w < 0).any()):
            raise ValueError("weights: expected non-negative weights")
    if batch is None and weights is None:  # uniform clouds of equal size: means over the point axis
        points = flat.view(num_graphs, -1, 3)
        centroids = points.mean(1)
        centred = points - centroids.unsqueeze(1)
        covariance = (centred.transpose(-1, -2) @ centred) / points.shape[1]
        centred = centred.reshape(-1, 3)
    elif batch is None:  # weighted clouds of equal size: sums over the point axis, no scatter
        points = flat.view(num_graphs, -1, 3)
        share = w.view(num_graphs, -1, 1)
        total = share.sum(1)
        if bool((total <= 0).any()):
            raise ValueError("weights: the weights of a graph sum to zero")
        centroids = (share * points).sum(1) / total
        centred = points - centroids.unsqueeze(1)
        covariance = (centred * share).transpose(-1, -2) @ centred / total.unsqueeze(-1)
        centred = centred.reshape(-1, 3)
    else:
        total = scatter(w, index, dim_size=num_graphs)
        if bool((total <= 0).any()):
            raise ValueError("weights: the weights of a graph sum to zero")
        centroids = scatter(w.unsqueeze(-1) * flat, index, dim_size=num_graphs) / total.unsqueeze(-1)
        centred = flat - centroids.index_select(0, index)
        outer = (w.view(-1, 1, 1) * centred.unsqueeze(-1) * centred.unsqueeze(-2)).reshape(-1, 9)
        covariance = (scatter(outer, index, dim_size=num_graphs) / total.unsqueeze(-1)).view(-1, 3, 3)
    covariance = 0.5 * (covariance + covariance.transpose(-1, -2))
    spectrum, vectors = torch.linalg.eigh(covariance)
    return PrincipalAxes(centred, w, index, lead, centroids, spectrum, vectors)


def sign_choices(vectors: torch.Tensor, proper: bool) -> torch.Tensor:
    """The sign choices of each eigenbasis's frames: all 8 rows of :func:`sign_matrices` ``(G, 8, 3)``, or the 4 that
    make ``det(V S) = +1`` ``(G, 4, 3)``.

    Args:
        vectors: ``(G, 3, 3)`` orthogonal matrices (eigenvectors as columns).
        proper: Keep only the sign choices that make ``det = +1``.

    Returns:
        The signs, in the order of :func:`sign_matrices`.
    """
    signs = sign_matrices(vectors.dtype, vectors.device)  # (8, 3), product +1 first
    if not proper:
        return signs.unsqueeze(0).expand(vectors.shape[0], 8, 3)
    positive = torch.linalg.det(vectors) > 0  # V S has det +1 iff prod(S) = det(V)
    return torch.where(positive.view(-1, 1, 1), signs[:4].unsqueeze(0), signs[4:].unsqueeze(0))


def sign_frames(vectors: torch.Tensor, proper: bool) -> torch.Tensor:
    """The eigenbases times every sign choice: ``(G, 8, 3, 3)``, or the 4 with det +1 ``(G, 4, 3, 3)``.

    Args:
        vectors: ``(G, 3, 3)`` orthogonal matrices (eigenvectors as columns).
        proper: Keep only the sign choices that make ``det = +1``.

    Returns:
        The frames, the sign choices in the order of :func:`sign_choices`.
    """
    return vectors.unsqueeze(1) * sign_choices(vectors, proper).unsqueeze(-2)  # scales column k of V by sign k


def check_degenerate(spectrum: torch.Tensor, tolerance: float, on_degenerate: str) -> torch.Tensor:
    """Warns or raises (as ``on_degenerate`` says) about graphs whose relative eigenvalue gaps are below ``tolerance``.

    Args:
        spectrum: ``(G, 3)`` ascending eigenvalues.
        tolerance: Smallest accepted relative gap.
        on_degenerate: ``"warn"``, ``"raise"`` or ``"ignore"``.

    Returns:
        ``(G,)`` bool: which graphs are degenerate.

    Raises:
        ValueError: If a graph is degenerate and ``on_degenerate="raise"``.
    """
    gaps = relative_gaps(spectrum.detach())
    bad = (gaps < tolerance).any(-1)
    if on_degenerate == "ignore" or not bool(bad.any()):
        return bad
    which = torch.nonzero(bad).flatten()
    shown = ", ".join(f"graph {int(k)}: ({float(gaps[k, 0]):.2e}, {float(gaps[k, 1]):.2e})" for k in which[:5])
    more = "" if len(which) <= 5 else f", ... ({len(which) - 5} more)"
    message = (f"{len(which)} of {len(spectrum)} graphs have a degenerate covariance spectrum (relative eigenvalue "
               f"gaps (l2-l1, l3-l2)/l3 below tolerance={tolerance:g}: {shown}{more}); their PCA frames are not "
               "well defined, so frame averaging is not exactly equivariant on them")
    if on_degenerate == "raise":
        raise ValueError(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    return bad

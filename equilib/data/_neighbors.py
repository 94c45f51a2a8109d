"""Neighbor lists with periodic, mixed or no boundary conditions: vesin on the CPU, brute force in torch otherwise.

vesin (Fraux et al., https://github.com/Luthaf/vesin) is ASE-compatible; the torch fallback serves when vesin is
absent or the positions live on a GPU. Both return the same edge set, that of
``ase.neighborlist.neighbor_list("ijS", atoms, cutoff)``.

Convention (PyG message flow, as in OC20/fairchem): ``edge_index[0]`` is the neighbor j (source),
``edge_index[1]`` the center i (target), and the edge vector from i to j is
``pos[j] - pos[i] + cell_offsets @ cell``. Pairs of an atom with itself are kept only for non-zero shifts.
"""

from __future__ import annotations

import math

import numpy as np
import torch

try:
    import vesin as _vesin
except ImportError:  # pragma: no cover - vesin is a dependency; the fallback is tested by forcing it
    _vesin = None

BACKENDS = ("auto", "vesin", "torch")
PAIR_CHUNK = 1 << 22  # (image, center, neighbor) triples per block of the torch search: ~100 MiB of float64 vectors


def _check(positions, cutoff, cell, pbc) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if not isinstance(positions, torch.Tensor):
        positions = torch.as_tensor(np.asarray(positions, dtype=np.float64))
    if positions.dim() != 2 or positions.shape[1] != 3 or not positions.is_floating_point():
        raise ValueError(f"positions: expected a float tensor of shape (n_atoms, 3), got {tuple(positions.shape)}")
    if not torch.isfinite(positions).all():
        raise ValueError("positions: expected finite values, got NaN or inf")
    if not (isinstance(cutoff, (int, float)) and math.isfinite(cutoff) and cutoff > 0):
        raise ValueError(f"cutoff: expected a positive number, got {cutoff!r}")
    pbc = torch.zeros(3, dtype=torch.bool) if pbc is None else torch.as_tensor(pbc, dtype=torch.bool).reshape(-1)
    if pbc.numel() == 1:
        pbc = pbc.expand(3).clone()
    if pbc.shape != (3,):
        raise ValueError(f"pbc: expected one bool or three, got {pbc.tolist()}")
    if cell is None:
        if pbc.any():
            raise ValueError("cell: periodic boundaries (pbc) need a cell, got None")
        cell = torch.zeros(3, 3, dtype=positions.dtype)
    cell = torch.as_tensor(cell, dtype=positions.dtype, device=positions.device).reshape(3, 3)
    if pbc.any():
        periodic = cell[pbc.to(cell.device)]
        if torch.linalg.matrix_rank(periodic.double()) < int(pbc.sum()):
            raise ValueError(f"cell: the periodic cell vectors are degenerate, got {cell.tolist()}")
    return positions, cell, pbc.to(positions.device)


def neighbor_list(
    positions, cutoff: float, cell=None, pbc=None, *, backend: str = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pairs closer than ``cutoff``, as ``edge_index`` and integer ``cell_offsets``.

    Pairs are sorted by (center, neighbor, offsets); see the module docstring for the convention.

    Args:
        positions: (n, 3) positions in Angstrom (tensor or array-like).
        cutoff: Cutoff radius in Angstrom, positive and finite.
        cell: (3, 3) rows = lattice vectors, or None (no periodic direction).
        pbc: One bool or three; None: no periodic direction.
        backend: ``"vesin"``, ``"torch"``, or ``"auto"`` (vesin for CPU tensors when installed).

    Returns:
        ``(edge_index, cell_offsets)``: (2, E) torch.long (neighbor j, center i) and (E, 3) integer offsets, on
        ``positions``' device.

    Raises:
        ValueError: If ``backend`` is unknown or vesin is asked for and not installed, ``positions`` is not a finite
            float (n, 3) array, ``cutoff`` is not positive, ``pbc`` has neither one nor three entries, or a periodic
            direction has no cell or degenerate cell vectors.

    Examples:
        >>> import torch
        >>> from equilib.data import neighbor_list
        >>> positions = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 3.0]])
        >>> edge_index, offsets = neighbor_list(positions, cutoff=1.5)
        >>> edge_index  # atom 2 is too far from both
        tensor([[1, 0],
                [0, 1]])
        >>> cell = 2.0 * torch.eye(3)
        >>> edge_index, offsets = neighbor_list(torch.zeros(1, 3), 2.5, cell=cell, pbc=[True, True, False])
        >>> offsets  # one atom, its four periodic images in the plane
        tensor([[-1,  0,  0],
                [ 0, -1,  0],
                [ 0,  1,  0],
                [ 1,  0,  0]])
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    positions, cell, pbc = _check(positions, cutoff, cell, pbc)
    if backend == "auto":
        backend = "vesin" if _vesin is not None and positions.device.type == "cpu" else "torch"
    if backend == "vesin":
        if _vesin is None:
            raise ValueError("backend: 'vesin' is not installed (pip install vesin)")
        centers, neighbors, offsets = _vesin_pairs(positions, float(cutoff), cell, pbc)
    else:
        centers, neighbors, offsets = _torch_pairs(positions, float(cutoff), cell, pbc)
    key = torch.stack([centers, neighbors, *offsets.T]).T
    order = np.lexsort(key.cpu().numpy().T[::-1]) if len(key) else np.zeros(0, dtype=np.int64)
    order = torch.as_tensor(order, device=positions.device)
    edge_index = torch.stack([neighbors[order], centers[order]])
    return edge_index, offsets[order]



def edge_vectors_and_lengths(pos: torch.Tensor, cell: torch.Tensor, edge_index: torch.Tensor,
                             cell_offsets: torch.Tensor, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Edge vectors ``pos[j] - pos[i] + cell_offsets @ cell[batch[i]]`` and their lengths.

    Differentiable in ``pos`` and ``cell`` (forces, and stress through a strained cell).

    Args:
        pos: (n, 3) positions.
        cell: (graphs, 3, 3) or (3, 3) cells, rows = lattice vectors.
        edge_index: (2, E) as :func:`neighbor_list` makes it (neighbor j, center i).
        cell_offsets: (E, 3) integer offsets.
        batch: (n,) each atom's graph.

    Returns:
        ``(vectors, lengths)`` of shapes (E, 3) and (E,).
    """
    j, i = edge_index
    cells = cell.reshape(-1, 3, 3).index_select(0, batch.index_select(0, i))
    shift = torch.einsum("ek,ekl->el", cell_offsets.to(pos.dtype), cells)
    # index_select, not advanced indexing: its backward is an index_add_
    vectors = pos.index_select(0, j) - pos.index_select(0, i) + shift
    return vectors, vectors.norm(dim=1)


def _vesin_pairs(positions, cutoff, cell, pbc):
    calculator = _vesin.NeighborList(cutoff=cutoff, full_list=True)
    pos = positions.detach().cpu().double().numpy()
    i, j, shifts = calculator.compute(pos, cell.detach().cpu().double().numpy(), pbc.cpu().numpy(), "ijS")
    device = positions.device
    return (
        torch.as_tensor(i.astype(np.int64), device=device),
        torch.as_tensor(j.astype(np.int64), device=device),
        torch.as_tensor(shifts.astype(np.int64), device=device),
    )


def _torch_pairs(positions, cutoff, cell, pbc, chunk: int = PAIR_CHUNK):
    """Brute force over every periodic image that can hold a neighbor, in float64."""
    device = positions.device
    pos = positions.detach().double()
    cell64 = cell.detach().double()
    n = len(pos)
    wrap = torch.zeros(n, 3, dtype=torch.int64, device=device)
    repeats = [0, 0, 0]
    if pbc.any():
        # Wrap periodic directions into the cell, then search the images within reach of the cutoff.
        basis = cell64.clone()
        for k in range(3):
            if not pbc[k]:  # any vector outside the span of the periodic ones completes the basis
                basis[k] = torch.linalg.cross(basis[(k + 1) % 3], basis[(k + 2) % 3])
                if basis[k].norm() == 0:
                    basis[k] = torch.eye(3, dtype=torch.float64, device=device)[k]
        frac = pos @ torch.linalg.inv(basis)
        wrap = torch.where(pbc, torch.floor(frac), torch.zeros_like(frac)).to(torch.int64)
        pos = pos - wrap.double() @ basis
        heights = 1.0 / torch.linalg.inv(basis).norm(dim=0)  # distances between lattice planes
        repeats = [int(math.ceil(cutoff / float(heights[k]))) if pbc[k] else 0 for k in range(3)]
    ranges = [torch.arange(-r, r + 1, device=device) for r in repeats]
    images = torch.stack(torch.meshgrid(*ranges, indexing="ij"), dim=-1).reshape(-1, 3)  # (n_images, 3)
    image_shift = images.double() @ cell64
    centers, neighbors, offsets = [], [], []
    per_block = max(1, chunk // max(1, n * n))
    for start in range(0, len(images), per_block):
        block = images[start : start + per_block]
        vec = pos[None, None, :, :] - pos[None, :, None, :] + image_shift[start : start + per_block, None, None, :]
        dist2 = (vec * vec).sum(-1)  # (images, center, neighbor)
        hit = dist2 < cutoff * cutoff
        hit &= ~((block == 0).all(-1)[:, None, None] & torch.eye(n, dtype=torch.bool, device=device)[None])
        img, i, j = hit.nonzero(as_tuple=True)
        centers.append(i)
        neighbors.append(j)
        offsets.append(block[img])
    i, j, s = torch.cat(centers), torch.cat(neighbors), torch.cat(offsets)
    # Undo the wrapping: pos[j] - pos[i] + s @ cell was computed on wrapped positions.
    s = s - wrap[j] + wrap[i]
    return i, j, s

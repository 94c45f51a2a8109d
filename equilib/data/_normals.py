"""Point clouds with unit normals for normal estimation (the task of Frame Averaging, Puny et al., ICLR 2022), as
``python -m datasets.normals`` writes them: one ``.npz`` with ``{split}_points`` and ``{split}_normals`` (shapes,
points, 3) and ``{split}_shape`` (the shape family of each cloud, an index into ``shape_names``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

UNIT_TOLERANCE = 1e-3  # largest | |n| - 1 | accepted in a file


class NormalsDataset(torch.utils.data.Dataset):
    """The point clouds of one ``split`` of a normals file; example k is ``(points, normals)``, each (m, 3).

    Args:
        path: The ``.npz`` file (``datasets/normals/data/normals.npz``, or the shipped
            ``datasets/normals/small/normals_small.npz``).
        split: ``"train"``, ``"val"`` or ``"test"`` (a split in the file).
        points: Keep the first ``points`` points of each cloud (the samples are in random order, so these are a
            uniform subsample); None: all.
        limit: Keep the first ``limit`` clouds; None: all.
        rotations: ``(clouds, 3, 3)`` matrices applied to the points and normals of each kept cloud
            (``x -> R x``), e.g. random rotations for a rotated test set; None: as stored (upright).
        dtype: Floating dtype of the tensors.

    Attributes ``points`` and ``normals`` hold all kept clouds, ``shape`` their family index and ``shape_names`` the
    families' names.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file has no such split, its arrays have the wrong shapes, its normals are not unit vectors,
            ``points`` or ``limit`` is out of range, or ``rotations`` has the wrong shape.

    Examples:
        >>> data = NormalsDataset("datasets/normals/small/normals_small.npz", "train")
        >>> len(data), tuple(data[0][0].shape), data.shape_names[:2]
        (80, (128, 3), ['analytic:sphere', 'analytic:ellipsoid'])
        >>> bool(((data.normals.norm(dim=-1) - 1).abs() < 1e-6).all())
        True
    """

    def __init__(self, path: str | os.PathLike, split: str, *, points: int | None = None, limit: int | None = None,
                 rotations: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no normals file at {path} (make it with `python -m datasets.normals`)")
        with np.load(path) as data:
            splits = sorted(k.removesuffix("_points") for k in data.files if k.endswith("_points"))
            if f"{split}_points" not in data.files or f"{split}_normals" not in data.files:
                raise ValueError(f"split: {path} has no split {split!r} (points and normals); it has "
                                 f"{', '.join(splits) or 'none'}")
            xyz, normals = data[f"{split}_points"], data[f"{split}_normals"]
            shape = data[f"{split}_shape"] if f"{split}_shape" in data.files else np.zeros(len(xyz), np.int64)
            self.shape_names = data["shape_names"].tolist() if "shape_names" in data.files else ["unknown"]
        if xyz.ndim != 3 or xyz.shape[-1] != 3 or normals.shape != xyz.shape or shape.shape != xyz.shape[:1]:
            raise ValueError(f"path: {path}: expected {split}_points and {split}_normals of one shape (clouds, points, "
                             f"3) and {split}_shape (clouds,), got {xyz.shape}, {normals.shape} and {shape.shape}")
        if points is not None and not 1 <= points <= xyz.shape[1]:
            raise ValueError(f"points: expected 1..{xyz.shape[1]} points per cloud, got {points}")
        if limit is not None and limit < 0:
            raise ValueError(f"limit: expected a non-negative number of clouds, got {limit}")
        xyz, normals, shape = xyz[:limit, :points], normals[:limit, :points], shape[:limit]
        lengths = np.linalg.norm(normals.astype(np.float64), axis=-1)
        if lengths.size and not np.abs(lengths - 1).max() <= UNIT_TOLERANCE:
            raise ValueError(f"path: {path}: {split}_normals are not unit vectors (| |n| - 1 | up to "
                             f"{np.abs(lengths - 1).max():.2e})")
        self.points = torch.as_tensor(xyz, dtype=torch.float64)
        self.normals = torch.as_tensor(normals, dtype=torch.float64)
        if rotations is not None:
            rotations = torch.as_tensor(rotations, dtype=torch.float64)
            if rotations.shape != (len(self.points), 3, 3):
                raise ValueError(f"rotations: expected shape ({len(self.points)}, 3, 3), one per cloud, got "
                                 f"{tuple(rotations.shape)}")
            self.points = self.points @ rotations.transpose(1, 2)
            self.normals = self.normals @ rotations.transpose(1, 2)
        self.points, self.normals = self.points.to(dtype), self.normals.to(dtype)
        self.shape = torch.as_tensor(shape, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.points[k], self.normals[k]

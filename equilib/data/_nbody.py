"""Point-cloud dynamics data: the charged n-body systems of EGNN (Satorras et al. 2021), as ``datasets/nbody``
writes them (one ``.npz`` with ``{split}_loc``, ``{split}_vel`` (N, F, particles, 3), ``{split}_charges`` and the
saved ``frames``).

An example is (positions, velocities, charges) at the input frame and the positions at the target frame.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch


class NBodyDataset(torch.utils.data.Dataset):
    """The examples of one ``split`` of an n-body file.

    Example k is ``(positions, velocities, charges, target)`` of shapes (n, 3), (n, 3), (n,), (n, 3) in ``dtype``:
    the state at ``input_frame`` and the positions at ``target_frame``.

    Args:
        path: The ``.npz`` file written by ``python -m datasets.nbody``.
        split: Name of the split in the file (``train``, ``valid``, ``test``).
        input_frame: Saved frame of the inputs.
        target_frame: Saved frame of the target positions.
        limit: Keep the first ``limit`` simulations; None: all.
        dtype: Dtype of the tensors.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If the file has no such split, or a frame is not among its saved frames.
    """

    def __init__(self, path: str | os.PathLike, split: str, *, input_frame: int = 30, target_frame: int = 40,
                 limit: int | None = None, dtype: torch.dtype = torch.float32) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no n-body file at {path} (make it with `python -m datasets.nbody`)")
        with np.load(path) as data:
            if f"{split}_loc" not in data:
                splits = sorted(k.removesuffix("_loc") for k in data.files if k.endswith("_loc"))
                raise ValueError(f"split: {path} has no split {split!r}; it has {', '.join(splits)}")
            frames = data["frames"].tolist()
            for name, frame in (("input_frame", input_frame), ("target_frame", target_frame)):
                if frame not in frames:
                    raise ValueError(f"{name}: frame {frame} is not in {path} (saved frames: {frames})")
            i, t = frames.index(input_frame), frames.index(target_frame)
            n = len(data[f"{split}_charges"]) if limit is None else min(limit, len(data[f"{split}_charges"]))
            loc, vel = data[f"{split}_loc"][:n], data[f"{split}_vel"][:n]
            self.positions = torch.as_tensor(loc[:, i], dtype=dtype)
            self.velocities = torch.as_tensor(vel[:, i], dtype=dtype)
            self.charges = torch.as_tensor(data[f"{split}_charges"][:n], dtype=dtype)
            self.target = torch.as_tensor(loc[:, t], dtype=dtype)

    def __len__(self) -> int:
        return len(self.charges)

    def __getitem__(self, k: int) -> tuple[torch.Tensor, ...]:
        return self.positions[k], self.velocities[k], self.charges[k], self.target[k]

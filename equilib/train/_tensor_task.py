"""The base of the tasks whose examples are tuples of tensors of one dtype, stacked into batches (the n-body and
normals tasks): the ``data.dtype`` check, the stacking collate, the batch size and the model file (the model's
registered name, options, dtype and weights)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..utils import atomic_save
from ._task import Task


def data_dtype(task) -> torch.dtype:
    """The torch dtype ``data.dtype`` of the task's config names (what its models are built in).

    Args:
        task: A :class:`~equilib.train.Task`.

    Returns:
        ``torch.float32`` or ``torch.float64``.
    """
    return getattr(torch, task.config.data.dtype)


@dataclass
class TensorBatch:
    """Base of the batches of stacked tensors: every field holds the examples on its leading axis; ``to(device)``
    moves them all."""

    def to(self, device) -> TensorBatch:
        """The batch on ``device``.

        Args:
            device: Torch device.

        Returns:
            A new batch of the same class.
        """
        return type(self)(*(getattr(self, f.name).to(device) for f in dataclasses.fields(self)))


class TensorTask(Task):
    """A task whose frames are tuples of tensors in ``data.dtype``, collated into a ``Batch`` (a :class:`TensorBatch`
    with one field per tensor, in order), whose models are saved with their registered name and options.

    Args:
        config: The run's :class:`~equilib.train.TrainConfig` (``data.dtype`` ``"float32"`` or ``"float64"``).

    Raises:
        ValueError: If ``data.dtype`` is unknown.
    """

    Batch: ClassVar[type]

    def __init__(self, config) -> None:
        super().__init__(config)
        if config.data.dtype not in ("float32", "float64"):
            raise ValueError(f"data.dtype: expected 'float32' or 'float64', got {config.data.dtype!r}")

    def collate(self, frames) -> TensorBatch:
        return self.Batch(*(torch.stack(parts) for parts in zip(*frames)))

    def batch_size(self, batch: TensorBatch) -> int:
        return getattr(batch, dataclasses.fields(batch)[0].name).shape[0]

    def save_model(self, model, path) -> None:
        """Write one file with the model's registered name, options, dtype and weights, atomically.

        Args:
            model: The model.
            path: The file to write.
        """
        atomic_save({"kind": self.config.model.name, "options": dataclasses.asdict(self.config.model),
                     "dtype": self.config.data.dtype, "state_dict": model.state_dict()}, path)


def read_npz(path, recipe: str, required=()) -> dict[str, np.ndarray]:
    """Every array of a recipe's ``.npz`` file, in memory.

    Args:
        path: The file (``data.path``).
        recipe: The module that writes it, named in the error (e.g. ``"datasets.soft"``).
        required: Keys the file must hold.

    Returns:
        Key -> array.

    Raises:
        FileNotFoundError: If the file does not exist.
        ValueError: If a required key is missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data.path: {path} does not exist; write it with `python -m {recipe}`")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    for key in required:
        if key not in arrays:
            raise ValueError(f"data.path: {path} has no {key!r} (keys: {sorted(arrays)})")
    return arrays


class TensorPairs(torch.utils.data.Dataset):
    """Examples ``k -> (a[k], b[k])`` of two tensors stacked on their first axis (inputs and targets).

    Args:
        a: The first tensor.
        b: The second, as long as the first.
    """

    def __init__(self, a: torch.Tensor, b: torch.Tensor) -> None:
        self.a, self.b = a, b

    def __len__(self) -> int:
        return len(self.a)

    def __getitem__(self, k: int):
        return self.a[k], self.b[k]

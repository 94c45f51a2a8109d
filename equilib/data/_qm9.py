"""QM9 molecules (Ramakrishnan et al. 2014) from the file ``python -m datasets.qm9`` writes: dictionaries of tensors."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SPLITS = ("train", "valid", "test")


class QM9Dataset:
    """The molecules of a converted QM9 ``.npz`` file, all held in memory.

    Args:
        path: The ``.npz`` file: the full conversion (``datasets/qm9/data/qm9.npz``) or the shipped 200-molecule file
            (``datasets/qm9/small/qm9_small.npz``).
        dtype: Floating dtype of positions and targets (float32).
        rows: Rows of the file this object shows, in this order (all by default); see :meth:`split`.

    ``qm9[k]`` is a dict: ``atomic_numbers`` (n,) int64, ``positions`` (n, 3) in Angstrom, ``targets`` (15,) in
    the units of ``units`` (names in ``target_names``), ``gdb_index`` (the molecule's number in QM9, 1-based).

    Raises:
        FileNotFoundError: If ``path`` does not exist.

    Examples:
        >>> qm9 = QM9Dataset("datasets/qm9/small/qm9_small.npz")
        >>> len(qm9), qm9[0]["atomic_numbers"].tolist(), qm9.target_names[:4]
        (200, [6, 1, 1, 1, 1], ['A', 'B', 'C', 'mu'])
        >>> sorted(len(qm9.split(s)) for s in ("train", "valid", "test"))
        [20, 28, 152]
    """

    def __init__(self, path: str | os.PathLike, dtype: torch.dtype = torch.float32, rows=None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no such file {self.path} (make it with python -m datasets.qm9)")
        self.dtype = dtype
        with np.load(self.path) as f:
            self.data = {key: f[key] for key in f.files}
        self.target_names = self.data["target_names"].tolist()
        self.units = self.data["target_units"].tolist()
        n = len(self.data["gdb_index"])
        self.rows = np.arange(n) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        if not -len(self) <= k < len(self):
            raise IndexError(f"k: index {k} out of range for {len(self)} molecules")
        row = int(self.rows[k])
        start, stop = self.data["offsets"][row], self.data["offsets"][row + 1]
        return {
            "atomic_numbers": torch.from_numpy(self.data["atomic_numbers"][start:stop].astype(np.int64)),
            "positions": torch.from_numpy(self.data["positions"][start:stop]).to(self.dtype),
            "targets": torch.from_numpy(self.data["targets"][row]).to(self.dtype),
            "gdb_index": int(self.data["gdb_index"][row]),
        }

    def split(self, name: str) -> QM9Dataset:
        """The molecules of one split, as a new reader.

        Args:
            name: ``"train"``, ``"valid"`` or ``"test"``.

        Returns:
            A :class:`QM9Dataset` of that split's molecules (in file order) among this reader's.

        Raises:
            ValueError: If ``name`` is not a split.
        """
        if name not in SPLITS:
            raise ValueError(f"name: expected one of {SPLITS}, got {name!r}")
        view = QM9Dataset.__new__(QM9Dataset)
        view.__dict__.update(self.__dict__)
        view.rows = np.intersect1d(self.rows, self.data[f"split_{name}"])  # sorted rows of the file
        return view

    def target(self, name: str) -> np.ndarray:
        """One target for this reader's molecules.

        Args:
            name: The target's name (``"U0"``, ``"gap"``, ... in ``target_names``).

        Returns:
            (len(self),) float64 array in the target's unit.

        Raises:
            ValueError: If ``name`` is not a target.
        """
        if name not in self.target_names:
            raise ValueError(f"name: expected one of {self.target_names}, got {name!r}")
        return self.data["targets"][self.rows, self.target_names.index(name)]

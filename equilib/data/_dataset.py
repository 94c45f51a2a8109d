"""One dataset over every supported format, read lazily, with neighbor lists made on access."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ._ase_formats import AseIoReader, AseLmdbReader
from ._atomic_data import AtomicData
from ._oc20_lmdb import OC20LmdbReader

FORMATS = ("oc20-lmdb", "ase-lmdb", "ase")


def detect_format(path: str | os.PathLike) -> str:
    """The format of a dataset path, from its suffix (or the files of a directory).

    Args:
        path: A file or a directory of ``*.lmdb`` or ``*.aselmdb`` files.

    Returns:
        ``"oc20-lmdb"`` for ``*.lmdb`` (or a directory of them), ``"ase-lmdb"`` for ``*.aselmdb`` (or a directory of
        them), ``"ase"`` (anything ``ase.io`` reads) otherwise.

    Raises:
        FileNotFoundError: If ``path`` is a directory without ``*.lmdb`` or ``*.aselmdb`` files.
    """
    path = Path(path)
    if path.is_dir():
        if any(path.glob("*.aselmdb")):
            return "ase-lmdb"
        if any(path.glob("*.lmdb")):
            return "oc20-lmdb"
        raise FileNotFoundError(f"path: directory {path} holds no *.lmdb or *.aselmdb files")
    if path.suffix == ".lmdb":
        return "oc20-lmdb"
    if path.suffix == ".aselmdb":
        return "ase-lmdb"
    return "ase"


class AtomicDataset(torch.utils.data.Dataset):
    """Frames of an OC20 LMDB, an ASE-LMDB or an ``ase.io`` file as :class:`AtomicData`, with neighbors.

    LMDB formats are read frame by frame, never loaded whole; ``ase.io`` files are read whole on opening.

    Args:
        path: A file, or a directory of LMDB files (read in sorted order).
        cutoff: Neighbor-list cutoff in Angstrom, applied on access; None: no neighbor lists.
        format: ``"oc20-lmdb"``, ``"ase-lmdb"`` or ``"ase"``; default :func:`detect_format`.
        transform: A function applied to each frame last.

    Raises:
        ValueError: If ``format`` is unknown, or the reader cannot read ``path``.
        FileNotFoundError: If ``path`` does not exist (or a directory holds no database files).

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from ase import Atoms
        >>> from equilib.data import AtomicData, AtomicDataset, write_oc20_lmdb
        >>> frames = [AtomicData.from_ase(Atoms("H2", positions=[[0, 0, 0], [0, 0, d]])) for d in (0.7, 0.8, 3.0)]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = Path(folder) / "h2.lmdb"
        ...     count = write_oc20_lmdb(path, frames)
        ...     dataset = AtomicDataset(path, cutoff=1.0)
        ...     print(count, dataset.format, [dataset[k].edge_index.shape[1] for k in range(len(dataset))])
        3 oc20-lmdb [2, 2, 0]
    """

    def __init__(self, path: str | os.PathLike, *, cutoff: float | None = None, format: str | None = None,
                 transform=None) -> None:
        self.path = Path(path)
        self.format = format or detect_format(self.path)
        if self.format not in FORMATS:
            raise ValueError(f"format: expected one of {FORMATS}, got {self.format!r}")
        readers = {"oc20-lmdb": OC20LmdbReader, "ase-lmdb": AseLmdbReader, "ase": AseIoReader}
        self.reader = readers[self.format](self.path)
        self.cutoff = cutoff
        self.transform = transform

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, index: int) -> AtomicData:
        data = self.reader[index]
        if self.cutoff is not None:
            data.with_neighbors(self.cutoff)
        return self.transform(data) if self.transform is not None else data

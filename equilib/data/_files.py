"""Datasets stored in several files: the files a path stands for, and one frame index across them (the layout of
OC20's LMDB releases, a directory of ``*.lmdb`` or ``*.aselmdb`` shards read in sorted order)."""

from __future__ import annotations

import bisect
import itertools
import os
from collections.abc import Iterable
from pathlib import Path


def database_files(path: str | os.PathLike, suffix: str = ".lmdb") -> list[Path]:
    """The ``*<suffix>`` files that ``path`` (a file or a directory of them) stands for, sorted."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob(f"*{suffix}"))
        if not files:
            raise FileNotFoundError(f"path: no *{suffix} files in directory {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"path: no such file or directory: {path}")
    return [path]


def check_index(index: int, length: int) -> int:
    """``index`` in ``[0, length)``, a negative one counted from the end; an IndexError when out of range."""
    if not -length <= index < length:
        raise IndexError(f"index: {index} out of range for {length} frames")
    return index % length


class FileIndex:
    """Global frame numbers over files of the given lengths, taken in order: ``locate`` maps one to
    ``(file number, frame number in that file)``."""

    def __init__(self, lengths: Iterable[int]) -> None:
        self.offsets = [0, *itertools.accumulate(lengths)]  # offsets[k]: global number of file k's first frame

    def __len__(self) -> int:
        return self.offsets[-1]

    def locate(self, index: int) -> tuple[int, int]:
        """The file holding frame ``index`` (negative: from the end) and the frame's number in it."""
        index = check_index(index, len(self))
        k = bisect.bisect_right(self.offsets, index) - 1  # the last file starting at or before index (skips empty ones)
        return k, index - self.offsets[k]


def lock_file(path: Path) -> Path:
    """The lock file LMDB keeps beside a database file (``subdir=False``) opened for writing."""
    return Path(f"{path}-lock")

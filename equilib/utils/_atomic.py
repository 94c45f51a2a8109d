"""Atomic file writes: write to a temporary file in the target's directory, then ``os.replace`` it onto the target
(a rename within one file system is atomic on POSIX and Windows), so that readers see the old file or the new one,
never a partial one."""

from __future__ import annotations

import contextlib
import csv
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A fresh temporary path next to ``path`` for a writer that wants a file name (``torch.save``, LMDB, matplotlib).

    The temporary name ends with ``path``'s suffix (writers that infer the format from it still do). When the block
    ends normally the temporary file replaces ``path``; when it raises, the temporary file is removed and ``path`` is
    left as it was.

    Args:
        path: The file to write; its directory must exist.

    Yields:
        The temporary path (a hidden file in ``path``'s directory) to write to.

    Examples:
        >>> import tempfile
        >>> from pathlib import Path
        >>> from equilib.utils import atomic_path
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     target = Path(folder) / "table.txt"
        ...     with atomic_path(target) as tmp:
        ...         _ = tmp.write_text("1 2 3")
        ...         print(target.exists())
        ...     print(target.read_text(), sorted(p.name for p in Path(folder).iterdir()))
        False
        1 2 3 ['table.txt']
    """
    path = Path(path)
    # a name no other writer picks (process id and a random token); the writer creates the file with the usual
    # permissions (tempfile.mkstemp would make it private to the user)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, fsync: bool = False, **open_kwargs) -> Iterator:
    """``open(path, mode)`` for writing, atomically (see :func:`atomic_path`).

    Args:
        path: The file to write.
        mode: A write mode of ``open``: ``"w"``, ``"wb"``, ``"wt"``.
        fsync: Flush the data to disk (``os.fsync``) before the rename.
        **open_kwargs: Passed to ``open`` (``newline``, ``encoding``).

    Yields:
        The open file object of the temporary file; it replaces ``path`` when the block ends without an error.

    Raises:
        ValueError: If ``mode`` is not a write mode.
    """
    if not mode.startswith("w"):
        raise ValueError(f"mode: expected a write mode ('w', 'wb', 'wt'), got {mode!r}")
    with atomic_path(path) as tmp, open(tmp, mode, **open_kwargs) as f:
        yield f
        if fsync:
            f.flush()
            os.fsync(f.fileno())


def atomic_save(obj, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`atomic_path`).

    Args:
        obj: What ``torch.save`` accepts (a state dict, a checkpoint dictionary).
        path: The file to write.
    """
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def atomic_write_csv(rows: Sequence[dict], path: str | os.PathLike, columns: Sequence[str] | None = None) -> Path:
    """Write ``rows`` as a CSV file with a header, atomically; missing values are empty cells.

    Args:
        rows: One mapping per row.
        path: The file to write; its directory must exist.
        columns: The columns in order (other keys of the rows are left out); None: every key of the rows, in order
            of first appearance.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    columns = list(columns) if columns is not None else list(dict.fromkeys(k for row in rows for k in row))
    path = Path(path)
    with atomic_write(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def atomic_savefig(figure, path: str | os.PathLike, dpi: int = 120) -> Path:
    """``figure.savefig(path)`` for a matplotlib figure, atomically (the format from the file's suffix).

    Args:
        figure: A matplotlib ``Figure``.
        path: The file to write; its directory must exist.
        dpi: Resolution.

    Returns:
        ``path`` as a ``pathlib.Path``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, dpi=dpi)
    return path

"""ASE-backed formats: ASE-LMDB databases (``*.aselmdb``, the format of OC20++/OMat/OMol releases, via
ase-db-backends) read lazily row by row, and anything ``ase.io`` reads (extxyz with energy/forces/stress, ASE
trajectories, ...) read whole on opening. Writers go through a temporary name and a rename.
"""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import ase.io

from ..utils import atomic_path
from ._atomic_data import AtomicData
from ._files import FileIndex, check_index, database_files, lock_file


class AseLmdbReader:
    """Random access to the rows of one ``*.aselmdb`` file or a directory of them (needs ase-db-backends).

    ``reader[k]`` is frame k as :class:`AtomicData` (no neighbor list), read on access.

    Args:
        path: A ``*.aselmdb`` file or a directory of them (read in sorted order).

    Raises:
        FileNotFoundError: If ``path`` does not exist or a directory holds no ``*.aselmdb`` file.
        ImportError: If ase-db-backends is not installed.
        ValueError: If a file is not a readable ASE-LMDB database (on opening), or a row is unreadable (on access).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.files = database_files(path, ".aselmdb")
        self._dbs = None
        self._index = FileIndex(self._count(f) for f in self.files)

    @staticmethod
    def _connect(path: Path):
        _require_backends()
        try:
            return ase.db.connect(str(path), type="aselmdb", readonly=True)
        except Exception as err:  # noqa: BLE001 - lmdb and ase raise many kinds for a bad file
            raise ValueError(f"{path}: not a readable ASE-LMDB database ({type(err).__name__}: {err})") from None

    @classmethod
    def _count(cls, path: Path) -> int:
        with cls._connect(path) as db:
            return db.count()

    def __len__(self) -> int:
        return len(self._index)

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_dbs"] = None
        return state

    def __getitem__(self, index: int) -> AtomicData:
        k, local = self._index.locate(index)
        if self._dbs is None:
            self._dbs = [self._connect(f) for f in self.files]
        where = f"{self.files[k]}, row {local}"
        try:
            row = self._dbs[k]._get_row_by_index(local)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{where}: unreadable ({type(err).__name__}: {err})") from None
        atoms = row.toatoms()
        atoms.info.update({key: row.data[key] for key in ("sid", "fid") if key in row.get("data", {})})
        return AtomicData.from_ase(atoms, source=where)


class AseIoReader:
    """All frames of a file ``ase.io`` can read (extxyz, ASE trajectories, ...), read on opening, converted on access.

    Args:
        path: The file.
        format: ``ase.io`` format name; default from the file name.

    Raises:
        FileNotFoundError: If ``path`` is not a file.
        ValueError: If ``ase.io`` cannot read it (or, on access, a frame is invalid).
    """

    def __init__(self, path: str | os.PathLike, format: str | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"path: no such file: {self.path}")
        try:
            self.frames = ase.io.read(str(self.path), index=":", format=format)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{self.path}: ase.io could not read it ({type(err).__name__}: {err})") from None

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, index: int) -> AtomicData:
        index = check_index(index, len(self))
        return AtomicData.from_ase(self.frames[index], source=f"{self.path}, frame {index}")


def _require_backends() -> None:
    try:
        import ase_db_backends  # noqa: F401
    except ImportError:
        raise ImportError("ASE-LMDB (*.aselmdb) needs ase-db-backends: pip install 'equilib[oc20]'") from None


def write_ase_lmdb(path: str | os.PathLike, frames) -> int:
    """Write ``frames`` as one ASE-LMDB database, atomically (temporary name, then rename).

    Args:
        path: The ``*.aselmdb`` file to write.
        frames: Iterable of :class:`AtomicData`; ``sid`` and ``fid`` go to each row's data.

    Returns:
        The number of rows written.

    Raises:
        ImportError: If ase-db-backends is not installed.
    """
    _require_backends()
    count = 0
    with atomic_path(path) as tmp:
        try:
            with ase.db.connect(str(tmp), type="aselmdb") as db:
                for frame in frames:
                    atoms = frame.to_ase()
                    ids = {key: atoms.info.pop(key) for key in ("sid", "fid") if key in atoms.info}
                    db.write(atoms, data=ids)
                    count += 1
        finally:
            lock_file(tmp).unlink(missing_ok=True)
    return count


def write_ase_io(path: str | os.PathLike, frames, format: str | None = None) -> int:
    """Write ``frames`` with ``ase.io.write``, atomically.

    Args:
        path: The file to write.
        frames: Iterable of :class:`AtomicData`; labels are written through a single-point calculator.
        format: ``ase.io`` format name; default from ``path`` (extxyz for ``*.xyz``).

    Returns:
        The number of frames written.
    """
    atoms = [frame.to_ase() for frame in frames]
    with atomic_path(path) as tmp:
        ase.io.write(str(tmp), atoms, format=format or ase.io.formats.filetype(str(path), read=False))
    return len(atoms)

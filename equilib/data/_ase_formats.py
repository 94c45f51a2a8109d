"""ASE-backed formats: ASE-LMDB databases (``*.aselmdb``, the format of OC20++/OMat/OMol releases, via
ase-db-backends) read lazily row by row, and anything ``ase.io`` reads (extxyz with energy/forces/stress, ASE
trajectories, ...) read whole on opening. Writers go through a temporary name and a rename.
"""

from __future__ import annotations

import os
from pathlib import Path

import ase.db
import ase.io

from ._atomic_data import AtomicData
from ._oc20_lmdb import database_files


class AseLmdbReader:
    """Random access to the rows of one ``*.aselmdb`` file or a directory of them."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.files = database_files(path, ".aselmdb")
        self._dbs = None
        self._offsets = [0]
        for f in self.files:
            with self._connect(f) as db:
                self._offsets.append(self._offsets[-1] + db.count())

    @staticmethod
    def _connect(path: Path):
        _require_backends()
        try:
            return ase.db.connect(str(path), type="aselmdb", readonly=True)
        except Exception as err:  # noqa: BLE001 - lmdb and ase raise many kinds for a bad file
            raise ValueError(f"{path}: not a readable ASE-LMDB database ({type(err).__name__}: {err})") from None

    def __len__(self) -> int:
        return self._offsets[-1]

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_dbs"] = None
        return state

    def __getitem__(self, index: int) -> AtomicData:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for {len(self)} frames")
        index %= len(self)
        if self._dbs is None:
            self._dbs = [self._connect(f) for f in self.files]
        k = next(k for k in range(len(self.files)) if index < self._offsets[k + 1])
        local = index - self._offsets[k]
        where = f"{self.files[k]}, row {local}"
        try:
            row = self._dbs[k]._get_row_by_index(local)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{where}: unreadable ({type(err).__name__}: {err})") from None
        atoms = row.toatoms()
        atoms.info.update({key: row.data[key] for key in ("sid", "fid") if key in row.get("data", {})})
        return AtomicData.from_ase(atoms, source=where)


class AseIoReader:
    """All frames of a file ``ase.io`` can read (format from the name or ``format=``), converted on access."""

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
        if not -len(self) <= index < len(self):
            raise IndexError(f"index: {index} out of range for {len(self)} frames")
        return AtomicData.from_ase(self.frames[index], source=f"{self.path}, frame {index % len(self)}")


def _require_backends() -> None:
    try:
        import ase_db_backends  # noqa: F401
    except ImportError:
        raise ImportError("ASE-LMDB (*.aselmdb) needs ase-db-backends: pip install 'equilib[oc20]'") from None


def write_ase_lmdb(path: str | os.PathLike, frames) -> int:
    """Write ``frames`` (AtomicData) as one ASE-LMDB database, atomically. Returns the number of rows."""
    _require_backends()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.aselmdb")
    for stale in (tmp, Path(str(tmp) + "-lock")):
        stale.unlink(missing_ok=True)
    count = 0
    with ase.db.connect(str(tmp), type="aselmdb") as db:
        for count, frame in enumerate(frames, start=1):
            atoms = frame.to_ase()
            ids = {key: atoms.info.pop(key) for key in ("sid", "fid") if key in atoms.info}
            db.write(atoms, data=ids)
    os.replace(tmp, path)
    Path(str(tmp) + "-lock").unlink(missing_ok=True)
    return count


def write_ase_io(path: str | os.PathLike, frames, format: str | None = None) -> int:
    """Write ``frames`` (AtomicData) with ``ase.io.write`` (extxyz for ``*.xyz``), atomically."""
    path = Path(path)
    atoms = [frame.to_ase() for frame in frames]
    tmp = path.with_name(path.name + ".tmp")
    ase.io.write(str(tmp), atoms, format=format or ase.io.formats.filetype(str(path), read=False))
    os.replace(tmp, path)
    return len(atoms)

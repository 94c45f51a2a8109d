"""OC20's legacy LMDB format: pickled torch-geometric ``Data`` under keys "0".."N-1", plus "length".

As written by the Open Catalyst Project's preprocessing (fairchem ``LmdbDataset``): one ``*.lmdb`` file (LMDB with
``subdir=False``) or a directory of them, read in sorted order. S2EF frames name the energy ``y`` and the forces
``force``; IS2RE frames carry ``y_init``, ``y_relaxed`` and ``pos_relaxed``; ``y``, ``sid``, ``fid`` and ``natoms``
are plain Python numbers. The reader maps ``y``/``force`` to ``energy``/``forces``; the writer stores OC20's names
and scalars, so OC20 tools read our files too (and a 20-atom frame fits one 4 KiB LMDB page). Pickles from
torch-geometric 1.x (attributes in ``__dict__``) are converted.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import lmdb
import torch
from torch_geometric.data import Data

from ..utils import atomic_path
from ._atomic_data import AtomicData
from ._files import FileIndex, database_files, lock_file

RENAMES = {"y": "energy", "force": "forces"}
READ_MAP_SIZE = 1 << 40  # bytes of address space a reader maps (a bound, not an allocation): 1 TiB, any file fits
WRITE_MAP_SIZE = 1 << 34  # bytes a written file may grow to by default: 16 GiB


def _open(path: Path, readonly: bool = True, map_size: int = READ_MAP_SIZE) -> lmdb.Environment:
    try:
        return lmdb.open(str(path), subdir=False, readonly=readonly, lock=not readonly, readahead=False,
                         meminit=False, max_readers=512, map_size=map_size)
    except lmdb.Error as err:
        raise ValueError(f"{path}: not a readable LMDB file ({err})") from None


_SHARED: dict[tuple[str, int], lmdb.Environment] = {}


def _shared(path: Path) -> lmdb.Environment:
    """One read-only environment per file and process (LMDB refuses to open a file twice in one process).

    A forked process (a DataLoader worker) inherits its parent's handle, which LMDB forbids using: it is closed in
    the child and the file opened again.
    """
    name, pid = str(path.resolve()), os.getpid()
    for other in [k for k in _SHARED if k[0] == name and k[1] != pid]:
        _SHARED.pop(other).close()
    if (name, pid) not in _SHARED:
        _SHARED[name, pid] = _open(path)
    return _SHARED[name, pid]


def _to_atomic_data(obj, where: str) -> AtomicData:
    if not isinstance(obj, Data):
        raise ValueError(f"{where}: expected a pickled torch_geometric Data, got {type(obj).__name__}")
    store = obj.__dict__.get("_store")
    fields = dict(store.items()) if store is not None else {k: v for k, v in obj.__dict__.items() if v is not None}
    for old, new in RENAMES.items():
        if old in fields and new not in fields:
            fields[new] = fields.pop(old)
        else:
            fields.pop(old, None)
    real = torch.as_tensor(fields["pos"]).dtype if "pos" in fields else torch.get_default_dtype()
    for key in ("natoms", "sid", "fid"):
        if key in fields:
            fields[key] = torch.as_tensor(fields[key]).long().reshape(1)
    for key in ("energy", "y_init", "y_relaxed"):
        if key in fields:
            fields[key] = torch.as_tensor(fields[key], dtype=real).reshape(1)
    for key in ("forces", "stress", "pos_relaxed"):
        if key in fields:
            fields[key] = torch.as_tensor(fields[key]).to(real)
    if "cell" in fields:
        fields["cell"] = torch.as_tensor(fields["cell"]).to(real).reshape(1, 3, 3)
    if "fixed" in fields:
        fields["fixed"] = torch.as_tensor(fields["fixed"]).bool()
    if "pbc" not in fields:  # OC20 adsorbate-slab systems are periodic in x and y
        fields["pbc"] = torch.tensor([[True, True, False]])
    for key in ("atomic_numbers", "tags"):
        if key in fields:
            fields[key] = torch.as_tensor(fields[key]).long()
    return AtomicData(**fields)


class OC20LmdbReader:
    """Random access to the frames of one OC20 LMDB file or a directory of them; nothing is loaded up front.

    ``reader[k]`` is frame k as :class:`AtomicData` (``y``/``force`` renamed to ``energy``/``forces``, no neighbor
    list); a negative k counts from the end.

    Args:
        path: A ``*.lmdb`` file or a directory of them (read in sorted order).

    Raises:
        FileNotFoundError: If ``path`` does not exist or a directory holds no ``*.lmdb`` file.
        ValueError: If a file is not a readable LMDB or has a corrupt ``length`` (on opening), or a frame is missing or
            corrupt (on access).
        IndexError: On access, for an index out of range.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.files = database_files(path)
        self._index = FileIndex(self._length(_shared(f), f) for f in self.files)

    @staticmethod
    def _length(env: lmdb.Environment, path: Path) -> int:
        with env.begin() as txn:
            raw = txn.get(b"length")
            if raw is not None:
                try:
                    return int(pickle.loads(raw))
                except Exception as err:  # noqa: BLE001 - any unpickling failure means a corrupt file
                    raise ValueError(f"{path}: corrupt 'length' entry ({err})") from None
            return env.stat()["entries"]

    def __len__(self) -> int:
        return len(self._index)

    def locate(self, index: int) -> tuple[Path, int]:
        """The file holding frame ``index`` and the frame's key in it.

        Args:
            index: Global frame number; negative counts from the end.

        Returns:
            ``(path, key)``: the file and the frame's number in it.

        Raises:
            IndexError: If ``index`` is out of range.
        """
        k, key = self._index.locate(index)
        return self.files[k], key

    def __getitem__(self, index: int) -> AtomicData:
        path, key = self.locate(index)
        where = f"{path}, frame {key}"
        with _shared(path).begin() as txn:
            raw = txn.get(str(key).encode("ascii"))
        if raw is None:
            raise ValueError(f"{where}: missing (the file is truncated or its 'length' is wrong)")
        try:
            obj = pickle.loads(raw)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"{where}: corrupt entry ({type(err).__name__}: {err})") from None
        return _to_atomic_data(obj, where)


def write_oc20_lmdb(path: str | os.PathLike, frames, map_size: int = WRITE_MAP_SIZE) -> int:
    """Write ``frames`` as one OC20 LMDB file, atomically (temporary name, then rename).

    Stores every field under OC20's names: energy as the Python float ``y``, forces as ``force``; ``sid``, ``fid`` and
    ``natoms`` as Python ints; neighbor lists and batch fields are not stored.

    Args:
        path: The ``*.lmdb`` file to write.
        frames: Iterable of :class:`AtomicData`.
        map_size: Largest size in bytes the file may grow to.

    Returns:
        The number of frames written.
    """
    count = 0
    with atomic_path(path) as tmp:
        env = _open(tmp, readonly=False, map_size=map_size)
        try:
            with env.begin(write=True) as txn:
                for count, frame in enumerate(frames, start=1):
                    entry = pickle.dumps(_oc20_data(frame), protocol=pickle.HIGHEST_PROTOCOL)
                    txn.put(str(count - 1).encode("ascii"), entry)
                txn.put(b"length", pickle.dumps(count, protocol=pickle.HIGHEST_PROTOCOL))
            env.sync()
        finally:
            env.close()
            lock_file(tmp).unlink(missing_ok=True)
    return count


def _oc20_data(frame) -> Data:
    """``frame`` under OC20's names, with OC20's Python scalars, without neighbor lists or batch fields."""
    fields = {k: frame[k] for k in frame.keys() if k not in ("edge_index", "cell_offsets", "batch", "ptr")}
    for old, new in RENAMES.items():
        if new in fields:
            fields[old] = fields.pop(new)
    for key in ("y", "y_init", "y_relaxed"):
        if key in fields:
            fields[key] = float(fields[key])
    for key in ("sid", "fid", "natoms"):
        if key in fields:
            fields[key] = int(fields[key])
    return Data(**fields)

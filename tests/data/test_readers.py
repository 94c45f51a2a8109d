"""Readers and writers: round trips through all three formats, OC20 conventions, bad files named with their index."""

import pickle

import lmdb
import numpy as np
import pytest
import torch
from ase.build import add_adsorbate, fcc111
from ase.calculators.emt import EMT
from torch_geometric.data import Data
from torch_geometric.loader import DataLoader

from equilib.data import (
    AseLmdbReader,
    AtomicData,
    AtomicDataset,
    OC20LmdbReader,
    detect_format,
    write_ase_io,
    write_ase_lmdb,
    write_oc20_lmdb,
)


def _frames(n=4):
    frames = []
    for k in range(n):
        slab = fcc111("Cu" if k % 2 else "Pt", (2, 2, 3), vacuum=6.0)
        add_adsorbate(slab, "O" if k < 2 else "C", 1.4 + 0.1 * k, "fcc")
        slab.calc = EMT()
        slab.get_potential_energy()
        slab.info.update(sid=100 + k // 2, fid=k)
        frames.append(AtomicData.from_ase(slab))
    return frames


WRITERS = {"frames.lmdb": write_oc20_lmdb, "frames.aselmdb": write_ase_lmdb, "frames.extxyz": write_ase_io}


@pytest.mark.parametrize("name", WRITERS)
def test_round_trip(tmp_path, name):
    frames = _frames()
    path = tmp_path / name
    assert WRITERS[name](path, frames) == len(frames)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary or lock files left behind
    dataset = AtomicDataset(path, cutoff=4.5)
    assert len(dataset) == len(frames)
    for k in (0, 3, -1):
        got, ref = dataset[k], frames[k]
        assert torch.equal(got.atomic_numbers, ref.atomic_numbers) and torch.equal(got.tags, ref.tags)
        assert torch.allclose(got.pos, ref.pos) and torch.equal(got.fixed, ref.fixed)
        assert float(got.energy) == pytest.approx(float(ref.energy), abs=1e-8)
        assert torch.allclose(got.forces, ref.forces, atol=1e-7)
        assert int(got.sid) == int(ref.sid) and int(got.fid) == int(ref.fid)
        assert got.edge_index.shape[1] > 0
    with pytest.raises(IndexError, match="index: 4 out of range for 4 frames"):
        dataset[4]


def test_oc20_files_carry_oc20_names_and_directories_concatenate(tmp_path):
    frames = _frames()
    write_oc20_lmdb(tmp_path / "a.lmdb", frames[:3])
    write_oc20_lmdb(tmp_path / "b.lmdb", frames[3:])
    env = lmdb.open(str(tmp_path / "a.lmdb"), subdir=False, readonly=True, lock=False)
    with env.begin() as txn:
        raw = pickle.loads(txn.get(b"0"))
        assert pickle.loads(txn.get(b"length")) == 3
    env.close()
    assert isinstance(raw, Data) and raw.y == pytest.approx(float(frames[0].energy)) and "energy" not in raw
    assert torch.equal(raw.force, frames[0].forces) and raw.sid == 100 and raw.natoms == 13
    reader = OC20LmdbReader(tmp_path)
    assert detect_format(tmp_path) == "oc20-lmdb" and len(reader) == 4
    assert int(reader[3].fid) == 3 and reader.locate(3)[0].name == "b.lmdb"



@pytest.mark.parametrize("suffix", [".lmdb", ".aselmdb"])
def test_directories_with_an_empty_shard_map_every_index_to_its_file(tmp_path, suffix):
    frames = _frames()
    write, read = {".lmdb": (write_oc20_lmdb, OC20LmdbReader), ".aselmdb": (write_ase_lmdb, AseLmdbReader)}[suffix]
    for name, part in (("a", frames[:2]), ("b", []), ("c", frames[2:])):
        write(tmp_path / f"{name}{suffix}", part)
    reader = read(tmp_path)
    assert len(reader) == 4
    assert [int(reader[k].fid) for k in range(-4, 4)] == [0, 1, 2, 3] * 2
    with pytest.raises(IndexError, match="index: -5 out of range for 4 frames"):
        reader[-5]


@pytest.mark.parametrize("name", WRITERS)
def test_a_failed_write_keeps_the_old_file(tmp_path, name):
    frames = _frames(2)
    path = tmp_path / name
    WRITERS[name](path, frames[:1])

    def failing():
        yield frames[1]
        raise RuntimeError("source failed")

    with pytest.raises(RuntimeError, match="source failed"):
        WRITERS[name](path, failing())
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary or lock files left behind
    assert len(AtomicDataset(path)) == 1

def test_legacy_pickles_are_converted(tmp_path):
    """An OC20 S2EF entry as torch-geometric 1.x pickled it: attributes in __dict__, y and force."""
    frame = _frames(1)[0]
    legacy = Data.__new__(Data)
    legacy.__dict__.update(pos=frame.pos.float(), cell=frame.cell.float(), atomic_numbers=frame.atomic_numbers.float(),
                           natoms=13, tags=frame.tags, fixed=frame.fixed.float(), y=float(frame.energy),
                           force=frame.forces.float(), sid=7, fid=0, edge_index=None)
    env = lmdb.open(str(tmp_path / "old.lmdb"), subdir=False, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"0", pickle.dumps(legacy))
        txn.put(b"length", pickle.dumps(1))
    env.close()
    data = OC20LmdbReader(tmp_path / "old.lmdb")[0]
    assert float(data.energy) == pytest.approx(float(frame.energy), rel=1e-6)
    assert torch.allclose(data.forces.double(), frame.forces, atol=1e-5)
    assert data.atomic_numbers.dtype == torch.long and data.fixed.dtype == torch.bool
    assert data.pbc.tolist() == [[True, True, False]] and int(data.sid) == 7


def test_bad_files_are_named_with_the_frame(tmp_path):
    junk = tmp_path / "junk.lmdb"
    junk.write_bytes(b"this is not an lmdb file" * 100)
    with pytest.raises(ValueError, match="junk.lmdb: not a readable LMDB file"):
        OC20LmdbReader(junk)
    path = tmp_path / "short.lmdb"
    write_oc20_lmdb(path, _frames(2))
    env = lmdb.open(str(path), subdir=False, map_size=1 << 24)
    with env.begin(write=True) as txn:
        txn.put(b"length", pickle.dumps(3))  # claims a frame it does not hold
        txn.put(b"1", b"\x80\x05garbage")
    env.close()
    reader = OC20LmdbReader(path)
    with pytest.raises(ValueError, match=r"short.lmdb, frame 1: corrupt entry"):
        reader[1]
    with pytest.raises(ValueError, match=r"short.lmdb, frame 2: missing \(the file is truncated"):
        reader[2]
    with pytest.raises(FileNotFoundError, match="path: no such file or directory"):
        AtomicDataset(tmp_path / "nothing.lmdb")
    bad_xyz = tmp_path / "bad.extxyz"
    bad_xyz.write_text("2\nLattice=\"1 0 0 0 1 0 0 0 1\" Properties=species:S:1:pos:R:3\nCu 0 0 0\nCu 0 0 nan\n")
    with pytest.raises(ValueError, match=r"bad.extxyz, frame 0: positions: atom 1 has a non-finite coordinate"):
        AtomicDataset(bad_xyz)[0]


def test_dataloader_with_workers_batches_lazily(tmp_path):
    write_oc20_lmdb(tmp_path / "f.lmdb", _frames())
    dataset = AtomicDataset(tmp_path / "f.lmdb", cutoff=4.0)
    loader = DataLoader(dataset, batch_size=2, num_workers=2, shuffle=False)
    batches = list(loader)
    assert len(batches) == 2 and batches[0].num_graphs == 2 and batches[0].cell.shape == (2, 3, 3)
    assert np.allclose(batches[1].energy.numpy(), [float(dataset[2].energy), float(dataset[3].energy)])

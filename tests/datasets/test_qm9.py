"""The QM9 recipe (from the qm9pack wheel's CSV files): the shipped 200-molecule file, the reader, the splits, and
the conversion of a tiny synthetic wheel built here (no network)."""

import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from datasets.qm9.__main__ import main
from datasets.qm9.generate import PARTS, POLARIZABILITY, SPLITS, TARGETS, TENSOR, make_splits, split_sizes
from equilib.data import QM9Dataset as QM9

SMALL = Path(__file__).resolve().parents[2] / "datasets/qm9/small/qm9_small.npz"

HEADER = ("XYZ_file,Index,SMILES,InChi,N_atoms,Stoichiometry,Elements,XYZ_Ang,Mulliken_pop,Harmonic_Freq_cmi,"
          "RotA_GHz,RotB_GHz,RotC_GHz,Dipole_debye,Polarizability_bohr3,HOMO_au,LUMO_au,HOMO_LUMO_gap_au,R2_bohr2,"
          "ZPVE_au,InternalEnergy_0K_au,InternalEnergy_298K_au,Enthalphy_298K_au,GibbsFreeEnergy_298K_au,"
          "Heatcapacity_Cv_cal_mol_K")


def _row(index, smiles, symbols, xyz, targets):
    counts = [symbols.count(e) for e in "HCNOF"]
    elements = ",".join(f"'{e}'" for e in symbols)
    coords = ",".join("[" + ",".join(repr(float(v)) for v in p) + "]" for p in xyz)
    charges = ",".join("0.1" for _ in symbols)
    return (f'"dsgdb9nsd_{index:06d}.xyz",{index},"{smiles}","InChI=x",{len(symbols)},"[{",".join(map(str, counts))}]",'
            f'"[{elements}]","[{coords}]","[{charges}]","[1.0,2.0]",' + ",".join(map(str, targets)))


def _synthetic_wheel(path, molecules, broken=False):
    """A zip shaped like the qm9pack wheel: molecules split over the three CSV parts, and the polarizability."""
    rows = [_row(*m) for m in molecules]
    if broken:  # N_atoms disagrees with Elements in the last row
        rows[-1] = rows[-1].replace(f",{len(molecules[-1][2])},", ",99,", 1)
    parts = [rows[:1], rows[1:2], rows[2:]]
    with zipfile.ZipFile(path, "w") as z:
        for name, part in zip(PARTS, parts):
            z.writestr(name, "\n".join([HEADER, *part]) + "\n")
        z.writestr(POLARIZABILITY, "XYZ_file," + ",".join(TENSOR) + "\n" + "".join(
            f'"dsgdb9nsd_{m[0]:06d}.xyz",' + ",".join(str(m[0] + k) for k in range(6)) + "\n" for m in molecules))
    return path


MOLECULES = [
    (1, "C", ["C", "H", "H", "H"], [[0, 0, 0], [1.09, 0, 0], [0, 1.09, 0], [0, 0, 1.09]],
     [float(k) for k in range(15)]),
    (3, "O", ["O", "H", "H"], [[0, 0, 0.1], [0.96, 0, 0], [0, 0.96, 0]], [0.5 * k for k in range(15)]),
    (7, "CF", ["C", "F", "H", "H", "H"], np.arange(15.0).reshape(5, 3).tolist(), [-1.0] * 14 + [0.0]),
    (8, "N", ["N", "H", "H", "H"], np.ones((4, 3)).tolist(), [2.0] * 15),
]


def test_small_file_loads_with_shapes_and_dtypes():
    with np.load(SMALL) as f:
        data = {k: f[k] for k in f.files}
    n = len(data["gdb_index"])
    assert n == 200 and SMALL.stat().st_size < 100_000
    assert data["offsets"].shape == (n + 1,) and data["offsets"][-1] == len(data["atomic_numbers"])
    assert np.array_equal(np.diff(data["offsets"]), data["n_atoms"])
    assert data["positions"].shape == (len(data["atomic_numbers"]), 3) and data["positions"].dtype == np.float64
    assert data["targets"].shape == (n, len(TARGETS)) and data["targets"].dtype == np.float64
    assert data["target_names"].tolist() == [name for _, name, _ in TARGETS]
    assert len(data["target_units"]) == len(TARGETS) and data["atomic_numbers"].dtype == np.uint8
    assert set(np.unique(data["atomic_numbers"]).tolist()) <= {1, 6, 7, 8, 9}
    assert data["n_atoms"].min() >= 3 and data["n_atoms"].max() <= 29
    assert np.all(np.diff(data["gdb_index"]) > 0) and np.isfinite(data["targets"]).all()


def test_methane_first():
    qm9 = QM9(SMALL)
    mol = qm9[0]
    assert mol["gdb_index"] == 1 and mol["atomic_numbers"].tolist() == [6, 1, 1, 1, 1]
    assert mol["positions"].dtype == torch.float32 and mol["targets"].shape == (15,)
    ch = (mol["positions"][1:] - mol["positions"][0]).norm(dim=-1)
    assert torch.allclose(ch, torch.full((4,), 1.09), atol=0.005)
    values = dict(zip(qm9.target_names, mol["targets"].tolist()))
    assert values["mu"] == 0.0 and values["U0"] == pytest.approx(-40.47893) and values["Cv"] == pytest.approx(6.469)
    assert qm9.units[qm9.target_names.index("U0")] == "Ha"


def test_splits_disjoint_and_covering():
    qm9 = QM9(SMALL)
    rows = [qm9.split(s).rows for s in SPLITS]
    assert [len(r) for r in rows] == [152, 28, 20]
    assert np.array_equal(np.sort(np.concatenate(rows)), np.arange(len(qm9)))
    test = qm9.split("test")
    assert test[0]["gdb_index"] == int(qm9.data["gdb_index"][rows[2][0]])
    assert len(test.target("gap")) == 20
    assert split_sizes(130_831) == {"train": 100_000, "valid": 17_748, "test": 13_083}
    again = make_splits(1000, seed=0)
    assert all(np.array_equal(again[s], make_splits(1000, seed=0)[s]) for s in SPLITS)
    assert not np.array_equal(again["test"], make_splits(1000, seed=1)["test"])


def test_recipe_on_synthetic_wheel(tmp_path):
    wheel = _synthetic_wheel(tmp_path / "fake.whl", MOLECULES)
    out = main(["--wheel", str(wheel), "--out", str(tmp_path), "--name", "tiny"])
    assert out["molecules"] == 4 and out["atoms"] == 16 and out["gdb_indices_missing_below_last"] == 4
    qm9 = QM9(tmp_path / "tiny.npz", dtype=torch.float64)
    data = qm9.data
    assert data["gdb_index"].tolist() == [1, 3, 7, 8] and data["offsets"].tolist() == [0, 4, 7, 12, 16]
    assert data["atomic_numbers"].tolist() == [6, 1, 1, 1, 8, 1, 1, 6, 9, 1, 1, 1, 7, 1, 1, 1]
    assert np.array_equal(data["positions"], np.concatenate([np.asarray(m[3], dtype=float) for m in MOLECULES]))
    assert np.array_equal(data["targets"], np.array([m[4] for m in MOLECULES]))
    assert data["smiles"].tolist() == ["C", "O", "CF", "N"]
    assert data["polarizability_tensor"][2].tolist() == [7.0, 8, 9, 10, 11, 12]
    assert torch.equal(qm9[2]["positions"], torch.arange(15.0, dtype=torch.float64).reshape(5, 3))
    limited = main(["--wheel", str(wheel), "--out", str(tmp_path), "--name", "two", "--limit", "2"])
    assert limited["molecules"] == 2 and QM9(tmp_path / "two.npz")[1]["gdb_index"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fake.whl", "tiny.npz", "two.npz"]  # no temporary left


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="path"):
        QM9(tmp_path / "nothing.npz")
    with pytest.raises(ValueError, match="name"):
        QM9(SMALL).split("validation")
    with pytest.raises(SystemExit):
        main(["--wheel", str(tmp_path / "missing.whl"), "--out", str(tmp_path)])
    with pytest.raises(SystemExit):
        main(["--wheel", str(tmp_path / "x.whl"), "--limit", "0", "--out", str(tmp_path)])
    broken = _synthetic_wheel(tmp_path / "broken.whl", MOLECULES, broken=True)
    with pytest.raises(ValueError, match="N_atoms 99"):
        main(["--wheel", str(broken), "--out", str(tmp_path)])
    assert not (tmp_path / "qm9.npz").exists()

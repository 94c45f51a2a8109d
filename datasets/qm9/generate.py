"""QM9 (Ramakrishnan et al. 2014) as point clouds, converted from the CSV files inside the ``qm9pack`` wheel.

The wheel (``qm9pack-1.0.3-py3-none-any.whl``, by R. Ramakrishnan, an author of QM9) is a zip file; it is read
with :mod:`zipfile`, never installed or imported. Its ``qm9pack/data/qm9_part{1,2,3}.csv`` hold one row per
molecule (130,831: the 3,054 uncharacterized ones of the original 133,885 are already left out, their gdb indices
are missing) with the geometry in Angstrom and the original targets; ``qm9_polarizability.csv`` holds the
polarizability tensor per molecule. See README.md in this folder for the columns, units and splits.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "qm9pack"
VERSION = "1.0.3"
DEFAULT_CACHE = Path("~/.cache/equilib/qm9pack")
PARTS = tuple(f"qm9pack/data/qm9_part{k}.csv" for k in (1, 2, 3))
POLARIZABILITY = "qm9pack/data/qm9_polarizability.csv"
ELEMENTS = {"H": 1, "C": 6, "N": 7, "O": 8, "F": 9}
STOICHIOMETRY_ORDER = ("H", "C", "N", "O", "F")  # the order of the wheel's Stoichiometry column
# (column in the wheel, name in the file, unit): QM9's 15 scalar properties in the order of the original files,
# values as stored in the wheel (no unit conversion)
TARGETS = (
    ("RotA_GHz", "A", "GHz"),
    ("RotB_GHz", "B", "GHz"),
    ("RotC_GHz", "C", "GHz"),
    ("Dipole_debye", "mu", "D"),
    ("Polarizability_bohr3", "alpha", "bohr^3"),
    ("HOMO_au", "homo", "Ha"),
    ("LUMO_au", "lumo", "Ha"),
    ("HOMO_LUMO_gap_au", "gap", "Ha"),
    ("R2_bohr2", "r2", "bohr^2"),
    ("ZPVE_au", "zpve", "Ha"),
    ("InternalEnergy_0K_au", "U0", "Ha"),
    ("InternalEnergy_298K_au", "U", "Ha"),
    ("Enthalphy_298K_au", "H", "Ha"),
    ("GibbsFreeEnergy_298K_au", "G", "Ha"),
    ("Heatcapacity_Cv_cal_mol_K", "Cv", "cal/(mol K)"),
)
TENSOR = ("A_xx", "A_xy", "A_yy", "A_xz", "A_yz", "A_zz")  # polarizability tensor components, bohr^3
SPLITS = ("train", "valid", "test")
SEED = 0
N_FILTERED = 130_831  # molecules of QM9 left after removing the 3,054 uncharacterized ones
N_TRAIN = 100_000  # the Cormorant/EGNN training set size on the filtered set
XYZ_NAME = re.compile(r"dsgdb9nsd_(\d{6})\.xyz")


def _numbers(text: str) -> np.ndarray:
    """A bracketed, comma-separated list of numbers (nested or not), as a flat float64 array."""
    return np.array(text.replace("[", " ").replace("]", " ").split(","), dtype=np.float64)


def _elements(text: str) -> list[str]:
    """``"['C','H','H']"`` -> ``['C', 'H', 'H']``."""
    return [e.strip().strip("'\"") for e in text.strip().strip("[]").split(",")]


def parse_row(row: dict, where: str) -> dict:
    """One molecule of the wheel's CSV, checked for consistency (atom count, stoichiometry, file name, elements)."""
    match = XYZ_NAME.fullmatch(row["XYZ_file"])
    index = int(row["Index"])
    if match is None or int(match.group(1)) != index:
        raise ValueError(f"{where}: XYZ_file {row['XYZ_file']!r} does not match Index {index}")
    symbols = _elements(row["Elements"])
    unknown = sorted(set(symbols) - set(ELEMENTS))
    if unknown:
        raise ValueError(f"{where}: elements {unknown} outside H, C, N, O, F")
    n = int(row["N_atoms"])
    positions = _numbers(row["XYZ_Ang"])
    charges = _numbers(row["Mulliken_pop"])
    if len(symbols) != n or positions.size != 3 * n or charges.size != n:
        raise ValueError(f"{where}: N_atoms {n} but {len(symbols)} elements, {positions.size} coordinates and "
                         f"{charges.size} Mulliken charges")
    counts = _numbers(row["Stoichiometry"]).astype(np.int64).tolist()
    if counts != [symbols.count(e) for e in STOICHIOMETRY_ORDER]:
        raise ValueError(f"{where}: Stoichiometry {row['Stoichiometry']} does not match Elements")
    return {
        "index": index,
        "smiles": row["SMILES"],
        "atomic_numbers": np.array([ELEMENTS[e] for e in symbols], dtype=np.uint8),
        "positions": positions.reshape(n, 3),
        "mulliken": charges,
        "targets": np.array([float(row[column]) for column, _, _ in TARGETS]),
    }


def _csv_rows(archive: zipfile.ZipFile, name: str):
    with archive.open(name) as raw:
        yield from csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""))


def read_wheel(wheel: str | Path, limit: int | None = None) -> list[dict]:
    """The first ``limit`` molecules (all when None) of the wheel's three CSV parts, in order, with the
    polarizability tensor (NaN where the wheel has none) under ``"tensor"``."""
    wheel = Path(wheel)
    if not wheel.is_file():
        raise FileNotFoundError(f"wheel: no such file {wheel}")
    molecules = []
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        missing = [n for n in (*PARTS, POLARIZABILITY) if n not in names]
        if missing:
            raise ValueError(f"wheel: {wheel} lacks {missing} (not a qm9pack {VERSION} wheel?)")
        for part in PARTS:
            for line, row in enumerate(_csv_rows(archive, part), start=2):
                if limit is not None and len(molecules) >= limit:
                    break
                molecules.append(parse_row(row, f"{wheel.name}:{part}, line {line}"))
        wanted = {f"dsgdb9nsd_{m['index']:06d}.xyz": k for k, m in enumerate(molecules)}
        tensors = np.full((len(molecules), len(TENSOR)), np.nan)
        for row in _csv_rows(archive, POLARIZABILITY):
            k = wanted.get(row["XYZ_file"])
            if k is not None:
                tensors[k] = [float(row[c]) for c in TENSOR]
    for m, t in zip(molecules, tensors):
        m["tensor"] = t
    return molecules


def split_sizes(n: int) -> dict[str, int]:
    """Cormorant/EGNN's split sizes, scaled: test int(0.1 n), train n * 100000 // 130831 (100,000 at the full
    130,831), valid the rest (17,748 at the full size)."""
    n_test = int(0.1 * n)
    n_train = n * N_TRAIN // N_FILTERED
    return {"train": n_train, "valid": n - n_train - n_test, "test": n_test}


def make_splits(n: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """Row indices per split: one ``np.random.default_rng(seed).permutation(n)`` cut into train, valid, test (in
    that order, sizes of :func:`split_sizes`); each split sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    sizes = split_sizes(n)
    out, start = {}, 0
    for split in SPLITS:
        out[split] = np.sort(perm[start: start + sizes[split]]).astype(np.int64)
        start += sizes[split]
    return out


def convert(molecules: list[dict], seed: int = SEED, source: str = "") -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file (see README.md for each one)."""
    if not molecules:
        raise ValueError("limit: no molecules to convert")
    n_atoms = np.array([len(m["atomic_numbers"]) for m in molecules], dtype=np.int64)
    data = {
        "gdb_index": np.array([m["index"] for m in molecules], dtype=np.int64),
        "n_atoms": n_atoms,
        "offsets": np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64),
        "atomic_numbers": np.concatenate([m["atomic_numbers"] for m in molecules]),
        "positions": np.concatenate([m["positions"] for m in molecules]),
        "mulliken_charges": np.concatenate([m["mulliken"] for m in molecules]),
        "targets": np.stack([m["targets"] for m in molecules]),
        "target_names": np.array([name for _, name, _ in TARGETS]),
        "target_units": np.array([unit for _, _, unit in TARGETS]),
        "target_columns": np.array([column for column, _, _ in TARGETS]),
        "polarizability_tensor": np.stack([m["tensor"] for m in molecules]),
        "polarizability_tensor_names": np.array(TENSOR),
        "smiles": np.array([m["smiles"] for m in molecules]),
        "seed": np.array(seed, dtype=np.int64),
        "source": np.array(source),
    }
    for split, rows in make_splits(len(molecules), seed).items():
        data[f"split_{split}"] = rows
    return data


def summary(data: dict[str, np.ndarray]) -> dict:
    """The card's checks: counts, atoms per molecule, elements, gdb index range and gaps, split sizes."""
    index = data["gdb_index"]
    z, counts = np.unique(data["atomic_numbers"], return_counts=True)
    heavy = np.add.reduceat((data["atomic_numbers"] > 1).astype(np.int64), data["offsets"][:-1])
    return {
        "molecules": int(len(index)),
        "atoms": int(len(data["atomic_numbers"])),
        "atoms_per_molecule_min_max": [int(data["n_atoms"].min()), int(data["n_atoms"].max())],
        "heavy_atoms_min_max": [int(heavy.min()), int(heavy.max())],
        "elements": {int(k): int(c) for k, c in zip(z, counts)},
        "gdb_index_first_last": [int(index[0]), int(index[-1])],
        "gdb_indices_missing_below_last": int(index[-1] - len(index)),
        "polarizability_tensor_missing": int(np.isnan(data["polarizability_tensor"]).any(axis=1).sum()),
        "splits": {s: int(len(data[f"split_{s}"])) for s in SPLITS},
    }

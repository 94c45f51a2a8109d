"""The OC20-style EMT recipe: OC20 conventions, referenced energies, splits, determinism, both formats."""

import json

import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from datasets.oc20_emt.__main__ import generate, main
from datasets.oc20_emt.generate import (
    OOD_ADSORBATES,
    OOD_CATALYSTS,
    assign_split,
    gas_references,
    place_adsorbate,
    relax,
    slab,
    subsample,
    systems,
)
from equilib.data import AtomicDataset


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    out = tmp_path_factory.mktemp("emt")
    manifest = generate(out, n_systems=6, seed=3, val_fraction=0.3, fmax=0.1, max_steps=40, ood_fraction=0.5,
                        frames_per_relaxation=5, progress=False)
    return out, manifest


def test_files_follow_oc20_conventions(small):
    out, manifest = small
    assert json.loads((out / "manifest.json").read_text()) == manifest
    s2ef = sorted(p.name for p in out.glob("s2ef_*.lmdb"))
    assert s2ef and all((out / name.replace(".lmdb", ".aselmdb")).exists() for name in s2ef)
    for name in s2ef:
        legacy, ase_db = AtomicDataset(out / name), AtomicDataset(out / name.replace(".lmdb", ".aselmdb"))
        assert len(legacy) == len(ase_db) == manifest["frames"][name[5:-5]]
        for k in (0, len(legacy) - 1):
            a, b = legacy[k], ase_db[k]
            assert torch.equal(a.tags, b.tags) and torch.allclose(a.pos.double(), b.pos.double(), atol=1e-6)
            assert float(a.energy) == pytest.approx(float(b.energy), abs=1e-5)
            assert set(a.tags.tolist()) == {0, 1, 2} and torch.equal(a.fixed, a.tags == 0)
            assert a.forces[a.fixed].abs().max() > 0  # raw forces: fixed atoms keep theirs, as in OC20
            assert a.pbc.tolist() == [[True, True, False]]


def test_energies_are_referenced_and_relaxations_converge(small):
    out, _ = small
    is2re = AtomicDataset(next(out.glob("is2re_*.lmdb")))
    record = is2re[0]
    assert {"y_init", "y_relaxed", "pos_relaxed"} <= set(record.keys())
    s2ef = AtomicDataset(out / next(out.glob("is2re_*.lmdb")).name.replace("is2re", "s2ef"))
    frames = [s2ef[k] for k in range(len(s2ef)) if int(s2ef[k].sid) == int(record.sid)]
    assert len(frames) >= 2  # the first and the last frame of the relaxation
    assert float(frames[0].energy) == pytest.approx(float(record.y_init), abs=1e-5)
    assert float(frames[-1].energy) == pytest.approx(float(record.y_relaxed), abs=1e-5)
    assert float(record.y_relaxed) <= float(record.y_init) + 1e-6  # BFGS went downhill
    # Recompute one frame's referenced energy with EMT from scratch.
    atoms = frames[-1].to_ase()
    atoms.calc = EMT()
    mu = gas_references()
    clean = slab(atoms[atoms.get_tags() < 2].get_chemical_symbols()[0], _facet(frames[-1]))
    e_slab = relax(clean, fmax=0.1, steps=40)[-1].info["energy"]
    ref = e_slab + sum(mu[s] for s in atoms[atoms.get_tags() == 2].get_chemical_symbols())
    assert atoms.get_potential_energy() - ref == pytest.approx(float(frames[-1].energy), abs=1e-4)


def _facet(data):
    """Which facet a generated slab is, from its slab atom count (111/100: 16 atoms, 211: 18)."""
    return "211" if int((data.tags < 2).sum()) == 18 else ("111" if abs(float(data.cell[0, 1, 0])) > 1e-6 else "100")


def test_splits_hold_out_catalysts_and_adsorbates():
    drawn = systems(300, seed=0, ood_fraction=0.2)
    splits = {s.sid: assign_split(s, 0.15, 0) for s in drawn}
    for s in drawn:
        split = splits[s.sid]
        assert ((s.metal, s.facet) in OOD_CATALYSTS) == (split in ("val_ood_cat", "val_ood_both"))
        assert (s.adsorbate in OOD_ADSORBATES) == (split in ("val_ood_ads", "val_ood_both"))
    # Every held-out catalyst's metal is seen in training on another facet (unseen surfaces, not unseen elements).
    train_metals = {s.metal for s in drawn if splits[s.sid] == "train"}
    assert {metal for metal, _ in OOD_CATALYSTS} <= train_metals
    counts = {name: list(splits.values()).count(name) for name in set(splits.values())}
    assert counts["train"] > counts["val_id"] > 0 and counts["val_ood_cat"] > 0 and counts["val_ood_ads"] > 0


def test_subsample_keeps_first_and_last_evenly():
    assert subsample(10, 0) == list(range(10)) and subsample(3, 8) == [0, 1, 2]
    assert subsample(10, 4) == [0, 3, 6, 9] and subsample(101, 5) == [0, 25, 50, 75, 100]
    assert subsample(7, 1) == [6]
    with pytest.raises(ValueError, match="keep"):
        subsample(5, -1)


def test_deterministic_from_the_seed(tmp_path):
    a = place_adsorbate(slab("Cu", "211"), "CO", np.random.default_rng(5))
    b = place_adsorbate(slab("Cu", "211"), "CO", np.random.default_rng(5))
    assert np.array_equal(a.positions, b.positions) and list(a.get_tags()).count(2) == 2
    main(["--out", str(tmp_path / "x"), "--systems", "2", "--seed", "1", "--max-steps", "5", "--formats", "oc20-lmdb"])
    main(["--out", str(tmp_path / "y"), "--systems", "2", "--seed", "1", "--max-steps", "5", "--formats", "oc20-lmdb"])
    paths = sorted((tmp_path / "x").glob("s2ef_*.lmdb"))
    assert paths
    for path in paths:
        first, second = AtomicDataset(path), AtomicDataset(tmp_path / "y" / path.name)
        assert len(first) == len(second) > 0
        for k in range(len(first)):
            assert torch.equal(first[k].pos, second[k].pos) and torch.equal(first[k].forces, second[k].forces)

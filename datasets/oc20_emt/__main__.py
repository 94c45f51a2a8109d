"""Generate the OC20-style EMT dataset: ``python -m datasets.oc20_emt --help``."""

from __future__ import annotations

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import torch
from tqdm import tqdm

from equilib.data import AtomicData, write_ase_lmdb, write_oc20_lmdb
from equilib.utils import atomic_write

from .generate import SPLITS, assign_split, gas_references, place_adsorbate, relax, slab, subsample, systems

DEFAULT_OUT = Path(__file__).resolve().parent / "data"


def generate(out: Path, n_systems: int, seed: int, val_fraction: float, fmax: float, max_steps: int,
             formats: tuple[str, ...] = ("oc20-lmdb", "ase-lmdb"), ood_fraction: float = 0.15,
             frames_per_relaxation: int = 0, progress: bool = True) -> dict:
    """Run every relaxation and write S2EF and IS2RE files per split into ``out``; returns the manifest.

    ``frames_per_relaxation`` S2EF frames are kept from each trajectory, evenly spread (0: all)."""
    import numpy as np

    mu = gas_references()
    clean = {}
    s2ef, is2re, adsorbates = defaultdict(list), defaultdict(list), defaultdict(Counter)
    for system in tqdm(systems(n_systems, seed, ood_fraction), desc="relaxations", disable=not progress):
        key = (system.metal, system.facet)
        if key not in clean:
            clean[key] = relax(slab(*key), fmax=fmax, steps=max_steps)[-1].info["energy"]
        rng = np.random.default_rng(system.seed)
        frames = relax(place_adsorbate(slab(*key), system.adsorbate, rng), fmax=fmax, steps=max_steps)
        reference = clean[key] + sum(mu[s] for s in frames[0][frames[0].get_tags() == 2].get_chemical_symbols())
        split = assign_split(system, val_fraction, seed)
        adsorbates[split][system.adsorbate] += 1
        for fid, atoms in enumerate(frames):
            atoms.info.update(energy=atoms.info["energy"] - reference, sid=system.sid, fid=fid)
        # float32, as OC20 stores its frames: half the size, and labels far more precise than EMT itself
        data = {fid: AtomicData.from_ase(frames[fid], source=f"system {system.sid}, frame {fid}", dtype=torch.float32)
                for fid in subsample(len(frames), frames_per_relaxation)}
        s2ef[split].extend(data.values())
        initial, final = data[0], data[len(frames) - 1]  # subsample keeps the first and the last frame
        record = initial.clone()
        del record.energy, record.forces
        record.y_init, record.y_relaxed, record.pos_relaxed = initial.energy, final.energy, final.pos
        is2re[split].append(record)
    out.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        if not s2ef[split]:
            continue
        if "oc20-lmdb" in formats:
            write_oc20_lmdb(out / f"s2ef_{split}.lmdb", s2ef[split])
            write_oc20_lmdb(out / f"is2re_{split}.lmdb", is2re[split])
        if "ase-lmdb" in formats:
            write_ase_lmdb(out / f"s2ef_{split}.aselmdb", s2ef[split])
    manifest = {
        "recipe": "datasets/oc20_emt", "seed": seed, "systems": n_systems, "val_fraction": val_fraction,
        "ood_fraction": ood_fraction, "frames_per_relaxation": frames_per_relaxation,
        "fmax": fmax, "max_steps": max_steps, "gas_references_eV": mu,
        "frames": {split: len(s2ef[split]) for split in SPLITS},
        "relaxations": {split: len(is2re[split]) for split in SPLITS},
        "adsorbates": {split: dict(sorted(adsorbates[split].items())) for split in SPLITS},
        "torch": torch.__version__,
    }
    with atomic_write(out / "manifest.json", "w") as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.oc20_emt",
        description="OC20-style adsorbate-slab S2EF and IS2RE data from ASE's EMT calculator (see README.md here).",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: the shipped data)")
    parser.add_argument("--systems", type=int, default=300, help="number of relaxations (default 300, the shipped set)")
    parser.add_argument("--frames-per-relaxation", type=int, default=8,
                        help="S2EF frames kept per trajectory, evenly spread, first and last included (0: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.15, help="in-distribution systems held out as val_id")
    parser.add_argument("--fmax", type=float, default=0.05, help="BFGS convergence, eV/A")
    parser.add_argument("--max-steps", type=int, default=150, help="BFGS step limit per relaxation")
    parser.add_argument("--ood-fraction", type=float, default=0.15,
                        help="probability of a held-out metal, and separately of a held-out adsorbate")
    parser.add_argument("--formats", default="oc20-lmdb,ase-lmdb", help="comma list of oc20-lmdb, ase-lmdb")
    args = parser.parse_args(argv)
    if args.systems < 1:
        parser.error("--systems: expected a positive number")
    if args.frames_per_relaxation < 0:
        parser.error("--frames-per-relaxation: expected a number >= 0")
    manifest = generate(args.out, args.systems, args.seed, args.val_fraction, args.fmax, args.max_steps,
                        tuple(args.formats.split(",")), args.ood_fraction, args.frames_per_relaxation)
    print(json.dumps({k: manifest[k] for k in ("frames", "relaxations")}, indent=2))
    return manifest


if __name__ == "__main__":
    main()

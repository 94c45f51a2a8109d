"""How often real structures have (nearly) degenerate PCA spectra, the known weakness of PCA frames.

For every structure it computes the covariance spectrum of the atom positions (``equilib.frames.pca_frames``,
uniform weights) and the relative gaps ``(l2 - l1, l3 - l2) / l3``; a structure is degenerate at tolerance ``t``
when a gap is below ``t`` (its frames, hence a frame-averaged model, are then not well defined). Data: QM9
(``python -m datasets.qm9`` makes the full file; the shipped 200-molecule file otherwise) and the bundled OC20-style
slabs with adsorbates (``datasets/oc20_emt``, IS2RE initial structures, atoms only: the cell is not used).

    python scripts/frames_degeneracy.py                # QM9 (full file if made) and the OC20-style slabs
    python scripts/frames_degeneracy.py --qm9 datasets/qm9/small/qm9_small.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.data import AtomicDataset, QM9Dataset
from equilib.frames import pca_frames, relative_gaps

TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
QM9_FULL = ROOT / "datasets/qm9/data/qm9.npz"
QM9_SMALL = ROOT / "datasets/qm9/small/qm9_small.npz"
OC20 = ROOT / "datasets/oc20_emt/data"


def smallest_gaps(positions: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Per graph, the smaller of its two relative eigenvalue gaps (float64)."""
    frames = pca_frames(positions.double(), batch=batch, group="O3", on_degenerate="ignore")
    return relative_gaps(frames.spectrum).min(dim=-1).values


def qm9_gaps(path: Path) -> tuple[torch.Tensor, list[str]]:
    qm9 = QM9Dataset(path, dtype=torch.float64)
    offsets = torch.from_numpy(qm9.data["offsets"].astype(np.int64))
    positions = torch.from_numpy(qm9.data["positions"]).double()
    counts = offsets[1:] - offsets[:-1]
    batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
    smiles = [str(s) for s in qm9.data["smiles"]]
    return smallest_gaps(positions, batch), smiles


def oc20_gaps(folder: Path) -> torch.Tensor:
    positions = [data.pos for path in sorted(folder.glob("is2re_*.lmdb")) for data in AtomicDataset(path)]
    if not positions:
        raise FileNotFoundError(f"--oc20: no is2re_*.lmdb files in {folder}")
    batch = torch.repeat_interleave(torch.arange(len(positions)), torch.tensor([len(p) for p in positions]))
    return smallest_gaps(torch.cat(positions), batch)


def table(name: str, gaps: torch.Tensor) -> None:
    cells = " | ".join(f"{int((gaps < t).sum())} ({100 * float((gaps < t).double().mean()):.2f}%)" for t in TOLERANCES)
    print(f"| {name} | {len(gaps)} | {cells} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--qm9", default=str(QM9_FULL if QM9_FULL.exists() else QM9_SMALL))
    parser.add_argument("--oc20", default=str(OC20), help="folder of the OC20-style is2re_*.lmdb files")
    parser.add_argument("--examples", type=int, default=10, help="most degenerate QM9 molecules to list")
    args = parser.parse_args(argv)
    q, smiles = qm9_gaps(Path(args.qm9))
    o = oc20_gaps(Path(args.oc20))
    print(f"# PCA-frame degeneracy: structures whose smaller relative eigenvalue gap is below each tolerance\n"
          f"# QM9 file: {Path(args.qm9).name}; OC20-style: {args.oc20}\n")
    print("| data | structures | " + " | ".join(f"gap < {t:g}" for t in TOLERANCES) + " |")
    print("|---|---|" + "---|" * len(TOLERANCES))
    table("QM9", q)
    table("OC20-style slabs + adsorbate (IS2RE initial)", o)
    order = torch.argsort(q)[: args.examples]
    print("\nmost degenerate QM9 molecules: " + ", ".join(f"{smiles[k]} ({float(q[k]):.1e})" for k in order))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

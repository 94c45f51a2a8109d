"""How often real structures have (nearly) degenerate PCA spectra, the known weakness of PCA frames.

For every structure it computes the covariance spectrum of the atom positions (``equilib.frames.pca_frames``,
uniform weights) and the relative gaps ``(l2 - l1, l3 - l2) / l3``; a structure is degenerate at tolerance ``t``
when a gap is below ``t`` (its frames, hence a frame-averaged model, are then not well defined). Data: QM9
(``python -m datasets.qm9`` makes the full file; the shipped 200-molecule file otherwise) and the bundled OC20-style
slabs with adsorbates (``datasets/oc20_emt``, IS2RE initial structures, atoms only: the cell is not used).

What degeneracy costs: QM9 molecules are binned by their smaller gap, and a frame-averaged backbone that is not
itself equivariant (a seeded DeepSet over atoms giving one invariant and one vector per molecule) is moved by random
E(3) elements; the per-molecule relative equivariance error is reported with the plain PCA frames
(``on_degenerate="ignore"``) and with the tie-break frames (``"expand"``, tolerance 1e-3), in float64 and float32.

    python scripts/frames_degeneracy.py                # QM9 (full file if made) and the OC20-style slabs
    python scripts/frames_degeneracy.py --qm9 datasets/qm9/small/qm9_small.npz
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.data import AtomicDataset, QM9Dataset
from equilib.frames import FrameAveraged, pca_frames, relative_gaps
from equilib.groups import E3, OnSet, Positions, Scalars, Vectors

TOLERANCES = (1e-1, 1e-2, 1e-3, 1e-4, 1e-6)
BINS = ((0.0, 1e-6), (1e-6, 1e-4), (1e-4, 1e-3), (1e-3, 1e-2), (1e-2, 1e-1), (1e-1, 1.0))
QM9_FULL = ROOT / "datasets/qm9/data/qm9.npz"
QM9_SMALL = ROOT / "datasets/qm9/small/qm9_small.npz"
OC20 = ROOT / "datasets/oc20_emt/data"


def smallest_gaps(positions: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """Per graph, the smaller of its two relative eigenvalue gaps (float64)."""
    frames = pca_frames(positions.double(), batch=batch, group="O3", on_degenerate="ignore")
    return relative_gaps(frames.spectrum).min(dim=-1).values


def qm9_molecules(path: Path):
    """All QM9 molecules as one batch: positions, atomic numbers, batch vector, offsets, SMILES."""
    qm9 = QM9Dataset(path, dtype=torch.float64)
    offsets = torch.from_numpy(qm9.data["offsets"].astype(np.int64))
    positions = torch.from_numpy(qm9.data["positions"]).double()
    numbers = torch.from_numpy(qm9.data["atomic_numbers"].astype(np.int64))
    counts = offsets[1:] - offsets[:-1]
    batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
    return positions, numbers, batch, offsets, [str(s) for s in qm9.data["smiles"]]


class AtomSet(torch.nn.Module):
    """A DeepSet over atoms on raw coordinates (not rotation-equivariant): one invariant and one vector per graph."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(10, 8, dtype=dtype)
        self.point = torch.nn.Sequential(torch.nn.Linear(11, 32, dtype=dtype), torch.nn.Tanh(),
                                         torch.nn.Linear(32, 32, dtype=dtype), torch.nn.Tanh())
        self.head = torch.nn.Linear(32, 4, dtype=dtype)

    def forward(self, x, z, *, batch):
        h = self.point(torch.cat([x, self.embed(z)], -1))
        pooled = torch.zeros(int(batch.max()) + 1, h.shape[-1], dtype=h.dtype).index_add_(0, batch, h)
        out = self.head(pooled)
        return out[:, :1], out[:, 1:]


def equivariance_cost(positions, numbers, batch, offsets, gaps, per_bin: int, samples: int = 4) -> list[dict]:
    """Per gap bin: the largest and median per-molecule relative equivariance error of a frame-averaged AtomSet."""
    heavy = {1: 0, 6: 1, 7: 2, 8: 3, 9: 4}
    kinds = torch.tensor([heavy.get(int(z), 5) for z in range(int(numbers.max()) + 1)])[numbers]
    order = torch.randperm(len(gaps), generator=torch.Generator().manual_seed(0))
    rows = []
    for low, high in BINS:
        chosen = order[((gaps[order] >= low) & (gaps[order] < high))][:per_bin]
        if len(chosen) == 0:
            continue
        atoms = torch.cat([torch.arange(int(offsets[k]), int(offsets[k + 1])) for k in chosen])
        sub_batch = torch.repeat_interleave(torch.arange(len(chosen)), offsets[chosen + 1] - offsets[chosen])
        row = {"bin": f"[{low:g}, {high:g})", "molecules": len(chosen)}
        for dtype in (torch.float64, torch.float32):
            x = positions[atoms].to(dtype)
            backbone = AtomSet(dtype)
            for mode in ("ignore", "expand"):
                model = FrameAveraged(backbone, (OnSet(Positions()), OnSet(Scalars())), (Scalars(1), Vectors()),
                                      on_degenerate=mode)
                g = E3().sample(samples, generator=torch.Generator().manual_seed(1))
                with torch.no_grad(), warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # linear molecules: a continuous stabiliser, reported in the table
                    scalar, vector = model(x, kinds[atoms], batch=sub_batch)
                    errors = []
                    for k in range(samples):
                        element = g[k:k + 1].to(dtype=dtype)
                        rows_g = element[torch.zeros(len(x), dtype=torch.long)]
                        moved_s, moved_v = model(Positions().act(rows_g, x), kinds[atoms], batch=sub_batch)
                        expected_v = Vectors().act(element[torch.zeros(len(chosen), dtype=torch.long)], vector)
                        num = ((moved_s - scalar).square().sum(-1) + (moved_v - expected_v).square().sum(-1)).sqrt()
                        den = (scalar.square().sum(-1) + vector.square().sum(-1)).sqrt()
                        errors.append((num / den).double())
                    worst = torch.stack(errors).max(0).values
                name = f"{'f64' if dtype == torch.float64 else 'f32'} {mode}"
                row[name] = (float(worst.max()), float(worst.median()))
        rows.append(row)
    return rows


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
    parser.add_argument("--per-bin", type=int, default=64, help="QM9 molecules per gap bin in the error measurement")
    args = parser.parse_args(argv)
    positions, numbers, batch, offsets, smiles = qm9_molecules(Path(args.qm9))
    q = smallest_gaps(positions, batch)
    o = oc20_gaps(Path(args.oc20))
    print(f"# PCA-frame degeneracy: structures whose smaller relative eigenvalue gap is below each tolerance\n"
          f"# QM9 file: {Path(args.qm9).name}; OC20-style: {args.oc20}\n")
    print("| data | structures | " + " | ".join(f"gap < {t:g}" for t in TOLERANCES) + " |")
    print("|---|---|" + "---|" * len(TOLERANCES))
    table("QM9", q)
    table("OC20-style slabs + adsorbate (IS2RE initial)", o)
    order = torch.argsort(q)[: args.examples]
    print("\nmost degenerate QM9 molecules: " + ", ".join(f"{smiles[k]} ({float(q[k]):.1e})" for k in order))
    rows = equivariance_cost(positions, numbers, batch, offsets, q, args.per_bin)
    modes = [key for key in rows[0] if key not in ("bin", "molecules")]
    print("\n# What it costs: per-molecule relative E(3) equivariance error (largest / median over the molecules, "
          "4 random elements each) of a frame-averaged non-equivariant DeepSet, by the smaller relative gap\n")
    print("| gap bin | molecules | " + " | ".join(modes) + " |")
    print("|---|---|" + "---|" * len(modes))
    for row in rows:
        print(f"| {row['bin']} | {row['molecules']} | "
              + " | ".join(f"{row[m][0]:.1e} / {row[m][1]:.1e}" for m in modes) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

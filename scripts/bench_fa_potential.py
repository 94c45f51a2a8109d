"""What frame averaging costs an interatomic potential: energy + forces (eval) and a training step (forces with
``create_graph``, then the backward) of the plain backbone and of :class:`equilib.frames.FrameAveragedPotential`
with global and local frames, all frames and stochastic, on one batch of the bundled OC20-style data, and how many
frames each structure (global) or atom (local) gets when degenerate spectra are expanded into tie-break frames.

Median milliseconds over ``--repeats`` calls after warm-up, the models taking turns (``scripts._timing``). Run it
alone: a second busy process makes torch's threads many times slower.

    OMP_NUM_THREADS=1 python scripts/bench_fa_potential.py
    OMP_NUM_THREADS=1 python scripts/bench_fa_potential.py --batch 4 --channels 64 --on-degenerate warn
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import torch
from torch_geometric.data import Batch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.data import AtomicDataset
from equilib.frames import FrameAveragedPotential
from equilib.nn import PlainPotential, PlainPotentialConfig
from scripts._timing import median_ms

DATA = ROOT / "datasets/oc20_emt/data/s2ef_train.lmdb"


def models(channels: int, layers: int, cutoff: float, on_degenerate: str) -> dict:
    torch.manual_seed(0)
    plain = PlainPotential(PlainPotentialConfig(species=list(range(1, 84)), cutoff=cutoff, channels=channels,
                                                num_layers=layers))
    out = {"plain backbone": plain}
    for mode in ("global", "local"):
        for stochastic in (False, True):
            name = f"{mode} FA, {'stochastic' if stochastic else 'all frames'}"
            out[name] = FrameAveragedPotential(plain, frames=mode, stochastic=stochastic, on_degenerate=on_degenerate,
                                               generator=torch.Generator().manual_seed(0))
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--batch", type=int, default=8, help="structures per batch")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--on-degenerate", default="expand", help="expand, warn, raise or ignore")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    dataset = AtomicDataset(args.data, cutoff=args.cutoff)
    batch = Batch.from_data_list([dataset[k] for k in range(args.batch)])
    nets = models(args.channels, args.layers, args.cutoff, args.on_degenerate)

    def evaluate(model):
        return lambda: model.eval()(batch, compute_stress=False)

    def train_step(model):
        def step():
            model.train().zero_grad()
            out = model(batch, compute_stress=False)
            (out["energy"].square().mean() + out["forces"].square().mean()).backward()
        return step

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate spectra are reported in the table instead
        evals = median_ms({name: evaluate(m) for name, m in nets.items() if "stochastic" not in name}, 2, args.repeats)
        steps = median_ms({name: train_step(m) for name, m in nets.items()}, 2, args.repeats)
        counts = {mode: nets[f"{mode} FA, all frames"].frame_set(batch).counts for mode in ("global", "local")}
    print(f"# Frame-averaged potential cost: {args.batch} structures ({batch.num_nodes} atoms, "
          f"{batch.edge_index.shape[1]} edges, cutoff {args.cutoff} A), {args.channels} channels, {args.layers} "
          f"layers, float32, {torch.get_num_threads()} thread(s), on_degenerate={args.on_degenerate}\n")
    print("| model | energy + forces (eval), ms | training step, ms |")
    print("|---|---|---|")
    base_eval, base_step = evals["plain backbone"], steps["plain backbone"]
    for name in nets:
        ev = f"{evals[name]:.1f} ({evals[name] / base_eval:.1f}x)" if name in evals else ""
        print(f"| {name} | {ev} | {steps[name]:.1f} ({steps[name] / base_step:.1f}x) |")
    print("\n| frames | per structure (global) | per atom (local) |")
    print("|---|---|---|")
    for label, fn in (("mean", lambda c: f"{float(c.double().mean()):.2f}"), ("max", lambda c: str(int(c.max()))),
                      ("share with more than 8", lambda c: f"{100 * float((c > 8).double().mean()):.0f}%")):
        print(f"| {label} | {fn(counts['global'])} | {fn(counts['local'])} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What frame averaging costs FA-GNN on n-body: seconds per training epoch of the stochastic FA-GNN
(``models/nbody_fa_gnn.yaml``) against its own layers without frames (``plain_gnn`` with the same width and
distances), through the trainer's ``train_step`` (optimizer, EMA and clipping included, no evaluation).

Each repeat times ``--steps`` steps of each model after ``--warmup`` steps, the two models taking turns; the table
gives the median seconds per epoch and the median and range of the per-repeat ratios. Run it alone, with one thread:
a second busy process makes torch's threads many times slower.

    OMP_NUM_THREADS=1 python scripts/bench_fa_gnn.py                   # batch 10 and 100, 5 repeats
    OMP_NUM_THREADS=1 python scripts/bench_fa_gnn.py --batch 25 --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.train import load_config
from scripts import _experiments as experiments

CONFIG = ROOT / "models/nbody_fa_gnn.yaml"


def configs(batch: int, out: str) -> dict:
    """The backbone's and FA-GNN's configs at one batch size."""
    common = [f"data.batch_size={batch}", f"trainer.out_dir={out}", "logging.progress=false"]
    backbone = load_config(CONFIG, common + ["model={name: plain_gnn, hidden: 60, distances: true}"])
    return {"backbone": backbone, "fa_gnn": load_config(CONFIG, common)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, nargs="+", default=[10, 100], help="batch sizes")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=300, help="timed steps per model and repeat")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--out", default="runs/bench_fa_gnn", help="scratch out_dir (nothing is trained to the end)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.repeats} repeats of "
          f"{args.steps} steps\n")
    print("| batch | backbone s/epoch | FA-GNN stochastic s/epoch | ratio (median) | ratio range |")
    print("|---|---|---|---|---|")
    for batch in args.batch:
        pair = configs(batch, args.out)
        seconds = {name: [] for name in pair}
        for _ in range(args.repeats):
            for name, config in pair.items():
                seconds[name].append(experiments.seconds_per_epoch(config, args.steps, args.warmup))
        ratios = [f / b for f, b in zip(seconds["fa_gnn"], seconds["backbone"])]
        print(f"| {batch} | {statistics.median(seconds['backbone']):.3f} | {statistics.median(seconds['fa_gnn']):.3f} "
              f"| {statistics.median(ratios):.2f}x | {min(ratios):.2f}-{max(ratios):.2f}x |", flush=True)


if __name__ == "__main__":
    main()

"""Does streamed data keep up with the model? Frames per second delivered by the trainer's loading paths against
the frames per second the model trains on, on the same config.

Paths: the in-memory cache (``data.cache: true``, the default); streaming from the LMDB files with neighbor lists
made in this process (``data.cache: false``, ``data.workers: 0``) and in 1, 2, ... DataLoader workers. Each path
delivers the batches of one epoch's order (``Trainer.train_batches``); the model's rate is ``Trainer.train_step`` on
cached batches.

    python scripts/bench_data_loading.py                                  # the default potential config
    python scripts/bench_data_loading.py --workers 0,1,2 --batches 60
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib.train import Trainer, load_config


def delivered(trainer: Trainer, batches: int) -> tuple[float, int]:
    """Seconds for the first ``batches`` batches of epoch 0, and the frames they hold."""
    frames = 0
    t0 = time.perf_counter()
    for k, batch in enumerate(trainer.train_batches(0)):
        frames += trainer.task.batch_size(batch)
        if k + 1 == batches:
            break
    return time.perf_counter() - t0, frames


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="models/potential_grid.yaml")
    parser.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args(argv)
    out = tempfile.mkdtemp()
    base = [f"trainer.out_dir={out}", "logging.progress=false", "data.val={}", *args.overrides]
    cached = Trainer(load_config(args.config, base))
    size = cached.config.data.batch_size
    steps = [cached.batch(range(k * size, (k + 1) * size)) for k in range(args.train_steps + 3)]
    for batch in steps[:3]:
        cached.train_step(batch)
    t0 = time.perf_counter()
    for batch in steps[3:]:
        cached.train_step(batch)
    model_rate = args.train_steps * size / (time.perf_counter() - t0)
    print(f"# {args.config} {' '.join(args.overrides)}: {torch.get_num_threads()} threads, batches of {size}\n")
    print("| path | frames/s | / model's frames/s |\n|---|---|---|")
    print(f"| model training (train_step) | {model_rate:.0f} | 1.00 |")
    seconds, frames = delivered(cached, args.batches)
    print(f"| in-memory cache | {frames / seconds:.0f} | {frames / seconds / model_rate:.2f} |")
    for workers in [int(w) for w in args.workers.split(",")]:
        streamed = Trainer(load_config(args.config, [*base, "data.cache=false", f"data.workers={workers}"]))
        seconds, frames = delivered(streamed, args.batches)
        label = "streamed, in this process" if workers == 0 else f"streamed, {workers} DataLoader workers"
        print(f"| {label} | {frames / seconds:.0f} | {frames / seconds / model_rate:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

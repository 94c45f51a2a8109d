"""Training-step throughput of the default potential against NequIP at matched size, side by side in one run.

Both train on the same batches of the bundled OC20-style data (``datasets/oc20_emt``, s2ef_train, 8 structures a
batch, cutoff 5 A, float32): energy and forces, the loss (per-atom energy MAE x 20 + force MAE x 25), the backward
(a double backward through the forces), gradient clipping, AdamW and an EMA of the weights. equilib runs its
``Trainer.train_step`` on ``Trainer.batch`` (the step the trainer runs); NequIP (``NequIPGNNModel``, its
default eager mode) runs the same loop by hand on its own ``AtomicDataDict`` batches with neighbor lists made
beforehand, as equilib's cache holds them. Matched size: 2 layers, lmax 2 (or as given), 32 channels, radial MLP
of two hidden layers of 32, 8 Bessel functions, polynomial cutoff p = 6.

Each measurement is a fresh process (NequIP sets process-wide state: default dtype float64, seeds); frameworks
alternate within each round so that a slow spell of a shared machine hits both. ``--equilib-src DIR`` adds an
earlier checkout of equilib as a third contestant (before/after ratios in one run).

NequIP is not a dependency of equilib; install it into the benchmark's environment only:

    python3 -m venv /tmp/bench && . /tmp/bench/bin/activate
    pip install torch==2.13.0 && pip install -e . nequip==0.19.1
    python scripts/bench_train_step.py --lmax 2,3 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "datasets/oc20_emt/data/s2ef_train.lmdb"
SPECIES = [1, 6, 7, 8, 13, 28, 29, 46, 47, 78, 79]  # models/potential_grid.yaml


def _batches(n_frames: int, batch_size: int, steps: int, seed: int = 0):
    import torch

    order = torch.randperm(n_frames, generator=torch.Generator().manual_seed(seed)).tolist()
    return [order[(k * batch_size) % n_frames:][:batch_size] for k in range(steps)]


def _timed(step, batches, warmup: int) -> list[float]:
    times = []
    for k, batch in enumerate(batches):
        t0 = time.perf_counter()
        step(batch)
        if k >= warmup:
            times.append(time.perf_counter() - t0)
    return times


def equilib_worker(args) -> dict:
    import torch

    from equilib.train import Trainer, load_config

    config = load_config(ROOT / "models/potential_grid.yaml", [
        f"model.lmax={args.lmax}", f"model.backend={args.backend}", f"data.max_train_frames={args.frames}",
        "data.val={}", f"trainer.out_dir={args.out}", "logging.progress=false"])
    torch.set_num_threads(args.threads)
    trainer = Trainer(config)
    params = sum(p.numel() for p in trainer.model.parameters())
    # --equilib-src may be a checkout from before Trainer.batch
    make_batch = getattr(trainer, "batch", None) or trainer.train.batch
    times = _timed(lambda idx: trainer.train_step(make_batch(idx)),
                   _batches(len(trainer.train), 8, args.warmup + args.steps), args.warmup)
    import equilib

    return {"params": params, "times": times, "source": str(Path(equilib.__file__).parents[1])}


def nequip_worker(args) -> dict:
    import torch
    from ase.data import chemical_symbols
    from nequip.data import AtomicDataDict, compute_neighborlist_, from_ase
    from nequip.model import NequIPGNNModel
    from nequip.utils.global_state import set_global_state
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    from equilib.data import AtomicDataset

    set_global_state()
    torch.set_num_threads(args.threads)
    dataset = AtomicDataset(DATA)
    frames = []
    for k in range(min(args.frames, len(dataset))):
        atoms = dataset[k].to_ase()
        data = from_ase(atoms)
        data[AtomicDataDict.ATOM_TYPE_KEY] = torch.tensor([SPECIES.index(z) for z in atoms.numbers])
        frames.append(compute_neighborlist_(data, r_max=5.0))
    model = NequIPGNNModel(seed=0, model_dtype="float32", type_names=[chemical_symbols[z] for z in SPECIES],
                           r_max=5.0, num_layers=2, l_max=args.lmax, num_features=32, radial_mlp_depth=2,
                           radial_mlp_width=32, num_bessels=8, polynomial_cutoff_p=6, avg_num_neighbors=30.0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.99))

    def step(indices):
        batch = AtomicDataDict.batched_from_list([frames[k] for k in indices])
        out = model(batch)
        atoms = batch[AtomicDataDict.NUM_NODES_KEY].to(torch.float32)
        energy = ((out["total_energy"].view(-1) - batch["total_energy"].view(-1)) / atoms).abs().mean()
        loss = 20 * energy + 25 * (out["forces"] - batch["forces"]).abs().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        ema.update_parameters(model)

    times = _timed(step, _batches(len(frames), 8, args.warmup + args.steps), args.warmup)
    return {"params": sum(p.numel() for p in model.parameters()), "times": times}


def run_worker(name: str, src: Path, args, lmax: int) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--worker", "nequip" if name == "nequip" else "equilib",
               "--lmax", str(lmax), "--backend", args.backend, "--steps", str(args.steps), "--warmup",
               str(args.warmup), "--frames", str(args.frames), "--threads", str(args.threads),
               "--out", str(Path(args.out) / f"{name}_{lmax}")]
    env = {**os.environ, "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{name} (lmax {lmax}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lmax", default="2", help="comma-separated degrees, e.g. 2,3")
    parser.add_argument("--backend", default="grid", help="equilib's tensor product (NequIP uses e3nn's)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=60, help="timed steps per measurement")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--frames", type=int, default=400, help="training frames the batches are drawn from")
    parser.add_argument("--threads", type=int, default=torch_threads())
    parser.add_argument("--equilib-src", default=None, help="an earlier equilib checkout to compare with")
    parser.add_argument("--skip-nequip", action="store_true")
    parser.add_argument("--out", default="/tmp/equilib_bench_train_step")
    parser.add_argument("--json", default=None, help="also write the measurements here")
    parser.add_argument("--worker", choices=["equilib", "nequip"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.lmax = int(args.lmax)
        result = (equilib_worker if args.worker == "equilib" else nequip_worker)(args)
        print(json.dumps(result))
        return
    contestants = {"equilib": ROOT}
    if args.equilib_src:
        contestants["equilib (--equilib-src)"] = Path(args.equilib_src).resolve()
    if not args.skip_nequip:
        contestants["nequip"] = ROOT
    lmaxes = [int(v) for v in args.lmax.split(",")]
    rates: dict[tuple[str, int], list[float]] = {}
    params: dict[tuple[str, int], int] = {}
    print(f"# {platform.processor() or platform.machine()}, {args.threads} threads, python {platform.python_version()}")
    for r in range(args.rounds):
        for lmax in lmaxes:
            for name, src in contestants.items():
                result = run_worker(name, src, args, lmax)
                rate = 1.0 / statistics.median(result["times"])
                rates.setdefault((name, lmax), []).append(rate)
                params[name, lmax] = result["params"]
                print(f"round {r + 1} lmax {lmax} {name:26s} {rate:6.2f} steps/s", flush=True)
    print("\n| lmax | contestant | parameters | steps/s per round | median | / nequip (per round) |")
    print("|---|---|---|---|---|---|")
    for lmax in lmaxes:
        for name in contestants:
            values = rates[name, lmax]
            ratio = ""
            if "nequip" in contestants and name != "nequip":
                per_round = [a / b for a, b in zip(values, rates["nequip", lmax])]
                ratio = f"{statistics.median(per_round):.2f}x ({', '.join(f'{v:.2f}' for v in per_round)})"
            print(f"| {lmax} | {name} | {params[name, lmax]} | {', '.join(f'{v:.2f}' for v in values)} | "
                  f"{statistics.median(values):.2f} | {ratio} |")
    if args.json:
        Path(args.json).write_text(json.dumps({f"{n}@{l}": v for (n, l), v in rates.items()}, indent=1))


def torch_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


if __name__ == "__main__":
    main()

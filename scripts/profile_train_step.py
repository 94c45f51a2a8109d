"""Where a training step of a potential spends its time: phases, modules and autograd nodes.

Builds the trainer of a config (default: the main job's), then for ``--steps`` batches of the training data times
each phase of ``Trainer.train_step`` on its own: batching (``Batch.from_data_list`` of cached frames with their
neighbor lists), forward with forces (the energy and its gradient, kept for the double backward), loss, backward
(through the forces: a double backward), gradient clipping and optimizer, EMA; then an evaluation of every
validation split and the neighbor lists of the training set (made once, when the frames are cached). With
``--modules`` it also prints each module's share of the forward (time and operations) and the operations autograd
runs per node type in the backward, from ``torch.profiler``.

    python scripts/profile_train_step.py                         # models/potential_grid.yaml
    python scripts/profile_train_step.py model.lmax=3 --modules  # config overrides; per-module tables
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib.data import AtomicDataset  # noqa: E402
from equilib.train import Trainer, load_config  # noqa: E402
from equilib.train._batches import epoch_order  # noqa: E402
from equilib.train._losses import compute_loss  # noqa: E402

PHASES = ("batch", "forward + forces", "loss", "backward", "clip + optimizer", "EMA")


def time_phases(trainer: Trainer, batches: list, warmup: int) -> dict[str, list[float]]:
    """Each phase of ``train_step`` timed on its own (ms), after ``warmup`` steps."""
    config, model = trainer.config, trainer.model
    times: dict[str, list[float]] = {name: [] for name in (*PHASES, "step")}
    for k, indices in enumerate(batches):
        stamps = [time.perf_counter()]
        batch = trainer.batch(indices)
        stamps.append(time.perf_counter())
        model.train()
        prediction = model(batch, compute_forces=True)
        stamps.append(time.perf_counter())
        loss, _ = compute_loss(config.loss, prediction, batch)
        stamps.append(time.perf_counter())
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stamps.append(time.perf_counter())
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.optimizer.grad_clip)
        trainer.optimizer.step()
        trainer.scheduler.step()
        stamps.append(time.perf_counter())
        trainer.ema.update_parameters(model)
        stamps.append(time.perf_counter())
        if k >= warmup:
            for name, a, b in zip(PHASES, stamps, stamps[1:]):
                times[name].append(1e3 * (b - a))
            times["step"].append(1e3 * (stamps[-1] - stamps[0]))
    return times


def module_table(trainer: Trainer, batch, top: int) -> None:
    """Forward time and leaf operations per module (two levels deep), and backward time per autograd node type."""
    from torch.profiler import ProfilerActivity, profile, record_function

    model, spans = trainer.model, {}
    hooks = []
    for name, module in model.named_modules():
        if name and name.count(".") <= 2 and not isinstance(module, torch.nn.ModuleList):
            def enter(m, inputs, name=name):
                spans[name] = record_function("module:" + name)
                spans[name].__enter__()

            def leave(m, inputs, output, name=name):
                spans[name].__exit__(None, None, None)
            hooks += [module.register_forward_pre_hook(enter), module.register_forward_hook(leave)]
    model.train()
    prediction = model(batch, compute_forces=True)  # warm
    with profile(activities=[ProfilerActivity.CPU]) as forward:
        prediction = model(batch, compute_forces=False)
    for hook in hooks:
        hook.remove()
    prediction = model(batch, compute_forces=True)
    loss, _ = compute_loss(trainer.config.loss, prediction, batch)
    with profile(activities=[ProfilerActivity.CPU]) as backward:
        loss.backward()
    rows = []
    for event in forward.events():
        if event.name.startswith("module:"):
            stack, leaves = list(event.cpu_children), 0
            while stack:
                child = stack.pop()
                if not child.name.startswith("module:"):
                    leaves += not child.cpu_children
                    stack.extend(child.cpu_children)
            rows.append((event.name[7:], event.cpu_time_total / 1e3, leaves))
    leaves = sum(not e.cpu_children for e in forward.events())
    print(f"\n## forward of the energy by module (profiled; leaf operations {leaves})")
    print("| module | ms | operations |\n|---|---|---|")
    for name, ms, leaves in sorted(rows, key=lambda r: -r[1])[:top]:
        print(f"| {name} | {ms:.2f} | {leaves} |")
    nodes = collections.Counter()
    counts = collections.Counter()
    for event in backward.events():
        if event.name.startswith("autograd::engine::evaluate_function: "):
            nodes[event.name.split(": ", 1)[1]] += event.cpu_time_total / 1e3
            counts[event.name.split(": ", 1)[1]] += 1
    print(f"\n## backward of the loss (through the forces) by autograd node (profiled; leaf operations "
          f"{sum(not e.cpu_children for e in backward.events())})")
    print("| node | ms | calls |\n|---|---|---|")
    for name, ms in nodes.most_common(top):
        print(f"| {name} | {ms:.2f} | {counts[name]} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides")
    parser.add_argument("--config", default="models/potential_grid.yaml")
    parser.add_argument("--steps", type=int, default=100, help="timed steps (after 10 warm-up steps)")
    parser.add_argument("--modules", action="store_true", help="also the per-module and per-node tables")
    parser.add_argument("--top", type=int, default=20, help="rows of the per-module tables")
    args = parser.parse_args(argv)
    config = load_config(args.config, ["trainer.out_dir=/tmp/equilib_profile", "logging.progress=false",
                                       *args.overrides])
    t0 = time.perf_counter()
    trainer = Trainer(config)
    setup = time.perf_counter() - t0
    size = config.data.batch_size
    order = epoch_order(config.trainer.seed, 0, len(trainer.train)).tolist()
    batches = [order[(k * size) % len(order):][:size] for k in range(10 + args.steps)]
    times = time_phases(trainer, batches, warmup=10)
    sample = trainer.batch(batches[0])
    print(f"# {args.config} {' '.join(args.overrides)}: backend {config.model.backend}, lmax {config.model.lmax}, "
          f"{torch.get_num_threads()} threads, batches of {size} structures (~{sample.num_nodes} atoms, "
          f"{sample.edge_index.shape[1]} edges)\n")
    print("| phase | ms (median) | share |\n|---|---|---|")
    step = statistics.median(times["step"])
    for name in PHASES:
        value = statistics.median(times[name])
        print(f"| {name} | {value:.2f} | {100 * value / step:.0f}% |")
    print(f"| step | {step:.2f} | {1e3 / step:.1f} steps/s |")
    t0 = time.perf_counter()
    AtomicDataset(config.data.train, cutoff=config.data.cutoff)[0]  # one frame's read and neighbor list
    one = time.perf_counter() - t0
    print(f"\nsetup (read {len(trainer.train)} training frames and make their neighbor lists once, statistics, "
          f"model): {setup:.1f} s; one frame read with its neighbor list: {1e3 * one:.1f} ms")
    for name, frames in trainer.val.items():
        t0 = time.perf_counter()
        trainer.evaluate(name)
        print(f"evaluation of {name} ({len(frames)} frames, energies and forces): {time.perf_counter() - t0:.2f} s")
    if args.modules:
        module_table(trainer, sample, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())

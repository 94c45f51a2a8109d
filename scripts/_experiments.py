"""What the experiment scripts (``nbody_compare.py``, ``normals_rotation.py``) share: the command line (runs,
seeds, epochs, output folder, report-only, overrides), a run's config from its entry in the script's ``RUNS``, training
that resumes from a checkpoint, the seconds per training epoch timed in this process, a finished run's evaluations
and the final EMA model's equivariance error on a test batch, ``mean +- sd`` cells and figures written atomically.

A script puts the checkout on ``sys.path`` and imports this module as ``scripts._experiments``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from pathlib import Path

import torch

from equilib.groups import equivariance_error
from equilib.train import Trainer, load_config
from equilib.utils import atomic_savefig

ROOT = Path(__file__).resolve().parents[1]


def parser_of(description: str, runs: dict, default_runs: str, default_seeds: str,
              default_out: str) -> argparse.ArgumentParser:
    """The arguments every experiment takes: ``--runs``, ``--seeds``, ``--epochs``, ``--out``, ``--report-only``
    and ``section.key=value`` overrides; a script adds its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=default_runs, help=f"comma-separated, from {', '.join(runs)}")
    parser.add_argument("--seeds", default=default_seeds,
                        help="comma-separated trainer seeds, one run of each per seed")
    parser.add_argument("--epochs", type=int, default=None, help="override each config's trainer.max_epochs")
    parser.add_argument("--out", default=default_out, help="where the runs go")
    parser.add_argument("--report-only", action="store_true", help="no training: the report from finished runs")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every run")
    return parser


def runs_and_seeds(parser: argparse.ArgumentParser, args, runs: dict) -> tuple[list[str], list[int]]:
    """The run names of ``--runs`` (each known to ``runs``, else a usage error) and the seeds of ``--seeds``."""
    names = args.runs.split(",")
    unknown = [n for n in names if n not in runs]
    if unknown:
        parser.error(f"--runs: unknown run {unknown[0]!r}; known: {', '.join(runs)}")
    return names, [int(s) for s in args.seeds.split(",")]


def config_of(runs: dict, name: str, seed: int, out: Path, epochs: int | None, extra: list[str]):
    """The config of run ``name`` (``runs[name]`` is ``(config file, overrides, label)``) for one seed, in
    ``out/<name>/seed<seed>``, with ``epochs`` (when given) and the command line's overrides ``extra``."""
    path, overrides, _ = runs[name]
    more = [f"trainer.max_epochs={epochs}"] if epochs else []
    return load_config(ROOT / path, [*overrides, f"trainer.out_dir={out / name / f'seed{seed}'}",
                                     f"trainer.seed={seed}", "logging.progress=false", *more, *extra])


def train(config) -> None:
    """Train a run to the end, resuming from its checkpoint when its directory holds one."""
    trainer = Trainer(config)
    if trainer.checkpoint_path.is_file():
        trainer.load_checkpoint()
    trainer.run()


def timed_steps(config, steps: int, warmup: int) -> tuple[Trainer, float]:
    """A trainer of ``config`` and the mean seconds of ``steps`` of its training steps after ``warmup`` (consecutive
    batches of the training split, no evaluation)."""
    trainer = Trainer(config)
    size = config.data.batch_size
    n = len(trainer.train)
    batches = [trainer.batch([(k * size + i) % n for i in range(size)]) for k in range(steps + warmup)]
    for batch in batches[:warmup]:
        trainer.train_step(batch)
    t0 = time.perf_counter()
    for batch in batches[warmup:]:
        trainer.train_step(batch)
    return trainer, (time.perf_counter() - t0) / steps


def seconds_per_step(config, steps: int, warmup: int) -> float:
    """Seconds of one training step (no evaluation), timed in this process over ``steps`` steps after ``warmup``."""
    return timed_steps(config, steps, warmup)[1]


def seconds_per_epoch(config, steps: int, warmup: int) -> float:
    """Training steps only (no evaluation), timed in this process: ``steps`` steps after ``warmup``, scaled to an
    epoch."""
    trainer, seconds = timed_steps(config, steps, warmup)
    return seconds * trainer.steps_per_epoch


def evaluations(config, metric: str) -> list[dict]:
    """The rows of a run's ``metrics.csv`` that hold ``metric`` (its evaluations)."""
    with open(Path(config.trainer.out_dir) / "metrics.csv") as f:
        return [r for r in csv.DictReader(f) if r.get(metric)]


def restored(config) -> Trainer:
    """A finished run's trainer, restored from its checkpoint."""
    trainer = Trainer(config)
    trainer.load_checkpoint()
    return trainer


def ema_equivariance_error(trainer: Trainer, split: str, group=None) -> float:
    """The largest equivariance error of the trainer's EMA model on the first batch of ``split``, under ``group``
    (default: the task's group), over 8 of its elements drawn from seed 0."""
    batch = next(trainer.eval_batches(split))
    s = trainer.task.symmetry(trainer.ema.module.eval(), batch)
    # with gradients: potentials differentiate their energies for the forces
    return float(equivariance_error(s.fn, s.group if group is None else group, s.inputs, s.in_reps, s.out_reps,
                                    samples=8, generator=torch.Generator().manual_seed(0)).detach())


def finished(config, split: str = "test") -> tuple[Trainer, float]:
    """A finished run's trainer (from its checkpoint) and its EMA model's equivariance error under the task's group
    on the first batch of ``split`` (:func:`ema_equivariance_error`)."""
    trainer = restored(config)
    return trainer, ema_equivariance_error(trainer, split)


def mean_sd(values: list[float], digits: int, style: str = "f") -> str:
    """One value, or ``mean +- standard deviation`` of several, with ``digits`` digits in ``style``."""
    if len(values) == 1:
        return f"{values[0]:.{digits}{style}}"
    return f"{statistics.mean(values):.{digits}{style}} +- {statistics.stdev(values):.{digits}{style}}"


def axes(size: tuple[float, float]):
    """A matplotlib figure and axes of ``size`` inches (the Agg backend: no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size)


def save_figure(fig, path: Path, dpi: int) -> None:
    """Lay out ``fig``, write it to ``path`` atomically and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_savefig(fig, path, dpi)
    plt.close(fig)

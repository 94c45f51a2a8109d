"""The ``equilib`` command: train, eval, curvature, relax and md.

    equilib train models/potential_grid.yaml trainer.max_minutes=5      # YAML config + key=value overrides
    equilib eval runs/grid/model.pt datasets/oc20_emt/data/s2ef_val_id.lmdb
    equilib curvature runs/grid --batches 2 --top-k 5                   # Hessian report of the trained run
    equilib relax runs/grid/model.pt slab.xyz --fmax 0.05               # writes slab_relax.traj
    equilib md runs/grid/model.pt bulk.xyz --steps 1000 --temperature 300
    torchrun --nproc_per_node 2 -m equilib.cli train models/potential_grid.yaml   # data parallel
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

LANGEVIN_FRICTION = 0.01  # 1/fs: the Langevin thermostat's friction in `equilib md` (a relaxation time of 100 fs)


def _train(args) -> int:
    from .train import Trainer, load_config

    config = load_config(args.config, args.overrides)
    trainer = Trainer(config)
    if args.resume:
        trainer.load_checkpoint()
    final = trainer.run()
    if trainer.rank == 0:
        print(json.dumps(final, indent=2))
        print(f"model: {Path(config.trainer.out_dir) / 'model.pt'}")
    if trainer.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
    return 0


def _eval(args) -> int:
    from torch_geometric.loader import DataLoader

    from .calculator import load_potential
    from .data import AtomicDataset
    from .train import MetricAccumulator, evaluate

    model = load_potential(args.model)
    dataset = AtomicDataset(args.data, cutoff=model.cutoff)
    metrics = evaluate(model, DataLoader(dataset, batch_size=args.batch_size),
                       lambda net, batch: net(batch, compute_forces=True),
                       MetricAccumulator(free_only=not args.all_atoms))
    result = {"data": str(args.data), "frames": len(dataset), **metrics.compute()}
    print(json.dumps(result, indent=2))
    return 0


def _checkpoint(run: str) -> Path:
    """The checkpoint of a run directory (``<run>/checkpoint.pt``) or the checkpoint file itself."""
    path = Path(run)
    if not path.exists():
        raise FileNotFoundError(f"run: {run} does not exist (expected the out_dir of equilib train, or its "
                                "checkpoint.pt)")
    if path.is_dir():
        if not (path / "checkpoint.pt").is_file():
            raise FileNotFoundError(f"run: no checkpoint.pt in {run} (expected the out_dir of equilib train; a "
                                    "model.pt alone has no config, so no training loss)")
        path = path / "checkpoint.pt"
    return path


def _frames(trainer, data: str | None):
    """The frames ``data`` names: the training set (None or ``train``), a validation split, or (potential task) a
    file."""
    if data is None or data == "train":
        return trainer.train
    if data in trainer.val:
        return trainer.val[data]
    splits = ", ".join(["train", *trainer.val])
    if not Path(data).exists():
        raise FileNotFoundError(f"data: {data!r} is neither a split of the run ({splits}) nor a file")
    if trainer.config.task != "potential":
        raise ValueError(f"data: a file is read for the potential task only; for the {trainer.config.task} task "
                         f"name a split ({splits})")
    from .data import AtomicDataset

    return AtomicDataset(data, cutoff=trainer.config.data.cutoff)


def _curvature(args) -> int:
    import time

    import torch
    from tqdm import tqdm

    from .curvature import Hessian, block_traces, spectral_density, task_loss
    from .train import Trainer, build_config
    from .train._curvature_callback import Counted, adam_diagonal, curvature_indices, in_dtype, measure, resolve_dtype

    start = time.perf_counter()
    checkpoint = _checkpoint(args.source)
    config = build_config(torch.load(checkpoint, map_location="cpu", weights_only=False)["config"])
    config.trainer.out_dir = str(checkpoint.parent)
    config.trainer.device = args.device or config.trainer.device
    trainer = Trainer(config)
    trainer.load_checkpoint(checkpoint)
    frames = _frames(trainer, args.data)
    indices = curvature_indices(len(frames), args.batches, args.batch_size or config.data.batch_size, args.seed)
    batches = [trainer.task.collate([frames[k] for k in part]).to(trainer.device) for part in indices]
    weights = trainer.model if args.weights == "model" else trainer.ema.module
    model, batches = in_dtype(weights, batches, resolve_dtype(args.dtype, weights))
    hessian = Hessian(model, task_loss(trainer.task), batches, params=args.params, blocks=args.blocks,
                      keep_graph=args.keep_graph)
    hessian.check_deterministic()
    preconditioner = adam_diagonal(trainer.optimizer, trainer.model, hessian.space.names) \
        if args.weights == "model" else None
    with tqdm(desc="eigenvalues and trace", unit="product") as bar:
        reading = measure(Counted(hessian, bar.update), trainer.optimizer.param_groups[0]["lr"], args.top_k, args.tol,
                          args.max_steps, args.trace_matvecs, preconditioner, args.seed)
    with tqdm(total=args.block_probes, desc="block traces", unit="product") as bar:
        blocks = block_traces(Counted(hessian, bar.update), args.block_probes,
                              generator=torch.Generator().manual_seed(args.seed + 4))
    with tqdm(total=args.density_steps * args.density_probes, desc="spectral density", unit="product") as bar:
        density = spectral_density(Counted(hessian, bar.update), args.density_steps, args.density_probes,
                                   generator=torch.Generator().manual_seed(args.seed + 3))
    setting = (f"Hessian of the {config.task} task's training loss at the {args.weights} weights of {checkpoint} "
               f"(step {trainer.step}), over {len(batches)} batch(es) of {args.data or 'train'} "
               f"({sum(trainer.task.batch_size(b) for b in batches)} examples, drawn with seed {args.seed}), "
               f"{hessian.dim} parameters{f' matching {args.params!r}' if args.params else ''}, in "
               f"{str(hessian.dtype).removeprefix('torch.')}; {time.perf_counter() - start:.1f} s.")
    out = Path(args.out) if args.out else checkpoint.parent / f"curvature_step{trainer.step}"
    path = _curvature_report(args, out, f"Curvature of {checkpoint.parent.name} at step {trainer.step}", setting,
                             reading, blocks, density, trainer.config.optimizer.lr, trainer.optimizer)
    top = float(reading.eigenpairs.eigenvalues[0])
    trace = "" if reading.trace is None else f", trace {reading.trace.value:.6g} +- {reading.trace.stderr:.3g}"
    print(f"lambda_max {top:.6g}{trace}, lr * lambda_max {config.optimizer.lr * top:.4g} at the config's lr; "
          f"report: {path}")
    return 0


def _curvature_report(args, out: Path, title: str, setting: str, reading, blocks, density, config_lr: float,
                      optimizer) -> Path:
    """Write the ``equilib curvature`` report: eigenvalues, trace, stability, blocks and the density."""
    from .curvature import stability
    from .curvature._report import Report, write_density
    from .train._curvature_callback import ADAM_LIMIT

    report = Report(out, title)
    report.paragraph(setting)
    pairs = reading.eigenpairs
    report.table("eigenvalues", [
        {"k": k + 1, "eigenvalue": float(value), "residual": float(residual),
         "relative_residual": float(residual) / max(abs(float(value)), 1e-300), "converged": bool(ok)}
        for k, (value, residual, ok) in enumerate(zip(pairs.eigenvalues, pairs.residuals, pairs.converged))],
        "Top eigenvalues (Lanczos)", note=f"{pairs.matvecs} products, relative residual tolerance {args.tol:g}.")
    trace = None if reading.trace is None else reading.trace.value
    if reading.trace is not None:
        report.table("trace", [{"estimator": "hutch++", "value": trace, "stderr": reading.trace.stderr,
                                "matvecs": reading.trace.matvecs}], "Trace")
    rows = []
    for source, lr in (("config", config_lr), ("checkpoint", optimizer.param_groups[0]["lr"])):
        ratios = stability(lr, float(pairs.eigenvalues[0]), trace)
        row = {"source": source, "lr": lr, "lr * lambda_max": ratios.gd_ratio, "stable_gd": ratios.stable_gd,
               "lr * trace": ratios.sgd_ratio, "stable_sgd": ratios.stable_sgd}
        if reading.adam is not None:
            row["lr * adam_sharpness"] = lr * float(reading.adam.eigenvalues[0])
        rows.append(row)
    note = ("GD is stable while lr * lambda_max <= 2, SGD near a minimum needs lr * trace <= 2 (Wu & Su 2023); "
            "neither limit applies to Adam as stated.")
    if reading.adam is not None:
        beta1 = optimizer.param_groups[0]["betas"][0]
        note += (f" Adam's preconditioned sharpness is {float(reading.adam.eigenvalues[0]):.6g}; lr times it "
                 f"compares with {ADAM_LIMIT} = {(2 + 2 * beta1) / (1 - beta1):.6g}.")
    report.table("stability", rows, "Stability", note=note)
    ranked = sorted(blocks.blocks.items(), key=lambda item: -item[1].average)
    report.table("blocks", [{"block": name, "size": b.size, "trace": b.trace, "stderr": b.stderr,
                             "trace_per_entry": b.average} for name, b in ranked],
                 "Blocks by trace per parameter", shown=args.top_blocks,
                 note=f"Per-{args.blocks} traces from {args.block_probes} shared Rademacher probes.")
    figure, nodes = write_density(density, out)
    report.figure(figure, "Spectral density (SLQ)",
                  f"{args.density_probes} probes of {args.density_steps} Lanczos steps; raw nodes and weights: "
                  f"[{nodes.name}]({nodes.name}).")
    return report.write()


def _read_structure(path):
    import ase.io

    try:
        return ase.io.read(path)
    except Exception as err:  # noqa: BLE001
        raise SystemExit(f"equilib: structure: cannot read {path} ({type(err).__name__}: {err})") from None


def _relax(args) -> int:
    from .calculator import EquilibCalculator
    from .relaxation import relax

    atoms = _read_structure(args.structure)
    trajectory = args.trajectory or str(Path(args.structure).with_suffix("")) + "_relax.traj"
    result = relax(atoms, EquilibCalculator(args.model), fmax=args.fmax, steps=args.steps, optimizer=args.optimizer,
                   trajectory=trajectory, logfile="-", cell=args.cell)
    print(f"final energy {result.energies[-1]:.6f} eV, max force {result.fmax:.4f} eV/A, "
          f"{'converged' if result.converged else 'NOT converged'} after {result.steps} steps; trajectory {trajectory}")
    return 0 if result.converged else 1


def _md(args) -> int:
    import numpy as np
    from ase import units
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    from .calculator import EquilibCalculator

    atoms = _read_structure(args.structure)
    atoms.calc = EquilibCalculator(args.model)
    thermalize_momenta(atoms, temperature_K=args.temperature, rng=np.random.default_rng(args.seed))
    trajectory = args.trajectory or str(Path(args.structure).with_suffix("")) + "_md.traj"
    if args.thermostat == "langevin":
        dynamics = Langevin(atoms, args.timestep * units.fs, temperature_K=args.temperature,
                            friction=LANGEVIN_FRICTION / units.fs, rng=np.random.default_rng(args.seed),
                            trajectory=trajectory, logfile="-", loginterval=args.log_every)
    else:
        dynamics = VelocityVerlet(atoms, args.timestep * units.fs, trajectory=trajectory, logfile="-",
                                  loginterval=args.log_every)
    dynamics.run(args.steps)
    print(f"ran {args.steps} steps of {args.thermostat}; trajectory {trajectory}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="equilib", description="Train and use equivariant interatomic potentials.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a potential from a YAML config (see models/)")
    p.add_argument("config", help="YAML config with sections data, model, loss, optimizer, schedule, trainer, logging")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. trainer.max_minutes=5")
    p.add_argument("--resume", action="store_true", help="continue from the run's last checkpoint")
    p.set_defaults(run=_train)

    p = sub.add_parser("eval", help="energy/force metrics of a model on a dataset (OC20 LMDB, ASE-LMDB, extxyz)")
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--all-atoms", action="store_true", help="force metrics on all atoms, not only free ones")
    p.set_defaults(run=_eval)

    p = sub.add_parser("curvature", help="Hessian report of a trained run: eigenvalues, trace, blocks, density, "
                                          "stability (markdown, CSV, PNG)")
    p.add_argument("source", metavar="RUN", help="the run's out_dir (with checkpoint.pt) or the checkpoint file")
    p.add_argument("data", metavar="DATA", nargs="?",
                   help="train (default), a validation split of the run, or (potential task) a file of structures")
    p.add_argument("--batches", type=int, default=2, help="batches in the loss (drawn with --seed)")
    p.add_argument("--batch-size", type=int, help="examples per batch (default: the config's data.batch_size)")
    p.add_argument("--weights", choices=["model", "ema"], default="model",
                   help="the training weights (default) or their EMA (what model.pt holds)")
    p.add_argument("--dtype", choices=["float64", "float32", "model"], default="float64",
                   help="the Hessian of a copy of the model in this dtype, or of the model in its own (model)")
    p.add_argument("--params", help="regular expression of parameter names (default: all trainable)")
    p.add_argument("--blocks", choices=["parameter", "module"], default="module", help="blocks of the block traces")
    p.add_argument("--no-keep-graph", dest="keep_graph", action="store_false",
                   help="rebuild the gradient graph for every product instead of keeping it (less memory, slower)")
    p.add_argument("--top-k", type=int, default=5, help="eigenvalues by Lanczos")
    p.add_argument("--tol", type=float, default=1e-3, help="relative residual tolerance of the eigenvalues")
    p.add_argument("--max-steps", type=int, default=100, help="most Lanczos steps")
    p.add_argument("--trace-matvecs", type=int, default=30, help="Hutch++ products, a multiple of 3 (0: none)")
    p.add_argument("--block-probes", type=int, default=10)
    p.add_argument("--top-blocks", type=int, default=10, help="blocks shown in report.md (blocks.csv has all)")
    p.add_argument("--density-steps", type=int, default=40, help="Lanczos steps per SLQ probe")
    p.add_argument("--density-probes", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", help="default: the config's trainer.device")
    p.add_argument("--out", help="report directory (default: <run>/curvature_step<step>)")
    p.set_defaults(run=_curvature)

    p = sub.add_parser("relax", help="relax a structure with the ASE calculator; writes the trajectory")
    p.add_argument("model")
    p.add_argument("structure", help="any file ase.io reads")
    p.add_argument("--fmax", type=float, default=0.05)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--optimizer", choices=["bfgs", "fire"], default="bfgs")
    p.add_argument("--cell", action="store_true", help="relax the cell too (FrechetCellFilter)")
    p.add_argument("--trajectory", help="output trajectory (default: <structure>_relax.traj)")
    p.set_defaults(run=_relax)

    p = sub.add_parser("md", help="molecular dynamics with the ASE calculator; writes the trajectory")
    p.add_argument("model")
    p.add_argument("structure")
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--timestep", type=float, default=1.0, help="fs")
    p.add_argument("--temperature", type=float, default=300.0, help="K")
    p.add_argument("--thermostat", choices=["nve", "langevin"], default="langevin")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--trajectory")
    p.set_defaults(run=_md)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"equilib {args.command}: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

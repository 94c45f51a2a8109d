"""The ``equilib`` command: train, eval, relax and md.

    equilib train models/potential_grid.yaml trainer.max_minutes=5      # YAML config + key=value overrides
    equilib eval runs/grid/model.pt datasets/oc20_emt/data/s2ef_val_id.lmdb
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

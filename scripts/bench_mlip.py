"""Interatomic-potential throughput (shared/BENCHMARKS.md, section 2): energy+forces evaluations and MD steps per
second through the ASE calculator, per tensor-product backend, fp32 and fp64, with the neighbor list's share of the
time; neighbor-list time of vesin, the torch fallback and ase.neighborlist on the same systems; training throughput
per backend on the bundled OC20-style data; and, with --equal-minutes, the held-out accuracy each backend reaches in
the same wall time.

    python scripts/bench_mlip.py                       # ~40-atom adsorbate slab and ~500-atom bulk, CPU
    python scripts/bench_mlip.py --skip-inference --equal-minutes 12   # train every backend for 12 minutes
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from ase import units
from ase.build import add_adsorbate, bulk, fcc111
from ase.md.velocitydistribution import thermalize_momenta
from ase.md.verlet import VelocityVerlet
from ase.neighborlist import neighbor_list as ase_neighbor_list

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from equilib.calculator import EquilibCalculator  # noqa: E402
from equilib.data import AtomicData, neighbor_list  # noqa: E402
from equilib.nn import EquivariantPotential, PotentialConfig  # noqa: E402
from equilib.train import Trainer, load_config  # noqa: E402
from scripts import _timing as timing  # noqa: E402


def systems() -> dict:
    slab = fcc111("Pt", (3, 3, 4), vacuum=7.0)
    add_adsorbate(slab, "C", 1.5, "fcc")
    add_adsorbate(slab, "O", 2.7, "fcc")
    cell = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((5, 5, 5))
    cell.positions += np.random.default_rng(0).normal(0, 0.05, cell.positions.shape)
    return {f"slab ({len(slab)} atoms)": slab, f"bulk ({len(cell)} atoms)": cell}


def median_ms(fn, repeats: int, warmup: int = 2) -> float:
    return timing.median_ms({"fn": fn}, warmup, repeats)["fn"]


def inference(args) -> None:
    """Neighbor lists, energy+forces and MD through the calculator, per backend and dtype."""
    structures = systems()
    print("\n## neighbor lists (ms per call)")
    print(f"{'system':<20} {'ase':>9} {'vesin':>9} {'torch':>9} {'edges':>8}")
    for name, atoms in structures.items():
        t_ase = median_ms(partial(ase_neighbor_list, "ijS", atoms, args.cutoff), args.repeats)
        pos, cell = torch.tensor(atoms.positions), torch.tensor(atoms.cell.array)
        search = partial(neighbor_list, pos, args.cutoff, cell, atoms.pbc)
        t_vesin = median_ms(partial(search, backend="vesin"), args.repeats)
        t_torch = median_ms(partial(search, backend="torch"), args.repeats)
        edges = neighbor_list(pos, args.cutoff, cell, atoms.pbc)[0].shape[1]
        print(f"{name:<20} {t_ase:>9.2f} {t_vesin:>9.2f} {t_torch:>9.2f} {edges:>8}")
    print("\n## energy + forces through the calculator")
    print(f"{'system':<20} {'backend':<8} {'dtype':<8} {'E+F ms':>9} {'struct/s':>9} {'NL share':>9} "
          f"{'MD steps/s':>11}")
    for name, atoms in structures.items():
        species = sorted(set(atoms.numbers.tolist()))
        for backend in args.backends.split(","):
            for dtype in args.dtypes.split(","):
                torch.manual_seed(0)
                model = EquivariantPotential(PotentialConfig(
                    species=species, cutoff=args.cutoff, channels=args.channels, lmax=args.lmax,
                    num_layers=args.layers, backend=backend, avg_num_neighbors=40.0, dtype=dtype))
                calc = EquilibCalculator(model)
                probe = atoms.copy()
                probe.calc = calc

                def evaluate(calc=calc, probe=probe):
                    calc.reset()
                    probe.get_forces()

                t_eval = median_ms(evaluate, args.repeats)
                t_nl = median_ms(partial(AtomicData.from_ase, probe, cutoff=args.cutoff, labels=False), args.repeats)
                md = atoms.copy()
                md.calc = calc
                thermalize_momenta(md, temperature_K=300, rng=np.random.default_rng(0))
                dyn = VelocityVerlet(md, timestep=1.0 * units.fs, logfile=None)
                dyn.run(1)
                t0 = time.perf_counter()
                dyn.run(args.md_steps)
                steps_per_s = args.md_steps / (time.perf_counter() - t0)
                print(f"{name:<20} {backend:<8} {dtype:<8} {t_eval:>9.1f} {1e3 / t_eval:>9.1f} "
                      f"{t_nl / t_eval:>8.0%} {steps_per_s:>11.2f}", flush=True)


def training_throughput(config: str, backend: str, steps: int, out: Path) -> float:
    """Training steps per second (forward, forces, backward, optimizer, EMA) on the config's training data."""
    trainer = Trainer(load_config(config, [f"model.backend={backend}", f"trainer.out_dir={out}"]))
    size = trainer.config.data.batch_size
    batches = [trainer.batch(range(k * size, (k + 1) * size)) for k in range(min(steps, len(trainer.train) // size))]
    for batch in batches[:3]:
        trainer.train_step(batch)
    t0 = time.perf_counter()
    for batch in batches:
        trainer.train_step(batch)
    return len(batches) / (time.perf_counter() - t0)


def equal_time_training(config: str, backend: str, minutes: float, steps_per_s: float, out: Path, seed: int) -> dict:
    """Train for about ``minutes``: a number of steps sized from the throughput (less 10% for evaluations), so
    that the result does not depend on the clock; a safety cap stops it at 5x the time."""
    steps = max(10, int(0.9 * minutes * 60 * steps_per_s))
    trainer = Trainer(load_config(config, [
        f"model.backend={backend}", f"trainer.out_dir={out}", f"trainer.max_steps={steps}", f"trainer.seed={seed}",
        f"trainer.max_minutes={5 * minutes}", f"trainer.eval_every={max(1, steps // 4)}",
        f"trainer.checkpoint_every={steps}", "logging.progress=false", "logging.plots=false"]))
    return trainer.run()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="cg,grid,gaunt,cp")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--cutoff", type=float, default=5.0)
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--lmax", type=int, default=2)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--md-steps", type=int, default=10)
    parser.add_argument("--config", default="models/potential_grid.yaml",
                        help="training config for the training sections (its backend is overridden)")
    parser.add_argument("--train-steps", type=int, default=30, help="timed training steps per backend")
    parser.add_argument("--equal-minutes", type=float, default=0.0,
                        help="also train each backend for this many minutes and compare held-out accuracy")
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds of the equal-time section: "
                        "with several, each metric is reported as mean +- sample sd over them")
    parser.add_argument("--rate", action="append", default=[], metavar="BACKEND=STEPS_PER_S",
                        help="size the equal-time schedule of BACKEND from this rate instead of the measured one "
                        "(the 30-step measurement can be off; repeatable)")
    parser.add_argument("--skip-inference", action="store_true", help="only the training sections")
    parser.add_argument("--out", default="results/bench_mlip", help="run directories of the training sections")
    args = parser.parse_args(argv)
    print(f"# bench_mlip: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
          f"cutoff {args.cutoff} A, {args.channels} channels, lmax {args.lmax}, {args.layers} layers, "
          f"median of {args.repeats}")
    if not args.skip_inference:
        inference(args)
    backends = args.backends.split(",")
    print(f"\n## training throughput ({args.config}, batch of its data.batch_size, {args.train_steps} steps)")
    print(f"{'backend':<8} {'steps/s':>8} {'struct/s':>9}")
    rates = {}
    for backend in backends:
        torch.manual_seed(0)
        rates[backend] = training_throughput(args.config, backend, args.train_steps, Path(args.out) / "throughput")
        size = load_config(args.config).data.batch_size
        print(f"{backend:<8} {rates[backend]:>8.2f} {rates[backend] * size:>9.1f}", flush=True)
    if args.equal_minutes > 0:
        equal_time_section(args, backends, rates)


def equal_time_section(args, backends: list[str], rates: dict[str, float]) -> None:
    """Each backend trained for the same minutes (steps from its rate), per seed; mean +- sd over the seeds."""
    seeds = [int(s) for s in args.seeds.split(",")]
    for backend, rate in (item.split("=") for item in args.rate):
        rates[backend] = float(rate)
    print(f"\n## held-out accuracy after {args.equal_minutes:g} minutes of training (EMA model), seeds {seeds}")
    print(f"{'backend':<8} {'seed':>4} {'split':<14} {'steps':>6} {'minutes':>8} {'F MAE':>8} {'zero-F':>8} "
          f"{'E/atom meV':>10} {'EFwT %':>7}")
    finals: dict[str, list[dict]] = {}
    for backend in backends:
        for seed in seeds:
            final = equal_time_training(args.config, backend, args.equal_minutes, rates[backend],
                                        Path(args.out) / f"equal_time_{backend}_seed{seed}", seed)
            finals.setdefault(backend, []).append(final)
            for split in sorted({key.split("/")[0] for key in final if "/" in key}):
                print(f"{backend:<8} {seed:>4} {split:<14} {final['step']:>6} {final['seconds'] / 60:>8.1f} "
                      f"{final[split + '/forces_mae']:>8.4f} {final[split + '/forces_zero_mae']:>8.4f} "
                      f"{1e3 * final[split + '/energy_per_atom_mae']:>10.2f} {100 * final[split + '/efwt']:>7.1f}",
                      flush=True)
    if len(seeds) < 2:
        return
    splits = sorted({key.split("/")[0] for key in finals[backends[0]][0] if "/" in key})
    print("\n| backend | steps | " + " | ".join(f"{s} F MAE" for s in splits) + " | val_id E meV/atom |")
    print("|---|---|" + "---|" * (len(splits) + 1))
    for backend, runs in finals.items():
        cells = [_mean_sd([r[f"{s}/forces_mae"] for r in runs], "{:.4f}") for s in splits]
        energy = "-"
        if "val_id" in splits:
            energy = _mean_sd([1e3 * r["val_id/energy_per_atom_mae"] for r in runs], "{:.2f}")
        print(f"| {backend} | {runs[0]['step']} | " + " | ".join(cells) + f" | {energy} |")


def _mean_sd(values: list[float], fmt: str) -> str:
    return f"{fmt.format(statistics.mean(values))} +- {fmt.format(statistics.stdev(values))}"


if __name__ == "__main__":
    main()

"""The main job: train the default potential on the bundled OC20-style data, evaluate it on every held-out split,
relax held-out adsorbate-slab systems with the ASE calculator and compare with EMT's reference relaxations; print
the tables and write them (summary.md, summary.json) with the plots into the output directory.

    python scripts/main_job.py                                    # models/potential_grid.yaml -> results/main_job
    python scripts/main_job.py --config models/potential_cg.yaml --out results/main_job_cg
    python scripts/main_job.py trainer.max_steps=500 --relaxations 3   # config overrides, a shorter run

Rerunning with the same output directory resumes training from its last checkpoint (a finished run is not
retrained).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from ase.calculators.emt import EMT

from equilib.calculator import EquilibCalculator
from equilib.data import AtomicDataset
from equilib.relaxation import compare_relaxation
from equilib.train import Trainer, load_config, relaxation_curves
from equilib.utils import atomic_write

SPLIT_COLUMNS = [("frames", "frames", "{:d}"), ("energy_per_atom_mae", "E MAE/atom (meV)", "{:.1f}"),
                 ("energy_mae", "E MAE (eV)", "{:.3f}"), ("forces_mae", "F MAE (eV/A)", "{:.4f}"),
                 ("forces_zero_mae", "zero-F MAE", "{:.4f}"), ("forces_cosine", "F cos", "{:.3f}"),
                 ("efwt", "EFwT (%)", "{:.1f}")]
RELAX_COLUMNS = [("sid", "sid", "{}"), ("system", "system", "{}"), ("converged", "converged", "{}"),
                 ("steps", "steps", "{}"), ("energy", "E model (eV)", "{:.3f}"),
                 ("reference_energy", "E EMT (eV)", "{:.3f}"), ("energy_error", "dE (eV)", "{:+.3f}"),
                 ("reference_energy_gap", "EMT gap (eV)", "{:+.3f}"), ("max_displacement", "max dr (A)", "{:.3f}"),
                 ("adwt", "ADwT", "{:.2f}")]


def markdown_table(rows: list[dict], columns) -> str:
    head = "| " + " | ".join(title for _, title, _ in columns) + " |"
    rule = "|" + "|".join("---" for _ in columns) + "|"
    body = ["| " + " | ".join(fmt.format(row[key]) for key, _, fmt in columns) + " |" for row in rows]
    return "\n".join([head, rule, *body])


def describe(record) -> str:
    """'Pt + OH' style name of an adsorbate-slab record from its atoms and OC20 tags."""
    atoms = record.to_ase()
    tags = atoms.get_tags()
    metal = Counter(atoms[tags < 2].get_chemical_symbols()).most_common(1)[0][0]
    return f"{metal} + {atoms[tags == 2].get_chemical_formula(mode='reduce')}"


def split_table(final: dict, splits: dict[str, str]) -> list[dict]:
    rows = []
    for name, path in splits.items():
        row = {"split": name, "frames": len(AtomicDataset(path))}
        row.update({key: final[f"{name}/{key}"] for key, _, _ in SPLIT_COLUMNS[1:]})
        row["energy_per_atom_mae"] *= 1000
        row["efwt"] *= 100
        rows.append(row)
    return rows


def relaxation_table(model_path: Path, is2re: Path, count: int, out: Path) -> tuple[list[dict], Path]:
    records = AtomicDataset(is2re)
    calculator = EquilibCalculator(model_path)
    rows, plot = [], None
    for k in range(min(count, len(records))):
        record = records[k]
        result = compare_relaxation(calculator, EMT(), record, rerun_reference=k == 0)
        result["system"] = describe(record)
        if k == 0:
            plot = relaxation_curves(
                {"model (its own relaxation)": result["model_energies"],
                 "EMT along the model's relaxation": result["reference_energies_along_model"],
                 "EMT (reference relaxation)": result["reference_energies"]},
                out / "relaxation.png", title=f"{is2re.stem}: sid {result['sid']}, {result['system']}")
        rows.append({key: value for key, value in result.items() if not key.endswith("energies")
                     and key != "reference_energies_along_model"})
    return rows, plot


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/main_job.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides, e.g. trainer.max_steps=500")
    parser.add_argument("--config", default="models/potential_grid.yaml", help="training config (run from the "
                        "repository root: its data paths are relative to it)")
    parser.add_argument("--out", default="results/main_job", help="output directory (default results/main_job)")
    parser.add_argument("--is2re", default="datasets/oc20_emt/data/is2re_val_id.lmdb",
                        help="held-out IS2RE records to relax (default: the bundled val_id split)")
    parser.add_argument("--relaxations", type=int, default=10, help="how many of its systems to relax (default 10)")
    args = parser.parse_args(argv)
    if args.relaxations < 1:
        parser.error("--relaxations: expected a positive number")
    start = time.perf_counter()
    out = Path(args.out)
    config = load_config(args.config, [f"trainer.out_dir={out}", *args.overrides])
    trainer = Trainer(config)
    if trainer.checkpoint_path.exists():
        trainer.load_checkpoint()  # resume an interrupted run; a finished one is only re-evaluated
    final = trainer.run()
    trained = time.perf_counter() - start

    splits = split_table(final, config.data.val)
    print(f"\n## Held-out splits ({config.model.backend}, step {final['step']}, {trained / 60:.1f} min)\n")
    print(markdown_table(splits, [("split", "split", "{}"), *SPLIT_COLUMNS]))

    relaxations, plot = relaxation_table(out / "model.pt", Path(args.is2re), args.relaxations, out)
    n = len(relaxations)
    summary = {
        "relaxed": n,
        "converged": sum(r["converged"] for r in relaxations),
        "energy_mae": sum(abs(r["energy_error"]) for r in relaxations) / n,
        "reference_energy_gap_mean": sum(r["reference_energy_gap"] for r in relaxations) / n,
        "within_0.02_eV_of_reference_minimum": sum(r["reference_energy_gap"] <= 0.02 for r in relaxations),
        "adwt": sum(r["adwt"] for r in relaxations) / n,
    }
    print(f"\n## Relaxations of held-out systems ({Path(args.is2re).name}) with the ASE calculator vs EMT\n")
    print(markdown_table(relaxations, RELAX_COLUMNS))
    print(f"\nconverged {summary['converged']}/{n}; relaxed-energy MAE {summary['energy_mae']:.3f} eV; EMT energy of "
          f"the model's structure within 0.02 eV of EMT's minimum for {summary['within_0.02_eV_of_reference_minimum']}"
          f"/{n}; ADwT {summary['adwt']:.2f}")

    total = time.perf_counter() - start
    report = {"config": str(args.config), "backend": config.model.backend, "final": final, "splits": splits,
              "relaxations": relaxations, "relaxation_summary": summary, "train_seconds": trained,
              "total_seconds": total}
    with atomic_write(out / "summary.json", "w") as f:
        f.write(json.dumps(report, indent=2, default=float) + "\n")
    with atomic_write(out / "summary.md", "w") as f:
        f.write("\n\n".join([
            f"# Main job: {config.model.backend} backend, {final['step']} steps, {total / 60:.1f} min in all",
            markdown_table(splits, [("split", "split", "{}"), *SPLIT_COLUMNS]),
            markdown_table(relaxations, RELAX_COLUMNS), json.dumps(summary, indent=2)]) + "\n")
    figures = sorted(p.name for p in out.glob("*.png"))
    print(f"\nwrote {out}/summary.md, summary.json and {', '.join(figures)} in {total / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())

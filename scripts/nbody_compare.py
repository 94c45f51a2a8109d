"""The n-body comparison (EGNN's charged 5-body task, ``datasets/nbody``): equivariant message passing against the
plain GNN with and without random E(3) augmentation, trained by ``equilib train`` on the same data, with the
published test MSEs beside them.

Each run trains its config (resuming when its directory holds a checkpoint); the report gives, as the papers do, the
test MSE at the evaluation with the lowest validation MSE, the seconds per epoch (training steps only, timed alone
with ``--timing``), and the equivariance error of the final model under E(3) x S_5 on test systems; and draws the
learning curves.

    python scripts/nbody_compare.py                          # all runs, 1000 epochs each, then the table
    python scripts/nbody_compare.py --runs gnn --epochs 200  # one run, shorter
    python scripts/nbody_compare.py --report-only            # the table from finished runs
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.groups import equivariance_error
from equilib.train import Trainer, load_config

RUNS = {  # name -> (config, overrides, label)
    "equivariant": ("models/nbody_equivariant.yaml", [], "equilib EquivariantDynamicsNet (grid, lmax 1, scalar messages)"),
    "gnn": ("models/nbody_gnn.yaml", [], "plain GNN"),
    "gnn_augmented": ("models/nbody_gnn.yaml", ["data.augment=true"], "plain GNN + E(3) augmentation"),
}
PUBLISHED = [  # test MSE, EGNN (Satorras et al. 2021, Table 2) and FA (Puny et al. 2022)
    ("Linear", 0.0819), ("SE(3)-Transformer", 0.0244), ("Tensor Field Network", 0.0155), ("GNN", 0.0107),
    ("Radial Field", 0.0104), ("EGNN", 0.0071), ("FA-GNN", 0.0057)]


def config_of(name: str, out: Path, epochs: int | None, extra: list[str]):
    path, overrides, _ = RUNS[name]
    more = [f"trainer.max_epochs={epochs}"] if epochs else []
    return load_config(ROOT / path, [*overrides, f"trainer.out_dir={out / name}", "logging.progress=false", *more,
                                     *extra])


def seconds_per_epoch(config, steps: int = 30) -> float:
    """Training steps only (no evaluation), timed in this process: ``steps`` steps after 5, scaled to an epoch."""
    trainer = Trainer(config)
    size = config.data.batch_size
    n = len(trainer.train)
    batches = [trainer.batch([(k * size + i) % n for i in range(size)]) for k in range(steps + 5)]
    for batch in batches[:5]:
        trainer.train_step(batch)
    t0 = time.perf_counter()
    for batch in batches[5:]:
        trainer.train_step(batch)
    return (time.perf_counter() - t0) / steps * trainer.steps_per_epoch


def report_row(name: str, config) -> dict:
    out = Path(config.trainer.out_dir)
    with open(out / "metrics.csv") as f:
        rows = [r for r in csv.DictReader(f) if r.get("valid/mse")]
    best = min(rows, key=lambda r: float(r["valid/mse"]))
    trainer = Trainer(config)
    trainer.load_checkpoint()
    batch = next(trainer.eval_batches("test"))
    s = trainer.task.symmetry(trainer.ema.module.eval(), batch)
    with torch.no_grad():
        error = float(equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, samples=8,
                                         generator=torch.Generator().manual_seed(0)))
    return {"name": name, "label": RUNS[name][2], "epochs": int(rows[-1]["epoch"]) + 1 if rows else 0,
            "best_epoch": int(best["step"]) // trainer.steps_per_epoch, "valid": float(best["valid/mse"]),
            "test": float(best["test/mse"]), "final_test": float(rows[-1]["test/mse"]), "equivariance": error,
            "wall_minutes": float(rows[-1]["seconds"]) / 60, "history": rows}


def curves(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for row in rows:
        epochs = [int(r["step"]) / 30 for r in row["history"]]
        ax.plot(epochs, [float(r["test/mse"]) for r in row["history"]], marker=".", label=row["label"])
    for label, value in PUBLISHED:
        if label in ("EGNN", "FA-GNN", "GNN"):
            ax.axhline(value, linestyle=":", linewidth=0.8, color="gray")
            ax.text(0, value, f" {label} {value}", fontsize=7, va="bottom", color="gray")
    ax.set(xlabel="epoch", ylabel="test MSE", yscale="log", title="n-body (charged, 5 particles): test MSE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    os.replace(tmp, path)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default=",".join(RUNS), help=f"comma-separated, from {', '.join(RUNS)}")
    parser.add_argument("--epochs", type=int, default=None, help="override each config's trainer.max_epochs")
    parser.add_argument("--out", default="runs/nbody_compare")
    parser.add_argument("--report-only", action="store_true", help="only the table, from finished runs")
    parser.add_argument("--timing", action="store_true", help="also time an epoch of each model alone")
    parser.add_argument("--figure", default=None, help="learning curves PNG (default <out>/nbody_curves.png)")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every run")
    args = parser.parse_args(argv)
    names = args.runs.split(",")
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        parser.error(f"--runs: unknown run {unknown[0]!r}; known: {', '.join(RUNS)}")
    out = Path(args.out)
    configs = {name: config_of(name, out, args.epochs, args.overrides) for name in names}
    if not args.report_only:
        for name, config in configs.items():
            trainer = Trainer(config)
            if trainer.checkpoint_path.is_file():
                trainer.load_checkpoint()
            trainer.run()
    rows = [report_row(name, config) for name, config in configs.items()]
    timing = {name: seconds_per_epoch(config) for name, config in configs.items()} if args.timing else {}
    print(f"\n# n-body: {torch.get_num_threads()} threads; test MSE at the best validation evaluation\n")
    print("| model | epochs | best epoch | valid MSE | test MSE | final test MSE | equivariance error | wall min |"
          + (" s/epoch alone |" if timing else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if timing else ""))
    for row in rows:
        alone = f" {timing[row['name']]:.2f} |" if timing else ""
        print(f"| {row['label']} | {row['epochs']} | {row['best_epoch']} | {row['valid']:.5f} | {row['test']:.5f} | "
              f"{row['final_test']:.5f} | {row['equivariance']:.1e} | {row['wall_minutes']:.1f} |{alone}")
    print("\npublished test MSE (their papers' tables): "
          + ", ".join(f"{label} {value}" for label, value in PUBLISHED))
    curves(rows, Path(args.figure) if args.figure else out / "nbody_curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

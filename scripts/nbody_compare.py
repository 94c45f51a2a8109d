"""The n-body comparison (EGNN's charged 5-body task, ``datasets/nbody``): equivariant message passing against the
plain GNN with and without random E(3) augmentation, trained by ``equilib train`` on the same data, with the
published test MSEs beside them.

Each run trains its config once per seed (resuming when its directory holds a checkpoint); the report gives, as the
papers do, the test MSE at the evaluation with the lowest validation MSE (mean +- standard deviation over the seeds),
the seconds per epoch (training steps only, timed alone with ``--timing``), and the largest equivariance error of the
final models under E(3) x S_5 on test systems; and draws the learning curves of each run's first seed.

    python scripts/nbody_compare.py                          # equivariant, gnn, gnn_augmented; seeds 0, 1, 2
    python scripts/nbody_compare.py --runs fa_gnn_stochastic --seeds 0    # frame averaging
    python scripts/nbody_compare.py --runs gnn --seeds 0 --epochs 200  # one run, shorter
    python scripts/nbody_compare.py --report-only            # the table from finished runs
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import _experiments as experiments
from scripts._experiments import mean_sd

RUNS = {  # name -> (config, overrides, label)
    "equivariant": ("models/nbody_equivariant.yaml", [],
                    "equilib EquivariantDynamicsNet (grid, lmax 1, coordinate updates)"),
    "gnn": ("models/nbody_gnn.yaml", [], "plain GNN"),
    "gnn_augmented": ("models/nbody_gnn.yaml", ["data.augment=true"], "plain GNN + E(3) augmentation"),
    "fa_gnn_stochastic": ("models/nbody_fa_gnn.yaml", [],
                          "FA-GNN, stochastic (1 frame per layer and step, 8 at evaluation)"),
    "fa_gnn_stochastic_b25": ("models/nbody_fa_gnn.yaml", ["data.batch_size=25", "trainer.max_epochs=500",
                                                           "trainer.eval_every=3000", "trainer.checkpoint_every=3000",
                                                           "callbacks=[]"],
                              "FA-GNN, stochastic, batch 25 (500 epochs)"),
    "fa_gnn_stochastic_b10": ("models/nbody_fa_gnn.yaml", ["data.batch_size=10", "trainer.max_epochs=300",
                                                           "trainer.eval_every=3000", "trainer.checkpoint_every=3000",
                                                           "callbacks=[]"],
                              "FA-GNN, stochastic, batch 10 (300 epochs)"),
    "fa_gnn": ("models/nbody_fa_gnn.yaml", ["model.stochastic=false", "trainer.max_epochs=300",
                                            "trainer.eval_every=750"], "FA-GNN, all 8 frames"),
    "fa_wrapped": ("models/nbody_fa_wrapped.yaml", [], "plain GNN wrapped in FrameAveraged (8 frames)"),
    "fa_wrapped_stochastic": ("models/nbody_fa_wrapped.yaml", ["model.stochastic=true"],
                              "plain GNN wrapped, stochastic (1 frame per step, 8 at evaluation)"),
}
PUBLISHED = [  # test MSE, EGNN (Satorras et al. 2021, Table 2) and FA (Puny et al. 2022)
    ("Linear", 0.0819), ("SE(3)-Transformer", 0.0244), ("Tensor Field Network", 0.0155), ("GNN", 0.0107),
    ("Radial Field", 0.0104), ("EGNN", 0.0071), ("FA-GNN", 0.0057)]


def run_summary(config) -> dict:
    """One finished run: its evaluations, the one with the lowest validation MSE, and the final model's equivariance
    error on a test batch."""
    rows = experiments.evaluations(config, "valid/mse")
    best = min(rows, key=lambda r: float(r["valid/mse"]))
    trainer, error = experiments.finished(config)
    return {"epochs": int(rows[-1]["epoch"]) + 1, "best_epoch": int(best["step"]) // trainer.steps_per_epoch,
            "valid": float(best["valid/mse"]), "test": float(best["test/mse"]),
            "final_test": float(rows[-1]["test/mse"]),
            "equivariance": error, "wall_minutes": float(rows[-1]["seconds"]) / 60, "history": rows}


def curves(rows: list[tuple[str, list[dict]]], path: Path) -> None:
    fig, ax = experiments.axes((6.5, 4))
    for label, history in rows:
        epochs = [int(r["step"]) / 30 for r in history]
        ax.plot(epochs, [float(r["test/mse"]) for r in history], marker=".", label=label)
    for label, value in PUBLISHED:
        if label in ("EGNN", "FA-GNN", "GNN"):
            ax.axhline(value, linestyle=":", linewidth=0.8, color="gray")
            ax.text(0, value, f" {label} {value}", fontsize=7, va="bottom", color="gray")
    ax.set(xlabel="epoch", ylabel="test MSE", yscale="log", title="n-body (charged, 5 particles): test MSE")
    ax.legend(fontsize=8)
    experiments.save_figure(fig, path, dpi=120)


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, RUNS, "equivariant,gnn,gnn_augmented", "0,1,2", "runs/nbody_compare")
    parser.add_argument("--timing", action="store_true", help="also time an epoch of each model alone")
    parser.add_argument("--figure", default=None, help="learning curves PNG (default <out>/nbody_curves.png)")
    args = parser.parse_args(argv)
    names, seeds = experiments.runs_and_seeds(parser, args, RUNS)
    out = Path(args.out)
    configs = {name: [experiments.config_of(RUNS, name, seed, out, args.epochs, args.overrides) for seed in seeds]
               for name in names}
    if not args.report_only:
        for config in (c for runs in configs.values() for c in runs):
            experiments.train(config)
    summaries = {name: [run_summary(c) for c in runs] for name, runs in configs.items()}
    timing = ({name: experiments.seconds_per_epoch(runs[0], steps=30, warmup=5) for name, runs in configs.items()}
              if args.timing else {})
    print(f"\n# n-body: {torch.get_num_threads()} threads; test MSE at the best validation evaluation, "
          f"seeds {args.seeds}\n")
    print("| model | epochs | best epochs | valid MSE | test MSE | final test MSE | equivariance error | wall min |"
          + (" s/epoch alone |" if timing else ""))
    print("|---|---|---|---|---|---|---|---|" + ("---|" if timing else ""))
    for name, runs in summaries.items():
        alone = f" {timing[name]:.2f} |" if timing else ""
        column = {key: [r[key] for r in runs] for key in runs[0] if key != "history"}
        print(f"| {RUNS[name][2]} | {max(column['epochs'])} | {', '.join(map(str, column['best_epoch']))} | "
              f"{mean_sd(column['valid'], 5)} | {mean_sd(column['test'], 5)} | "
              f"{mean_sd(column['final_test'], 5)} | "
              f"{max(column['equivariance']):.1e} | {statistics.mean(column['wall_minutes']):.1f} |{alone}")
    print("\npublished test MSE (their papers' tables): "
          + ", ".join(f"{label} {value}" for label, value in PUBLISHED))
    rows = [(RUNS[name][2], runs[0]["history"]) for name, runs in summaries.items()]
    curves(rows, Path(args.figure) if args.figure else out / "nbody_curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

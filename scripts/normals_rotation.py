"""Normal estimation under rotations (Frame Averaging, Puny et al. 2022, section 5.1, on ``datasets/normals``): the
plain PointNet against the same PointNet averaged over the PCA frames of each cloud (all 8 frames, or one random
frame per training step), all trained on upright shapes and evaluated on the upright test set and on the same shapes
under fixed random rotations.

Each run trains its config once per seed (resuming when its directory holds a checkpoint). The report gives, for the
final EMA model, the metric of the paper ``mean(1 - (n . n_hat)^2)`` (and the mean unoriented angle) on ``test``
and ``test_rotated``, the seconds per training epoch (training steps alone, timed in this process), the wall time of
the run, and the largest equivariance error under E(3) x S_m on a test batch; it writes ``results.md``,
``results.csv`` (one row per run and seed), ``families.csv`` (the test metric per shape family), ``curves.csv``
(every evaluation) and ``curves.png`` to ``--results``.

    python -m datasets.normals                      # the data first (pip-downloads the pyvista wheel once)
    python scripts/normals_rotation.py              # the five default runs, seed 0
    python scripts/normals_rotation.py --runs pointnet_augmented --seeds 0,1
    python scripts/normals_rotation.py --report-only
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.train._normals_task import normal_loss
from equilib.utils import atomic_path, atomic_write_csv
from scripts import _experiments as experiments
from scripts._experiments import mean_sd

RUNS = {  # name -> (config, overrides, label)
    "pointnet": ("models/normals_pointnet.yaml", [], "PointNet"),
    "pointnet_augmented": ("models/normals_pointnet.yaml", ["data.augment=true"],
                           "PointNet + random-rotation augmentation"),
    "fa_pointnet": ("models/normals_fa_pointnet.yaml", [], "FA-PointNet (8 frames)"),
    "fa_pointnet_stochastic": ("models/normals_fa_pointnet.yaml", ["model.stochastic=true"],
                               "FA-PointNet, stochastic (1 frame per step, 8 at evaluation)"),
    "fa_pointnet_stochastic_oriented": ("models/normals_fa_pointnet.yaml", ["model.stochastic=true",
                                                                            "model.orient=true"],
                                        "FA-PointNet, stochastic, normals oriented away from the centroid"),
    "fa_pointnet_oriented": ("models/normals_fa_pointnet.yaml", ["model.orient=true"],
                             "FA-PointNet (8 frames), normals oriented away from the centroid"),
}
DEFAULT_RUNS = "pointnet,pointnet_augmented,fa_pointnet,fa_pointnet_stochastic,fa_pointnet_stochastic_oriented"
SPLITS = ("test", "test_rotated")
COLUMNS = ("run", "seed", "epochs", "test_normal_loss", "test_rotated_normal_loss", "test_angle_deg",
           "test_rotated_angle_deg", "val_normal_loss", "equivariance_error", "seconds_per_epoch", "wall_minutes")


def per_family(trainer) -> dict[str, dict[str, float]]:
    """The EMA model's mean ``1 - (n . n_hat)^2`` on each shape family of the test splits: ``{family: {split:
    value}}``."""
    model = trainer.ema.module.eval()
    out: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        dataset = trainer.val[split].dataset
        with torch.no_grad():
            per_shape = torch.cat([normal_loss(trainer.task.predict(model, batch)["normals"], batch.normals).mean(-1)
                                   for batch in trainer.eval_batches(split)])
        shape = dataset.shape[:len(per_shape)]
        for k, family in enumerate(dataset.shape_names):
            mine = shape == k
            if mine.any():
                out.setdefault(family, {})[split] = float(per_shape[mine].mean())
                out[family]["shapes"] = int(mine.sum())
    return out


def run_summary(name: str, seed: int, config) -> dict:
    """One finished run: its last evaluation, its history, and the final model's equivariance error on a test
    batch (8 elements of E(3) x S_m from seed 0)."""
    rows = experiments.evaluations(config, "test/normal_loss")
    last = rows[-1]
    trainer, error = experiments.finished(config)
    return {"run": name, "seed": seed, "epochs": int(last["epoch"]) + 1,
            **{f"{split}_{metric}": float(last[f"{split}/{metric}"]) for split in SPLITS
               for metric in ("normal_loss", "angle_deg")},
            "val_normal_loss": float(last["val/normal_loss"]), "equivariance_error": error,
            "wall_minutes": float(last["seconds"]) / 60, "history": rows, "families": per_family(trainer)}


def table(summaries: dict[str, list[dict]]) -> list[str]:
    lines = ["| model | epochs | test 1-(n.n^)^2 | rotated test 1-(n.n^)^2 | rotated - upright | test angle (deg) | "
             "rotated angle (deg) | equivariance error | s/epoch | wall min |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in summaries.items():
        col = {key: [r[key] for r in runs] for key in COLUMNS if key in runs[0]}
        gap = [r["test_rotated_normal_loss"] - r["test_normal_loss"] for r in runs]
        lines.append(f"| {RUNS[name][2]} | {max(col['epochs'])} | {mean_sd(col['test_normal_loss'], 4)} | "
                     f"{mean_sd(col['test_rotated_normal_loss'], 4)} | {mean_sd(gap, 1, 'e')} | "
                     f"{mean_sd(col['test_angle_deg'], 1)} | {mean_sd(col['test_rotated_angle_deg'], 1)} | "
                     f"{max(col['equivariance_error']):.1e} | {statistics.mean(col['seconds_per_epoch']):.1f} | "
                     f"{statistics.mean(col['wall_minutes']):.1f} |")
    return lines


def family_table(summaries: dict[str, list[dict]]) -> list[str]:
    """Mean over seeds of each family's test metric, upright / rotated, one column per run."""
    families = list(next(iter(summaries.values()))[0]["families"])
    lines = ["| family | test shapes | " + " | ".join(RUNS[name][2] for name in summaries) + " |",
             "|---|---|" + "---|" * len(summaries)]
    for family in families:
        cells = []
        for runs in summaries.values():
            upright = statistics.mean(r["families"][family]["test"] for r in runs)
            rotated = statistics.mean(r["families"][family]["test_rotated"] for r in runs)
            cells.append(f"{upright:.3f} / {rotated:.3f}")
        shapes = next(iter(summaries.values()))[0]["families"][family]["shapes"]
        lines.append(f"| {family} | {shapes} | " + " | ".join(cells) + " |")
    return lines


def curves(summaries: dict[str, list[dict]], path: Path) -> None:
    fig, ax = experiments.axes((6.5, 4))
    for k, (name, runs) in enumerate(summaries.items()):
        history = runs[0]["history"]
        epochs = [float(r["epoch"]) + 1 for r in history]
        color = f"C{k}"
        ax.plot(epochs, [float(r["test/normal_loss"]) for r in history], marker=".", color=color,
                label=f"{RUNS[name][2]}: upright")
        ax.plot(epochs, [float(r["test_rotated/normal_loss"]) for r in history], marker="x", linestyle="--",
                color=color, label="  rotated")
    ax.set(xlabel="epoch", ylabel="test 1 - (n . n_hat)^2", title="normal estimation: trained upright")
    ax.legend(fontsize=7)
    experiments.save_figure(fig, path, dpi=100)


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, RUNS, DEFAULT_RUNS, "0", "runs/normals_rotation")
    parser.add_argument("--results", default="scripts/results/normals", help="where the tables and figure go")
    args = parser.parse_args(argv)
    names, seeds = experiments.runs_and_seeds(parser, args, RUNS)
    out, results = Path(args.out), Path(args.results)
    configs = {name: {seed: experiments.config_of(RUNS, name, seed, out, args.epochs, args.overrides) for seed in seeds}
               for name in names}
    if not args.report_only:
        for runs in configs.values():
            for config in runs.values():
                experiments.train(config)
    summaries = {name: [run_summary(name, seed, c) for seed, c in runs.items()] for name, runs in configs.items()}
    for name, runs in summaries.items():
        timing = experiments.seconds_per_epoch(configs[name][seeds[0]], steps=8, warmup=2)
        for r in runs:
            r["seconds_per_epoch"] = timing
    first = configs[names[0]][seeds[0]]
    d = first.data
    lines = [
        "# Normal estimation under rotations: PointNet vs frame-averaged PointNet",
        "",
        f"`python scripts/normals_rotation.py --runs {args.runs} --seeds {args.seeds}"
        + (f" --epochs {args.epochs}" if args.epochs else "") + "`"
        + (f" with `{' '.join(args.overrides)}`" if args.overrides else "") + "; "
        f"{torch.get_num_threads()} torch thread(s), {time.strftime('%Y-%m-%d')}.",
        "",
        f"Data `{d.path}`: {d.max_train or 'all'} training shapes, {d.points or 'all'} points each, trained upright; "
        f"test = the first {d.max_val or 'all'} test shapes upright, rotated test = the same shapes each turned by a "
        f"fixed Haar rotation (seed {d.rotation_seed}). Metric: mean(1 - (n . n_hat)^2) over points (the loss), "
        "and the mean unoriented angle arccos|n . n_hat|, of the final EMA model. Equivariance error: the largest "
        "relative error ||f(g.x) - g.f(x)|| / ||f(x)|| over 8 elements of E(3) x S_m on a test batch. s/epoch: "
        "training steps alone, timed in this process.",
        "",
        *table(summaries),
        "",
        "Per shape family: test 1-(n.n^)^2 upright / rotated (first seed's run when one seed)",
        "",
        *family_table(summaries),
        "",
    ]
    print("\n".join(lines))
    results.mkdir(parents=True, exist_ok=True)
    with atomic_path(results / "results.md") as tmp:
        tmp.write_text("\n".join(lines))
    atomic_write_csv([r for runs in summaries.values() for r in runs], results / "results.csv", COLUMNS)
    history_columns = ["run", "seed", "step", "epoch", "seconds", "train_loss",
                       *(f"{s}/{m}" for s in ("val", *SPLITS) for m in ("normal_loss", "angle_deg"))]
    atomic_write_csv([{"run": r["run"], "seed": r["seed"], **row} for runs in summaries.values()
                      for r in runs for row in r["history"]], results / "curves.csv", history_columns)
    atomic_write_csv([{"run": r["run"], "seed": r["seed"], "family": family, **values}
                      for runs in summaries.values() for r in runs for family, values in r["families"].items()],
                     results / "families.csv", ["run", "seed", "family", "shapes", *SPLITS])
    curves(summaries, results / "curves.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

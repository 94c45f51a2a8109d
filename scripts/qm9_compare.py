"""QM9 as real point clouds (issue 14): the equivariant potential's network, the plain Cartesian GNN averaged over
PCA frames (frame averaging) and the plain GNN alone, trained by ``equilib train`` on a random subset of QM9's
training split (``datasets/qm9``), with their test MAEs beside the published full-budget EGNN and PaiNN numbers, and
a learning curve (test MAE against the number of training molecules).

Each run trains its config once (resuming when its directory holds a checkpoint; a finished run is not trained
again) and is then evaluated once on the whole test split (13,083 molecules; cached in ``test.json`` in the run's
directory): the EMA model at the end of training, MAE and RMSE in the property's unit, the MAE with every test
molecule rotated by a random O(3) element (what a model that is not invariant loses), the largest relative
equivariance error under E(3) on the first 64 test molecules (8 random elements), and the wall time of training
(evaluations included; the machine may have been shared; ``--timing`` also times 30 training steps of each model in
this process and scales them to the run). The learning curve trains the chosen models on nested
random subsets (1,000 of them among the 4,000, among the 16,000) with ``epochs * sqrt(16000 / n)`` epochs, where
``epochs`` is the curve target's (``--epochs``, else the config's 30).

``--epochs mu=15,U0=15`` sets the epochs of the named targets (the others keep the config's). ``--runs`` takes
``name:target`` for a run of one target only (``fa_gnn_meanpool:mu``: the frame-averaged plain network with the mean
of an invariant scalar instead of the dipole-moment pooling). A finished run (its directory holds ``model.pt``) is
not trained again, and one whose cached ``test.json`` was made with other epochs stops the script (pass the epochs it
was trained with) rather than training it further.

    # the whole table of docs/qm9.md: gap, mu, U0 for the three models, the mean-pool mu row and the learning curve
    OMP_NUM_THREADS=1 python scripts/qm9_compare.py --runs equivariant,fa_gnn,plain_gnn,fa_gnn_meanpool:mu \\
        --targets gap,mu,U0 --epochs mu=15,U0=15 --curve equivariant,fa_gnn --curve-target gap \\
        --results scripts/results/qm9
    OMP_NUM_THREADS=1 python scripts/qm9_compare.py --runs equivariant --targets U0 --epochs U0=15
    OMP_NUM_THREADS=1 python scripts/qm9_compare.py --runs none --curve equivariant,fa_gnn --curve-target gap
    python scripts/qm9_compare.py --report-only --curve equivariant,fa_gnn  # tables and figure from finished runs
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.groups import equivariance_error
from equilib.train import Trainer, evaluate, load_config
from equilib.train._qm9_task import QM9Task
from equilib.utils import atomic_path
from scripts._experiments import axes, save_figure, seconds_per_epoch, train

RUNS = {  # name -> (config, overrides, label)
    "equivariant": ("models/qm9_equivariant.yaml", [], "equivariant potential network (grid, lmax 2, 3 layers)"),
    "fa_gnn": ("models/qm9_fa_gnn.yaml", [], "plain GNN, frame-averaged (global PCA, stochastic, 8 at test)"),
    "plain_gnn": ("models/qm9_plain_gnn.yaml", [], "plain GNN (not invariant)"),
    "fa_gnn_meanpool": ("models/qm9_fa_gnn.yaml", ["data.pooling=mean"],
                        "plain GNN, frame-averaged, mean of an invariant scalar (no dipole pooling)"),
}
# Test MAE at the papers' full budgets (EGNN: 100k training molecules, Satorras et al. 2021, Table 3; PaiNN: Schutt
# et al. 2021, Table 2, about 110k). Checked against a third-party compilation (the Ginformer README's QM9 table),
# not against the papers themselves.
PUBLISHED = {"gap": {"EGNN": 48.0, "PaiNN": 45.7}, "homo": {"EGNN": 29.0, "PaiNN": 27.6},
             "lumo": {"EGNN": 25.0, "PaiNN": 20.4}, "mu": {"EGNN": 0.029, "PaiNN": 0.012},
             "U0": {"EGNN": 11.0, "PaiNN": 5.85}, "alpha": {"EGNN": 0.071, "PaiNN": 0.045}}
FULL_TRAIN = {"EGNN": 100_000, "PaiNN": 110_000}
TEST_BATCH = 64


def config_of(name: str, target: str, size: int, out: Path, extra: list[str], epochs: int | None = None):
    """The run's config: its YAML with the target, the training-set size (and its epochs: ``epochs``, else the
    config's, times ``sqrt(max_train / size)``) and its directory ``out/<target>/<name>_n<size>``."""
    path, overrides, _ = RUNS[name]
    base = load_config(ROOT / path, overrides)
    epochs = round((epochs or base.trainer.max_epochs) * math.sqrt(base.data.max_train / size))
    run_dir = out / target / f"{name}_n{size}"
    return load_config(ROOT / path, [*overrides, f"data.target={target}", f"data.max_train={size}",
                                     f"trainer.max_epochs={epochs}", f"trainer.out_dir={run_dir}",
                                     "logging.progress=false", *extra])


def test_split(config) -> QM9Task:
    """The task with the whole test split as its one validation split (its training molecules give the same
    normalisation as the run's); its ``augment`` rotates each molecule of batch k by a Haar O(3) element drawn from
    (seed, k)."""
    data = dataclasses.replace(config.data, val={"test": "test"}, max_val=None, augment=True)
    return QM9Task(dataclasses.replace(config, data=data))


def train_minutes(out: Path) -> float:
    """Wall minutes of the run's training from its ``metrics.csv``: each process's ``seconds`` restart at 0 when a run
    is resumed, so the time is the sum of every session's last logged value (steps lost after a session's last
    checkpoint are not counted)."""
    with open(out / "metrics.csv") as f:
        seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    return sum(a for a, b in zip(seconds, seconds[1:]) if b < a) / 60 + seconds[-1] / 60


def test_summary(config, tasks: dict) -> dict:
    """Test MAE/RMSE of the finished run's EMA model, as the molecules come and each randomly rotated, its
    equivariance error and wall time (cached in test.json)."""
    out = Path(config.trainer.out_dir)
    cache = out / "test.json"
    if cache.is_file() and "test_rotated_mae" in (cached := json.loads(cache.read_text())):
        minutes = train_minutes(out)
        if abs(cached["minutes"] - minutes) > 1e-6:  # cached before the sessions of a resumed run were summed
            cached["minutes"] = minutes
            with atomic_path(cache) as tmp:
                Path(tmp).write_text(json.dumps(cached, indent=1))
        return cached
    trainer = Trainer(config)
    trainer.load_checkpoint()
    key = (config.data.target, config.data.max_train)
    if key not in tasks:
        tasks[key] = test_split(config)
    task = tasks[key]
    model = trainer.ema.module.eval()
    frames = task.val["test"]
    batches = [task.collate([frames[k] for k in range(s, min(s + TEST_BATCH, len(frames)))])
               for s in range(0, len(frames), TEST_BATCH)]
    metrics = evaluate(model, batches, task.predict, task.metrics()).compute()
    rotated = (task.augment(batch, k) for k, batch in enumerate(batches))
    rotated_metrics = evaluate(model, rotated, task.predict, task.metrics()).compute()
    s = task.symmetry(model, task.collate([frames[k] for k in range(min(TEST_BATCH, len(frames)))]))
    error = equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, samples=8,
                               generator=torch.Generator().manual_seed(0))
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    summary = {"test_mae": metrics["mae"], "test_rmse": metrics["rmse"], "test_rotated_mae": rotated_metrics["mae"],
               "unit": task.unit,
               "equivariance": float(error.detach()), "minutes": train_minutes(out),
               "steps": int(rows[-1]["step"]), "epochs": config.trainer.max_epochs,
               "valid_mae": float([r for r in rows if r.get("valid/mae")][-1]["valid/mae"]),
               "test_molecules": len(frames)}
    with atomic_path(cache) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=1))
    return summary


def curve_figure(points: dict, target: str, unit: str, path: Path) -> None:
    fig, ax = axes((6.5, 4.2))
    for name, rows in points.items():
        sizes = sorted(rows)
        ax.plot(sizes, [rows[n] for n in sizes], marker="o", label=f"{RUNS[name][2]} (this work)")
    for paper, value in PUBLISHED.get(target, {}).items():
        ax.plot([FULL_TRAIN[paper]], [value], marker="*", markersize=11, linestyle="none",
                label=f"{paper}, published, full budget")
    ax.set(xscale="log", yscale="log", xlabel="training molecules", ylabel=f"test MAE ({unit})",
           title=f"QM9 {target}: test MAE against training-set size")
    ax.grid(True, which="both", linewidth=0.3)
    ax.legend(fontsize=7)
    save_figure(fig, path, dpi=120)


def finished(config) -> bool:
    """Whether the run has finished (its trainer saved ``model.pt`` at the end)."""
    return (Path(config.trainer.out_dir) / "model.pt").is_file()


def parse_runs(text: str, targets: list[str]) -> list[tuple[str, list[str]]]:
    """``--runs``: ``name`` (every target) or ``name:target`` (that one), as ``(name, its targets)``."""
    if text == "none":
        return []
    runs = []
    for item in text.split(","):
        name, _, only = item.partition(":")
        if only and only not in targets:
            raise ValueError(f"--runs: {item!r} names target {only!r}, which is not in --targets")
        runs.append((name, [only] if only else targets))
    return runs


def parse_epochs(text: str) -> dict[str, int]:
    """``--epochs``: ``target=epochs,...``."""
    epochs = {}
    for item in filter(None, text.split(",")):
        target, sep, value = item.partition("=")
        if not sep or not value.isdigit() or int(value) < 1:
            raise ValueError(f"--epochs: expected target=epochs (a positive int), got {item!r}")
        epochs[target] = int(value)
    return epochs


def write_csv(path: Path, rows: list[dict]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="equivariant,fa_gnn,plain_gnn",
                        help=f"comma-separated, from {', '.join(RUNS)} (name:target for one target only), or none")
    parser.add_argument("--targets", default="gap,mu", help="comma-separated QM9 targets of the main table")
    parser.add_argument("--epochs", default="",
                        help="target=epochs,... (e.g. mu=15,U0=15); targets not named keep the config's epochs")
    parser.add_argument("--size", type=int, default=16000, help="training molecules of the main table")
    parser.add_argument("--curve", default="", help="models of the learning curve (comma-separated), or empty")
    parser.add_argument("--curve-target", default="gap")
    parser.add_argument("--curve-sizes", default="1000,4000,16000")
    parser.add_argument("--out", default="runs/qm9_compare")
    parser.add_argument("--results", default=None, help="where the table, CSVs and figure go (default --out)")
    parser.add_argument("--report-only", action="store_true", help="no training: tables from finished runs")
    parser.add_argument("--timing", action="store_true",
                        help="time 30 training steps of each model of the main table in this process first (kept in "
                             "<out>/timing.json for later reports)")
    parser.add_argument("overrides", nargs="*", help="section.key=value for every run")
    args = parser.parse_args(argv)
    targets = args.targets.split(",")
    try:
        runs, epochs = parse_runs(args.runs, targets), parse_epochs(args.epochs)
    except ValueError as e:
        parser.error(str(e))
    names = [name for name, _ in runs]
    curve = [n for n in args.curve.split(",") if n]
    unknown = [n for n in names + curve if n not in RUNS]
    if unknown:
        parser.error(f"unknown run {unknown[0]!r}; known: {', '.join(RUNS)}")
    out = Path(args.out)
    results = Path(args.results) if args.results else out
    results.mkdir(parents=True, exist_ok=True)
    sizes = [int(n) for n in args.curve_sizes.split(",")]
    main_runs = [(n, t, args.size) for t in targets for n, only in runs if t in only]
    curve_runs = [(n, args.curve_target, size) for n in curve for size in sizes]
    configs = {key: config_of(*key, out, args.overrides, epochs.get(key[1]))
               for key in dict.fromkeys(main_runs + curve_runs)}
    for config in configs.values():  # a cached result of other epochs: not trained further, not reported as this
        cache = Path(config.trainer.out_dir) / "test.json"
        if cache.is_file() and (cached := json.loads(cache.read_text())["epochs"]) != config.trainer.max_epochs:
            parser.error(f"{cache} holds a run of {cached} epochs, not {config.trainer.max_epochs}: pass "
                         f"--epochs {config.data.target}=... with the epochs it was trained with")
    timing = out / "timing.json"  # model -> seconds per epoch of training steps timed alone (16,000 molecules)
    alone = json.loads(timing.read_text()) if timing.is_file() else {}
    if args.timing:  # first, before this process evaluates anything
        for name in names:
            first = next(key for key in main_runs if key[0] == name)
            alone[name] = seconds_per_epoch(configs[first], steps=30, warmup=5)
        with atomic_path(timing) as tmp:
            Path(tmp).write_text(json.dumps(alone, indent=1))
    tasks: dict = {}
    summaries = {}
    for key, config in configs.items():
        if not args.report_only and not finished(config):
            train(config)
        if finished(config):
            summaries[key] = test_summary(config, tasks)
    date = datetime.date.today().isoformat()
    lines = [f"# QM9: test MAE on the whole test split, {torch.get_num_threads()} thread(s)", "",
             "| target | model | train molecules | epochs | test MAE | rotated test MAE | test RMSE | published EGNN / "
             "PaiNN (full budget) | ours / EGNN, PaiNN | equivariance error | train minutes (shared machine) |"
             + (" seconds per epoch timed alone (minutes for the run) |" if alone else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if alone else "")]
    table = []
    for (name, target, size) in main_runs:
        if (name, target, size) not in summaries:
            continue
        s = summaries[(name, target, size)]
        published = PUBLISHED.get(target, {})
        ratio = ", ".join(f"{s['test_mae'] / published[p]:.1f}x" for p in ("EGNN", "PaiNN") if p in published) or "-"
        paper = " / ".join(f"{published[p]:g}" for p in ("EGNN", "PaiNN") if p in published) or "-"
        timed = ((f" {alone[name]:.1f} ({alone[name] * s['epochs'] / 60:.0f}) |" if name in alone else " - |")
                 if alone else "")
        lines.append(f"| {target} | {RUNS[name][2]} | {size} | {s['epochs']} | {s['test_mae']:.4g} {s['unit']} | "
                     f"{s['test_rotated_mae']:.4g} | {s['test_rmse']:.4g} | {paper} | {ratio} | "
                     f"{s['equivariance']:.1e} | {s['minutes']:.0f} |{timed}")
        table.append({"target": target, "model": name, "train_molecules": size, **s,
                      "seconds_per_epoch_timed": alone.get(name),
                      "egnn": published.get("EGNN"), "painn": published.get("PaiNN")})
    points, curve_rows = {}, []
    for (name, target, size) in curve_runs:
        if (name, target, size) in summaries:
            s = summaries[(name, target, size)]
            points.setdefault(name, {})[size] = s["test_mae"]
            curve_rows.append({"target": target, "model": name, "train_molecules": size, **s})
    if curve_rows:
        unit = curve_rows[0]["unit"]
        lines += ["", f"## Learning curve: {args.curve_target}, test MAE ({unit}) against training molecules", "",
                  "| model | " + " | ".join(str(n) for n in sizes) + " |", "|---|" + "---|" * len(sizes)]
        for name, rows in points.items():
            lines.append(f"| {RUNS[name][2]} | " + " | ".join(f"{rows[n]:.4g}" if n in rows else "-" for n in sizes)
                         + " |")
        curve_figure(points, args.curve_target, unit, results / f"qm9_learning_curve_{args.curve_target}.png")
        write_csv(results / "qm9_learning_curve.csv", curve_rows)
    if table:
        write_csv(results / "qm9_compare.csv", table)
    report = "\n".join(lines) + "\n"
    print(report)
    with atomic_path(results / f"qm9_compare_cpu_{date}.md") as tmp:
        Path(tmp).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

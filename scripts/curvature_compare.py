"""Hessian spectra of trained runs side by side: ``equilib curvature`` on each run (unless its report exists), then one
table of the top eigenvalues, the Hutch++ trace, the stability ratios at the config's learning rate and a metric of
the run, per run and as mean +- standard deviation over the runs that share a label (seeds).

    # the potential with each tensor-product backend (trained as in scripts/results/curvature/backends_*.md)
    python scripts/curvature_compare.py --run grid=runs/curv_backends/grid --run cg=runs/curv_backends/cg \\
        --run gaunt=runs/curv_backends/gaunt --run cp=runs/curv_backends/cp --metric val_id/forces_mae
    # n-body: the equivariant model against FA-GNN, three seeds each (scripts/nbody_compare.py's runs)
    python scripts/curvature_compare.py --run equivariant=runs/nbody_compare/equivariant/seed{0,1,2} \\
        --run fa_gnn=runs/nbody_compare/fa_gnn_stochastic/seed{0,1,2} --metric test/mse

``--run LABEL=DIR`` repeats; a shell brace list after ``=`` gives several runs of one label (the shell expands
``label=a/seed{0,1}`` to ``label=a/seed0 label=a/seed1``: the script reads a bare DIR after a labelled one as
another run of that label). ``--curvature-args`` are passed to ``equilib curvature`` (e.g. ``--batches 1``).
"""

from __future__ import annotations

import argparse
import csv
import math
import re
import shlex
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.cli import main as cli
from scripts._experiments import mean_sd


def parse_runs(items: list[str]) -> list[tuple[str, Path]]:
    """``[(label, run directory)]`` from ``LABEL=DIR`` items (a bare ``DIR`` takes the previous label)."""
    runs, label = [], None
    for item in items:
        if "=" in item:
            label, _, path = item.partition("=")
        elif label is None:
            raise SystemExit(f"--run: expected LABEL=DIR first, got {item!r}")
        else:
            path = item
        if not (Path(path) / "checkpoint.pt").is_file():
            raise SystemExit(f"--run: no checkpoint.pt in {path!r} (expected the out_dir of equilib train)")
        runs.append((label, Path(path)))
    return runs


def report_dir(run: Path) -> Path:
    """Where ``equilib curvature`` writes the report of the run's final checkpoint."""
    step = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)["step"]
    return run / f"curvature_step{step}"


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def last_value(run: Path, metric: str) -> float:
    """The metric's last logged value in the run's metrics.csv (nan if it never was)."""
    values = [float(row[metric]) for row in rows(run / "metrics.csv") if row.get(metric)]
    return values[-1] if values else math.nan


def reading(run: Path, metric: str, top: int) -> dict:
    """The report's numbers for one run."""
    directory = report_dir(run)
    eigenvalues = [float(row["eigenvalue"]) for row in rows(directory / "eigenvalues.csv")][:top]
    trace = rows(directory / "trace.csv")[0]
    config = next(row for row in rows(directory / "stability.csv") if row["source"] == "config")
    counted = re.search(r"(\d+) parameters", (directory / "report.md").read_text())
    parameters = int(counted.group(1)) if counted else None
    return {"eigenvalues": eigenvalues, "trace": float(trace["value"]), "trace_stderr": float(trace["stderr"]),
            "lr": float(config["lr"]), "gd": float(config["lr * lambda_max"]),
            "adam": float(config["lr * adam_sharpness"]) if config.get("lr * adam_sharpness") else math.nan,
            "metric": last_value(run, metric), "parameters": parameters}


def spread(values: list[float], digits: int) -> str:
    """:func:`scripts._experiments.mean_sd` of the values that are not nan, in ``g`` format; ``-`` if none is."""
    values = [v for v in values if not math.isnan(v)]
    return mean_sd(values, digits, "g") if values else "-"


def table(readings: list[tuple[str, Path, dict]], metric: str, top: int) -> list[str]:
    header = ["run", "parameters", metric, f"lambda_1 .. lambda_{top}", "trace (Hutch++)", "lr * lambda_max",
              "lr * Adam sharpness"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, run, r in readings:
        lines.append(f"| {label} ({run}) | {r['parameters'] or '-'} | {r['metric']:.4g} | "
                     f"{', '.join(f'{v:.4g}' for v in r['eigenvalues'])} | {r['trace']:.3g} +- "
                     f"{r['trace_stderr']:.2g} | {r['gd']:.3g} | {r['adam']:.3g} |")
    labels = list(dict.fromkeys(label for label, _, _ in readings))
    if any(sum(1 for other, _, _ in readings if other == label) > 1 for label in labels):
        lines += ["", "Mean +- standard deviation over the runs of each label:", "",
                  "| label | runs | " + metric + " | lambda_max | lambda_2 | trace | lr * lambda_max | lr * Adam "
                  "sharpness |", "|---|---|---|---|---|---|---|---|"]
        for label in labels:
            mine = [r for other, _, r in readings if other == label]
            second = [r["eigenvalues"][1] if len(r["eigenvalues"]) > 1 else math.nan for r in mine]
            lines.append(f"| {label} | {len(mine)} | {spread([r['metric'] for r in mine], 4)} | "
                         f"{spread([r['eigenvalues'][0] for r in mine], 4)} | {spread(second, 4)} | "
                         f"{spread([r['trace'] for r in mine], 3)} | {spread([r['gd'] for r in mine], 3)} | "
                         f"{spread([r['adam'] for r in mine], 3)} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", nargs="+", action="extend", required=True, help="LABEL=DIR [DIR ...] (repeatable)")
    parser.add_argument("--metric", required=True, help="a metrics.csv column, e.g. val_id/forces_mae or test/mse")
    parser.add_argument("--top", type=int, default=5, help="eigenvalues shown (the report's top-k)")
    parser.add_argument("--curvature-args", default="", help="extra arguments of equilib curvature")
    parser.add_argument("--out", default=None, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    runs = parse_runs(args.run)
    for _, run in runs:
        if not (report_dir(run) / "eigenvalues.csv").is_file():
            command = ["curvature", str(run), "--top-k", str(args.top), *shlex.split(args.curvature_args)]
            print("$ equilib", " ".join(command), flush=True)
            if cli(command) != 0:
                raise SystemExit(f"equilib curvature failed on {run}")
    lines = table([(label, run, reading(run, args.metric, args.top)) for label, run in runs], args.metric, args.top)
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The main job over several seeds: mean and spread of every held-out metric and of the relaxation summary.

One seed's figures are not a result: the same config and seed gave val_id force MAE 0.0241 on one machine and 0.0310
on another (floating-point differences change the trajectory). This runs ``scripts/main_job.py`` once per seed
(``trainer.seed=k``, output in ``<out>/seed_<k>``; a finished seed is not retrained) and prints each metric as mean
+- sample standard deviation with the per-seed values.

    python scripts/main_job_seeds.py --seeds 0 1 2                       # the default config
    python scripts/main_job_seeds.py --seeds 0 1 2 --root /tmp/old_checkout --out results/seeds_old   # another checkout
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METRICS = [("energy_per_atom_mae", "E MAE/atom (meV)", 1e3, "{:.2f}"), ("forces_mae", "F MAE (eV/A)", 1, "{:.4f}"),
           ("forces_cosine", "F cos", 1, "{:.3f}"), ("efwt", "EFwT (%)", 100, "{:.1f}")]
RELAXATION = [("energy_mae", "relaxed-energy MAE (eV)", "{:.3f}"), ("within_0.02_eV_of_reference_minimum",
              "within 0.02 eV of EMT's minimum (of 10)", "{:.1f}"), ("adwt", "ADwT", "{:.2f}")]


def spread(values: list[float], fmt: str) -> str:
    mean = statistics.mean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(mean)} +- {fmt.format(sd)} ({', '.join(fmt.format(v) for v in values)})"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("overrides", nargs="*", help="section.key=value config overrides for every seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--config", default="models/potential_grid.yaml")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose scripts/main_job.py runs")
    parser.add_argument("--out", default="results/main_job_seeds")
    args = parser.parse_args(argv)
    if len(args.seeds) < 2:
        parser.error("--seeds: expected at least two seeds (a spread needs them)")
    root, out = Path(args.root).resolve(), Path(args.out).resolve()
    summaries = {}
    for seed in args.seeds:
        run = out / f"seed_{seed}"
        if not (run / "summary.json").exists():
            command = [sys.executable, str(root / "scripts/main_job.py"), "--config", args.config, "--out", str(run),
                       f"trainer.seed={seed}", "logging.progress=false", *args.overrides]
            subprocess.run(command, cwd=root, check=True, env={**os.environ, "PYTHONPATH": str(root)})
        summaries[seed] = json.loads((run / "summary.json").read_text())
    first = summaries[args.seeds[0]]
    print(f"# main job over seeds {args.seeds}: {first['backend']}, step {first['final']['step']}, "
          f"{root} (mean +- sample sd (per seed))\n")
    print("| split | " + " | ".join(title for _, title, _, _ in METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for split in [row["split"] for row in first["splits"]]:
        cells = [spread([s["final"][f"{split}/{key}"] * scale for s in summaries.values()], fmt)
                 for key, _, scale, fmt in METRICS]
        print(f"| {split} | " + " | ".join(cells) + " |")
    print()
    for key, title, fmt in RELAXATION:
        print(f"- {title}: {spread([s['relaxation_summary'][key] for s in summaries.values()], fmt)}")
    minutes = spread([s["total_seconds"] / 60 for s in summaries.values()], "{:.1f}")
    print(f"- minutes (train + evaluate + relax): {minutes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

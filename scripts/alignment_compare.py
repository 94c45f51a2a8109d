"""Does the Hessian-alignment loss term across metals lower the held-out-metal force error? The default potential
(``models/potential_grid.yaml``) trained without the term and with it (Hemati et al., ICCV 2023; the readout's
parameters, normalised spreads, weight 0.1), at equal steps and at equal time, and the force MAE on the in-domain
(``val_id``), held-out-metal (``val_ood_cat``) and held-out-both (``val_ood_both``) validation sets at the end.

    OMP_NUM_THREADS=1 python scripts/alignment_compare.py                  # every run, seed 0
    python scripts/alignment_compare.py --report-only                      # the table from finished runs

Equal time: the ``*_equal_time`` runs take ``STEPS / ratio`` steps, ``ratio`` being the term's cost per step
relative to a step without it (``ALIGN_COST``, measured with ``--time-steps``), so that their cosine schedules end
when the run without the term would have spent the same time. ``--time-steps N`` times N training steps of each
variant taking turns on the same random batches and prints the ratios.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.train import Trainer
from scripts import _experiments as experiments

STEPS = 1000
TERM = ("loss.terms=[{{name: hessian_alignment, weight: 0.1, params: readout, normalize: true, probes: 2, "
        "hessian_weight: {hessian}}}]")
GRADIENT, HESSIAN = TERM.format(hessian=0.0), TERM.format(hessian=1.0)
ALIGN_COST = {"gradient": 4.0, "hessian": 7.7}  # step time over a step without the term (--time-steps, loaded)
BASE = ["trainer.max_minutes=200", "trainer.eval_every=500", "trainer.checkpoint_every=250"]
RUNS = {  # name -> (config, overrides, label)
    "none": ("models/potential_grid.yaml", [*BASE, f"trainer.max_steps={STEPS}"], "no term"),
    "gradient": ("models/potential_grid.yaml", [*BASE, f"trainer.max_steps={STEPS}", GRADIENT],
                 "gradient alignment (readout)"),
    "hessian": ("models/potential_grid.yaml", [*BASE, f"trainer.max_steps={STEPS}", HESSIAN],
                "gradient + Hessian-diagonal alignment (readout, 2 probes)"),
    "gradient_equal_time": ("models/potential_grid.yaml",
                            [*BASE, f"trainer.max_steps={round(STEPS / ALIGN_COST['gradient'])}", GRADIENT],
                            "gradient alignment, equal time"),
    "hessian_equal_time": ("models/potential_grid.yaml",
                           [*BASE, f"trainer.max_steps={round(STEPS / ALIGN_COST['hessian'])}", HESSIAN],
                           "gradient + Hessian alignment, equal time"),
}
SPLITS = ("val_id", "val_ood_cat", "val_ood_both")


def time_steps(configs: dict, steps: int) -> dict[str, float]:
    """Median seconds of a training step of each run's config, taking turns on the same random batches."""
    trainers = {name: Trainer(config) for name, config in configs.items()}
    n = len(next(iter(trainers.values())).train)
    generator = torch.Generator().manual_seed(0)
    size = next(iter(configs.values())).data.batch_size
    seconds = {name: [] for name in trainers}
    for k in range(steps + 2):
        indices = torch.randperm(n, generator=generator)[:size].tolist()
        for name, trainer in trainers.items():
            batch = trainer.batch(indices)
            start = time.perf_counter()
            trainer.train_step(batch)
            if k >= 2:
                seconds[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in seconds.items()}


def summary(config) -> dict:
    """The last evaluation of a finished run."""
    last = experiments.evaluations(config, "val_id/forces_mae")[-1]
    return {"steps": int(last["step"]), "minutes": float(last["seconds"]) / 60,
            **{split: float(last[f"{split}/forces_mae"]) for split in SPLITS}}


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, RUNS, ",".join(RUNS), "0", "runs/alignment_compare")
    parser.add_argument("--time-steps", type=int, default=0, help="time this many steps of each variant, then stop")
    args = parser.parse_args(argv)
    names, seeds = experiments.runs_and_seeds(parser, args, RUNS)
    out = Path(args.out)
    configs = {name: [experiments.config_of(RUNS, name, seed, out, None, args.overrides) for seed in seeds]
               for name in names}
    if args.time_steps:
        medians = time_steps({name: runs[0] for name, runs in configs.items()}, args.time_steps)
        reference = medians.get("none")
        for name, value in medians.items():
            ratio = f" ({value / reference:.1f}x)" if reference else ""
            print(f"{name}: {value:.3f} s per step{ratio}")
        return 0
    if not args.report_only:
        for config in (c for runs in configs.values() for c in runs):
            experiments.train(config)
    print(f"\n# Hessian alignment across metals: force MAE (eV/A) at the end, seeds {args.seeds}\n")
    print("| run | steps | wall min | " + " | ".join(f"{s} force MAE" for s in SPLITS) + " |")
    print("|---|---|---|" + "---|" * len(SPLITS))
    for name, runs in configs.items():
        rows = [summary(c) for c in runs]
        cells = " | ".join(experiments.mean_sd([r[s] for r in rows], 4) for s in SPLITS)
        print(f"| {RUNS[name][2]} | {rows[0]['steps']} | {statistics.mean(r['minutes'] for r in rows):.1f} | "
              f"{cells} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A rotation regulariser on a non-equivariant interatomic potential, against exact invariance, at equal wall time.

On the bundled OC20-style data, each run gets the same budget of ``--minutes`` of training: the script times a few
training steps of the run's config in this process, sets ``trainer.max_steps`` so that the cosine schedule ends
when the budget does (``max_minutes`` caps it at twice the budget plus a minute), and trains. The runs:

- ``plain``: the plain Cartesian message-passing potential (``models/plain_potential.yaml``), not rotation-invariant;
- ``plain_o3``: the same with the ``soft_equivariance`` loss term, ``method: sampled``: the relative equivariance
  error of its energies and forces under one random O(3) element per step, at strength ``--strength`` (each step
  also evaluates the rotated batch, so it gets fewer steps in the budget);
- ``fa``: the same backbone frame-averaged with one random frame per step (``models/fa_potential.yaml``), exactly
  E(3)-invariant, at lr 0.003 (at the config's 0.01 it collapses to constant energies in this long schedule);
- ``equivariant``: the equivariant potential of the main job (``models/potential_grid.yaml``).

The report gives the steps each run made, its minutes, the final EMA model's force MAE on every validation split, its
energy-per-atom MAE in distribution and its equivariance error under E(3) (a ``val_id`` batch, 8 elements).

    OMP_NUM_THREADS=1 python scripts/soft_potential.py                          # every run, seed 0, 10 minutes
    OMP_NUM_THREADS=1 python scripts/soft_potential.py --runs plain,plain_o3 --minutes 5 --strength 10
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import _experiments as experiments  # noqa: E402
from scripts._experiments import mean_sd  # noqa: E402

SPLITS = ("val_id", "val_ood_ads", "val_ood_cat", "val_ood_both")
LABELS = {"plain": "plain potential", "plain_o3": "plain potential + sampled O(3) regulariser",
          "fa": "plain potential, frame-averaged (stochastic)", "equivariant": "equivariant potential (grid)"}


def runs_of(strength: float) -> dict:
    """name -> (config, overrides, label)."""
    term = (f"loss.terms=[{{name: soft_equivariance, method: sampled, groups: [O3], strengths: [{strength}], "
            "samples: 1}]")
    return {"plain": ("models/plain_potential.yaml", [], LABELS["plain"]),
            "plain_o3": ("models/plain_potential.yaml", [term], LABELS["plain_o3"] + f", strength {strength:g}"),
            "fa": ("models/fa_potential.yaml", ["optimizer.lr=0.003"], LABELS["fa"] + ", lr 0.003"),
            "equivariant": ("models/potential_grid.yaml", [], LABELS["equivariant"])}


def budget_overrides(config, minutes: float, steps: int, evaluations: int, share: float) -> list[str]:
    """Overrides giving ``config`` ``max_steps`` for ``minutes`` of training at this process's measured step time
    (``share`` of the budget for steps, the rest for evaluations and checkpoints), ``max_minutes`` a safety cap at
    twice the budget plus a minute."""
    seconds = experiments.seconds_per_step(config, steps=steps, warmup=3)
    max_steps = max(evaluations, int(minutes * 60 * share / seconds))
    every = max(1, max_steps // evaluations)
    return [f"trainer.max_steps={max_steps}", f"trainer.max_minutes={2 * minutes + 1}", f"trainer.eval_every={every}",
            f"trainer.checkpoint_every={every}", "callbacks=[]"]


def budgeted_config(runs: dict, name: str, seed: int, args):
    """The run's config with its budget: measured and saved in ``budget.txt`` beside the run the first time, read
    from there when the run resumes or is reported."""
    extra = ["logging.progress=false", *args.overrides]
    config = experiments.config_of(runs, name, seed, Path(args.out), None, extra)
    saved = Path(config.trainer.out_dir) / "budget.txt"
    if saved.is_file():
        budget = saved.read_text().split()
    else:
        budget = budget_overrides(config, args.minutes, args.calibration_steps, args.evaluations, 0.9)
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text("\n".join(budget) + "\n")
    return experiments.config_of(runs, name, seed, Path(args.out), None, [*extra, *budget])


def run_summary(config) -> dict:
    """The last evaluation of a finished run and its EMA model's E(3) equivariance error on a ``val_id`` batch."""
    rows = experiments.evaluations(config, "val_id/forces_mae")
    last = rows[-1]
    _, error = experiments.finished(config, "val_id")
    return {"steps": int(last["step"]), "minutes": float(last["seconds"]) / 60, "error": error,
            "energy": float(last["val_id/energy_per_atom_mae"]),
            **{split: float(last[f"{split}/forces_mae"]) for split in SPLITS}}


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, LABELS, ",".join(LABELS), "0", "runs/soft_potential")
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget of every run (default 10)")
    parser.add_argument("--strength", type=float, default=1.0, help="strength of the O(3) regulariser (default 1)")
    parser.add_argument("--calibration-steps", type=int, default=20, help="steps timed to set max_steps")
    parser.add_argument("--evaluations", type=int, default=5, help="evaluations per run (default 5)")
    args = parser.parse_args(argv)
    runs = runs_of(args.strength)
    names, seeds = experiments.runs_and_seeds(parser, args, runs)
    if not args.report_only:
        for name in names:
            for seed in seeds:
                experiments.train(budgeted_config(runs, name, seed, args))
    configs = {name: [budgeted_config(runs, name, seed, args) for seed in seeds] for name in names}
    print(f"\n# Potentials at equal wall time ({args.minutes:g} minutes each), seeds {args.seeds}: the final EMA "
          "model's force MAE (eV/A) per split\n")
    print("| model | steps | minutes | " + " | ".join(f"{s} forces" for s in SPLITS)
          + " | val_id energy/atom (eV) | E(3) error |")
    print("|---|---|---|" + "---|" * (len(SPLITS) + 2))
    for name, seeded in configs.items():
        summaries = [run_summary(c) for c in seeded]
        cells = [mean_sd([s[split] for s in summaries], 4) for split in SPLITS]
        print(f"| {runs[name][2]} | {', '.join(str(s['steps']) for s in summaries)} | "
              f"{sum(s['minutes'] for s in summaries) / len(summaries):.1f} | {' | '.join(cells)} | "
              f"{mean_sd([s['energy'] for s in summaries], 4)} | {mean_sd([s['error'] for s in summaries], 1, 'e')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Soft equivariance on PER's modified inertia (Kim et al. ICML 2023): target ``I + a (I e_z) e_z^T``, exactly
O(2)-equivariant about z and approximately O(3)-equivariant (``datasets/soft``, axis z, a = 0.3). The same
``soft_mlp`` trained free (weight decay only), exactly O(3)- or O(2)z-equivariant, as RPP on O(3), with one PER
regulariser (O(3) or O(2) about z alone), and with PER's mixture of candidates (O(3) at strength 0, O(2) about x, y
and z at 100) whose strengths are rescaled by PER's rule once or continuously.

The report gives, over the seeds, the test and OOD MSE at the evaluation with the lowest validation MSE, the final
EMA model's equivariance errors under O(3) and O(2) about z (test inputs, 8 elements), and the final strengths of the
tuned runs (the symmetry the data has keeps its strength).

    python scripts/soft_compare.py                        # every run, seeds 0, 1, 2
    python scripts/soft_compare.py --runs per --seeds 0   # one run
    python scripts/soft_compare.py --report-only
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.groups import equivariance_error  # noqa: E402
from equilib.soft import group_named  # noqa: E402
from scripts import _experiments as experiments  # noqa: E402
from scripts._experiments import mean_sd  # noqa: E402

CONFIG = "models/soft_inertia.yaml"
NO_TERMS = "loss.terms=[]"
TUNED = "groups: [O3, O2x, O2y, O2z], strengths: [0, 100, 100, 100], start: 1500, window: 100, power: 2"
RUNS = {  # name -> (config, overrides, label)
    "mlp": (CONFIG, [NO_TERMS], "MLP (free, weight decay only)"),
    "exact_o3": (CONFIG, [NO_TERMS, "model.mode=exact", "model.group=O3"], "exactly O(3)-equivariant (EMLP)"),
    "exact_o2z": (CONFIG, [NO_TERMS, "model.mode=exact", "model.group=O2z"],
                  "exactly O(2)z-equivariant (the true symmetry)"),
    "rpp_o3": (CONFIG, ["model.mode=rpp", "model.group=O3", "loss.terms=[{name: rpp_prior}]"], "RPP on O(3)"),
    "single_o3": (CONFIG, ["loss.terms=[{name: soft_equivariance, groups: [O3], strengths: [100]}]"],
                  "one regulariser: O(3), strength 100"),
    "single_o2z": (CONFIG, ["loss.terms=[{name: soft_equivariance, groups: [O2z], strengths: [100]}]"],
                   "one regulariser: O(2)z, strength 100"),
    "per": (CONFIG, [f"loss.terms=[{{name: soft_equivariance, {TUNED}, rule: per}}]"],
            "PER: O(3), O(2)x, y, z, rescaled once (step 1500)"),
    "per_continuous": (CONFIG, [f"loss.terms=[{{name: soft_equivariance, {TUNED}, rule: continuous}}]"],
                       "O(3), O(2)x, y, z, rescaled continuously from step 1500"),
}
GROUPS = ("O3", "O2x", "O2y", "O2z")


def run_summary(config) -> dict:
    """One finished run: the evaluation with the lowest validation MSE, the final strengths (tuned runs) and the
    final EMA model's equivariance errors under O(3) and O(2) about z on the first test batch."""
    rows = experiments.evaluations(config, "valid/mse")
    best = min(rows, key=lambda r: float(r["valid/mse"]))
    trainer, _ = experiments.finished(config)
    batch = next(trainer.eval_batches("test"))
    rep_in, rep_out = trainer.task.in_rep, trainer.task.out_rep
    errors = {}
    with torch.no_grad():
        for name in ("O3", "O2z"):
            errors[name] = float(equivariance_error(trainer.ema.module.eval(), group_named(name), batch.x, rep_in,
                                                    rep_out, samples=8, generator=torch.Generator().manual_seed(0)))
    last = rows[-1]
    strengths = {g: float(last[f"train_loss_soft_equivariance_lambda_{g}"]) for g in GROUPS
                 if last.get(f"train_loss_soft_equivariance_lambda_{g}")}
    return {"best_epoch": int(best["step"]) // trainer.steps_per_epoch, "test": float(best["test/mse"]),
            "ood": float(best["ood/mse"]), "errors": errors, "strengths": strengths,
            "minutes": float(last["seconds"]) / 60}


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, RUNS, ",".join(RUNS), "0,1,2", "runs/soft_compare")
    args = parser.parse_args(argv)
    names, seeds = experiments.runs_and_seeds(parser, args, RUNS)
    out = Path(args.out)
    configs = {name: [experiments.config_of(RUNS, name, seed, out, args.epochs, args.overrides) for seed in seeds]
               for name in names}
    if not args.report_only:
        for config in (c for runs in configs.values() for c in runs):
            experiments.train(config)
    print(f"\n# modified inertia (axis z, a = 0.3): test and OOD MSE at the best validation evaluation, seeds "
          f"{args.seeds}\n")
    print("| model | best epochs | test MSE | OOD MSE | O(3) error | O(2)z error | final strengths O3, O2x, O2y, O2z "
          "| minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, runs in configs.items():
        summaries = [run_summary(c) for c in runs]
        strengths = ""
        if summaries[0]["strengths"]:
            strengths = "; ".join(", ".join(f"{s['strengths'].get(g, 0.0):.3g}" for g in GROUPS) for s in summaries)
        print(f"| {RUNS[name][2]} | {', '.join(str(s['best_epoch']) for s in summaries)} | "
              f"{mean_sd([s['test'] for s in summaries], 4, 'e')} | {mean_sd([s['ood'] for s in summaries], 4, 'e')}"
              f" | {mean_sd([s['errors']['O3'] for s in summaries], 2, 'e')} | "
              f"{mean_sd([s['errors']['O2z'] for s in summaries], 2, 'e')} | {strengths} | "
              f"{sum(s['minutes'] for s in summaries) / len(summaries):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

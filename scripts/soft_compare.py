"""Soft equivariance on data whose symmetry holds only partly. ``--task inertia``: PER's modified inertia (Kim et al.
ICML 2023), target ``I + a (I e_z) e_z^T``, exactly O(2)-equivariant about z and approximately O(3)-equivariant
(``datasets/soft``, a = 0.3). ``--task pendulum``: EMLP's double spring pendulum (O(2) about z exact, gravity breaks
O(3)); ``--task windy``: RPP's windy pendulum (O(2) about z broken too), forecast by a Hamiltonian flow of the energy
network (``datasets/broken_dynamics``). The same ``soft_mlp`` network trained free (weight decay only), exactly O(3)-
or O(2)z-equivariant, as RPP on O(3), with one PER regulariser (O(3) or O(2) about z alone), and with PER's mixture
of candidates (O(3) at strength 0, O(2) about x, y and z at the task's strength) rescaled by PER's rule once or
continuously.

``--task nbody_field``: EGNN's charged 5-body task with a uniform field E = 0.3 along z (``python -m datasets.nbody
--field 0.3 --name charged5_field0.3``; O(2) about z and translations exact, the rest of E(3) broken). The plain
GNN free and with the sampled equivariance error of each candidate as its regulariser (``method: sampled``: any
model), against the exactly E(3)-equivariant message passing, which cannot represent the field.

The report gives, over the seeds, the test (and OOD) MSE at the evaluation with the lowest validation MSE, the final
EMA model's equivariance errors under O(3) and O(2) about z (a test batch, 8 elements), and the final strengths of the
tuned runs (the symmetry the data has keeps its strength).

    python scripts/soft_compare.py                                   # inertia, every run, seeds 0, 1, 2
    python scripts/soft_compare.py --task pendulum --runs mlp,per --seeds 0
    python scripts/soft_compare.py --task nbody_field --seeds 0,1
    python scripts/soft_compare.py --report-only
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.groups import equivariance_error  # noqa: E402
from equilib.soft import group_named  # noqa: E402
from scripts import _experiments as experiments  # noqa: E402
from scripts._experiments import mean_sd  # noqa: E402

WINDY = "data.path=datasets/broken_dynamics/data/windy_double_spring_pendulum.npz"
FIELD = ["data.path=datasets/nbody/data/charged5_field0.3.npz", "trainer.max_epochs=200", "trainer.eval_every=600",
         "trainer.checkpoint_every=600", "callbacks=[]"]
TASKS = {  # name -> (config, extra overrides, strength of the O(2) candidates, rescaling step, window)
    "inertia": ("models/soft_inertia.yaml", [], 100, 1500, 100),
    "pendulum": ("models/soft_pendulum.yaml", [], 0.001, 250, 50),
    "windy": ("models/soft_pendulum.yaml", [WINDY], 0.001, 250, 50),
    "nbody_field": ("models/nbody_gnn.yaml", FIELD, 1, 1500, 100),
}
LABELS = {
    "mlp": "MLP (free, weight decay only)", "exact_o3": "exactly O(3)-equivariant (EMLP)",
    "exact_o2z": "exactly O(2)z-equivariant", "rpp_o3": "RPP on O(3)",
    "single_o3": "one regulariser: O(3)", "single_o2z": "one regulariser: O(2)z",
    "per": "PER: O(3), O(2)x, y, z, rescaled once", "per_continuous": "O(3), O(2)x, y, z, rescaled continuously",
}
NBODY_LABELS = {"mlp": "plain GNN (free)", "exact_o3": "E(3)-equivariant message passing (exact)"}


def runs_of(task: str) -> dict:
    """The runs of ``task``: name -> (config, overrides, label)."""
    config, extra, strength, start, window = TASKS[task]
    none = "loss.terms=[]"
    sampled = ", method: sampled" if task == "nbody_field" else ""

    def term(groups: str, strengths: str, rule: str) -> str:
        return (f"loss.terms=[{{name: soft_equivariance, groups: [{groups}], strengths: [{strengths}], rule: {rule}, "
                f"start: {start}, window: {window}{sampled}}}]")

    tuned = ("O3, O2x, O2y, O2z", f"0, {strength}, {strength}, {strength}")
    overrides = {
        "mlp": [none], "exact_o3": [none, "model.mode=exact", "model.group=O3"],
        "exact_o2z": [none, "model.mode=exact", "model.group=O2z"],
        "rpp_o3": ["model.mode=rpp", "model.group=O3", "loss.terms=[{name: rpp_prior}]"],
        "single_o3": [term("O3", str(strength), "fixed")],
        "single_o2z": [term("O2z", str(strength), "fixed")],
        "per": [term(*tuned, "per")],
        "per_continuous": [term(*tuned, "continuous")],
    }
    if task != "nbody_field":
        return {name: (config, [*extra, *o], LABELS[name]) for name, o in overrides.items()}
    runs = {name: (config, [*extra, *overrides[name]], NBODY_LABELS.get(name, LABELS[name]))
            for name in ("mlp", "single_o3", "single_o2z", "per", "per_continuous")}
    runs["exact_o3"] = ("models/nbody_equivariant.yaml", [*extra, none], NBODY_LABELS["exact_o3"])
    return runs


GROUPS = ("O3", "O2x", "O2y", "O2z")


def run_summary(config) -> dict:
    """One finished run: the evaluation with the lowest validation MSE, the final strengths (tuned runs) and the
    final EMA model's equivariance errors under O(3) and O(2) about z on the first test batch."""
    rows = experiments.evaluations(config, "valid/mse")
    best = min(rows, key=lambda r: float(r["valid/mse"]))
    trainer, _ = experiments.finished(config)
    batch = next(trainer.eval_batches("test"))
    s = trainer.task.symmetry(trainer.ema.module.eval(), batch)
    errors = {}
    with torch.no_grad():
        for name in ("O3", "O2z"):
            errors[name] = float(equivariance_error(s.fn, group_named(name), s.inputs, s.in_reps, s.out_reps,
                                                    samples=8, generator=torch.Generator().manual_seed(0)))
    last = rows[-1]
    strengths = {g: float(last[f"train_loss_soft_equivariance_lambda_{g}"]) for g in GROUPS
                 if last.get(f"train_loss_soft_equivariance_lambda_{g}")}
    return {"best_epoch": int(best["step"]) // trainer.steps_per_epoch, "test": float(best["test/mse"]),
            "ood": float(best["ood/mse"]) if best.get("ood/mse") else float("nan"), "errors": errors,
            "strengths": strengths,
            "minutes": float(last["seconds"]) / 60}


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, LABELS, "all", "0,1,2", "runs/soft_compare")
    parser.add_argument("--task", default="inertia", choices=sorted(TASKS), help="the data (default inertia)")
    args = parser.parse_args(argv)
    runs = runs_of(args.task)
    if args.runs == "all":
        args.runs = ",".join(runs)
    names, seeds = experiments.runs_and_seeds(parser, args, runs)
    out = Path(args.out) if args.task == "inertia" else Path(args.out) / args.task
    configs = {name: [experiments.config_of(runs, name, seed, out, args.epochs, args.overrides) for seed in seeds]
               for name in names}
    if not args.report_only:
        for config in (c for seeded in configs.values() for c in seeded):
            experiments.train(config)
    print(f"\n# {args.task}: test and OOD MSE at the best validation evaluation, seeds {args.seeds}\n")
    print("| model | best epochs | test MSE | OOD MSE | O(3) error | O(2)z error | final strengths O3, O2x, O2y, O2z "
          "| minutes |")
    print("|---|---|---|---|---|---|---|---|")
    for name, seeded in configs.items():
        summaries = [run_summary(c) for c in seeded]
        strengths = ""
        if summaries[0]["strengths"]:
            strengths = "; ".join(", ".join(f"{s['strengths'].get(g, 0.0):.3g}" for g in GROUPS) for s in summaries)
        oods = [s["ood"] for s in summaries]
        ood = "-" if any(math.isnan(v) for v in oods) else mean_sd(oods, 4, "e")  # no OOD split
        print(f"| {runs[name][2]} | {', '.join(str(s['best_epoch']) for s in summaries)} | "
              f"{mean_sd([s['test'] for s in summaries], 4, 'e')} | {ood}"
              f" | {mean_sd([s['errors']['O3'] for s in summaries], 2, 'e')} | "
              f"{mean_sd([s['errors']['O2z'] for s in summaries], 2, 'e')} | {strengths} | "
              f"{sum(s['minutes'] for s in summaries) / len(summaries):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

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

``--task pendulum_sampled`` and ``--task windy_sampled``: the same with the flows' sampled equivariance errors as the
regularisers (they measure the function the data shaped, where the projection penalties measure the weights).

``--task se3``: PER's SyntheticSE3 (the mean distance of three points plus a rotation-breaking term, ``l1distance``
with a = -1: translations exact, rotations broken). Translations are not linear maps, so the candidates SE(3), SO(3)
and translations are regularised by their sampled equivariance errors (the positions moved, ``method: sampled``), and
exact translation invariance is the ``soft_mlp`` on centred positions (``model.centre``).

The report gives, over the seeds, the test (and OOD) MSE at the evaluation with the lowest validation MSE, the final
EMA model's equivariance errors under O(3) and O(2) about z (a test batch, 8 elements), and the final strengths of the
tuned runs (the symmetry the data has keeps its strength).

    python scripts/soft_compare.py                                   # inertia, every run, seeds 0, 1, 2
    python scripts/soft_compare.py --task pendulum --runs mlp,per --seeds 0
    python scripts/soft_compare.py --task nbody_field --seeds 0,1
    python scripts/soft_compare.py --task se3
    python scripts/soft_compare.py --report-only
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.soft import group_named  # noqa: E402
from scripts import _experiments as experiments  # noqa: E402
from scripts._experiments import mean_sd  # noqa: E402

WINDY = "data.path=datasets/broken_dynamics/data/windy_double_spring_pendulum.npz"
FIELD = ["data.path=datasets/nbody/data/charged5_field0.3.npz", "trainer.max_epochs=200", "trainer.eval_every=600",
         "trainer.checkpoint_every=600", "callbacks=[]"]


class Task(NamedTuple):
    """One experiment: the config and its overrides, the candidate groups of each kind of run, the tuning schedule.

    Attributes:
        config: The config file of every run (except ``exact_config``'s).
        extra: Overrides of every run.
        mixture: The candidates of the tuned runs (``per``, ``per_continuous``; none with fewer than two).
        strengths: Their initial strengths (PER starts O(3) at 0 on inertia).
        exact: Groups of the exactly equivariant runs.
        singles: Groups regularised alone, at ``strength``.
        rpp: Groups of the residual-pathway runs.
        report: Groups whose equivariance error the report gives.
        strength: Strength of a single regulariser.
        start: PER's rescaling step (and the continuous rule's first tuned step).
        window: Steps averaged before the rescaling.
        method: The regulariser: ``"projection"`` (the model's own penalties) or ``"sampled"``.
        exact_config: A config of an exactly equivariant model for the ``exact_o3`` run instead of ``model.mode=exact``.
        free_label: The label of the unregularised run.
    """

    config: str
    extra: tuple = ()
    mixture: tuple = ("O3", "O2x", "O2y", "O2z")
    strengths: tuple = ()
    exact: tuple = ("O3", "O2z")
    singles: tuple = ("O3", "O2z")
    rpp: tuple = ("O3",)
    report: tuple = ("O3", "O2z")
    strength: float = 100.0
    start: int = 1500
    window: int = 100
    method: str = "projection"
    exact_config: str | None = None
    free_label: str = "MLP (free, weight decay only)"


TASKS = {
    "inertia": Task("models/soft_inertia.yaml", strengths=(0, 100, 100, 100)),
    "pendulum": Task("models/soft_pendulum.yaml", strengths=(0, 0.001, 0.001, 0.001), strength=0.001, start=250,
                     window=50),
    "windy": Task("models/soft_pendulum.yaml", (WINDY,), strengths=(0, 0.001, 0.001, 0.001), strength=0.001,
                  start=250, window=50),
    "cossim": Task("models/soft_inertia.yaml", ("data.path=datasets/soft/data/cossim_so3_noise1.npz",),
                   mixture=("SO3+Scale", "SO3", "Scale"), strengths=(100, 100, 100), exact=("SO3", "SO3+Scale"),
                   singles=("SO3", "Scale"), rpp=("SO3",), report=("SO3", "Scale")),
    "o5": Task("models/soft_inertia.yaml", ("data.path=datasets/soft/data/o5_synthetic.npz",), mixture=("O5",),
               exact=("O5",), singles=("O5",), rpp=("O5",), report=("O5",)),
    "nbody_field": Task("models/nbody_gnn.yaml", tuple(FIELD), strengths=(0, 1, 1, 1), exact=("O3",), rpp=(),
                        strength=1.0, method="sampled", exact_config="models/nbody_equivariant.yaml",
                        free_label="plain GNN (free)"),
    "pendulum_sampled": Task("models/soft_pendulum.yaml", strengths=(0, 0.01, 0.01, 0.01), strength=0.01, start=500,
                             window=50, method="sampled"),
    "windy_sampled": Task("models/soft_pendulum.yaml", (WINDY,), strengths=(0, 0.01, 0.01, 0.01), strength=0.01,
                          start=500, window=50, method="sampled"),
    "se3": Task("models/soft_inertia.yaml", ("data.path=datasets/soft/data/se3_l1distance_noise-1.npz",),
                mixture=("SO3+Translations", "SO3", "Translations"), strengths=(1, 1, 1),
                exact=("Translations", "SO3+Translations"), singles=("SO3", "Translations"), rpp=("SO3",),
                report=("SO3", "Translations"), strength=1.0, method="sampled"),
}


def slug(group: str) -> str:
    """A group's name in run names: ``"SO3+Scale"`` -> ``"so3_scale"``."""
    return group.lower().replace("+", "_")


def exact_overrides(group: str) -> list[str]:
    """The ``soft_mlp`` overrides of an exactly ``group``-equivariant model: its linear part by projected weights,
    translations of positions by centring them."""
    linear, translations = group.removesuffix("Translations").rstrip("+"), group.endswith("Translations")
    return [*(["model.mode=exact", f"model.group={linear}"] if linear else []),
            *(["model.centre=true"] if translations else [])]


def runs_of(task_name: str) -> dict:
    """The runs of a task: name -> (config, overrides, label)."""
    task = TASKS[task_name]
    none = "loss.terms=[]"
    sampled = ", method: sampled" if task.method == "sampled" else ""

    def term(groups: tuple, strengths: tuple, rule: str) -> str:
        return (f"loss.terms=[{{name: soft_equivariance, groups: [{', '.join(groups)}], strengths: "
                f"[{', '.join(f'{v:g}' for v in strengths)}], rule: {rule}, start: {task.start}, "
                f"window: {task.window}{sampled}}}]")

    runs = {"mlp": (task.config, [none], task.free_label)}
    for group in task.exact:
        if task.exact_config:
            runs[f"exact_{slug(group)}"] = (task.exact_config, [none], "E(3)-equivariant message passing (exact)")
        else:
            runs[f"exact_{slug(group)}"] = (task.config, [none, *exact_overrides(group)],
                                            f"exactly {group}-equivariant")
    for group in task.rpp:
        runs[f"rpp_{slug(group)}"] = (task.config, ["model.mode=rpp", f"model.group={group}",
                                                    "loss.terms=[{name: rpp_prior}]"], f"RPP on {group}")
    for group in task.singles:
        runs[f"single_{slug(group)}"] = (task.config, [term((group,), (task.strength,), "fixed")],
                                         f"one regulariser: {group}")
    if len(task.mixture) > 1:
        listed = ", ".join(f"{g} ({v:g})" for g, v in zip(task.mixture, task.strengths, strict=True))
        runs["per"] = (task.config, [term(task.mixture, task.strengths, "per")], f"PER: {listed}, rescaled once")
        runs["per_continuous"] = (task.config, [term(task.mixture, task.strengths, "continuous")],
                                  f"{listed}, rescaled continuously")
    return {name: (config, [*task.extra, *overrides], label) for name, (config, overrides, label) in runs.items()}


def run_summary(config, task: Task) -> dict:
    """One finished run: the evaluation with the lowest validation MSE, the final strengths (tuned runs) and the
    final EMA model's equivariance errors under the task's report groups on the first test batch."""
    rows = experiments.evaluations(config, "valid/mse")
    best = min(rows, key=lambda r: float(r["valid/mse"]))
    trainer = experiments.restored(config)
    errors = {name: experiments.ema_equivariance_error(trainer, "test", group_named(name)) for name in task.report}
    last = rows[-1]
    strengths = {g: float(last[f"train_loss_soft_equivariance_lambda_{g}"]) for g in task.mixture
                 if last.get(f"train_loss_soft_equivariance_lambda_{g}")}
    return {"best_epoch": int(best["step"]) // trainer.steps_per_epoch, "test": float(best["test/mse"]),
            "ood": float(best["ood/mse"]) if best.get("ood/mse") else float("nan"), "errors": errors,
            "strengths": strengths, "minutes": float(last["seconds"]) / 60}


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, ["mlp", "exact_<group>", "rpp_<group>", "single_<group>", "per",
                                             "per_continuous"], "all", "0,1,2", "runs/soft_compare")
    parser.add_argument("--task", default="inertia", choices=sorted(TASKS), help="the data (default inertia)")
    args = parser.parse_args(argv)
    task, runs = TASKS[args.task], runs_of(args.task)
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
    print("| model | best epochs | test MSE | OOD MSE | " + " | ".join(f"{g} error" for g in task.report)
          + f" | final strengths {', '.join(task.mixture)} | minutes |")
    print("|---|---|---|---|" + "---|" * len(task.report) + "---|---|")
    for name, seeded in configs.items():
        summaries = [run_summary(c, task) for c in seeded]
        strengths = ""
        if summaries[0]["strengths"]:
            strengths = "; ".join(", ".join(f"{s['strengths'].get(g, 0.0):.3g}" for g in task.mixture)
                                  for s in summaries)
        oods = [s["ood"] for s in summaries]
        ood = "-" if any(math.isnan(v) for v in oods) else mean_sd(oods, 4, "e")  # no OOD split
        errors = " | ".join(mean_sd([s["errors"][g] for s in summaries], 2, "e") for g in task.report)
        print(f"| {runs[name][2]} | {', '.join(str(s['best_epoch']) for s in summaries)} | "
              f"{mean_sd([s['test'] for s in summaries], 4, 'e')} | {ood} | {errors} | {strengths} | "
              f"{sum(s['minutes'] for s in summaries) / len(summaries):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

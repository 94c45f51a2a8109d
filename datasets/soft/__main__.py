"""Generate PER's mixed-symmetry tasks and EMLP's Inertia and O5Synthetic: ``python -m datasets.soft --help``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._recipes import recipe_parser, sha256, write_npz, written
from .generate import DEFAULTS, SPLITS, TASKS, default_name, make_task

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
AUTO = "auto"
DEFAULT_SET = {"modified_inertia": {"axis": 2, "noise": 0.3}, "inertia": {}, "cossim": {}, "se3": {},
               "o5_synthetic": {}}  # what --task all writes: PER's and EMLP's default settings
OPTIONS = ("axis", "noise", "noise_std", "mog", "sym", "noisy", "shift", "ood_shift", "sign", "seed")


def build(task: str, out: Path, name: str = AUTO, **params) -> dict:
    """Generate one task's file and describe it.

    Args:
        task: One of ``TASKS``.
        out: The output folder.
        name: File name without .npz; ``auto``: :func:`default_name`.
        **params: The task's arguments.

    Returns:
        The summary: file, bytes, seconds, sha256, task, name, sizes and symmetries.
    """
    start = time.perf_counter()
    data = make_task(task, **params)
    name = default_name(task, **params) if name == AUTO else name
    path = write_npz(out / f"{name}.npz", data)
    sizes = {split: len(data[f"{split}_x"]) for split in (*SPLITS, "ood") if f"{split}_x" in data}
    return {**written(path, start), "sha256": sha256(path), "task": task, "params": str(data["params"]),
            "sizes": sizes, "true_symmetry": str(data["true_symmetry"]), "candidates": str(data["candidates"])}


def main(argv=None) -> list[dict]:
    parser = recipe_parser(
        "python -m datasets.soft",
        "PER's mixed-symmetry regression tasks (modified inertia, cossim, se3) and EMLP's Inertia and O5Synthetic, "
        "regenerated from their definitions with the references' seeds and splits (see README.md here).",
        DEFAULT_OUT, AUTO)
    parser.add_argument("--task", default="all", choices=(*TASKS, "all"),
                        help="the task, or 'all' for the default set (modified_inertia axis 2 noise 0.3 and the "
                             "others at PER's/EMLP's defaults); --name auto: the task and its parameters")
    parser.add_argument("--axis", type=int, default=None, help="modified_inertia: 0, 1, 2 or -1 (default 2)")
    parser.add_argument("--noise", type=float, default=None,
                        help="a, the weight of the symmetry-breaking term (defaults: modified_inertia 0.3, "
                             "cossim 1, se3 -1)")
    parser.add_argument("--noise-std", type=float, default=None,
                        help="modified_inertia: per-sample a ~ N(0.3, std^2) (PER's RandomlyModifiedInertia); 0: "
                             "fixed a (default)")
    parser.add_argument("--mog", action="store_const", const=True, default=None,
                        help="modified_inertia with --noise-std: PER's two-Gaussian mixture for a")
    parser.add_argument("--sym", default=None,
                        help="cossim: so3 (default), scale, so3-scale, none; se3: l1distance (default), se3, "
                             "distance, r3, ball, t3, rxy2, txy2, r3t3soft")
    parser.add_argument("--noisy", action="store_const", const=True, default=None,
                        help="se3: a times U(0, 1) per sample (PER's --noisy)")
    parser.add_argument("--shift", type=int, default=None, help="PER's --ind_shift (default 0)")
    parser.add_argument("--ood-shift", type=int, default=None, help="PER's --ood_shift (default 0)")
    parser.add_argument("--sign", type=int, default=None, help="PER's --sign: 0 (default), 1 or -1")
    parser.add_argument("--seed", type=int, default=None,
                        help="the split's numpy seed (PER's --seed, 2022; EMLP's makeTrainer seed, 2021, which "
                             "also draws EMLP's data)")
    args = parser.parse_args(argv)
    given = {key: getattr(args, key) for key in OPTIONS if getattr(args, key) is not None}
    if args.task == "all":
        if given or args.name != AUTO:
            parser.error(f"--task all writes the default set: drop {sorted(given) or ['--name']}")
        jobs = list(DEFAULT_SET.items())
    else:
        unknown = sorted(set(given) - set(DEFAULTS[args.task]))
        if unknown:
            parser.error(f"--{unknown[0].replace('_', '-')}: not an option of --task {args.task}")
        jobs = [(args.task, given)]
    summaries = []
    for task, params in jobs:
        try:
            summaries.append(build(task, args.out, args.name, **params))
        except ValueError as error:
            parser.error(str(error))
    print(json.dumps(summaries, indent=2))
    return summaries


if __name__ == "__main__":
    main()

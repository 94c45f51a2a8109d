"""Affine-equivariant classifiers against CNNs on the affNIST protocol made offline (Mironenco & Forre, ICLR 2024).

Every run trains ``models/affine_digits.yaml`` on centred digits (``datasets/affine_digits``) with the same optimizer,
steps and time cap, and is evaluated on clean digits and on digits under random affine maps and homographies:

- ``cnn``: :class:`equilib.lie.PlainCNN`, the same network with plain convolutions;
- ``cnn_augmented``: the same with random affine maps of affNIST's ranges applied to every training image;
- ``so2``, ``sl2``, ``gl2``: :class:`equilib.lie.AffineResNet` on ``R^2 x| SO(2)``, ``SL(2)``, ``GL+(2)``.

The report gives each model's parameters, its training seconds per epoch (timed in this process before it trains),
the steps and minutes it trained, and the test error rates of the final EMA model (mean +- sd over the seeds).

    python -m datasets.affine_digits                                  # MNIST, or --source digits
    OMP_NUM_THREADS=1 python scripts/affine_compare.py --seeds 0      # every run
    python scripts/affine_compare.py --runs cnn,sl2 --seeds 0 trainer.max_steps=200 --report-only
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from scripts import _experiments as experiments  # noqa: E402
from scripts._experiments import mean_sd  # noqa: E402

CONFIG = "models/affine_digits.yaml"
RUNS = {"cnn": (CONFIG, ["model={name: plain_cnn}"], "CNN"),
        "cnn_augmented": (CONFIG, ["model={name: plain_cnn}", "data.augment=affine"], "CNN + affine augmentation"),
        "so2": (CONFIG, ["model.group=SO2"], "R^2 ⋊ SO(2)"),
        "sl2": (CONFIG, ["model.group=SL2"], "R^2 ⋊ SL(2)"),
        "gl2": (CONFIG, ["model.group=GL2"], "R^2 ⋊ GL+(2)")}
SPLITS = ("test_clean", "test_affine", "test_homography")


def timing(config, steps: int) -> tuple[int, float]:
    """The model's parameter count and its training seconds per epoch, from ``steps`` timed steps."""
    trainer, seconds = experiments.timed_steps(config, steps, warmup=2)
    return sum(p.numel() for p in trainer.model.parameters()), seconds * trainer.steps_per_epoch


def main(argv=None) -> int:
    parser = experiments.parser_of(__doc__, RUNS, ",".join(RUNS), "0", "runs/affine_compare")
    parser.add_argument("--timed-steps", type=int, default=10, help="steps timed for the seconds per epoch")
    args = parser.parse_args(argv)
    names, seeds = experiments.runs_and_seeds(parser, args, RUNS)
    configs = {name: [experiments.config_of(RUNS, name, seed, Path(args.out), args.epochs, args.overrides)
                      for seed in seeds] for name in names}
    timings = {}
    for name, seeded in configs.items():
        saved = Path(seeded[0].trainer.out_dir).parent / "timing.txt"
        if not saved.is_file():  # timed once, also by --report-only (delete the file to time again)
            saved.parent.mkdir(parents=True, exist_ok=True)
            saved.write_text("{} {:.3f}\n".format(*timing(seeded[0], args.timed_steps)))
        timings[name] = saved.read_text().split() if saved.is_file() else ["-", "nan"]
        if not args.report_only:
            for config in seeded:
                experiments.train(config)
    print(f"\n# Affine digits: test error rates (%) of the final EMA model, seeds {args.seeds}\n")
    print("| model | parameters | s/epoch | steps | minutes | " + " | ".join(f"{s} error" for s in SPLITS) + " |")
    print("|---|---|---|---|---|" + "---|" * len(SPLITS))
    for name, seeded in configs.items():
        lasts = [experiments.evaluations(c, "test_clean/error")[-1] for c in seeded]
        cells = [mean_sd([100 * float(r[f"{s}/error"]) for r in lasts], 2) for s in SPLITS]
        parameters, seconds = timings[name]
        print(f"| {RUNS[name][2]} | {parameters} | {float(seconds):.0f} | {', '.join(r['step'] for r in lasts)} | "
              f"{sum(float(r['seconds']) for r in lasts) / len(lasts) / 60:.1f} | {' | '.join(cells)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

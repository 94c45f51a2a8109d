"""How equivariant the Monte Carlo group convolutions are, against the number of sampled elements K per layer.

For each group (SO(2), SL(2), GL+(2)), an :class:`equilib.lie.AffineResNet` of ``models/affine_digits.yaml`` (the
final EMA model of a finished ``scripts/affine_compare.py`` run when ``--runs-dir`` holds one, else the freshly
initialised network) classifies a batch of clean test digits with K elements per layer, drawn fresh at every forward
as in use. Its invariance error is the relative change of the logits, ``||f(g.x) - f(x)|| / ||f(x)||``, under 8
elements ``g`` of its own group (SL(2) and GL+(2): scale 0.2, the layers' law) acting on the images
(:class:`equilib.groups.Images`), averaged over ``--repeats`` draws. The same number under the identity is the
sampling noise alone (two forwards with different draws): the part of the error above it is what the group action
adds. For SO(2) a control row acts by quarter turns, which move the pixel grid onto itself (no resampling, kernels
sampled at the same offsets): what it adds to the noise is Monte Carlo error alone, and what general angles add beyond
it is the discretisation of images and kernels. Table and figure: ``scripts/results/lie/``.

    python -m datasets.affine_digits --source digits --small                 # any file of the recipe
    OMP_NUM_THREADS=1 python scripts/lie_samples_curve.py --data datasets/affine_digits/data/affine_digits_small.npz
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from equilib.groups import GroupElement, Images, plane_rotations  # noqa: E402
from equilib.lie import GroupSampler  # noqa: E402
from equilib.train import Trainer, load_config  # noqa: E402
from scripts import _experiments as experiments  # noqa: E402

GROUPS = {"so2": "SO2", "sl2": "SL2", "gl2": "GL2"}


def model_of(name: str, args) -> tuple[torch.nn.Module, str]:
    """The run's EMA model if ``args.runs_dir`` holds a finished run of ``name``, else a fresh one; and which."""
    overrides = [f"model.group={GROUPS[name]}", f"data.path={args.data}", "logging.progress=false",
                 f"trainer.out_dir={Path(args.runs_dir) / name / 'seed0'}"]
    config = load_config(ROOT / "models/affine_digits.yaml", overrides)
    trainer = Trainer(config)
    if trainer.checkpoint_path.is_file():
        trainer.load_checkpoint()
        return trainer.ema.module.eval(), f"trained ({trainer.step} steps)"
    return trainer.model.eval(), "untrained"


def quarter_turns() -> GroupElement:
    """8 rotations by 1, 2 or 3 quarter turns (maps of the pixel grid onto itself)."""
    turns = torch.tensor([1, 2, 3, 1, 2, 3, 1, 2], dtype=torch.float64)
    return GroupElement(linear=plane_rotations(turns * torch.pi / 2).round())


def errors(model, images: torch.Tensor, group: str, samples: int, repeats: int, seed: int,
           quarter: bool = False) -> tuple[float, float]:
    """Mean relative change of ``model``'s logits under 8 elements of ``group`` (quarter turns if ``quarter``) and
    under the identity (each a forward with its own draws against a reference forward), ``samples`` elements per
    layer, over ``repeats`` draws."""
    for layer in (model.lift, model.final):
        layer.samples = samples
    torch.manual_seed(seed)
    rep = Images(images.shape[1], tuple(images.shape[2:]))
    copies = images.unsqueeze(0).expand(8, *images.shape)
    moved, still = [], []
    with torch.no_grad():
        for r in range(repeats):
            elements = quarter_turns() if quarter else GroupSampler(group, seed=seed * 1000 + r).draw(8).element()
            elements = elements.to(dtype=images.dtype)
            reference = model(images)
            for out, x in ((moved, rep.act(elements, copies)), (still, copies)):
                logits = model(x.reshape(-1, *images.shape[1:])).reshape(8, *reference.shape)
                change = (logits - reference).flatten(1).norm(dim=1) / reference.norm()
                out.append(float(change.mean()))
    return statistics.mean(moved), statistics.mean(still)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="datasets/affine_digits/data/affine_mnist.npz", help="a recipe's file")
    parser.add_argument("--runs-dir", default="runs/affine_compare", help="finished affine_compare runs, if any")
    parser.add_argument("--groups", default="so2,sl2,gl2", help=f"comma-separated, from {', '.join(GROUPS)}")
    parser.add_argument("--samples", default="1,2,4,8,16,32", help="comma-separated K")
    parser.add_argument("--repeats", type=int, default=5, help="draws averaged per K")
    parser.add_argument("--images", type=int, default=32, help="clean test images in the batch")
    parser.add_argument("--out", default="scripts/results/lie", help="where the figure goes")
    args = parser.parse_args(argv)
    names = args.groups.split(",")
    counts = [int(k) for k in args.samples.split(",")]
    rows = {}
    for name in names:
        model, which = model_of(name, args)
        with np.load(args.data) as f:
            images = torch.as_tensor(f["test_clean_x"][: args.images], dtype=torch.float32) / 255
        rows[GROUPS[name]] = (which, [errors(model, images, GROUPS[name], k, args.repeats, seed=0) for k in counts])
        if name == "so2":
            rows["SO2, quarter turns"] = (which, [errors(model, images, "SO2", k, args.repeats, seed=0, quarter=True)
                                                  for k in counts])
    print(f"\n# Invariance error of AffineResNet logits against K, {args.repeats} draws, {len(images)} clean test "
          "images: under 8 group elements / under the identity (sampling noise)\n")
    print("| group | model | " + " | ".join(f"K = {k}" for k in counts) + " |")
    print("|---|---|" + "---|" * len(counts))
    for name, (which, values) in rows.items():
        print(f"| {name} | {which} | " + " | ".join(f"{a:.3f} / {b:.3f}" for a, b in values) + " |")
    fig, ax = experiments.axes((5.0, 3.5))
    for name, (_, values) in rows.items():
        line, = ax.loglog(counts, [a for a, _ in values], marker="o", label=f"{name}: group elements")
        ax.loglog(counts, [b for _, b in values], ls="--", color=line.get_color(), label=f"{name}: identity")
    ax.set_xlabel("elements per layer K")
    ax.set_ylabel("relative change of the logits")
    ax.legend(fontsize=7)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    experiments.save_figure(fig, Path(args.out) / "samples_curve.png", 150)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

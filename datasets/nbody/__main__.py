"""Generate the charged-particle n-body data set of EGNN and Frame Averaging: ``python -m datasets.nbody --help``."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np

from .._recipes import recipe_parser, write_npz, written
from .generate import (
    NUM,
    SEED,
    SPLITS,
    STREAM_TRAIN,
    STREAM_VALID,
    TASK_FRAMES,
    VEL_NORM,
    baselines,
    draw_stream,
    generate,
    trajectory_statistics,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DEFAULT_NAME = "charged5_small"


def report(data: dict, seed: int, num: dict[str, int], stream_train: int, stream_valid: int,
           field: float = 0.0) -> dict:
    """The card's checks on the kept simulations: charges, initial speeds and spread, clipping, energy drift,
    and the trivial baselines per split (this integrates every kept simulation again, to frame 48).

    Args:
        data: The generated arrays.
        seed: Seed of the legacy random stream.
        num: Simulations kept per split.
        stream_train: Training simulations drawn before the validation ones.
        stream_valid: Validation simulations drawn before the test ones.
        field: The external field along z (its potential -q_i field z_i is part of the energy).

    Returns:
        The checks, by name.
    """
    initial = draw_stream(seed, num, stream_train, stream_valid)
    charges, loc, vel = (np.concatenate([initial[s][k] for s in SPLITS]) for k in range(3))
    stats = trajectory_statistics(charges, loc, vel, field=field)
    drift = np.abs(stats["energy_end"] - stats["energy_start"])
    return {
        "simulations": len(charges),
        "charge_plus_fraction": float((charges > 0).mean()),
        "initial_speed_max_deviation_from_0.5": float(np.abs(np.linalg.norm(vel, axis=-1) - VEL_NORM).max()),
        "initial_position_std": float(loc.std()),
        "clipped_force_component_fraction": float(stats["clip_fraction"].mean()),
        "simulations_ever_clipped_fraction": float((stats["clip_fraction"] > 0).mean()),
        "energy_drift_abs_quantiles_50_90_99_100": [float(q) for q in np.quantile(drift, [0.5, 0.9, 0.99, 1.0])],
        "energy_start_abs_median": float(np.median(np.abs(stats["energy_start"]))),
        "baselines_mse": {s: baselines(data, s) for s in SPLITS} if all(f in data["frames"] for f in TASK_FRAMES)
        else "the task frames 30 and 40 were not generated",
    }


def finite_float(text: str) -> float:
    """The ``--field`` value: argparse's type for a finite float.

    Args:
        text: The command-line string.

    Returns:
        The float.

    Raises:
        argparse.ArgumentTypeError: If ``text`` is not a finite float (argparse then names ``--field``).
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def main(argv=None) -> dict:
    parser = recipe_parser(
        "python -m datasets.nbody",
        "EGNN's charged 5-particle n-body data (nbody_small), generated deterministically (see README.md here).",
        DEFAULT_OUT, DEFAULT_NAME)
    parser.add_argument("--seed", type=int, default=SEED, help="seed of the one legacy RandomState stream (43)")
    parser.add_argument("--num-train", type=int, default=NUM["train"], help="training simulations kept (3000)")
    parser.add_argument("--num-valid", type=int, default=NUM["valid"], help="validation simulations kept (2000)")
    parser.add_argument("--num-test", type=int, default=NUM["test"], help="test simulations kept (2000)")
    parser.add_argument("--stream-train", type=int, default=STREAM_TRAIN,
                        help="training simulations drawn from the stream before the validation ones (10000, as "
                             "EGNN's generate_dataset.py --num-train); only the first --num-train are simulated")
    parser.add_argument("--stream-valid", type=int, default=STREAM_VALID,
                        help="validation simulations drawn before the test ones (2000, generate_dataset.py "
                             "--num-valid); only the first --num-valid are simulated")
    parser.add_argument("--frames", default=",".join(map(str, TASK_FRAMES)),
                        help="frames to save, comma-separated in 0..48, or 'all' (default 30,40: the task's)")
    parser.add_argument("--field", type=finite_float, default=0.0,
                        help="uniform external electric field along z: extra force q_i * FIELD * e_z, before the "
                             "clipping (default 0: the reference's data; README.md suggests 0.3)")
    parser.add_argument("--report", action="store_true",
                        help="also print the card's checks and baselines (integrates every simulation again)")
    args = parser.parse_args(argv)
    num = {"train": args.num_train, "valid": args.num_valid, "test": args.num_test}
    start = time.perf_counter()
    try:
        data = generate(args.seed, args.num_train, args.num_valid, args.num_test, args.stream_train,
                        args.stream_valid, args.frames, args.field)
    except ValueError as error:
        parser.error(str(error))
    path = write_npz(args.out / f"{args.name}.npz", data)
    summary = {**written(path, start), "frames": data["frames"].tolist(), "field": args.field,
               **{split: len(data[f"{split}_charges"]) for split in SPLITS}}
    if args.report:
        summary["report"] = report(data, args.seed, num, args.stream_train, args.stream_valid, args.field)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()

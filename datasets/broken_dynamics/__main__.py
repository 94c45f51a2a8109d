"""Generate the double spring pendulum data of EMLP and the windy one of RPP:
``python -m datasets.broken_dynamics --help``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._recipes import recipe_parser, write_npz, written
from .generate import (
    CHUNK_LEN,
    DT,
    INTEGRATION_TIME,
    NUM,
    SEED,
    SPLITS,
    SYSTEMS,
    TOL,
    WIND_SCALE,
    energy_drift,
    generate,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
SYSTEM_NAME = "<system>"  # --name's default: the file is named after the system


def main(argv=None) -> dict:
    """Run the recipe: one ``<out>/<name>.npz`` per system.

    Args:
        argv: The command line without the program (None: ``sys.argv[1:]``).

    Returns:
        Per system written, the file, its size, the seconds taken, the split sizes and the largest energy change
        along a trajectory (as printed).
    """
    parser = recipe_parser(
        "python -m datasets.broken_dynamics",
        "EMLP's double spring pendulum and RPP's windy one: trajectory chunks generated deterministically "
        "(see README.md here).", DEFAULT_OUT, SYSTEM_NAME)
    parser.add_argument("--system", choices=(*SYSTEMS, "all"), default="all",
                        help="the system to generate (default all: one file each; --name then not allowed)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the split streams ({SEED})")
    parser.add_argument("--num-train", type=int, default=NUM["train"], help=f"training systems ({NUM['train']})")
    parser.add_argument("--num-valid", type=int, default=NUM["valid"], help=f"validation systems ({NUM['valid']})")
    parser.add_argument("--num-test", type=int, default=NUM["test"], help=f"test systems ({NUM['test']})")
    parser.add_argument("--wind-scale", type=float, default=WIND_SCALE,
                        help=f"the windy system's wind scale, w = scale * (8, 5, 0) ({WIND_SCALE}; RPP swept "
                             "1e-4, 1e-2, 5e-2, 1e-1, 5e-1)")
    parser.add_argument("--chunk-len", type=int, default=CHUNK_LEN,
                        help=f"points per kept chunk ({CHUNK_LEN}; 150: whole trajectories from time 0)")
    parser.add_argument("--dt", type=float, default=DT, help=f"grid spacing ({DT})")
    parser.add_argument("--integration-time", type=float, default=INTEGRATION_TIME,
                        help=f"the grid is arange(0, T, dt) ({INTEGRATION_TIME:g})")
    parser.add_argument("--tol", type=float, default=TOL, help=f"DOP853 rtol and atol ({TOL:g})")
    args = parser.parse_args(argv)
    systems = SYSTEMS if args.system == "all" else (args.system,)
    if len(systems) > 1 and args.name != SYSTEM_NAME:
        parser.error("--name: only with a single --system (with 'all' each file is named after its system)")
    summary = {}
    for system in systems:
        start = time.perf_counter()
        try:
            data = generate(system, args.seed, args.num_train, args.num_valid, args.num_test, args.wind_scale,
                            args.chunk_len, args.dt, args.integration_time, args.tol)
        except ValueError as error:
            parser.error(str(error))
        name = system if args.name == SYSTEM_NAME else args.name
        path = write_npz(args.out / f"{name}.npz", data)
        wind = args.wind_scale if system == SYSTEMS[1] else 0.0
        summary[system] = {**written(path, start), **{split: len(data[f"{split}_z0"]) for split in SPLITS},
                           "true_symmetry": str(data["true_symmetry"]), "energy_drift_max": energy_drift(data, wind)}
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    main()

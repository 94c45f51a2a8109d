"""Synthetic regression tasks with exact and broken symmetries: the mixed-symmetry tasks of PER (Kim, Lee, Yang, Lee,
ICML 2023, "Regularizing Towards Soft Equivariance Under Mixed Symmetries") and two tasks of EMLP (Finzi, Welling,
Wilson, ICML 2021, "A Practical Method for Constructing Equivariant Multilayer Perceptrons for Arbitrary Matrix
Groups").

Reimplemented from the definitions in github.com/kim-hyunsu/PER (commit 156cf90, ``experiments/datasets.py``, and
``experiments/mixed-symmetry/train_softemlp_checkpoint.py`` for sizes, splits and the out-of-distribution sets) and
github.com/mfinzi/equivariant-MLP (commit b80815b, ``emlp/datasets.py``, and ``experiments/train_regression.py``).
The random draws are the references' calls in their order: PER's ``torch.randn`` (float32) from a
``torch.Generator`` seeded with ``N + k + dim + shift``, EMLP's legacy numpy stream seeded by ``FixedNumpySeed``,
and both papers' train/valid/test split, oil's ``split_dataset`` (scikit-learn's ``train_test_split`` on numpy's
global stream). Inputs are those draws widened to float64; targets are computed in float64 from those inputs (PER
computes them in float32). See README.md in this folder for what is exact and what could not be checked.

Flat layouts are PER's and EMLP's: a task with in_rep ``5x0+5x1`` has the 5 masses then the 5 positions, particle
by particle (x0 y0 z0 x1 ...); a rank-2 target is the 3 x 3 matrix flattened row-major.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

TASKS = ("modified_inertia", "inertia", "cossim", "se3", "o5_synthetic")
SPLITS = ("train", "valid", "test")
N_DATA = 3000  # PER and EMLP both draw 3000 points and split them 1000 / 1000 / 1000
N_VALID = N_TEST = 1000
N_OOD = 1000  # PER's out-of-distribution set
PER_SEED = 2022  # PER's --seed (train_softemlp_checkpoint.py): numpy's and torch's global seeds
EMLP_SEED = 2021  # EMLP's makeTrainer(seed=2021) (experiments/train_regression.py)
K_INERTIA = 5  # bodies of the inertia tasks
K_POINTS = 3  # vectors of cossim and se3
AXES = (-1, 0, 1, 2)
COSSIM_SYMS = ("so3", "scale", "so3-scale", "none")
SE3_SYMS = ("se3", "distance", "r3", "ball", "t3", "l1distance", "rxy2", "txy2", "r3t3soft")
INERTIA_CANDIDATES = "O3,O2z,O2x,O2y"  # PER's (O(3), Oxy2, Oyz2, Oxz2)
AXIS_GROUP = {0: "O2x", 1: "O2y", 2: "O2z"}  # PER's [Oyz2, Oxz2, Oxy2][axis]: O(2) on the plane normal to the axis
RANDOM_A_MEAN, RANDOM_A_MOG_MEAN, RANDOM_A_MOG_WEIGHT = 0.3, 0.6, 0.4  # RandomlyModifiedInertia's constants
DEFAULTS = {
    "modified_inertia": {"axis": 2, "noise": 0.3, "noise_std": 0.0, "mog": False, "shift": 0, "ood_shift": 0,
                         "sign": 0, "seed": PER_SEED},
    "inertia": {"seed": EMLP_SEED},
    "cossim": {"sym": "so3", "noise": 1.0, "shift": 0, "ood_shift": 0, "sign": 0, "seed": PER_SEED},
    "se3": {"sym": "l1distance", "noise": -1.0, "noisy": False, "shift": 0, "ood_shift": 0, "sign": 0,
            "seed": PER_SEED},
    "o5_synthetic": {"seed": EMLP_SEED},
}


# -- targets: float64 functions of the flat inputs ---------------------------------------------------------------------


def inertia_tensor(masses: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The inertia tensor of point masses about the origin.

    Args:
        masses: (N, k) masses m_i.
        positions: (N, k, 3) positions r_i.

    Returns:
        (N, 3, 3): sum_i m_i (|r_i|^2 I3 - r_i r_i^T).
    """
    r2 = (positions**2).sum(-1)
    outer = positions[..., :, None] * positions[..., None, :]
    return (masses[..., None, None] * (r2[..., None, None] * np.eye(3) - outer)).sum(-3)


def _axis_terms(axis: int) -> list[tuple[float, int]]:
    """PER's ``ModifiedInertia.func`` perturbation as (sign, axis) terms: ``+(I e_axis) e_axis^T``, or for axis -1
    ``-(I e_x) e_x^T + (I e_y) e_y^T``."""
    return [(-1.0, 0), (1.0, 1)] if axis == -1 else [(1.0, axis)]


def modified_inertia_target(x: np.ndarray, axis: int = 2, noise=0.3) -> np.ndarray:
    """PER's modified inertia (``ModifiedInertia.func``, experiments/datasets.py lines 531-554; per-sample ``a``:
    ``RandomlyModifiedInertia``, lines 34-69): ``I + a (I e) e^T``, i.e. the inertia tensor ``I`` with column
    ``axis`` multiplied by ``1 + a``; axis -1 multiplies column x by ``1 - a`` and column y by ``1 + a``.

    Args:
        x: (N, 20) masses then positions (5 + 5 x 3).
        axis: 0, 1, 2, or -1.
        noise: ``a``, a number or (N,) one per sample.

    Returns:
        (N, 9) the 3 x 3 targets flattened row-major.
    """
    k = K_INERTIA
    inertia = inertia_tensor(x[:, :k], x[:, k:].reshape(-1, k, 3))
    a = np.asarray(noise, dtype=np.float64).reshape(-1, 1, 1)
    target = inertia.copy()
    for sign, ax in _axis_terms(axis):
        target[:, :, ax] += sign * a[:, :, 0] * inertia[:, :, ax]
    return target.reshape(-1, 9)


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def cossim_target(x: np.ndarray, sym: str = "so3", noise: float = 1.0) -> np.ndarray:
    """PER's ``SyntheticCosSimDataset.func`` (experiments/datasets.py lines 665-705) on 3 vectors p_0, p_1, p_2:
    ``s = (cos(p0, p1) + cos(p1, p2) + cos(p2, p0)) / 3`` (invariant under rotations and positive scaling),
    ``rho = mean_i |p_i|`` (rotation-invariant, breaks scale), ``f = |p_0|_1 / (|p_1|_1 + |p_2|_1)`` (L1 norms:
    scale-invariant, breaks rotations); the target is ``s - a rho`` (sym so3), ``s - a f`` (scale), ``s``
    (so3-scale) or ``s - a rho + a f`` (none).

    Args:
        x: (N, 9) the three vectors.
        sym: so3, scale, so3-scale or none.
        noise: ``a``.

    Returns:
        (N, 1).
    """
    p = x.reshape(-1, K_POINTS, 3)
    k, half = K_POINTS, K_POINTS // 2
    s = sum(_cos(p[:, i], p[:, (i + 1) % k]) for i in range(k)) / k
    mean_radius = np.linalg.norm(p, axis=-1).mean(1)
    fraction = np.abs(p[:, :half]).sum((1, 2)) / np.abs(p[:, half:]).sum((1, 2))
    y = {"so3": s - noise * mean_radius, "scale": s - noise * fraction, "so3-scale": s,
         "none": s - noise * mean_radius + noise * fraction}[sym]
    return y[:, None]


def se3_target(x: np.ndarray, sym: str = "l1distance", noise=-1.0) -> np.ndarray:
    """PER's ``SyntheticSE3Dataset.get_YandErr`` (experiments/datasets.py lines 322-478) on 3 points p_0, p_1, p_2:
    ``d = (|p0 - p1| + |p1 - p2| + |p2 - p0|) / 3`` minus ``a`` times a symmetry-breaking term: 0 (se3, distance),
    ``sum_i |p_i|^2`` (r3), ``|p_0|`` (ball), ``|p0 - p1|_1 + |p1 - p2|_1 + 3 |p2 - p0|_1`` (t3), ``|x0 - x1|``
    (l1distance: x components only), ``|p0_xy|^2 + |p1_xy|^2 + 3 |p2_xy|^2`` (rxy2), the t3 term on the xy
    components (txy2), r3 + t3 (r3t3soft).

    Args:
        x: (N, 9) the three points (PER's ``for_mlp`` layout: no homogeneous coordinate).
        sym: one of ``SE3_SYMS``.
        noise: ``a``, a number or (N,) one per sample (PER's ``noisy``).

    Returns:
        (N, 1).
    """
    p = x.reshape(-1, K_POINTS, 3)
    k = K_POINTS
    pairs = [(i, (i + 1) % k) for i in range(k)]  # (0, 1), (1, 2), (2, 0): the last pair is PER's X[-1] - X[0]
    d = sum(np.linalg.norm(p[:, i] - p[:, j], axis=-1) for i, j in pairs) / k

    def l1_chain(c: slice) -> np.ndarray:
        return sum((3.0 if i == k - 1 else 1.0) * np.abs(p[:, i, c] - p[:, j, c]).sum(-1) for i, j in pairs)

    if sym in ("se3", "distance"):
        err = np.zeros(len(p))
    elif sym == "r3":
        err = (p**2).sum((1, 2))
    elif sym == "ball":
        err = np.linalg.norm(p[:, 0], axis=-1)
    elif sym == "t3":
        err = l1_chain(slice(None))
    elif sym == "l1distance":
        err = np.abs(p[:, 0, 0] - p[:, 1, 0])
    elif sym == "rxy2":
        err = sum((3.0 if i == k - 1 else 1.0) * (p[:, i, :2] ** 2).sum(-1) for i in range(k))
    elif sym == "txy2":
        err = l1_chain(slice(0, 2))
    else:  # r3t3soft
        err = (p**2).sum((1, 2)) + l1_chain(slice(None))
    return (d - np.asarray(noise, dtype=np.float64).reshape(-1) * err)[:, None]


def o5_target(x: np.ndarray) -> np.ndarray:
    """EMLP's ``O5Synthetic`` (emlp/datasets.py lines 47-60): ``sin|r1| - |r2|^3 / 2 + r1.r2 / (|r1| |r2|)`` for two
    vectors of R^5.

    Args:
        x: (N, 10) r1 then r2.

    Returns:
        (N, 1).
    """
    r1, r2 = x[:, :5], x[:, 5:]
    n1, n2 = np.linalg.norm(r1, axis=-1), np.linalg.norm(r2, axis=-1)
    return (np.sin(n1) - 0.5 * n2**3 + (r1 * r2).sum(-1) / (n1 * n2))[:, None]


# -- the references' random draws --------------------------------------------------------------------------------------


def per_inertia_inputs(n: int, shift: int = 0, sign: int = 0) -> np.ndarray:
    """The inputs of PER's ``ModifiedInertia(n, shift=shift, sign=sign)`` (experiments/datasets.py lines 500-514):
    float32 ``torch.randn(n, 20)`` from a generator seeded with ``n + 5 + 20 + shift``; the first 5 columns put
    through ``softplus`` (masses), the positions shifted by ``shift`` and, for a sign of +-1, replaced by
    ``sign * |r|``.

    Args:
        n: Number of samples.
        shift: Integer offset of the positions (and of the seed).
        sign: 0, 1 or -1.

    Returns:
        (n, 20) float64.
    """
    k, dim = K_INERTIA, 4 * K_INERTIA
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(n + k + dim + int(shift)))
    x[:, :k] = F.softplus(x[:, :k])
    x[:, k:] = x[:, k:] + shift
    if sign != 0:
        x[:, k:] = sign * torch.abs(x[:, k:])
    return x.double().numpy()


def per_random_a(n: int, noise_std: float, mog: bool, seed: int = PER_SEED) -> np.ndarray:
    """The per-sample ``a`` of PER's ``RandomlyModifiedInertia`` (experiments/datasets.py lines 51-61), drawn from
    torch's global generator, which PER seeds with ``--seed`` just before (train_softemlp_checkpoint.py line 219):
    float32 ``N(0.3, noise_std)``; with ``mog``, first ``u = U(0, 1)``, then the N(0.3, std) and N(0.6, std) draws,
    the second where ``u < 0.4``.

    Args:
        n: Number of samples.
        noise_std: Standard deviation of ``a``.
        mog: The two-component mixture.
        seed: The torch seed.

    Returns:
        (n,) float64.
    """
    gen = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 1, 1, generator=gen) if mog else None
    a = torch.normal(RANDOM_A_MEAN, noise_std, size=(n, 1, 1), generator=gen)
    if mog:
        b = torch.normal(RANDOM_A_MOG_MEAN, noise_std, size=(n, 1, 1), generator=gen)
        a[u < RANDOM_A_MOG_WEIGHT] = b[u < RANDOM_A_MOG_WEIGHT]
    return a.reshape(n).double().numpy()


def per_points_inputs(n: int, homogeneous: bool, shift: int = 0, sign: int = 0) -> np.ndarray:
    """The inputs of PER's ``SyntheticCosSimDataset`` (lines 643-648: dim 9) or ``SyntheticSE3Dataset`` (lines
    298-304, ``for_mlp=True``: dim 12, every 4th entry a homogeneous 1, dropped here): float32 ``torch.randn(n, dim)``
    from a generator seeded with ``n + 3 + dim + shift``, plus ``shift``, then ``sign * |x|`` for a sign of +-1.

    Args:
        n: Number of samples.
        homogeneous: SE3's draw (4 numbers per point, the 4th discarded) instead of CosSim's (3).
        shift: Integer offset (and seed offset).
        sign: 0, 1 or -1.

    Returns:
        (n, 9) float64.
    """
    d = 4 if homogeneous else 3
    dim = d * K_POINTS
    x = torch.randn(n, dim, generator=torch.Generator().manual_seed(n + K_POINTS + dim + int(shift)))
    x = x + shift
    if sign != 0:
        x = sign * torch.abs(x)
    return x.reshape(n, K_POINTS, d)[:, :, :3].reshape(n, 3 * K_POINTS).double().numpy()


def per_se3_epsilon(n: int, noise: float) -> np.ndarray:
    """PER's ``noisy`` SE3 noise (experiments/datasets.py lines 306-309): ``noise * U(0, 1)`` per sample in float32,
    from a generator seeded with ``n + 3``.

    Args:
        n: Number of samples.
        noise: The scale.

    Returns:
        (n,) float64.
    """
    return (noise * torch.rand(n, 1, generator=torch.Generator().manual_seed(n + K_POINTS))).reshape(n).double().numpy()


def split_indices(n: int, rs: np.random.RandomState) -> dict[str, np.ndarray]:
    """oil's ``split_dataset(data, {'train': -1, 'val': 1000, 'test': 1000})`` as PER and EMLP call it: valid, then
    test (the two 1000s in the dict's order), each ``sklearn.model_selection.train_test_split(indices,
    test_size=1000)`` on numpy's global stream: ``p = rs.permutation(len(indices))``, the split takes
    ``indices[p[:1000]]`` and the rest ``indices[p[1000:]]`` goes on; train is what remains, in that order.

    Args:
        n: Number of samples (at least 2001).
        rs: The stream, advanced in place.

    Returns:
        Index arrays ``train``, ``valid``, ``test``.
    """
    indices, out = np.arange(n), {}
    for split, count in (("valid", N_VALID), ("test", N_TEST)):
        p = rs.permutation(len(indices))
        out[split], indices = indices[p[:count]], indices[p[count:]]
    out["train"] = indices
    return {s: out[s] for s in SPLITS}


# -- tasks -------------------------------------------------------------------------------------------------------------


def _check_int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
        raise ValueError(f"{name}: expected an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _check_float(name: str, value, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value) or (nonnegative and value < 0):
        raise ValueError(f"{name}: expected a finite{' non-negative' if nonnegative else ''} number, got {value!r}")
    return float(value)


def _check_common(shift, ood_shift, sign, seed) -> None:
    _check_int("shift", shift, -1000, 1000)
    _check_int("ood_shift", ood_shift, -1000, 1000)
    _check_int("sign", sign, -1, 1)
    _check_int("seed", seed, 0, 2**32 - 1)


def _pack(x: np.ndarray, y: np.ndarray, seed: int, meta: dict, ood=None) -> dict[str, np.ndarray]:
    """The file's arrays: the PER/EMLP split of (x, y), the OOD set if any, and the metadata (0-d arrays)."""
    data = {}
    for split, idx in split_indices(len(x), np.random.RandomState(seed)).items():
        data[f"{split}_x"], data[f"{split}_y"] = x[idx], y[idx]
    return _finish(data, meta, ood)


def _finish(data: dict, meta: dict, ood) -> dict[str, np.ndarray]:
    if ood is not None:
        data["ood_x"], data["ood_y"] = ood
    data = {key: np.ascontiguousarray(value, dtype=np.float64) for key, value in data.items()}
    for key in ("in_rep", "out_rep", "candidates", "true_symmetry", "definition", "task", "params"):
        data[key] = np.array(str(meta[key]))
    data["space_dim"] = np.array(int(meta["space_dim"]))
    data["positions"] = np.array(bool(meta["positions"]))
    data["recipe"] = np.array("datasets/soft")
    return data


def _params(**params) -> str:
    return ", ".join(f"{key}={value!r}" for key, value in params.items())


def modified_inertia(axis: int = 2, noise: float = 0.3, noise_std: float = 0.0, mog: bool = False, shift: int = 0,
                     ood_shift: int = 0, sign: int = 0, seed: int = PER_SEED) -> dict[str, np.ndarray]:
    """PER's modified inertia task as ``train_softemlp_checkpoint.py`` (lines 327-377) builds it:
    ``ModifiedInertia(3000, noise, axis, sign, shift)`` split 1000 / 1000 / 1000, and the OOD set
    ``ModifiedInertia(1000, noise, axis, shift=ood_shift)``, or ``sign=-sign`` (shift 0) when ``sign`` is +-1.
    With ``noise_std > 0``, PER's ``RandomlyModifiedInertia`` instead: one ``a ~ N(0.3, noise_std)`` per sample
    (a 0.4 / 0.6 mixture with N(0.6, noise_std) if ``mog``), and ``noise`` only sets the OOD set's ``a``.

    Args:
        axis: The axis e of ``a (I e) e^T``: 0, 1, 2, or -1 (PER's x-minus-y variant).
        noise: ``a`` (PER's --noise).
        noise_std: PER's --noise_std; 0: a fixed ``a``.
        mog: PER's mixture of two Gaussians for the random ``a``.
        shift: PER's --ind_shift: integer added to the positions (and to the torch seed).
        ood_shift: PER's --ood_shift, the OOD set's shift.
        sign: PER's --sign: 0, or +-1 for positions ``sign * |r|`` (OOD: ``-sign * |r|``).
        seed: PER's --seed (numpy's stream for the split, torch's for the random ``a``).

    Returns:
        The file's arrays (see README.md).

    Raises:
        ValueError: For an argument out of range, naming it.
    """
    if isinstance(axis, bool) or axis not in AXES:
        raise ValueError(f"axis: expected one of {AXES}, got {axis!r}")
    noise, noise_std = _check_float("noise", noise), _check_float("noise_std", noise_std, nonnegative=True)
    if mog and noise_std == 0:
        raise ValueError("mog: the mixture needs a random a (noise_std > 0)")
    _check_common(shift, ood_shift, sign, seed)
    x = per_inertia_inputs(N_DATA, shift, sign)
    a = per_random_a(N_DATA, noise_std, bool(mog), seed) if noise_std > 0 else noise
    ood_x = per_inertia_inputs(N_OOD, ood_shift, 0) if sign == 0 else per_inertia_inputs(N_OOD, 0, -sign)
    exact = noise == 0 and noise_std == 0
    true = "O3" if exact else AXIS_GROUP.get(axis, "none")
    e = "(-(I e_0) e_0^T + (I e_1) e_1^T)" if axis == -1 else f"(I e_{axis}) e_{axis}^T"
    a_text = (f"a_n ~ N(0.3, {noise_std:g}^2) per sample" + (" (mixture: N(0.6, std^2) w.p. 0.4)" if mog else "")
              + f"; OOD a = {noise:g}") if noise_std > 0 else f"a = {noise:g}"
    meta = {"in_rep": "5x0+5x1", "out_rep": "1x2", "space_dim": 3, "positions": False,
            "candidates": INERTIA_CANDIDATES, "true_symmetry": true, "task": "modified_inertia",
            "definition": f"Y = I + a {e}, I = sum_i m_i (|r_i|^2 I3 - r_i r_i^T), m_i = softplus(N(0,1)), "
                          f"r_i ~ N(0, I3); {a_text}",
            "params": _params(axis=axis, noise=noise, noise_std=noise_std, mog=bool(mog), shift=shift,
                              ood_shift=ood_shift, sign=sign, seed=seed)}
    return _pack(x, modified_inertia_target(x, axis, a), seed, meta,
                 (ood_x, modified_inertia_target(ood_x, axis, noise)))


def inertia(seed: int = EMLP_SEED) -> dict[str, np.ndarray]:
    """EMLP's ``Inertia(3000)`` (emlp/datasets.py lines 11-38) as ``makeTrainer`` (experiments/train_regression.py
    lines 21-31) builds and splits it under ``FixedNumpySeed(seed)``: ``np.random.randn(3000, 20)``, masses
    ``log(1 + exp(x))`` of the first 5 columns, then the split on the same stream.

    Args:
        seed: The legacy numpy seed (EMLP's 2021).

    Returns:
        The file's arrays (see README.md).

    Raises:
        ValueError: If ``seed`` is not an integer in [0, 2**32).
    """
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    rs = np.random.RandomState(seed)
    k = K_INERTIA
    x = rs.randn(N_DATA, 4 * k)
    x[:, :k] = np.log(1 + np.exp(x[:, :k]))
    y = inertia_tensor(x[:, :k], x[:, k:].reshape(-1, k, 3)).reshape(-1, 9)
    meta = {"in_rep": "5x0+5x1", "out_rep": "1x2", "space_dim": 3, "positions": False,
            "candidates": INERTIA_CANDIDATES, "true_symmetry": "O3", "task": "inertia",
            "definition": "Y = sum_i m_i (|r_i|^2 I3 - r_i r_i^T), m_i = log(1 + exp(N(0,1))), r_i ~ N(0, I3)",
            "params": _params(seed=seed)}
    data = {}
    for split, idx in split_indices(N_DATA, rs).items():
        data[f"{split}_x"], data[f"{split}_y"] = x[idx], y[idx]
    return _finish(data, meta, None)


def cossim(sym: str = "so3", noise: float = 1.0, shift: int = 0, ood_shift: int = 0, sign: int = 0,
           seed: int = PER_SEED) -> dict[str, np.ndarray]:
    """PER's cosine-similarity task as ``train_softemlp_checkpoint.py`` (lines 336-371) builds it:
    ``SyntheticCosSimDataset(3000, noise, sym, sign, shift)`` split 1000 / 1000 / 1000, and the OOD set
    ``SyntheticCosSimDataset(1000, noise, sym, shift=ood_shift)`` (with ``sign=-sign`` when ``sign`` is +-1).

    Args:
        sym: so3 (rotations exact, scale broken), scale, so3-scale (both exact) or none (both broken).
        noise: ``a``, the weight of the breaking terms.
        shift: PER's --ind_shift.
        ood_shift: PER's --ood_shift.
        sign: PER's --sign: 0 or +-1 (inputs ``sign * |x|``; OOD ``-sign * |x|``).
        seed: PER's --seed (the split).

    Returns:
        The file's arrays (see README.md).

    Raises:
        ValueError: For an argument out of range, naming it.
    """
    if sym not in COSSIM_SYMS:
        raise ValueError(f"sym: expected one of {COSSIM_SYMS} for cossim, got {sym!r}")
    noise = _check_float("noise", noise)
    _check_common(shift, ood_shift, sign, seed)
    x = per_points_inputs(N_DATA, False, shift, sign)
    ood_x = per_points_inputs(N_OOD, False, ood_shift, -sign)
    true = "SO3+Scale" if noise == 0 else {"so3": "SO3", "scale": "Scale", "so3-scale": "SO3+Scale",
                                            "none": "none"}[sym]
    term = {"so3": " - a rho", "scale": " - a f", "so3-scale": "", "none": " - a rho + a f"}[sym]
    meta = {"in_rep": "3x1", "out_rep": "1x0", "space_dim": 3, "positions": False,
            "candidates": "SO3+Scale,SO3,Scale", "true_symmetry": true, "task": "cossim",
            "definition": f"Y = s{term}, s = (cos(p0,p1) + cos(p1,p2) + cos(p2,p0)) / 3"
                          + (", rho = mean_i |p_i|" if "rho" in term else "")
                          + (", f = |p0|_1 / (|p1|_1 + |p2|_1)" if " f" in term else "")
                          + f", p_i ~ N(0, I3); a = {noise:g}",
            "params": _params(sym=sym, noise=noise, shift=shift, ood_shift=ood_shift, sign=sign, seed=seed)}
    return _pack(x, cossim_target(x, sym, noise), seed, meta, (ood_x, cossim_target(ood_x, sym, noise)))


SE3_TRUE = {"se3": "SO3+Translations", "distance": "SO3+Translations", "r3": "SO3", "ball": "SO3",
            "t3": "Translations", "l1distance": "Translations", "rxy2": "O2z", "txy2": "Translations",
            "r3t3soft": "none"}
SE3_TERM = {"se3": "0", "distance": "0", "r3": "sum_i |p_i|^2", "ball": "|p0|",
            "t3": "|p0-p1|_1 + |p1-p2|_1 + 3 |p2-p0|_1", "l1distance": "|x0 - x1| (x components)",
            "rxy2": "|p0_xy|^2 + |p1_xy|^2 + 3 |p2_xy|^2", "txy2": "|p0-p1|_1 + |p1-p2|_1 + 3 |p2-p0|_1 on xy",
            "r3t3soft": "sum_i |p_i|^2 + |p0-p1|_1 + |p1-p2|_1 + 3 |p2-p0|_1"}


def se3(sym: str = "l1distance", noise: float = -1.0, noisy: bool = False, shift: int = 0, ood_shift: int = 0,
        sign: int = 0, seed: int = PER_SEED) -> dict[str, np.ndarray]:
    """PER's SE(3) task as ``train_softemlp_checkpoint.py`` (lines 332-368) builds it with ``for_mlp=True``:
    ``SyntheticSE3Dataset(3000, noisy, noise, sym, sign, shift)`` split 1000 / 1000 / 1000, and the OOD set
    ``SyntheticSE3Dataset(1000, noisy, noise, sym, shift=ood_shift)`` (with ``sign=-sign`` when ``sign`` is +-1).

    Args:
        sym: The breaking term, one of ``SE3_SYMS`` (PER's ``test`` debugging option is left out).
        noise: ``a`` (PER's se3_test_mse.sh: -1 with l1distance, -0.5 with ball and distance).
        noisy: PER's --noisy: ``a`` times U(0, 1) per sample.
        shift: PER's --ind_shift.
        ood_shift: PER's --ood_shift.
        sign: PER's --sign: 0 or +-1.
        seed: PER's --seed (the split).

    Returns:
        The file's arrays (see README.md).

    Raises:
        ValueError: For an argument out of range, naming it.
    """
    if sym not in SE3_SYMS:
        raise ValueError(f"sym: expected one of {SE3_SYMS} for se3, got {sym!r}")
    noise = _check_float("noise", noise)
    _check_common(shift, ood_shift, sign, seed)
    x = per_points_inputs(N_DATA, True, shift, sign)
    ood_x = per_points_inputs(N_OOD, True, ood_shift, -sign)
    a = per_se3_epsilon(N_DATA, noise) if noisy else noise
    ood_a = per_se3_epsilon(N_OOD, noise) if noisy else noise
    true = "SO3+Translations" if noise == 0 else SE3_TRUE[sym]
    a_text = f"a = {noise:g} U(0,1) per sample" if noisy else f"a = {noise:g}"
    meta = {"in_rep": "3x1", "out_rep": "1x0", "space_dim": 3, "positions": True,
            "candidates": "SO3+Translations,SO3,Translations", "true_symmetry": true, "task": "se3",
            "definition": f"Y = (|p0-p1| + |p1-p2| + |p2-p0|) / 3 - a e, e = {SE3_TERM[sym]}, p_i ~ N(0, I3); {a_text}",
            "params": _params(sym=sym, noise=noise, noisy=bool(noisy), shift=shift, ood_shift=ood_shift, sign=sign,
                              seed=seed)}
    return _pack(x, se3_target(x, sym, a), seed, meta, (ood_x, se3_target(ood_x, sym, ood_a)))


def o5_synthetic(seed: int = EMLP_SEED) -> dict[str, np.ndarray]:
    """EMLP's ``O5Synthetic(3000)`` (emlp/datasets.py lines 47-60) as ``makeTrainer`` builds and splits it under
    ``FixedNumpySeed(seed)``: ``np.random.randn(3000, 10)``, then the split on the same stream.

    Args:
        seed: The legacy numpy seed (EMLP's 2021).

    Returns:
        The file's arrays (see README.md).

    Raises:
        ValueError: If ``seed`` is not an integer in [0, 2**32).
    """
    seed = _check_int("seed", seed, 0, 2**32 - 1)
    rs = np.random.RandomState(seed)
    x = rs.randn(N_DATA, 10)
    y = o5_target(x)
    meta = {"in_rep": "2x1", "out_rep": "1x0", "space_dim": 5, "positions": False, "candidates": "O5",
            "true_symmetry": "O5", "task": "o5_synthetic",
            "definition": "Y = sin|r1| - |r2|^3 / 2 + r1.r2 / (|r1| |r2|), r1, r2 ~ N(0, I5)",
            "params": _params(seed=seed)}
    data = {}
    for split, idx in split_indices(N_DATA, rs).items():
        data[f"{split}_x"], data[f"{split}_y"] = x[idx], y[idx]
    return _finish(data, meta, None)


BUILDERS = {"modified_inertia": modified_inertia, "inertia": inertia, "cossim": cossim, "se3": se3,
            "o5_synthetic": o5_synthetic}


def make_task(task: str, **params) -> dict[str, np.ndarray]:
    """One task's file contents.

    Args:
        task: One of ``TASKS``.
        **params: That task's arguments (``DEFAULTS[task]`` names them); missing ones take their defaults.

    Returns:
        The file's arrays.

    Raises:
        ValueError: For an unknown task, a parameter the task does not take, or a bad value.
    """
    if task not in BUILDERS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    unknown = sorted(set(params) - set(DEFAULTS[task]))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a parameter of task {task!r} (it takes {sorted(DEFAULTS[task])})")
    return BUILDERS[task](**params)


def default_name(task: str, **params) -> str:
    """The file name (without .npz) for a task and its parameters: the task, then the parameters that define it,
    then any that differ from their defaults, e.g. ``modified_inertia_axis2_noise0.3``, ``cossim_so3_noise1``.

    Args:
        task: One of ``TASKS``.
        **params: As for :func:`make_task`.

    Returns:
        The name.

    Raises:
        ValueError: For an unknown task.
    """
    if task not in DEFAULTS:
        raise ValueError(f"task: expected one of {TASKS}, got {task!r}")
    p = {**DEFAULTS[task], **params}
    parts = [task]
    if task == "modified_inertia":
        parts.append(f"axis{p['axis']}")
        if p["noise_std"] > 0:
            parts.append(f"random{p['noise_std']:g}" + ("mog" if p["mog"] else ""))
        else:
            parts.append(f"noise{p['noise']:g}")
        if p["noise_std"] > 0 and p["noise"] != DEFAULTS[task]["noise"]:
            parts.append(f"oodnoise{p['noise']:g}")
    elif task in ("cossim", "se3"):
        parts += [p["sym"], f"noise{p['noise']:g}"] + (["noisy"] if p.get("noisy") else [])
    for key in ("shift", "ood_shift", "sign", "seed"):
        if key in p and p[key] != DEFAULTS[task][key]:
            parts.append(f"{key.replace('_', '')}{p[key]}")
    return "_".join(parts)

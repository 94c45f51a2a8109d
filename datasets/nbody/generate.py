"""Charged-particle n-body trajectories: the ``nbody_small`` data of EGNN (Satorras et al. 2021, "E(n) Equivariant
Graph Neural Networks", Sec. 5.1), reused by Frame Averaging (Puny et al. 2022).

Reimplements ``ChargedParticlesSim`` and ``generate_dataset.py --num-train 10000 --seed 43 --sufix small`` of
github.com/vgsatorras/egnn (``n_body_system/dataset/``), with every simulation of a split stepped together.
Five particles in 3-D with charges +-1 (probability 1/2 each); positions N(0, 1) per coordinate, velocities of
random direction and norm 0.5; Coulomb forces q_i q_j (x_i - x_j) / |x_i - x_j|^3 without softening, each
component of a particle's total force clipped to +-0.1/dt; leapfrog (kick, then drift-kick) with dt = 0.001 and
5000 steps; frame k is the state after 100 (k + 1) drifts (49 frames; the initial state is not a frame).
Random numbers come from one legacy ``np.random.RandomState(seed)`` stream, drawn per simulation in the reference
order: 5 uniforms for the charges, 15 normals for positions, 15 for velocities, then 2 x 49 x 15 normals of
observation noise of variance 0 (drawn, never added); train, then valid, then test simulations.

Optional, not in the reference: a uniform external electric field E along z (``field``), an extra force q_i E e_z
on each particle, added to the Coulomb force before the per-component clipping; it keeps the symmetries that fix the
z axis (rotations about z, reflections through planes containing it, translations, permutations) and breaks the
rest of E(3). ``field=0`` (the default) adds no operation and draws no random numbers: the reference's data.

Floating point: |x_i - x_j|^2 is computed as the reference does, |x_i|^2 + |x_j|^2 - 2 x_i.x_j, but with plain
multiplies and adds, and r^3 as r^2 sqrt(r^2), so that only correctly rounded IEEE operations are used and every
machine makes the same file. The reference's ``np.dot`` (BLAS, often with fused multiply-adds) and ``np.power``
(SIMD on some CPUs) round differently from machine to machine; see README.md for what that changes.
"""

from __future__ import annotations

import math
from functools import reduce

import numpy as np

N_PARTICLES = 5
DIM = 3
DT = 0.001
MAX_FORCE = 0.1 / DT  # per force component, as the reference's ``_max_F``
VEL_NORM = 0.5
LOC_STD = 1.0 * (N_PARTICLES / 5) ** (1 / 3)  # the reference scales loc_std by (n / 5)^(1/3): 1 for 5 particles
BOX = 5.0  # the reference reflects only the initial positions into [-5, 5]; it never clamps during the run
LENGTH = 5000  # integration steps per simulation
SAMPLE_EVERY = 100
N_FRAMES = LENGTH // SAMPLE_EVERY - 1  # 49: frames at steps 100, 200, ..., 4900
TASK_FRAMES = (30, 40)  # nbody_small: input frame 30 (step 3100), target frame 40 (step 4100)
SPLITS = ("train", "valid", "test")
SEED = 43
STREAM_TRAIN = 10000  # training simulations drawn from the stream (generate_dataset.py --num-train)
STREAM_VALID = 2000  # validation simulations drawn from the stream (generate_dataset.py --num-valid)
NUM = {"train": 3000, "valid": 2000, "test": 2000}  # simulations kept per split (the task's sizes)


def draw_simulation(rs: np.random.RandomState) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulation's random numbers in the reference order: charges (5,), positions and velocities (5, 3)."""
    # Three charge types with the neutral one at probability 0, as in the reference: one uniform per particle.
    charges = rs.choice(np.array([-1.0, 0.0, 1.0]), size=(N_PARTICLES, 1), p=[0.5, 0.0, 0.5])[:, 0]
    loc = rs.randn(DIM, N_PARTICLES) * LOC_STD
    vel = rs.randn(DIM, N_PARTICLES)
    vel = vel * VEL_NORM / np.sqrt((vel**2).sum(axis=0))
    rs.randn(N_FRAMES, DIM, N_PARTICLES)  # position noise, variance 0
    rs.randn(N_FRAMES, DIM, N_PARTICLES)  # velocity noise, variance 0
    loc, vel = reflect_into_box(loc.T, vel.T)
    return charges, loc, vel


def reflect_into_box(loc: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference's ``_clamp`` of the initial state: coordinates beyond +-BOX mirrored back, their velocity
    component turned inwards (a 5-sigma coordinate: about one simulation in 100 000)."""
    loc, vel = loc.copy(), vel.copy()
    over = loc > BOX
    loc[over], vel[over] = 2 * BOX - loc[over], -np.abs(vel[over])
    under = loc < -BOX
    loc[under], vel[under] = -2 * BOX - loc[under], np.abs(vel[under])
    return loc, vel


def draw_stream(seed: int = SEED, num: dict[str, int] = NUM, stream_train: int = STREAM_TRAIN,
                stream_valid: int = STREAM_VALID) -> dict:
    """Initial states ``(charges (N, 5), loc (N, 5, 3), vel (N, 5, 3))`` per split: ``stream_train`` training,
    then ``stream_valid`` validation, then ``num['test']`` test simulations are drawn; the first ``num[split]`` of
    each split are kept, so every split is a prefix of the same split of any larger data set."""
    rs = np.random.RandomState(seed)
    drawn = {"train": stream_train, "valid": stream_valid, "test": num["test"]}
    out = {}
    for split in SPLITS:
        sims = [draw_simulation(rs) for _ in range(drawn[split])][: num[split]]
        out[split] = tuple(np.stack(arrays) for arrays in zip(*sims))
    return out


def coulomb(loc: np.ndarray, charges: np.ndarray) -> np.ndarray:
    """Unclipped Coulomb forces (3, 5, ...) on particles at ``loc`` (3, 5, ...) with ``charges`` (5, ...).

    Coordinates first, as the reference lays out one simulation (3, 5); batch axes last, so that numpy works on
    contiguous runs of simulations. All operations are elementwise: a simulation's result does not depend on which
    others share its batch."""
    sq = _sum(loc**2)
    dist2 = sq[:, None] + sq[None, :] - 2 * _sum(loc[:, :, None] * loc[:, None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        size = charges[:, None] * charges[None, :] / (dist2 * np.sqrt(dist2))
    size[np.arange(N_PARTICLES), np.arange(N_PARTICLES)] = 0.0  # no self-force (the diagonal is 0/0)
    terms = size[None] * (loc[:, :, None] - loc[:, None, :])  # q_i q_j (x_i - x_j) / r_ij^3, (3, i, j, ...)
    return _sum(np.moveaxis(terms, 2, 0))


def _sum(terms: np.ndarray) -> np.ndarray:
    """Sum over the first axis, strictly left to right (numpy's reductions may group terms differently)."""
    return reduce(np.add, terms)


def leapfrog(charges: np.ndarray, loc: np.ndarray, vel: np.ndarray, n_steps: int, field: float = 0.0):
    """The reference integrator, in place on batch-last ``loc``, ``vel``.

    Each component of the total force, clipped to +-MAX_FORCE, kicks ``vel``. With a field, the total force is the
    Coulomb force plus ``charges * field`` on the z component, added before the clipping.

    Args:
        charges: Charges (5, ...).
        loc: Positions (3, 5, ...), advanced in place.
        vel: Velocities (3, 5, ...), advanced in place.
        n_steps: The last step.
        field: A uniform external electric field along z (0: none, the reference; no operation is added then).

    Yields:
        ``(step, loc, vel, force)`` for step 0..n_steps: ``loc`` after ``step`` drifts, ``vel`` the velocity that
        made the last drift (the initial one at step 0), ``force`` the unclipped total force at ``loc``.
    """
    for step in range(n_steps + 1):
        if step:
            loc += DT * vel
        force = coulomb(loc, charges)
        if field:
            force[2] += field * charges  # q_i E e_z, before the clipping
        yield step, loc, vel, force
        vel += DT * np.clip(force, -MAX_FORCE, MAX_FORCE)


def simulate(charges: np.ndarray, loc: np.ndarray, vel: np.ndarray, frames,
             field: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """N simulations, saved at ``frames``; integration stops at the last frame asked for.

    Args:
        charges: Charges (N, 5).
        loc: Initial positions (N, 5, 3).
        vel: Initial velocities (N, 5, 3).
        frames: Frame numbers (frame k: the state after 100 (k + 1) steps).
        field: A uniform external electric field along z (0: none).

    Returns:
        Positions and velocities (N, len(frames), 5, 3).

    Raises:
        ValueError: If ``frames`` is empty.
    """
    frames = list(frames)
    if not frames:
        raise ValueError("frames: expected at least one frame")
    step_of = [SAMPLE_EVERY * (k + 1) for k in frames]
    saved = np.empty((2, len(frames), DIM, N_PARTICLES, len(loc)))
    state = (np.array(a.T, order="C") for a in (charges, loc, vel))  # copies, batch last
    for step, x, v, _ in leapfrog(*state, max(step_of), field):
        for i in (i for i, s in enumerate(step_of) if s == step):
            saved[0, i], saved[1, i] = x, v
        if step == max(step_of):
            break
    loc_out, vel_out = saved.transpose(0, 4, 1, 3, 2)
    return loc_out.copy(), vel_out.copy()


def parse_frames(frames) -> tuple[int, ...]:
    """``"30,40"`` or (30, 40) -> (30, 40); ``"all"`` -> 0..48. ValueError for anything else."""
    if isinstance(frames, str):
        if frames.strip() == "all":
            return tuple(range(N_FRAMES))
        try:
            frames = [int(f) for f in frames.split(",")]
        except ValueError:
            raise ValueError(f"frames: expected 'all' or comma-separated integers, got {frames!r}") from None
    frames = tuple(frames)
    if not frames or any(not isinstance(f, (int, np.integer)) or not 0 <= f < N_FRAMES for f in frames) \
            or len(set(frames)) != len(frames):
        raise ValueError(f"frames: expected distinct frame numbers in 0..{N_FRAMES - 1}, got {frames!r}")
    return tuple(sorted(int(f) for f in frames))


def check_field(field) -> float:
    """The external field as a float.

    Args:
        field: A finite real number (bool excluded).

    Returns:
        ``float(field)``.

    Raises:
        ValueError: If ``field`` is not a finite real number.
    """
    if isinstance(field, bool) or not isinstance(field, (int, float, np.integer, np.floating)) \
            or not math.isfinite(field):
        raise ValueError(f"field: expected a finite number, got {field!r}")
    return float(field)


def check_arguments(seed, num: dict[str, int], stream_train, stream_valid) -> None:
    """ValueError naming the first bad argument."""
    if not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
        raise ValueError(f"seed: expected an integer in [0, 2**32), got {seed!r}")
    for split in SPLITS:
        if not isinstance(num[split], (int, np.integer)) or num[split] < 1:
            raise ValueError(f"num_{split}: expected a positive integer, got {num[split]!r}")
    for split, drawn in (("train", stream_train), ("valid", stream_valid)):
        if not isinstance(drawn, (int, np.integer)) or drawn < num[split]:
            raise ValueError(f"stream_{split}: expected an integer >= num_{split} ({num[split]}), got {drawn!r}")


def generate(seed: int = SEED, num_train: int = NUM["train"], num_valid: int = NUM["valid"],
             num_test: int = NUM["test"], stream_train: int = STREAM_TRAIN, stream_valid: int = STREAM_VALID,
             frames=TASK_FRAMES, field: float = 0.0) -> dict:
    """Every array of the data set file.

    Args:
        seed: Seed of the legacy random stream.
        num_train: Training simulations kept.
        num_valid: Validation simulations kept.
        num_test: Test simulations kept.
        stream_train: Training simulations drawn from the stream before the validation ones.
        stream_valid: Validation simulations drawn before the test ones.
        frames: The frames to save, as ``parse_frames`` reads them.
        field: A uniform external electric field along z: force q_i field e_z on particle i (0: none, the
            reference's data bit for bit; the initial states, hence the random numbers, do not depend on it).

    Returns:
        ``{split}_loc``, ``{split}_vel`` (N, F, 5, 3), ``{split}_charges`` (N, 5) and the metadata.

    Raises:
        ValueError: Naming the first bad argument.
    """
    num = {"train": num_train, "valid": num_valid, "test": num_test}
    check_arguments(seed, num, stream_train, stream_valid)
    frames = parse_frames(frames)
    field = check_field(field)
    data = {}
    for split, (charges, loc, vel) in draw_stream(seed, num, stream_train, stream_valid).items():
        data[f"{split}_loc"], data[f"{split}_vel"] = simulate(charges, loc, vel, frames, field)
        data[f"{split}_charges"] = charges
    data.update(metadata(seed, frames, stream_train, stream_valid, field))
    return data


def metadata(seed: int, frames, stream_train: int, stream_valid: int, field: float = 0.0) -> dict[str, np.ndarray]:
    """The constants a reader needs to interpret (and regenerate) the file.

    Args:
        seed: Seed of the legacy random stream.
        frames: The saved frames.
        stream_train: Training simulations drawn before the validation ones.
        stream_valid: Validation simulations drawn before the test ones.
        field: The external field along z; stored (0-d ``field``) only when non-zero, so that the reference's file
            keeps its bytes. A file without ``field`` has none.

    Returns:
        Name -> array.
    """
    meta = {"frames": np.array(frames, dtype=np.int64), "seed": np.array(seed),
            "stream_train": np.array(stream_train), "stream_valid": np.array(stream_valid),
            "dt": np.array(DT), "sample_every": np.array(SAMPLE_EVERY), "length": np.array(LENGTH),
            "max_force": np.array(MAX_FORCE), "loc_std": np.array(LOC_STD), "vel_norm": np.array(VEL_NORM),
            "task_frames": np.array(TASK_FRAMES), "recipe": np.array("datasets/nbody")}
    if field:
        meta["field"] = np.array(float(field))
    return meta


def task(data, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The nbody_small task of ``split``: positions and velocities at frame 30, charges, positions at frame 40."""
    frames = [int(f) for f in data["frames"]]
    missing = [f for f in TASK_FRAMES if f not in frames]
    if missing:
        raise ValueError(f"frames: the data lack task frame(s) {missing}")
    i, j = frames.index(TASK_FRAMES[0]), frames.index(TASK_FRAMES[1])
    loc, vel = data[f"{split}_loc"], data[f"{split}_vel"]
    return loc[:, i], vel[:, i], data[f"{split}_charges"], loc[:, j]


def baselines(data, split: str = "test") -> dict[str, float]:
    """MSE (mean over simulations, particles and coordinates, as EGNN's ``nn.MSELoss``) of two trivial predictors:
    frame-30 positions unchanged, and constant velocity over the 1000 steps (time 1.0) to frame 40."""
    loc, vel, _, target = task(data, split)
    elapsed = (TASK_FRAMES[1] - TASK_FRAMES[0]) * SAMPLE_EVERY * DT
    return {"zero_motion": float(((loc - target) ** 2).mean()),
            "constant_velocity": float(((loc + vel * elapsed - target) ** 2).mean())}


def energy(loc: np.ndarray, vel: np.ndarray, charges: np.ndarray, field: float = 0.0) -> np.ndarray:
    """Total energy: kinetic 1/2 sum |v|^2 (unit masses) + sum_{i<j} q_i q_j / r_ij - field sum_i q_i z_i.

    Args:
        loc: Positions (..., 5, 3).
        vel: Velocities (..., 5, 3).
        charges: Charges (..., 5).
        field: The external field along z (its potential energy is -q_i field z_i; 0: none).

    Returns:
        Energies (...,).
    """
    r = np.linalg.norm(loc[..., :, None, :] - loc[..., None, :, :], axis=-1)
    i, j = np.triu_indices(N_PARTICLES, 1)
    total = 0.5 * (vel**2).sum((-1, -2)) + (charges[..., i] * charges[..., j] / r[..., i, j]).sum(-1)
    return total - field * (charges * loc[..., 2]).sum(-1) if field else total


def trajectory_statistics(charges: np.ndarray, loc: np.ndarray, vel: np.ndarray, n_steps: int = N_FRAMES * 100,
                          field: float = 0.0) -> dict[str, np.ndarray]:
    """Clipping and energy of N simulations.

    Args:
        charges: Charges (N, 5).
        loc: Initial positions (N, 5, 3).
        vel: Initial velocities (N, 5, 3).
        n_steps: The last step.
        field: The external field along z (0: none); its potential is part of the energy.

    Returns:
        Per simulation (N,): ``clip_fraction``, the fraction of total-force components clipped over steps
        0..n_steps; ``energy_start`` and ``energy_end``, the total energy at step 0 (the initial state) and at step
        ``n_steps``.
    """
    clipped = np.zeros(len(loc))
    e0 = energy(loc, vel, charges, field)
    state = (np.array(a.T, order="C") for a in (charges, loc, vel))
    for step, x, v, force in leapfrog(*state, n_steps, field):
        clipped += (np.abs(force) > MAX_FORCE).sum((0, 1))
        if step == n_steps:
            e1 = energy(x.T, v.T, charges, field)
            break
    return {"clip_fraction": clipped / ((n_steps + 1) * N_PARTICLES * DIM), "energy_start": e0, "energy_end": e1}

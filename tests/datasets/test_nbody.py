"""The charged n-body recipe (EGNN's nbody_small): vectorised simulator against a plain per-simulation loop, the
random-number layout, determinism, the shipped file, the baselines and argument checking; the optional external
field along z (field 0 is the reference, the symmetry it keeps and breaks, energy with its potential)."""

import math
from pathlib import Path

import numpy as np
import pytest

from datasets.nbody.__main__ import DEFAULT_NAME, DEFAULT_OUT, main
from datasets.nbody.generate import (
    DT,
    MAX_FORCE,
    baselines,
    coulomb,
    draw_stream,
    energy,
    generate,
    leapfrog,
    simulate,
    task,
    trajectory_statistics,
)

SHIPPED = DEFAULT_OUT / f"{DEFAULT_NAME}.npz"


def _loop_reference(seed: int, index: int, frames, stream_train: int = 10000, field: float = 0.0):
    """Simulation ``index`` of the stream (0.. train, then valid after ``stream_train``), written as a plain loop
    from the published algorithm: one legacy generator drawn the way EGNN's generate_dataset.py draws numpy's global
    one, scalar Python arithmetic, one particle pair at a time; ``field`` adds q_i field to the z force before the
    clipping. Returns charges (5,), loc and vel (frames, 5, 3)."""
    rs = np.random.RandomState(seed)
    for _ in range(index + 1):  # every earlier simulation only consumes its random numbers
        q = rs.choice([-1.0, 0.0, 1.0], size=(5, 1), p=[0.5, 0.0, 0.5])[:, 0]
        x0, v0 = rs.randn(3, 5), rs.randn(3, 5)
        rs.randn(49, 3, 5), rs.randn(49, 3, 5)  # zero-variance observation noise
    v0 = v0 * 0.5 / np.sqrt((v0**2).sum(axis=0))
    x = [[float(x0[d, i]) for d in range(3)] for i in range(5)]
    v = [[float(v0[d, i]) for d in range(3)] for i in range(5)]
    for i in range(5):  # the initial reflection into [-5, 5]
        for d in range(3):
            if x[i][d] > 5:
                x[i][d], v[i][d] = 10 - x[i][d], -abs(v[i][d])
            if x[i][d] < -5:
                x[i][d], v[i][d] = -10 - x[i][d], abs(v[i][d])
    q = [float(c) for c in q]
    dt, out_x, out_v = 0.001, {}, {}

    def kick():
        sq = [(p[0] * p[0] + p[1] * p[1]) + p[2] * p[2] for p in x]
        for i in range(5):
            f = [0.0, 0.0, 0.0]
            for j in range(5):
                if i != j:
                    d2 = sq[i] + sq[j] - 2 * ((x[i][0] * x[j][0] + x[i][1] * x[j][1]) + x[i][2] * x[j][2])
                    s = q[i] * q[j] / (d2 * math.sqrt(d2))
                    f = [f[d] + s * (x[i][d] - x[j][d]) for d in range(3)]
            f[2] += q[i] * field
            f = [min(max(c, -100.0), 100.0) for c in f]
            v[i] = [v[i][d] + dt * f[d] for d in range(3)]

    kick()
    for step in range(1, 100 * (max(frames) + 1) + 1):
        x = [[x[i][d] + dt * v[i][d] for d in range(3)] for i in range(5)]
        if step % 100 == 0:
            out_x[step // 100 - 1], out_v[step // 100 - 1] = [p[:] for p in x], [p[:] for p in v]
        kick()
    return np.array(q), np.array([out_x[f] for f in frames]), np.array([out_v[f] for f in frames])


@pytest.fixture(scope="module")
def small():
    """The first simulations of every split of the default stream, at the task frames."""
    return generate(num_train=3, num_valid=2, num_test=2)


def test_vectorised_equals_loop_reference(small):
    for split, row, index in (("train", 0, 0), ("train", 2, 2), ("valid", 1, 10001)):
        q, loc, vel = _loop_reference(43, index, (30, 40))
        assert np.array_equal(small[f"{split}_charges"][row], q)
        np.testing.assert_allclose(small[f"{split}_loc"][row], loc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(small[f"{split}_vel"][row], vel, rtol=0, atol=1e-12)
    # The first frames too, where frame k is the state after 100 (k + 1) steps (not the initial state).
    q, loc, vel = _loop_reference(43, 1, (0, 1))
    early = generate(num_train=2, num_valid=1, num_test=1, stream_train=2, stream_valid=1, frames="0,1")
    np.testing.assert_allclose(early["train_loc"][1], loc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(early["train_vel"][1], vel, rtol=0, atol=1e-12)


def test_coulomb_forces_sign_and_clip():
    far = [[0.0, 0, 0], [1.0, 0, 0], [1e3, 0, 0], [0, 1e3, 0], [0, 0, 1e3]]  # particles 2-4 out of the way
    loc = np.array(far).T  # (3, 5), coordinates first
    force = coulomb(loc, np.ones(5))
    assert force[0, 0] == pytest.approx(-1.0, abs=1e-5) and force[0, 1] == pytest.approx(1.0, abs=1e-5)  # repel
    assert coulomb(loc, np.array([1.0, -1, 1, 1, 1]))[0, 0] == pytest.approx(1.0, abs=1e-5)  # attract
    close = np.array([[0.0, 0, 0], [0.01, 0, 0], *far[2:]]).T  # a force of 1e4 ...
    steps = leapfrog(np.ones(5), close, np.zeros((3, 5)), n_steps=1)
    assert next(steps)[3][0, 0] == pytest.approx(-1e4)
    _, _, vel, _ = next(steps)
    assert vel[0, 0] == pytest.approx(-MAX_FORCE * 0.001) and MAX_FORCE == 100  # ... kicks as one of 100


def test_deterministic_and_seeded():
    kwargs = {"num_train": 2, "num_valid": 1, "num_test": 1, "stream_train": 3, "stream_valid": 1, "frames": "0,4"}
    a, b, c = generate(seed=5, **kwargs), generate(seed=5, **kwargs), generate(seed=6, **kwargs)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train_loc"], c["train_loc"]) and not np.array_equal(a["test_loc"], c["test_loc"])


@pytest.mark.slow
def test_stream_layout(small):
    more = generate(num_train=5, num_valid=3, num_test=3)
    for split in ("train", "valid", "test"):  # --num-* keep prefixes; no split depends on another's size
        for kind in ("loc", "vel", "charges"):
            assert np.array_equal(more[f"{split}_{kind}"][: len(small[f"{split}_{kind}"])], small[f"{split}_{kind}"])
    # The layout is --stream-train's and --stream-valid's: valid starts after 9999 training simulations here ...
    shifted = generate(num_train=3, num_valid=2, num_test=2, stream_train=9999)
    assert np.array_equal(shifted["train_loc"], small["train_loc"])
    assert not np.array_equal(shifted["valid_loc"], small["valid_loc"])
    _, loc, _ = _loop_reference(43, 9999, (30, 40))
    np.testing.assert_allclose(shifted["valid_loc"][0], loc, rtol=0, atol=1e-12)
    # ... and test after 1999 validation simulations here.
    fewer = generate(num_train=3, num_valid=2, num_test=2, stream_valid=1999)
    assert np.array_equal(fewer["valid_loc"], small["valid_loc"])
    assert not np.array_equal(fewer["test_loc"], small["test_loc"])


def test_baselines_use_elapsed_time_one():
    rng = np.random.default_rng(0)
    loc, vel = rng.normal(size=(4, 5, 3)), rng.normal(size=(4, 5, 3))
    data = {"frames": np.array([30, 40]), "test_loc": np.stack([loc, loc + vel], 1),
            "test_vel": np.stack([vel, vel], 1), "test_charges": np.ones((4, 5))}
    mse = baselines(data)
    assert mse["constant_velocity"] == pytest.approx(0.0, abs=1e-30)
    assert mse["zero_motion"] == pytest.approx(float((vel**2).mean()))
    with pytest.raises(ValueError, match="frames"):
        task({**data, "frames": np.array([30, 41])}, "test")


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped data set is absent")
def test_shipped_file(small):
    data = np.load(SHIPPED)
    splits = {"train": 3000, "valid": 2000, "test": 2000}
    keys = {f"{s}_{k}" for s in splits for k in ("loc", "vel", "charges")}
    assert keys | {"frames", "seed", "stream_train", "stream_valid", "dt", "sample_every", "length"} <= set(data.files)
    assert data["frames"].tolist() == [30, 40] and int(data["seed"]) == 43
    assert int(data["stream_train"]) == 10000 and int(data["stream_valid"]) == 2000
    assert float(data["dt"]) == 0.001 and int(data["sample_every"]) == 100 and int(data["length"]) == 5000
    for split, n in splits.items():
        assert data[f"{split}_loc"].shape == data[f"{split}_vel"].shape == (n, 2, 5, 3)
        assert data[f"{split}_loc"].dtype == data[f"{split}_charges"].dtype == np.float64
        assert data[f"{split}_charges"].shape == (n, 5) and set(np.unique(data[f"{split}_charges"])) == {-1.0, 1.0}
        for kind in ("loc", "vel", "charges"):  # a fresh regeneration of the first simulations
            fresh = small[f"{split}_{kind}"]
            np.testing.assert_allclose(data[f"{split}_{kind}"][: len(fresh)], fresh, rtol=0, atol=1e-12)
    # The card's baselines (README.md) are those of this file.
    mse = baselines(data)
    assert mse["zero_motion"] == pytest.approx(0.27150, abs=5e-6)
    assert mse["constant_velocity"] == pytest.approx(0.11207, abs=5e-6)


def test_cli_writes_the_file(tmp_path, capsys):
    summary = main(["--out", str(tmp_path), "--name", "tiny", "--num-train", "2", "--num-valid", "1",
                    "--num-test", "1", "--stream-train", "2", "--stream-valid", "1", "--frames", "0,2"])
    data = np.load(tmp_path / "tiny.npz")
    assert summary["bytes"] == (tmp_path / "tiny.npz").stat().st_size and '"train": 2' in capsys.readouterr().out
    assert data["train_loc"].shape == (2, 2, 5, 3) and data["frames"].tolist() == [0, 2]
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.npz"]  # no temporary file left behind


@pytest.mark.parametrize("kwargs, name", [
    ({"num_train": 0}, "num_train"), ({"num_valid": -1}, "num_valid"), ({"num_test": 1.5}, "num_test"),
    ({"num_train": 20, "stream_train": 10}, "stream_train"), ({"num_valid": 3, "stream_valid": 2}, "stream_valid"),
    ({"seed": -1}, "seed"), ({"frames": "49"}, "frames"), ({"frames": "30,x"}, "frames"),
    ({"frames": "3,3"}, "frames"), ({"frames": ()}, "frames"), ({"field": float("nan")}, "field"),
    ({"field": float("inf")}, "field"), ({"field": -float("inf")}, "field"), ({"field": "0.5"}, "field"),
    ({"field": True}, "field"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate(**{"num_train": 1, "num_valid": 1, "num_test": 1, "stream_train": 1, "stream_valid": 1, **kwargs})


def test_cli_names_bad_argument(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--frames", "all,3"])
    assert "frames" in capsys.readouterr().err
    assert not list(Path(tmp_path).iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "x"])
def test_cli_names_bad_field(tmp_path, capsys, value):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), f"--field={value}"])
    assert "--field" in capsys.readouterr().err
    assert not list(Path(tmp_path).iterdir())


# -- the external field along z ---------------------------------------------------------------------------------------


def test_field_zero_is_the_reference(small):
    zero = generate(num_train=3, num_valid=2, num_test=2, field=0.0)
    negative_zero = generate(num_train=3, num_valid=2, num_test=2, field=-0.0)
    assert "field" not in small and zero.keys() == negative_zero.keys() == small.keys()  # the file keeps its keys
    assert all(np.array_equal(zero[k], small[k]) and np.array_equal(negative_zero[k], small[k]) for k in small)
    if SHIPPED.exists():  # bit for bit the shipped file's first simulations (made before the field existed)
        data = np.load(SHIPPED)
        assert "field" not in data.files
        for key in (f"{s}_{k}" for s in ("train", "valid", "test") for k in ("loc", "vel", "charges")):
            assert np.array_equal(data[key][: len(zero[key])], zero[key])
    # A field draws no random numbers: the same initial states (charges here) in every split.
    field = generate(num_train=3, num_valid=2, num_test=2, field=0.5)
    assert field["field"].shape == () and float(field["field"]) == 0.5
    assert all(np.array_equal(field[f"{s}_charges"], small[f"{s}_charges"]) for s in ("train", "valid", "test"))
    assert not np.array_equal(field["train_loc"], small["train_loc"])


def test_field_force_against_loop_reference():
    far = np.array([[0.0, 0, 0], [1.0, 0, 0], [1e3, 0, 0], [0, 1e3, 0], [0, 0, 1e3]]).T
    charges = np.array([1.0, -1, 1, -1, 1])
    steps = leapfrog(charges, far.copy(), np.zeros((3, 5)), n_steps=1, field=0.25)
    force = next(steps)[3]
    plain = coulomb(far, charges)
    assert np.array_equal(force[:2], plain[:2]) and np.array_equal(force[2], plain[2] + 0.25 * charges)
    # Added before the clipping: a field of 1e3 kicks as one of MAX_FORCE.
    steps = leapfrog(charges, far.copy(), np.zeros((3, 5)), n_steps=1, field=1e3)
    next(steps)
    assert next(steps)[2][2, 0] == pytest.approx(MAX_FORCE * DT)
    # The vectorised simulation with a field = the plain loop with one, on the first frames.
    early = generate(num_train=2, num_valid=1, num_test=1, stream_train=2, stream_valid=1, frames="0,4", field=0.5)
    for row in (0, 1):
        q, loc, vel = _loop_reference(43, row, (0, 4), field=0.5)
        np.testing.assert_allclose(early["train_loc"][row], loc, rtol=0, atol=1e-12)
        np.testing.assert_allclose(early["train_vel"][row], vel, rtol=0, atol=1e-12)


def _rotation(axis: int, angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    i, j = (k for k in range(3) if k != axis)
    rotation = np.eye(3)
    rotation[i, i], rotation[j, j], rotation[i, j], rotation[j, i] = c, c, -s, s
    return rotation


@pytest.fixture(scope="module")
def initial():
    """20 initial states of the default stream (train simulations 0..19)."""
    return draw_stream(43, {"train": 20, "valid": 1, "test": 1}, stream_train=20, stream_valid=1)["train"]


def _equivariance_errors(initial, transform: np.ndarray, field: float, n_steps: int = 500):
    """Per simulation: max |sim(g x) - g sim(x)| over frames 0..4 (positions and velocities), and whether either
    run clipped a force component."""
    q, loc, vel = initial
    moved = loc @ transform.T, vel @ transform.T
    frames = range(n_steps // 100)
    out, out_moved = simulate(q, loc, vel, frames, field), simulate(q, *moved, frames, field)
    error = np.maximum(*(np.abs(b - a @ transform.T).max((1, 2, 3)) for a, b in zip(out, out_moved)))
    clipped = (trajectory_statistics(q, loc, vel, n_steps, field)["clip_fraction"] > 0) \
        | (trajectory_statistics(q, *moved, n_steps, field)["clip_fraction"] > 0)
    return error, clipped


def test_field_keeps_rotations_about_z_and_xz_reflection(initial):
    angle = np.random.default_rng(0).uniform(0, 2 * np.pi)
    about_z, about_x = _rotation(2, angle), _rotation(0, angle)
    # Per-component clipping is not rotation-equivariant, even without a field: simulations that clip break a
    # rotation about z. The rotations are therefore checked on the simulations that never clip in either run.
    error, clipped = _equivariance_errors(initial, about_z, 0.0)
    assert 5 <= (~clipped).sum() < len(clipped) and error[clipped].max() > 1e-3
    for field in (0.0, 0.5):
        error, clipped = _equivariance_errors(initial, about_z, field)
        assert (~clipped).sum() >= 5 and error[~clipped].max() < 1e-9
        # A reflection through the xz-plane only flips signs: exact, clipped simulations included.
        error, _ = _equivariance_errors(initial, np.diag([1.0, -1.0, 1.0]), field)
        assert error.max() == 0.0
    # A rotation about x keeps the field-free dynamics and breaks those with a field along z.
    error, clipped = _equivariance_errors(initial, about_x, 0.0)
    assert (~clipped).sum() >= 5 and error[~clipped].max() < 1e-9
    error, clipped = _equivariance_errors(initial, about_x, 0.5)
    assert (~clipped).sum() >= 5 and error[~clipped].min() > 1e-3


def _energy_drift(initial, field: float, n_steps: int = 1000):
    """|E(n_steps) - E(0)| per simulation with the field's potential, and without it, and whether it clipped; the
    velocity at a step is made time-centred (the drift's velocity + dt/2 F), as symplectic Euler needs."""
    q, loc, vel = initial
    state = (np.array(a.T, order="C") for a in (q, loc, vel))
    clipped, energies = np.zeros(len(q), dtype=bool), []
    for step, x, v, force in leapfrog(*state, n_steps, field):
        clipped |= (np.abs(force) > MAX_FORCE).any((0, 1))
        if step in (0, n_steps):
            centred = (x.T, (v + DT / 2 * force).T, q)
            energies.append((energy(*centred, field), energy(*centred)))
    (start, start_plain), (end, end_plain) = energies
    return np.abs(end - start), np.abs(end_plain - start_plain), clipped


def test_energy_with_the_field_potential_is_conserved(initial):
    drift, _, clipped = _energy_drift(initial, 0.0)
    reference = np.median(drift[~clipped])
    assert reference < 1e-5
    for field in (0.3, 1.0):
        drift, without_potential, clipped_field = _energy_drift(initial, field)
        kept = ~(clipped | clipped_field)
        assert kept.sum() >= 5
        assert np.median(drift[kept]) < 3 * reference  # as well conserved as without the field
        assert np.median(without_potential[kept]) > 1e3 * reference  # the -q E z term is what balances it


def test_cli_field(tmp_path):
    args = ["--out", str(tmp_path), "--num-train", "2", "--num-valid", "1", "--num-test", "1", "--stream-train", "2",
            "--stream-valid", "1", "--frames", "0,2"]
    summary = main([*args, "--field", "0.5", "--name", "charged5_field0.5"])
    data = np.load(tmp_path / "charged5_field0.5.npz")
    expected = generate(num_train=2, num_valid=1, num_test=1, stream_train=2, stream_valid=1, frames="0,2", field=0.5)
    assert summary["field"] == 0.5 and data["field"].shape == () and float(data["field"]) == 0.5
    assert set(data.files) == set(expected) and all(np.array_equal(data[k], expected[k]) for k in expected)
    main([*args, "--field=-0.5", "--name", "negative"])
    assert float(np.load(tmp_path / "negative.npz")["field"]) == -0.5

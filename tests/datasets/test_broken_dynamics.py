"""The broken-dynamics recipe (EMLP's double spring pendulum, RPP's windy one): the vector field against finite
differences of the Hamiltonian, energy conservation, the integrator against an independent RK4, O(2)-about-z
equivariance of the pendulum's flow and its breaking by gravity (O(3)) and by the wind, the chunk layout,
determinism, the shipped files and argument checking."""

from pathlib import Path

import numpy as np
import pytest

from datasets.broken_dynamics.__main__ import DEFAULT_OUT, main
from datasets.broken_dynamics.generate import (
    NUM,
    SPLITS,
    SYSTEMS,
    WIND_SCALE,
    _rhs,
    draw_initial,
    energy_drift,
    flow,
    generate,
    hamiltonian,
    time_grid,
    vector_field,
)

SHIPPED = {system: DEFAULT_OUT / f"{system}.npz" for system in SYSTEMS}
KEYS = {f"{s}_{k}" for s in SPLITS for k in ("z0", "ts", "zs")} | {"state_rep", "true_symmetry", "definition"}


def _states(n: int, seed: int = 0) -> np.ndarray:
    """Initial states of the reference's distribution."""
    return draw_initial(seed, "test", n, 30)[0]


def _rotation(axis, angle: float) -> np.ndarray:
    """The rotation by ``angle`` about ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def _reflection(normal) -> np.ndarray:
    """The reflection in the plane through 0 with ``normal``."""
    n = np.asarray(normal, dtype=np.float64) / np.linalg.norm(normal)
    return np.eye(3) - 2 * np.outer(n, n)


def _act(matrix: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``matrix`` applied to each of the four vectors q1, q2, p1, p2 of states (..., 12) (rep 4x1, copy-major)."""
    return (z.reshape(*z.shape[:-1], 4, 3) @ matrix.T).reshape(z.shape)


def _equivariance_error(matrix: np.ndarray, wind_scale: float, z0: np.ndarray, times: np.ndarray) -> float:
    """max |flow(g z0) - g flow(z0)| over the systems and times."""
    return float(np.abs(flow(_act(matrix, z0), times, wind_scale) - _act(matrix, flow(z0, times, wind_scale))).max())


@pytest.fixture(scope="module")
def small():
    """A few systems of every split, per system, with the default seed."""
    return {system: generate(system, num_train=6, num_valid=3, num_test=3) for system in SYSTEMS}


@pytest.mark.parametrize("wind_scale", [0.0, WIND_SCALE, 0.5])
def test_vector_field_is_hamiltons_equations(wind_scale):
    z = _states(6, seed=1)
    field = vector_field(z, wind_scale)
    h = 1e-6
    grad = np.empty_like(z)
    for j in range(12):  # central differences of H in float64
        step = np.zeros(12)
        step[j] = h
        grad[:, j] = (hamiltonian(z + step, wind_scale) - hamiltonian(z - step, wind_scale)) / (2 * h)
    np.testing.assert_allclose(field[:, :6], grad[:, 6:], rtol=0, atol=1e-8)  # dq/dt = dH/dp
    np.testing.assert_allclose(field[:, 6:], -grad[:, :6], rtol=0, atol=1e-8)  # dp/dt = -dH/dq
    # The integrator's scalar right-hand side is the same field.
    rhs = _rhs(wind_scale)
    np.testing.assert_allclose(np.stack([rhs(0.0, row) for row in z]), field, rtol=0, atol=1e-14)


def test_wind_is_a_constant_force():
    z = _states(3, seed=2)
    force = vector_field(z, WIND_SCALE)[:, 6:] - vector_field(z, 0.0)[:, 6:]
    np.testing.assert_allclose(force, np.tile(-0.01 * np.array([8.0, 5.0, 0.0]), (3, 2)), rtol=0, atol=1e-15)
    # The equilibrium hangs straight down: spring 1 stretched by 2 (it holds both masses), spring 2 by 1/2 (the
    # reference's k2 (|q1 - q2| - l2)^2 has no 1/2: stiffness 2 k2).
    rest = np.array([0, 0, -3.0, 0, 0, -4.5, 0, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(vector_field(rest), 0.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("system", SYSTEMS)
def test_energy_conserved(small, system):
    wind = WIND_SCALE if system == SYSTEMS[1] else 0.0
    assert energy_drift(small[system], wind) < 1e-9  # along the generated chunks
    z0 = _states(3, seed=3)
    energy = hamiltonian(flow(z0, time_grid(), wind), wind)  # whole trajectories, t = 0 .. 29.8
    assert np.abs(energy - energy[:, :1]).max() < 1e-9
    if wind:  # the pendulum's H is not conserved by the windy flow
        assert energy_drift(small[system], 0.0) > 1e-3


def test_flow_matches_fixed_step_rk4():
    z0, h, t_end = _states(3, seed=4), 1e-3, 2.0
    y = z0.copy()
    for _ in range(round(t_end / h)):  # classical RK4, vectorised, on the numpy field
        k1 = vector_field(y, WIND_SCALE)
        k2 = vector_field(y + h / 2 * k1, WIND_SCALE)
        k3 = vector_field(y + h / 2 * k2, WIND_SCALE)
        k4 = vector_field(y + h * k3, WIND_SCALE)
        y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    np.testing.assert_allclose(flow(z0, [t_end], WIND_SCALE)[:, 0], y, rtol=0, atol=1e-10)


def test_pendulum_flow_is_o2z_equivariant_not_o3():
    z0, times = _states(3, seed=5), time_grid()[:26]  # t = 0 .. 5
    for matrix in (_rotation([0, 0, 1], 0.7), _rotation([0, 0, 1], -2.5), _reflection([0, 1, 0]),
                   _reflection([np.cos(1.2), np.sin(1.2), 0])):
        assert _equivariance_error(matrix, 0.0, z0, times) < 1e-8
    assert _equivariance_error(_rotation([1, 0, 0], 0.3), 0.0, z0, times) > 0.1  # gravity breaks O(3)
    assert _equivariance_error(_rotation([1, 1, 0], np.pi), 0.0, z0, times) > 0.1


def test_windy_flow_is_not_o2z_equivariant():
    z0, times = _states(3, seed=6), time_grid()[:6]  # one chunk's length: t = 0 .. 1
    assert _equivariance_error(_rotation([0, 0, 1], np.pi / 2), WIND_SCALE, z0, times) > 1e-2
    assert _equivariance_error(_reflection([1, 0, 0]), WIND_SCALE, z0, times) > 1e-3
    # What it keeps: O(2) about the tilted axis (0.08, 0.05, 1), the reflection in the vertical plane of the wind.
    assert _equivariance_error(_rotation([0.08, 0.05, 1], 1.1), WIND_SCALE, z0, times) < 1e-8
    assert _equivariance_error(_reflection(np.cross([8, 5, 0], [0, 0, 1])), WIND_SCALE, z0, times) < 1e-8


def test_file_layout(small):
    for data in small.values():
        assert set(data) == KEYS
        for split, n in (("train", 6), ("valid", 3), ("test", 3)):
            assert data[f"{split}_z0"].shape == (n, 12) and data[f"{split}_zs"].shape == (n, 5, 12)
            assert data[f"{split}_z0"].dtype == data[f"{split}_zs"].dtype == data[f"{split}_ts"].dtype == np.float64
            np.testing.assert_array_equal(data[f"{split}_ts"], np.arange(5) * 0.2)
            np.testing.assert_array_equal(data[f"{split}_z0"], data[f"{split}_zs"][:, 0])
        assert str(data["state_rep"]) == "4x1" and data["definition"].shape == ()
    assert str(small[SYSTEMS[0]]["true_symmetry"]) == "O2z" and str(small[SYSTEMS[1]]["true_symmetry"]) == "none"
    assert "0.01*(8,5,0)" in str(small[SYSTEMS[1]]["definition"])
    # A chunk is the flow of the drawn initial state over the 5 points 0.2 i, 5 c <= i < 5 c + 5, of the grid
    # 0.2 i, i < 150, for a drawn chunk c; both systems start from the same draws.
    grid = time_grid()
    assert len(grid) == 150 and grid[-1] == pytest.approx(29.8)
    for system, wind in zip(SYSTEMS, (0.0, WIND_SCALE)):
        z, chunk = draw_initial(2021, "valid", 3, 30)
        for i in range(3):
            expected = flow(z[i], grid[5 * chunk[i]:5 * chunk[i] + 5], wind)
            np.testing.assert_allclose(small[system]["valid_zs"][i], expected, rtol=0, atol=1e-13)
    assert not np.array_equal(small[SYSTEMS[0]]["train_zs"], small[SYSTEMS[1]]["train_zs"])


def test_deterministic_and_seeded():
    kwargs = {"num_train": 3, "num_valid": 2, "num_test": 2, "chunk_len": 3, "integration_time": 3.0}
    a, b = generate(SYSTEMS[1], seed=5, **kwargs), generate(SYSTEMS[1], seed=5, **kwargs)
    c = generate(SYSTEMS[1], seed=6, **kwargs)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["train_zs"], c["train_zs"]) and not np.array_equal(a["test_zs"], c["test_zs"])
    more = generate(SYSTEMS[1], seed=5, **{**kwargs, "num_train": 5, "num_test": 3})  # prefixes, split by split
    for split in SPLITS:
        assert np.array_equal(more[f"{split}_zs"][: len(a[f"{split}_zs"])], a[f"{split}_zs"])
    # chunk_len = the grid length keeps whole trajectories from the drawn initial state.
    whole = generate(SYSTEMS[0], seed=5, num_train=2, num_valid=1, num_test=1, chunk_len=15, integration_time=3.0)
    np.testing.assert_array_equal(whole["train_z0"], draw_initial(5, "train", 2, 1)[0])


@pytest.mark.parametrize("system", SYSTEMS)
def test_shipped_file(small, system):
    if not SHIPPED[system].exists():
        pytest.skip("the shipped data set is absent")
    data = np.load(SHIPPED[system])
    assert set(data.files) == KEYS
    for split in SPLITS:
        assert data[f"{split}_zs"].shape == (NUM[split], 5, 12) and data[f"{split}_z0"].shape == (NUM[split], 12)
        # A fresh regeneration of the first systems; 1e-9, as another machine's rounding may move DOP853's steps.
        fresh = small[system][f"{split}_zs"]
        np.testing.assert_allclose(data[f"{split}_zs"][: len(fresh)], fresh, rtol=0, atol=1e-9)
    assert str(data["true_symmetry"]) == ("O2z" if system == SYSTEMS[0] else "none")
    assert energy_drift(data, WIND_SCALE if system == SYSTEMS[1] else 0.0) < 1e-9


def test_cli_writes_the_files(tmp_path, capsys):
    summary = main(["--out", str(tmp_path), "--num-train", "2", "--num-valid", "1", "--num-test", "1",
                    "--integration-time", "2"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{s}.npz" for s in SYSTEMS)  # no temporary file
    for system in SYSTEMS:
        assert summary[system]["bytes"] == (tmp_path / f"{system}.npz").stat().st_size
        assert np.load(tmp_path / f"{system}.npz")["train_zs"].shape == (2, 5, 12)
    assert '"true_symmetry": "none"' in capsys.readouterr().out
    main(["--out", str(tmp_path), "--name", "calm", "--system", SYSTEMS[1], "--wind-scale", "0", "--num-train", "1",
          "--num-valid", "1", "--num-test", "1", "--integration-time", "1"])
    assert str(np.load(tmp_path / "calm.npz")["true_symmetry"]) == "O2z"  # no wind: the pendulum


@pytest.mark.parametrize("kwargs, name", [
    ({"system": "pendulum"}, "system"), ({"num_train": 0}, "num_train"), ({"num_valid": -1}, "num_valid"),
    ({"num_test": 1.5}, "num_test"), ({"seed": -1}, "seed"), ({"seed": 1.0}, "seed"),
    ({"wind_scale": float("nan")}, "wind_scale"), ({"wind_scale": -0.01}, "wind_scale"), ({"dt": 0.0}, "dt"),
    ({"integration_time": -1.0}, "integration_time"), ({"chunk_len": 1}, "chunk_len"),
    ({"chunk_len": 7}, "chunk_len"), ({"chunk_len": 300}, "chunk_len"), ({"tol": 0.0}, "tol"),
])
def test_bad_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=name):
        generate(**{"system": SYSTEMS[0], "num_train": 1, "num_valid": 1, "num_test": 1, **kwargs})


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="z: expected shape"):
        hamiltonian(np.zeros((2, 6)))
    with pytest.raises(ValueError, match="z: expected shape"):
        flow(np.zeros(13), [0.0, 1.0])
    with pytest.raises(ValueError, match="times"):
        flow(_states(1), [1.0, 0.5])
    with pytest.raises(ValueError, match="tol"):
        flow(_states(1), [1.0], tol=-1.0)


def test_cli_names_bad_arguments(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--chunk-len", "7"])
    assert "chunk_len" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path), "--name", "x"])  # --system all writes one file per system
    assert "--name" in capsys.readouterr().err
    assert not list(Path(tmp_path).iterdir())

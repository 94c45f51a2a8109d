"""The ``curvature`` training callback on a tiny n-body run: its columns, lambda_max against a direct Lanczos run at
the same weights, training bit-identical with and without it, exact resume, restored random states and modes, the
report, and option errors."""

import copy
import csv
import dataclasses
import math
import random

import numpy as np
import pytest
import torch

from equilib.curvature import Hessian, task_loss, top_eigenpairs
from equilib.curvature._report import plot_stability
from equilib.train import Trainer, load_config
from equilib.train._curvature_callback import cast_batch, curvature_indices
from tests.interrupted import resumed_after_interrupt
from tests.train.test_tasks import nbody_config

CURVATURE = "callbacks=[{name: curvature, every: 4, top_k: 2, tol: 1.0e-8, trace_probes: 9, density_steps: 8}]"
COLUMNS = ("lr", "lambda_max", "lambda_max_residual", "lambda_2", "gd_ratio", "trace", "trace_stderr", "sgd_ratio",
           "adam_sharpness", "adam_ratio", "matvecs")


def _config(out_dir, *extra):
    """The tiny n-body run in float32 (the callback takes the Hessian of a float64 copy), 8 steps."""
    return nbody_config(out_dir, "data.dtype=float32", "trainer.max_steps=8", *extra)


def _training(history):
    return [{k: v for k, v in row.items() if k != "seconds" and not k.startswith("curvature/")} for row in history]


def test_readings_match_lanczos_and_training_is_unchanged(tmp_path):
    with_callback = Trainer(_config(tmp_path / "with", CURVATURE))
    callback = with_callback.callbacks[0]
    weights = {}
    read = callback._read

    def keep_weights(trainer):  # the weights each reading saw
        weights[trainer.step] = copy.deepcopy(trainer.model.state_dict())
        return read(trainer)

    callback._read = keep_weights
    with_callback.run()
    without = Trainer(_config(tmp_path / "without"))
    without.run()
    for a, b in zip(with_callback.model.parameters(), without.model.parameters()):
        assert torch.equal(a, b)
    assert _training(with_callback.history) == _training(without.history)

    rows = list(csv.DictReader(open(tmp_path / "with" / "metrics.csv")))
    logged = [row for row in rows if row["curvature/lambda_max"]]
    assert [int(row["step"]) for row in logged] == [4, 8]
    for row in logged:
        assert all(math.isfinite(float(row[f"curvature/{key}"])) for key in COLUMNS)
        assert float(row["curvature/gd_ratio"]) == pytest.approx(
            float(row["curvature/lr"]) * float(row["curvature/lambda_max"]), rel=1e-12)

    # lambda_max at step 4, directly: a float64 model with that step's weights on the same structures
    model = with_callback.task.build_model().double()
    model.load_state_dict(weights[4])
    indices = curvature_indices(len(with_callback.train), 1, with_callback.config.data.batch_size, seed=0)
    batches = [cast_batch(with_callback.batch(part), torch.float64) for part in indices]
    direct = top_eigenpairs(Hessian(model, task_loss(with_callback.task), batches), k=2, tol=1e-10,
                            generator=torch.Generator().manual_seed(7))
    reading = with_callback.history[0]
    assert reading["step"] == 4
    assert reading["curvature/lambda_max"] == pytest.approx(float(direct.eigenvalues[0]), rel=1e-6)
    assert reading["curvature/lambda_2"] == pytest.approx(float(direct.eigenvalues[1]), rel=1e-6)

    report = tmp_path / "with" / "curvature"
    assert {"report.md", "readings.csv", "stability.png", "density_8.png", "density_8.csv"} <= {
        p.name for p in report.iterdir()}
    assert [int(r["step"]) for r in csv.DictReader(open(report / "readings.csv"))] == [4, 8]
    assert (report / "stability.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![Stability](stability.png)" in (report / "report.md").read_text()


def test_resume_with_the_callback_gives_the_same_run(tmp_path):
    make = lambda out: _config(out, CURVATURE.replace("every: 4", "every: 3"))  # noqa: E731
    reference = Trainer(make(tmp_path / "ref"))
    reference.run()
    # killed after the checkpoint and the reading of step 6
    resumed = resumed_after_interrupt(lambda: Trainer(make(tmp_path / "run")), 6)
    assert resumed.step == 6
    resumed.run()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)
    assert [r["step"] for r in resumed.history if "curvature/lambda_max" in r] == [3, 6, 8]
    for a, b in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)
    readings = list(csv.DictReader(open(tmp_path / "run" / "curvature" / "readings.csv")))
    assert [int(r["step"]) for r in readings] == [3, 6, 8]  # the readings before the interruption too


def test_a_call_restores_random_states_modes_and_gradients(tmp_path):
    """dtype: model and a params pattern: the Hessian of the float32 model's readout, without a copy."""
    trainer = Trainer(_config(tmp_path, "callbacks=[{name: curvature, every: 1, dtype: model, params: readout, "
                                        "trace_probes: 0, tol: 1.0e-6}]"))
    trainer.train_step(trainer.batch(range(20)))
    trainer.step = 1
    trainer.model.eval()
    trainer.model.layers[0].train()
    modes = [m.training for m in trainer.model.modules()]
    grads = [p.grad.clone() for p in trainer.model.parameters()]
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    states = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    values = trainer.callbacks[0](trainer)
    assert torch.equal(torch.get_rng_state(), states[0])
    assert np.array_equal(np.random.get_state()[1], states[1]) and random.getstate() == states[2]
    assert [m.training for m in trainer.model.modules()] == modes
    assert all(torch.equal(p.grad, g) for p, g in zip(trainer.model.parameters(), grads))
    assert "trace" not in values and "lambda_2" not in values
    indices = curvature_indices(len(trainer.train), 1, trainer.config.data.batch_size, seed=0)
    hessian = Hessian(trainer.model, task_loss(trainer.task), [trainer.batch(part) for part in indices],
                      params="readout")
    assert hessian.dtype == torch.float32 and hessian.dim < 50
    direct = top_eigenpairs(hessian, tol=1e-6, generator=torch.Generator().manual_seed(7))
    assert values["lambda_max"] == pytest.approx(float(direct.eigenvalues[0]), rel=1e-4)


def test_stochastic_frames_are_read_with_all_frames_and_a_random_model_is_refused(tmp_path):
    trainer = Trainer(nbody_config(tmp_path, "model={name: fa_gnn, hidden: 9, num_layers: 1, stochastic: true}",
                                   "callbacks=[{name: curvature, every: 1, trace_probes: 0}]"))
    trainer.train_step(trainer.batch(range(20)))
    reading = trainer.callbacks[0](trainer)  # the FA-GNN over all its frames: deterministic
    model = copy.deepcopy(trainer.model).double()
    model.stochastic = False
    batches = [cast_batch(trainer.batch(part), torch.float64) for part in
               curvature_indices(len(trainer.train), 1, trainer.config.data.batch_size, seed=0)]
    direct = top_eigenpairs(Hessian(model, task_loss(trainer.task), batches), tol=1e-10,
                            generator=torch.Generator().manual_seed(7))
    assert reading["lambda_max"] == pytest.approx(float(direct.eigenvalues[0]), rel=1e-6)
    assert trainer.model.stochastic and trainer.model.training
    forward = trainer.model.forward
    trainer.model.forward = lambda *inputs: forward(*inputs) * (1 + 0.1 * torch.rand(()))  # randomness no mode sees
    callback = trainer.callbacks[0]
    fresh = type(callback)(dataclasses.replace(callback.options, dtype="model"), trainer.task)  # checks on its 1st call
    with pytest.raises(RuntimeError, match="callbacks: curvature: Hessian: two products of the same vector differ"):
        fresh(trainer)  # the patched model itself (a float64 copy would call the float32 original)


@pytest.mark.parametrize("option, message", [
    ("trace_probes: 10", r"callbacks: curvature: trace_probes: expected 0 or a positive multiple of 3, got 10"),
    ("dtype: half", r"callbacks: curvature: dtype: expected one of \('float64', 'float32', 'model'\), got 'half'"),
    ("batches: 0", r"callbacks: curvature: batches: expected a positive int, got 0"),
    ("tol: -1", r"callbacks: curvature: tol: expected a positive number, got -1"),
    ("top_k: 4, max_steps: 3", r"callbacks: curvature: max_steps: expected at least top_k=4, got 3"),
    ("density: 1", r"callbacks: curvature: density: expected true or false, got 1"),
    ("keep_graph: 1", r"callbacks: curvature: keep_graph: expected true or false, got 1"),
    ("probes: 3", r"unknown key callbacks\[0\].probes \(known: batches, density"),
])
def test_option_errors(option, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, ["task=nbody", f"callbacks=[{{name: curvature, {option}}}]"])


def test_the_stability_figure(tmp_path):
    """A negative trace (an indefinite Hessian early in training) and a missing value are drawn; bad series refused."""
    path = plot_stability([10, 20, 30], {"lr * lambda_max": [0.03, 0.08, 0.2], "lr * trace": [0.03, -0.15, None]},
                          tmp_path / "stability.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match=r"ratios: 'lr \* trace' has 1 values for 2 steps"):
        plot_stability([1, 2], {"lr * trace": [0.1]}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="ratios: expected at least one finite value"):
        plot_stability([1], {"lr * trace": [float("nan")]}, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_a_run_stopped_by_its_time_limit_on_the_schedule_writes_the_report(tmp_path):
    """``max_minutes`` ends the run after its first step, which is also on the callback's schedule (every step): the
    trainer marks that step as the last one, and the callback writes its report there."""
    trainer = Trainer(_config(tmp_path / "run", CURVATURE.replace("every: 4", "every: 1"),
                              "trainer.max_minutes=1.0e-9"))
    trainer.run()
    assert trainer.step == 1
    written = {p.name for p in (tmp_path / "run" / "curvature").iterdir()}
    assert {"report.md", "readings.csv", "density_1.png"} <= written

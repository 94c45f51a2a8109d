"""The QM9 property task on the shipped 200-molecule file: a short run through the trainer and a saved model that
reloads, the normalisation (a per-element fit reproduces a linear property exactly), E(3) invariance of the
equivariant and frame-averaged models in float64 (and not of the plain one), units, augmentation and errors."""

import numpy as np
import pytest
import torch

from equilib.groups import E3, assert_equivariant, equivariance_error
from equilib.train import QM9Property, Trainer, load_config
from equilib.train._qm9_task import HARTREE_MEV, PropertyError, dipole_norm

SMALL = "datasets/qm9/small/qm9_small.npz"
WEIGHTS = {1: -0.5, 6: -37.8, 7: -54.6, 8: -75.1, 9: -99.7}  # Ha per element: a synthetic, exactly linear U0
TINY = {"equivariant_potential": ["model.channels=8", "model.lmax=1", "model.num_layers=1", "model.num_radial=4",
                                  "model.radial_hidden=8"],
        "plain_potential": ["model.channels=8", "model.num_layers=2", "model.num_radial=4"],
        "frame_averaged_potential": ["model.channels=8", "model.num_layers=2", "model.num_radial=4",
                                     "model.on_degenerate=raise", "model.tolerance=0.01"]}


def config(out_dir, *extra, model="equivariant_potential", path=SMALL):
    return load_config(None, [
        "task=qm9", f"data.path={path}", f"trainer.out_dir={out_dir}", "data.cutoff=4.0", "data.batch_size=16",
        "data.eval_batch_size=16", "trainer.max_steps=4", "trainer.eval_every=2", "trainer.checkpoint_every=4",
        "logging.progress=false", "logging.plots=false", f"model.name={model}", *TINY[model], *extra])


def linear_file(tmp_path):
    """The small file with U0 replaced by sum_Z n_Z WEIGHTS[Z]."""
    with np.load(SMALL) as f:
        arrays = {key: f[key] for key in f.files}
    column = arrays["target_names"].tolist().index("U0")
    for k in range(len(arrays["gdb_index"])):
        numbers = arrays["atomic_numbers"][arrays["offsets"][k]:arrays["offsets"][k + 1]]
        arrays["targets"][k, column] = sum(WEIGHTS[int(z)] for z in numbers)
    path = tmp_path / "linear.npz"
    np.savez(path, **arrays)
    return path


def test_trains_through_the_trainer_and_the_saved_model_reloads(tmp_path):
    trainer = Trainer(config(tmp_path, "data.target=mu", "data.val={valid: valid, test: test}"))
    assert (len(trainer.train), len(trainer.val["valid"]), len(trainer.val["test"])) == (152, 28, 20)
    last = trainer.run()
    assert last["step"] == 4 and {"valid/mae", "valid/rmse", "test/mae"} <= set(last)
    assert 0 < last["valid/mae"] <= last["valid/rmse"]
    loaded = QM9Property.load(tmp_path / "model.pt")
    batch = trainer.batch(range(8))
    with torch.no_grad():
        expected, got = trainer.ema.module.eval()(batch), loaded.eval()(batch)
    assert torch.equal(expected["property"], got["property"]) and got["property"].dtype == torch.float64


def test_max_train_takes_nested_random_subsets(tmp_path):
    def molecules(n):  # each by its first atom's position
        trainer = Trainer(config(tmp_path / str(n), f"data.max_train={n}"))
        return {tuple(f.pos[0].tolist()) for f in trainer.train.frames}

    small, large = molecules(10), molecules(40)
    assert len(small) == 10 and len(large) == 40 and small < large


def test_the_per_element_fit_reproduces_a_linear_target_exactly(tmp_path):
    trainer = Trainer(config(tmp_path, "data.target=U0", path=linear_file(tmp_path)))
    n = trainer.task.normalisation
    assert (n.unit, n.pooling, n.shift) == ("meV", "sum", 0.0)
    assert set(n.e0s) <= set(WEIGHTS) and {1, 6} <= set(n.e0s)
    for z, value in n.e0s.items():
        assert value == pytest.approx(WEIGHTS[z] * HARTREE_MEV, rel=1e-9)
    # a network that outputs zero predicts the baseline: exact on molecules it never saw
    model = trainer.model
    with torch.no_grad():
        for p in model.network.readout_mlp[-1].parameters():
            p.zero_()
    assert trainer.evaluate("valid", model=model)["mae"] < 1e-6  # meV, of values near -1e7 meV


def test_mean_normalisation_and_units(tmp_path):
    trainer = Trainer(config(tmp_path, "data.target=gap"))
    n, y = trainer.task.normalisation, np.array([float(f.y) for f in trainer.train.frames])
    assert (n.unit, n.pooling, n.e0s) == ("meV", "mean", {})
    assert n.shift == pytest.approx(y.mean()) and n.scale == pytest.approx(y.std())
    raw = trainer.task.val["valid"].frames[0]
    assert 1000 < float(raw.y) < 20000  # the gap in meV (a few eV), not in Hartree
    mu = Trainer(config(tmp_path / "mu", "data.target=mu"))
    n, y = mu.task.normalisation, np.array([float(f.y) for f in mu.train.frames])
    assert (mu.task.unit, mu.task.factor, n.pooling, n.shift, n.e0s) == ("D", 1.0, "dipole", 0.0, {})
    assert n.scale == pytest.approx(np.sqrt(np.mean(y ** 2)))
    methane = Trainer(config(tmp_path / "u0", "data.target=U0", "data.val={train: train}")).task.val["train"].frames[0]
    assert methane.atomic_numbers.tolist() == [6, 1, 1, 1, 1]
    assert float(methane.y) == pytest.approx(-40.47893 * HARTREE_MEV, abs=0.01 * HARTREE_MEV / 1000)


def test_the_metric_is_the_mae_in_the_reported_unit():
    metric = PropertyError()
    batch = type("Batch", (), {"y": torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)})()
    metric.update({"property": torch.tensor([1.5, 2.0, 1.0], dtype=torch.float64)}, batch)
    out = metric.compute()
    assert out["mae"] == pytest.approx((0.5 + 0 + 2) / 3) and out["rmse"] == pytest.approx(((0.25 + 4) / 3) ** 0.5)


def test_the_dipole_pooling_is_the_moment_of_neutral_charges():
    pos = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 1.5], [5.0, 1.0, 2.0], [5.0, 3.0, 2.0], [5.0, 1.0, 6.0]],
                       dtype=torch.float64)
    batch = torch.tensor([0, 0, 1, 1, 1])
    charges = torch.tensor([0.4, -0.4, 1.0, 1.0, 1.0], dtype=torch.float64)  # the second graph: neutral, no moment
    assert torch.allclose(dipole_norm(charges, pos, batch, 2), torch.tensor([0.6, 0.0], dtype=torch.float64),
                          atol=1e-12)
    shifted = dipole_norm(charges + torch.tensor([0.3, 0.3, 0.0, 0.0, 0.0], dtype=torch.float64),
                          pos + torch.tensor([7.0, -2.0, 1.0], dtype=torch.float64), batch, 2)
    assert torch.allclose(shifted, torch.tensor([0.6, 0.0], dtype=torch.float64), atol=1e-12)


def perturbed(model, seed=0, size=0.3):
    """Weights moved from the initialisation: at initialisation the plain network hardly looks at edge directions."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(size * torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p.dtype))
    return model.eval()


@pytest.mark.parametrize("model, extra", [("equivariant_potential", []),
                                          ("equivariant_potential", ["data.target=mu"]),
                                          ("frame_averaged_potential", ["model.frames=global"]),
                                          ("frame_averaged_potential", ["model.frames=global", "data.target=mu"]),
                                          ("frame_averaged_potential", ["model.frames=local"])])
def test_predictions_are_invariant_in_float64(tmp_path, model, extra):
    trainer = Trainer(config(tmp_path, "model.dtype=float64", *extra, model=model))
    perturbed(trainer.model)
    candidates = []  # molecules whose PCA spectra are well separated (tolerance 0.01: the frames are exact)
    for k in range(len(trainer.train)):
        try:
            trainer.model(trainer.batch([k]))
            candidates.append(k)
        except ValueError:
            pass
        if len(candidates) == 12:
            break
    assert len(candidates) == 12
    batch = trainer.batch(candidates)
    s = trainer.task.symmetry(trainer.model, batch)
    elements = E3().sample(6, generator=torch.Generator().manual_seed(3))
    assert bool((torch.linalg.det(elements.linear) < 0).any())  # reflections among them
    assert assert_equivariant(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, tol=1e-10, elements=elements) < 1e-10


def test_the_plain_model_is_not_invariant_and_augmentation_rotates_molecules(tmp_path):
    trainer = Trainer(config(tmp_path, "model.dtype=float64", "data.augment=true", model="plain_potential"))
    perturbed(trainer.model)
    batch = trainer.batch(range(12))
    s = trainer.task.symmetry(trainer.model, batch)
    error = equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, samples=4,
                               generator=torch.Generator().manual_seed(7))
    assert float(error.detach()) > 1e-3
    moved, again, other = (trainer.task.augment(batch, step) for step in (3, 3, 4))
    assert torch.equal(moved.pos, again.pos) and not torch.allclose(moved.pos, other.pos)
    j, i = batch.edge_index
    for b in (moved, other):
        assert torch.allclose((b.pos[j] - b.pos[i]).norm(dim=1), (batch.pos[j] - batch.pos[i]).norm(dim=1),
                              atol=1e-12)
    assert not torch.allclose(moved.pos, batch.pos)
    assert torch.equal(Trainer(config(tmp_path / "b")).task.augment(batch, 3).pos, batch.pos)


@pytest.mark.parametrize("override, error, message", [
    ("data.target=energy", ValueError, r"data.target: expected one of \['A', 'B', 'C', 'mu'"),
    ("data.path=datasets/qm9/small/missing.npz", FileNotFoundError, r"no such file .*missing.npz"),
    ("data.normalisation=median", ValueError, r"data.normalisation: expected one of"),
    ("data.val={valid: validation}", ValueError, r"data.val.valid: expected one of \('train', 'valid', 'test'\)"),
    ("data.max_train=0", ValueError, r"data.max_train: expected a positive int"),
])
def test_errors(tmp_path, override, error, message):
    with pytest.raises(error, match=message):
        Trainer(config(tmp_path, override))


def test_a_model_of_another_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"model.name: the qm9 task takes equivariant_potential, plain_potential, "
                                         r"frame_averaged_potential; got 'plain_gnn'"):
        Trainer(load_config(None, ["task=qm9", f"data.path={SMALL}", f"trainer.out_dir={tmp_path}",
                                   "model={name: plain_gnn, hidden: 8}"]))

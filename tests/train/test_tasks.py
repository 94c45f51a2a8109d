"""The trainer on every task: exact resume with loss terms and callbacks, streamed = cached data, augmentation, and
errors for unknown names."""

import csv

import pytest
import torch

from equilib.groups import equivariance_error
from equilib.train import Trainer, load_config
from tests.interrupted import resumed_after_interrupt
from tests.train.test_trainer import _config as potential_config

NBODY = "datasets/nbody/data/charged5_small.npz"


def nbody_config(out_dir, *extra):
    return load_config(None, [
        "task=nbody", f"trainer.out_dir={out_dir}", f"data.path={NBODY}", "data.max_train=60", "data.max_val=40",
        "data.batch_size=20", "data.eval_batch_size=20", "data.dtype=float64", "model.channels=8", "model.lmax=1",
        "model.num_layers=2", "model.num_radial=4", "model.radial_hidden=8", "trainer.max_steps=12",
        "trainer.eval_every=4", "trainer.checkpoint_every=3", "logging.progress=false", "logging.plots=false",
        *extra])


PLUGINS = ("loss.terms=[{name: equivariance, weight: 0.1, samples: 1}]",
           "callbacks=[{name: equivariance_error, every: 5, samples: 2}]")
CONFIGS = {"potential": lambda out, *extra: potential_config(out, *PLUGINS, *extra),
           "nbody": lambda out, *extra: nbody_config(out, *PLUGINS, *extra),
           "nbody-plain-augmented": lambda out, *extra: nbody_config(out, "model={name: plain_gnn, hidden: 16}",
                                                                     "data.augment=true", *PLUGINS, *extra),
           "nbody-frame-averaged-stochastic": lambda out, *extra: nbody_config(
               out, "model={name: frame_averaged_gnn, hidden: 16, num_layers: 2, stochastic: true}", *PLUGINS, *extra),
           "nbody-fa-gnn-stochastic": lambda out, *extra: nbody_config(
               out, "model={name: fa_gnn, hidden: 12, num_layers: 2, stochastic: true}", *PLUGINS, *extra)}


def _strip(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
@pytest.mark.parametrize("task", CONFIGS)
def test_resume_after_a_kill_gives_the_same_run(task, tmp_path):
    """Killed mid-epoch after a checkpoint, resumed: the same history (with loss terms and callbacks) and weights."""
    make = CONFIGS[task]
    reference = Trainer(make(tmp_path / "ref"))
    reference.run()
    resumed = resumed_after_interrupt(lambda: Trainer(make(tmp_path / "run")), 7)  # after the checkpoint of step 6
    assert resumed.step == 6 and resumed.position == 5 % resumed.steps_per_epoch + 1  # batches done in its epoch
    resumed.run()
    assert _strip(resumed.history) == _strip(reference.history)
    for a, b in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)
    columns = next(csv.reader(open(tmp_path / "run" / "metrics.csv")))
    split = next(iter(reference.val))
    assert "train_loss" in columns and f"equivariance_error/{split}" in columns
    logged = [row for row in reference.history if f"equivariance_error/{split}" in row]
    assert [row["step"] for row in logged] == [5, 10, 12]  # every 5 steps and at the end
    equivariant = task != "nbody-plain-augmented"
    assert all((row[f"equivariance_error/{split}"] < 1e-9) == equivariant for row in logged)
    losses = [row for row in reference.history if "train_loss" in row]
    assert len(losses) == 3
    with pytest.raises(FileNotFoundError, match="resume: no checkpoint"):
        Trainer(make(tmp_path / "empty")).load_checkpoint()


@pytest.mark.slow
def test_streamed_frames_give_the_cached_run(tmp_path):
    """data.cache=false with DataLoader workers (neighbor lists made in the workers) trains exactly as the cache."""
    cached = Trainer(potential_config(tmp_path / "cached", "trainer.max_steps=6"))
    cached.run()
    streamed = Trainer(potential_config(tmp_path / "streamed", "trainer.max_steps=6", "data.cache=false",
                                        "data.workers=2"))
    assert streamed.train.frames is None
    streamed.run()
    assert _strip(streamed.history) == _strip(cached.history)


def test_augmentation_moves_inputs_and_targets_together(tmp_path):
    trainer = Trainer(nbody_config(tmp_path, "data.augment=true"))
    batch = trainer.batch(range(4))
    moved = trainer.task.augment(batch, step=3)
    again = trainer.task.augment(batch, step=3)
    other = trainer.task.augment(batch, step=4)
    assert torch.equal(moved.positions, again.positions) and not torch.allclose(moved.positions, other.positions)
    displacement, moved_displacement = batch.target - batch.positions, moved.target - moved.positions
    assert torch.allclose(displacement.norm(dim=-1), moved_displacement.norm(dim=-1), atol=1e-12)
    assert torch.allclose(batch.velocities.norm(dim=-1), moved.velocities.norm(dim=-1), atol=1e-12)
    assert not torch.allclose(displacement, moved_displacement)
    assert torch.equal(Trainer(nbody_config(tmp_path / "b")).task.augment(batch, 3).positions, batch.positions)


def test_the_equivariance_term_makes_a_plain_model_more_equivariant(tmp_path):
    def error_after(extra):
        trainer = Trainer(nbody_config(tmp_path / extra[0][-3:], "model={name: plain_gnn, hidden: 16}",
                                       "trainer.max_steps=30", "optimizer.lr=0.01", *extra))
        trainer.run()
        s = trainer.task.symmetry(trainer.model, trainer.batch(range(20)))
        return float(equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, samples=8,
                                        generator=torch.Generator().manual_seed(0)).detach())

    plain = error_after(["loss.terms=[]"])
    penalised = error_after(["loss.terms=[{name: equivariance, weight: 10.0, samples: 2}]"])
    assert penalised < 0.5 * plain


@pytest.mark.parametrize("override, message", [
    ("task=nboddy",
     r"task: unknown task 'nboddy'; known: hamiltonian, image_classification, nbody, normals, potential, qm9, "
     r"tensor_regression"),
    ("model.name=transformer", r"model.name: unknown model 'transformer'; known: affine_resnet, "
                               r"equivariant_dynamics, equivariant_potential, fa_gnn, frame_averaged_gnn, "
                               r"frame_averaged_pointnet, frame_averaged_potential, hamiltonian_mlp, plain_cnn, "
                               r"plain_gnn, plain_potential, pointnet, soft_mlp"),
    ("loss.terms=[{name: curvature}]",
     r"loss.terms\[0\].name: unknown loss term 'curvature'; known: equivariance, hessian_alignment, rpp_prior, "
     r"soft_equivariance"),
    ("callbacks=[{name: hessian}]",
     r"callbacks\[0\].name: unknown callback 'hessian'; known: curvature, equivariance_error"),
    ("callbacks=[{name: equivariance_error, evry: 3}]", r"unknown key callbacks\[0\].evry \(known: batches, every"),
    ("loss.terms=[{weight: 3}]", r"loss.terms\[0\]: expected a mapping with a 'name'"),
    ("data.augmnt=true", r"unknown key data.augmnt \(known: augment, batch_size"),
    ("nonsense.key=1", r"config: unknown key nonsense \(known: task, data, model"),
])
def test_unknown_names_list_the_known_ones(override, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, ["task=nbody", override])


def test_a_model_of_another_task_is_refused(tmp_path):
    with pytest.raises(ValueError, match="model.name: 'equivariant_potential' needs the potential task"):
        Trainer(nbody_config(tmp_path, "model={name: equivariant_potential}"))


def test_a_non_finite_loss_stops_training_with_a_clear_error(tmp_path):
    trainer = Trainer(nbody_config(tmp_path))
    original = trainer.task.loss

    def poisoned(prediction, batch, count_reducer=None):
        loss, parts = original(prediction, batch, count_reducer)
        return loss * float("nan"), parts

    trainer.task.loss = poisoned
    with pytest.raises(FloatingPointError, match=r"step 0: the training loss is nan \(parts: \{'mse': "):
        trainer.run()


@pytest.mark.parametrize("backend", ["cg", "gaunt", "cp"])
def test_the_nbody_model_trains_with_every_backend(backend, tmp_path):
    trainer = Trainer(nbody_config(tmp_path, f"model.backend={backend}", "model.scalar_messages=true",
                                   "trainer.max_steps=3", "trainer.eval_every=3"))
    assert trainer.model.layers[0].tp.__class__.__name__.lower().startswith(backend)
    final = trainer.run()
    assert 0 < final["valid/mse"] < 10 and final["train_loss"] > 0


def test_the_frame_averaged_gnn_trains_and_is_equivariant(tmp_path):
    """Stochastic frames in training, all frames at evaluation: the trained model is exactly E(3) x S_5-equivariant,
    where the same backbone unwrapped is not."""
    trainer = Trainer(nbody_config(tmp_path, "model={name: frame_averaged_gnn, hidden: 16, num_layers: 2, "
                                   "stochastic: true}", "trainer.max_steps=3", "trainer.eval_every=3"))
    final = trainer.run()
    assert 0 < final["valid/mse"] < 10
    batch = next(trainer.eval_batches("test"))
    generator = torch.Generator().manual_seed(0)
    model = trainer.ema.module.eval()
    s = trainer.task.symmetry(model, batch)
    with torch.no_grad():
        assert float(equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, generator=generator)) < 1e-10
        plain = trainer.task.symmetry(model.backbone, batch)
        assert float(equivariance_error(plain.fn, plain.group, plain.inputs, plain.in_reps, plain.out_reps,
                                        generator=generator)) > 1e-3


"""The image classification task on the affine digits: metrics against a brute force, the affine augmentation,
exact resume with sampled group convolutions, the models' invariance, errors."""

import csv
import math
import subprocess
import sys

import pytest
import torch

from equilib.groups import GLPlus, Images, equivariance_error
from equilib.train import Trainer, load_config
from equilib.train._image_task import Accuracy, ImageBatch, random_affine
from tests.interrupted import resumed_after_interrupt

SPLITS = ("valid", "valid_affine", "test_clean", "test_affine", "test_homography")


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The recipe's fallback source (scikit-learn's digits), small."""
    pytest.importorskip("sklearn")
    out = tmp_path_factory.mktemp("affine_digits")
    subprocess.run([sys.executable, "-m", "datasets.affine_digits", "--source", "digits", "--num-train", "64",
                    "--num-valid", "16", "--num-test", "24", "--out", str(out), "--name", "digits"], check=True,
                   capture_output=True)
    return out / "digits.npz"


def config(out_dir, path, *extra):
    return load_config(None, [
        "task=image_classification", f"trainer.out_dir={out_dir}", f"data.path={path}", "data.batch_size=16",
        "data.eval_batch_size=16", "model={name: plain_cnn, channels: 4, head_hidden: 8}", "trainer.max_steps=8",
        "trainer.eval_every=4", "trainer.checkpoint_every=3", "optimizer.lr=0.003", "logging.progress=false",
        "logging.plots=false", *extra])


def test_the_plain_cnn_trains_and_reports_every_split(tmp_path, digits):
    trainer = Trainer(config(tmp_path / "run", digits))
    trainer.run()
    assert set(trainer.val) == set(SPLITS) and trainer.task.num_classes == 10 and trainer.task.size == (40, 40)
    last = trainer.history[-1]
    for split in SPLITS:
        assert 0.0 <= last[f"{split}/error"] <= 1.0 and last[f"{split}/nll"] > 0
    columns = next(csv.reader(open(tmp_path / "run" / "metrics.csv")))
    assert "test_affine/error" in columns and "test_homography/nll" in columns


def test_accuracy_counts_wrong_argmaxes_and_the_cross_entropy():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0], [1.0, 0.5, 0.0], [0.0, 0.0, 4.0]])
    labels = torch.tensor([0, 1, 0, 2])
    metric = Accuracy()
    metric.update({"logits": logits[:2]}, ImageBatch(torch.zeros(2, 1, 2, 2), labels[:2]))
    metric.update({"logits": logits[2:]}, ImageBatch(torch.zeros(2, 1, 2, 2), labels[2:]))
    result = metric.compute()
    assert result["error"] == 0.25  # only the second is wrong
    nll = -sum(math.log(math.exp(r[y]) / sum(math.exp(v) for v in r)) for r, y in zip(logits.tolist(), labels.tolist()))
    assert result["nll"] == pytest.approx(nll / 4, rel=1e-12)


def test_the_affine_augmentation_draws_affnist_ranges_from_the_step(tmp_path, digits):
    g = random_affine(2000, 0.2, torch.Generator().manual_seed(0))
    a = g.linear
    # A = R Sh S: det = sx sy in [0.64, 1.44]; the first column is R (sx, 0): its angle is theta, its norm sx
    assert ((a.det() > 0.64 - 1e-12) & (a.det() < 1.44 + 1e-12)).all()
    angle = torch.atan2(a[:, 1, 0], a[:, 0, 0]).abs()
    assert angle.max() <= math.radians(20) + 1e-12 and angle.max() > math.radians(19)
    assert ((a[:, :, 0].norm(dim=1) >= 0.8 - 1e-12) & (a[:, :, 0].norm(dim=1) <= 1.2 + 1e-12)).all()
    assert g.translation.abs().max() <= 0.2 and g.translation.abs().max() > 0.19
    task = Trainer(config(tmp_path / "aug", digits, "data.augment=affine")).task
    batch = task.collate([task.train[k] for k in range(8)])
    moved, again = task.augment(batch, 5), task.augment(batch, 5)
    assert torch.equal(moved.images, again.images) and torch.equal(moved.labels, batch.labels)
    assert not torch.allclose(moved.images, batch.images) and not torch.equal(task.augment(batch, 6).images,
                                                                               moved.images)
    elements = random_affine(8, 0.2, task.augmentation_generator(5))
    assert torch.allclose(moved.images, Images(1, 40).act(elements.to(dtype=torch.float32), batch.images))


@pytest.mark.slow
def test_resume_with_sampled_group_convolutions_gives_the_same_run(tmp_path, digits):
    """The lie layers draw their elements from the global generator, which checkpoints keep: a run killed after a
    checkpoint and resumed is the uninterrupted run, augmentation included."""
    model = "model={name: affine_resnet, group: GL2, channels: 2, samples: 2, hidden: 8, head_hidden: 8}"
    make = lambda out: Trainer(config(out, digits, model, "data.augment=affine", "data.max_val=8"))  # noqa: E731
    reference = make(tmp_path / "ref")
    reference.run()
    resumed = resumed_after_interrupt(lambda: make(tmp_path / "run"), 7)
    resumed.run()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)


def test_the_group_model_is_invariant_where_the_plain_one_is_not(tmp_path, digits):
    """With the same elements at every forward (``fixed``) and quarter turns, which permute the pixel grid, in
    neither model: the SO(2) model's logits are close to invariant under GL+(2) elements near the identity and the
    plain CNN's are not (interpolation and sampling keep the first from exactness)."""
    torch.manual_seed(0)
    errors = {}
    for name, model in (("so2", "model={name: affine_resnet, group: SO2, channels: 4, samples: 16, fixed: true, "
                                "seed: 0, dropout: 0.0}"),
                        ("plain", "model={name: plain_cnn, channels: 4, dropout: 0.0}")):
        trainer = Trainer(config(tmp_path / name, digits, model, "trainer.max_steps=1"))
        batch = next(trainer.eval_batches("test_clean"))
        s = trainer.task.symmetry(trainer.model.eval(), batch)
        assert isinstance(s.group, GLPlus)
        rotations = equilib_rotations(6)
        with torch.no_grad():
            errors[name] = float(equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps,
                                                    elements=rotations, reduction="mean"))
    assert errors["so2"] < 0.5 * errors["plain"], errors


def equilib_rotations(n):
    """``n`` rotations by angles in (-90, 90) degrees that are not multiples of 90, as GL+(2) elements."""
    from equilib.groups import GroupElement, plane_rotations

    return GroupElement(linear=plane_rotations(torch.linspace(-1.2, 1.2, n, dtype=torch.float64)))


def test_bad_configurations_are_named(tmp_path, digits):
    with pytest.raises(ValueError, match="data.augment: expected 'none' or 'affine', got 'rotate'"):
        config(tmp_path / "e", digits, "data.augment=rotate")
    with pytest.raises(ValueError, match="model.name: 'affine_resnet' needs the image_classification task"):
        Trainer(load_config(None, ["task=nbody", "data.path=datasets/nbody/data/charged5_small.npz",
                                   f"trainer.out_dir={tmp_path / 'n'}", "model={name: affine_resnet}"]))
    with pytest.raises(FileNotFoundError, match="write it with `python -m datasets.affine_digits`"):
        Trainer(config(tmp_path / "e", tmp_path / "missing.npz"))


def test_bfloat16_autocast_trains_near_the_float32_run_with_float32_losses_and_parameters(tmp_path, digits):
    """Mixed precision changes the forward pass only: same seed, same batches, losses within bfloat16's rounding of
    the float32 run's, logits handed to the loss and metrics in float32, parameters kept in float32."""
    runs = {}
    for autocast in ("null", "bfloat16"):
        trainer = Trainer(config(tmp_path / autocast, digits, f"trainer.autocast={autocast}", "trainer.max_steps=3"))
        batch = trainer.batch(range(16))
        runs[autocast] = (trainer, [trainer.train_step(batch)["loss"] for _ in range(3)])
    (full, full_losses), (mixed, mixed_losses) = runs["null"], runs["bfloat16"]
    assert mixed_losses == pytest.approx(full_losses, rel=0.03) and mixed_losses != full_losses
    assert all(p.dtype == torch.float32 for p in mixed.model.parameters())
    assert mixed.predict(mixed.model, batch)["logits"].dtype == torch.float32
    assert mixed.evaluate("valid")["error"] == pytest.approx(full.evaluate("valid")["error"], abs=0.13)


def test_an_unknown_autocast_dtype_is_refused(tmp_path, digits):
    with pytest.raises(ValueError, match="trainer.autocast: expected null or 'bfloat16'"):
        config(tmp_path / "run", digits, "trainer.autocast=float16")

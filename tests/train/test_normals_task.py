"""The normals task on the shipped small file: the sign-agnostic loss and metric by hand, the rotated test split,
augmentation, short training runs through the Trainer (the frame-averaged PointNet scores the same upright and
rotated, the plain one does not) and config errors."""

import math

import pytest
import torch

from datasets.normals.__main__ import SMALL_NAME, SMALL_OUT
from equilib.groups import assert_equivariant, equivariance_error
from equilib.train import Trainer, load_config
from equilib.train._normals_task import NormalError, NormalsBatch, normal_loss

SMALL = SMALL_OUT / f"{SMALL_NAME}.npz"
TINY = "local_widths: [8], global_widths: [16], head_widths: [8]"


def normals_config(out_dir, *extra):
    return load_config(None, [
        "task=normals", f"trainer.out_dir={out_dir}", f"data.path={SMALL}", "data.points=48", "data.max_train=32",
        "data.max_val=12", "data.batch_size=8", "data.eval_batch_size=12", "data.dtype=float64",
        f"model={{name: pointnet, {TINY}}}", "trainer.max_steps=6", "trainer.eval_every=3",
        "trainer.checkpoint_every=6", "trainer.ema_decay=0.5", "optimizer.lr=0.01", "logging.progress=false",
        "logging.plots=false", *extra])


def test_the_loss_is_sign_agnostic_and_matches_a_hand_computation():
    n = torch.nn.functional.normalize(torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator()
                                                  .manual_seed(0)), dim=-1)
    assert torch.allclose(normal_loss(n, n), torch.zeros(5, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(normal_loss(-n, n), torch.zeros(5, dtype=torch.float64), atol=1e-15)
    theta = torch.tensor([0.0, 0.3, math.pi / 2, 2.5], dtype=torch.float64)
    z = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64).expand(4, 3)
    tilted = torch.stack([torch.sin(theta), torch.zeros(4, dtype=torch.float64), torch.cos(theta)], dim=-1)
    assert torch.allclose(normal_loss(tilted, z), torch.sin(theta) ** 2, atol=1e-15)  # 1 - cos^2
    metric = NormalError()
    metric.update({"normals": tilted.view(2, 2, 3)}, NormalsBatch(z.reshape(2, 2, 3), z.reshape(2, 2, 3)))
    result = metric.compute()
    assert result["normal_loss"] == pytest.approx(float((torch.sin(theta) ** 2).mean()), abs=1e-14)
    unoriented = [0.0, 0.3, math.pi / 2, math.pi - 2.5]  # arccos |cos|: the angle to the nearer of +-n
    assert result["angle_deg"] == pytest.approx(math.degrees(sum(unoriented) / 4), abs=1e-9)


def test_the_rotated_split_is_the_test_split_turned_by_fixed_rotations(tmp_path):
    task = Trainer(normals_config(tmp_path / "a")).task
    assert list(task.val) == ["val", "test", "test_rotated"]
    upright, rotated = task.val["test"].dataset, task.val["test_rotated"].dataset
    rotations = task.rotations("test")
    assert rotations.shape == (12, 3, 3)
    assert torch.allclose(rotations @ rotations.transpose(1, 2), torch.eye(3, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(12, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(rotated.points, upright.points @ rotations.transpose(1, 2), atol=1e-12)
    assert torch.allclose(rotated.normals, upright.normals @ rotations.transpose(1, 2), atol=1e-12)
    assert not torch.allclose(rotated.points, upright.points)
    again = Trainer(normals_config(tmp_path / "b", "trainer.seed=3", "data.max_val=5")).task
    assert torch.equal(again.val["test_rotated"].dataset.points, rotated.points[:5])  # fixed by rotation_seed alone
    other = Trainer(normals_config(tmp_path / "c", "data.rotation_seed=1")).task
    assert not torch.allclose(other.val["test_rotated"].dataset.points, rotated.points)


def test_augmentation_turns_points_and_normals_together(tmp_path):
    trainer = Trainer(normals_config(tmp_path / "a", "data.augment=true"))
    batch = trainer.batch(range(4))
    moved, again = trainer.task.augment(batch, step=2), trainer.task.augment(batch, step=2)
    assert torch.equal(moved.points, again.points)
    assert not torch.allclose(trainer.task.augment(batch, step=3).points, moved.points)
    assert torch.allclose(moved.points.norm(dim=-1), batch.points.norm(dim=-1), atol=1e-12)
    assert torch.allclose((moved.points * moved.normals).sum(-1), (batch.points * batch.normals).sum(-1), atol=1e-12)
    assert not torch.allclose(moved.points[0], batch.points[0])
    plain = Trainer(normals_config(tmp_path / "b"))
    assert plain.task.augment(batch, 2) is batch


@pytest.mark.parametrize("model, equivariant", [
    (f"{{name: pointnet, {TINY}}}", False),
    (f"{{name: frame_averaged_pointnet, {TINY}}}", True),
    (f"{{name: frame_averaged_pointnet, {TINY}, stochastic: true, orient: true}}", True),
])
def test_a_short_run_trains_and_rotation_costs_nothing_only_with_frames(model, equivariant, tmp_path):
    trainer = Trainer(normals_config(tmp_path, f"model={model}"))
    first = trainer.evaluate("val")["normal_loss"]
    final = trainer.run()
    assert (tmp_path / "model.pt").is_file() and final["step"] == 6
    assert 0 <= final["test/normal_loss"] <= 1 and final["val/normal_loss"] < first
    gap = abs(final["test_rotated/normal_loss"] - final["test/normal_loss"])
    assert (gap < 1e-10) == equivariant, gap
    model = trainer.ema.module.eval()
    batch = next(trainer.eval_batches("test"))
    s = trainer.task.symmetry(model, batch)
    if equivariant:
        assert assert_equivariant(s.fn, s.group, s.inputs, s.in_reps, s.out_reps, generator=torch.Generator()
                                  .manual_seed(0)) < 1e-10
    else:
        assert equivariance_error(s.fn, s.group, s.inputs, s.in_reps, s.out_reps,
                                  generator=torch.Generator().manual_seed(0)) > 0.3


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="data.dtype"):
        Trainer(normals_config(tmp_path, "data.dtype=float16"))
    with pytest.raises(ValueError, match="data.rotated: the name 'test' is also an upright split"):
        Trainer(normals_config(tmp_path, "data.rotated={test: test}"))
    with pytest.raises(FileNotFoundError, match="path: no normals file"):
        Trainer(normals_config(tmp_path, f"data.path={tmp_path / 'absent.npz'}"))
    with pytest.raises(ValueError, match="unknown key model.widths"):
        normals_config(tmp_path, "model={name: pointnet, widths: [3]}")

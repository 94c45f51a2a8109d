"""Trainer on the potential task: losses and metrics against brute force, config errors, reproducibility, plots,
TensorBoard, and the metrics recorded before the trainer was generalised (resume: tests/train/test_tasks.py)."""


import pytest
import torch
from ase.build import bulk
from torch_geometric.data import Batch

from equilib.data import AtomicData
from equilib.train import LossConfig, MetricAccumulator, Trainer, compute_loss, load_config

DATA = "datasets/oc20_emt/data"


def _config(tmp_path, *extra):
    return load_config(None, [
        f"trainer.out_dir={tmp_path}", f"data.train={DATA}/s2ef_train.lmdb",
        f"data.val={{val_id: {DATA}/s2ef_val_id.lmdb}}", "data.max_train_frames=40", "data.batch_size=8",
        "model.channels=8", "model.num_layers=1", "model.dtype=float64", "trainer.max_steps=12",
        "trainer.eval_every=4", "trainer.checkpoint_every=3", "logging.progress=false", "logging.plots=false",
        *extra])


def _batch():
    frames = []
    for k, a in enumerate((3.5, 3.6, 3.7)):
        atoms = bulk("Cu", "fcc", a=a).repeat((2, 1, 1))
        atoms.info["energy"] = -1.0 * k
        generator = torch.Generator().manual_seed(k)
        atoms.arrays["forces"] = torch.randn(2, 3, generator=generator, dtype=torch.float64).numpy()
        data = AtomicData.from_ase(atoms)
        data.fixed = torch.tensor([k == 0, False])
        frames.append(data)
    return Batch.from_data_list(frames)


def test_loss_and_metrics_by_hand():
    batch = _batch()
    pred = {"energy": batch.energy + torch.tensor([0.01, -0.3, 0.0], dtype=torch.float64),
            "forces": batch.forces + 0.02}
    loss, parts = compute_loss(LossConfig(energy_weight=2.0, forces_weight=3.0, kind="mae"), pred, batch)
    free = ~batch.fixed
    assert parts["energy"] == pytest.approx((0.01 / 2 + 0.3 / 2) / 3)
    assert parts["forces"] == pytest.approx(0.02) and int(free.sum()) == 5
    assert float(loss) == pytest.approx(2 * parts["energy"] + 3 * parts["forces"])
    mse = compute_loss(LossConfig(energy_per_atom=False, forces_weight=0.0), pred, batch)[1]
    assert mse["energy"] == pytest.approx((0.01**2 + 0.3**2) / 3)
    metrics = MetricAccumulator()
    metrics.update(pred, batch)
    out = metrics.compute()
    assert out["energy_mae"] == pytest.approx(0.31 / 3) and out["forces_mae"] == pytest.approx(0.02)
    assert out["forces_rmse"] == pytest.approx(0.02)
    assert out["efwt"] == pytest.approx(2 / 3)  # the second structure misses the energy threshold
    assert out["forces_zero_mae"] == pytest.approx(float(batch.forces[free].abs().mean()))
    cos = torch.nn.functional.cosine_similarity(pred["forces"][free], batch.forces[free], dim=1).mean()
    assert out["forces_cosine"] == pytest.approx(float(cos))
    del batch.energy
    with pytest.raises(ValueError, match=r"label 'energy' is missing"):
        compute_loss(LossConfig(), pred, batch)


def test_config_errors(tmp_path):
    with pytest.raises(ValueError, match=r"config: unknown key model.chanels \(known: backend, channels"):
        load_config(None, ["model.chanels=4"])
    with pytest.raises(ValueError, match="config: unknown key optimiser"):
        load_config(None, ["optimiser.lr=1"])
    with pytest.raises(ValueError, match="loss.kind: expected one of"):
        load_config(None, ["loss.kind=l4"])
    with pytest.raises(ValueError, match="override: expected section.key=value"):
        load_config(None, ["model.channels"])
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  channels: 12\nloss:\n  forces_weight: 5\n")
    config = load_config(path, ["model.channels=6"])
    assert config.model.channels == 6 and config.loss.forces_weight == 5


@pytest.mark.slow
def test_same_seed_same_metrics(tmp_path):
    first = Trainer(_config(tmp_path / "a")).run()
    second = Trainer(_config(tmp_path / "b")).run()
    assert {k: v for k, v in first.items() if k != "seconds"} == {k: v for k, v in second.items() if k != "seconds"}
    assert (tmp_path / "a" / "metrics.csv").read_text().count("\n") == 4  # header + evaluations at 4, 8, 12
    assert (tmp_path / "a" / "model.pt").is_file()


def test_plots_are_written(tmp_path):
    trainer = Trainer(_config(tmp_path, "logging.plots=true", "trainer.max_steps=4"))
    trainer.run()
    for name in ("learning_curves.png", "parity_val_id.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    from equilib.train._plots import learning_curves

    with pytest.raises(ValueError, match="history: expected at least one evaluation"):
        learning_curves([], tmp_path / "x.png")


def test_tensorboard_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    Trainer(_config(tmp_path, "logging.tensorboard=true", "trainer.max_steps=8")).run()
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    steps = [e.step for e in events.Scalars("val_id/forces_mae")]
    assert steps == [4, 8] and "train_loss" in events.Tags()["scalars"]


# The potential's metrics after 12 steps of this config, recorded before the trainer was generalised to any task
# (commit e9766e4): the potential task must reproduce them (float64 to round-off; float32 to its precision).
RECORDED = {
    "float64 grid": (("schedule.warmup_steps=2", "optimizer.lr=0.01"),
                     {"train_loss": 0.8959998887225866, "val_id/energy_mae": 0.6784618847679436,
                      "val_id/forces_mae": 0.24023189542763937, "val_id/forces_cosine": -0.02311055006697074}, 1e-9),
    "float32 cg": (("schedule.warmup_steps=2", "optimizer.lr=0.01", "model.dtype=float32", "model.backend=cg"),
                   {"train_loss": 0.9208265468478203, "val_id/energy_mae": 1.2093347808271682,
                    "val_id/forces_mae": 0.133975921293675, "val_id/forces_cosine": 0.0992513612821549}, 1e-4),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", RECORDED)
def test_the_potential_reproduces_its_recorded_metrics(case, tmp_path):
    extra, expected, rel = RECORDED[case]
    final = Trainer(_config(tmp_path, *extra)).run()
    assert {k: final[k] for k in expected} == pytest.approx(expected, rel=rel)

"""The tensor regression task and the soft_equivariance loss term: PER's tuned strengths pick the symmetry the data
has, exact resume of the tuner, errors for bad files and configurations."""

import csv

import numpy as np
import pytest
import torch

from equilib.train import Trainer, load_config
from tests.interrupted import resumed_after_interrupt


def modified_inertia(n: int, seed: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    """2 masses and 2 positions; sum_i m_i (|r_i|^2 1 - r_i r_i^T) + noise (I e_z) e_z^T: O(2) about z exactly."""
    rng = np.random.default_rng(seed)
    m = np.log1p(np.exp(rng.standard_normal((n, 2))))
    r = rng.standard_normal((n, 2, 3))
    outer = r[:, :, :, None] * r[:, :, None, :]
    inertia = (m[:, :, None, None] * ((r**2).sum(-1)[:, :, None, None] * np.eye(3) - outer)).sum(1)
    ez = np.array([0.0, 0.0, 1.0])
    inertia = inertia + noise * np.einsum("nij,j,k->nik", inertia, ez, ez)
    return np.concatenate([m, r.reshape(n, 6)], axis=1), inertia.reshape(n, 9)


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("soft") / "inertia.npz"
    splits = {}
    for k, (name, n) in enumerate([("train", 64), ("valid", 32), ("test", 32)]):
        splits[f"{name}_x"], splits[f"{name}_y"] = modified_inertia(n, k, noise=0.5)
    np.savez(path, **splits, in_rep=np.array("2x0+2x1"), out_rep=np.array("1x2"), space_dim=np.array(3),
             true_symmetry=np.array("O2z"), candidates=np.array("O3,O2x,O2y,O2z"))
    return path


def config(out_dir, data_file, *extra):
    return load_config(None, [
        "task=tensor_regression", f"trainer.out_dir={out_dir}", f"data.path={data_file}", "data.batch_size=16",
        "data.eval_batch_size=32", "data.dtype=float64", "model={name: soft_mlp, hidden: 6x0+3x1+3x2, num_layers: 2}",
        "trainer.max_steps=12", "trainer.eval_every=4", "trainer.checkpoint_every=3", "optimizer.lr=0.003",
        "logging.progress=false", "logging.plots=false", *extra])


TERM = ("loss.terms=[{name: soft_equivariance, weight: 1.0, groups: [O3, O2x, O2y, O2z], strengths: [0, 1, 1, 1], "
        "rule: per, start: 6, window: 3, power: 2}]")


def test_per_rule_keeps_the_strength_of_the_group_the_data_has(tmp_path, data_file):
    torch.manual_seed(0)
    term = TERM.replace("start: 6", "start: 120").replace("window: 3", "window: 10")
    trainer = Trainer(config(tmp_path / "run", data_file, term, "trainer.max_steps=150", "trainer.eval_every=50",
                             "optimizer.lr=0.01"))
    trainer.run()
    rows = [r for r in trainer.history if "train_loss_soft_equivariance_lambda_O2z" in r]
    assert rows, sorted(trainer.history[-1])
    last = rows[-1]
    strengths = {g: last[f"train_loss_soft_equivariance_lambda_{g}"] for g in ("O3", "O2x", "O2y", "O2z")}
    assert strengths["O3"] == 0.0  # a zero strength stays zero
    # fitting the data breaks O(2) about x and y, not about z: z's penalty is the smallest when the rule acts (step
    # 120), so it keeps its strength and the other axes are weakened
    assert strengths["O2z"] == 1.0 and strengths["O2x"] < 0.99 and strengths["O2y"] < 0.99
    assert last["train_loss_soft_equivariance_R_O2z"] < last["train_loss_soft_equivariance_R_O2x"]
    early = [r for r in rows if r["step"] < 120]
    assert early and all(r["train_loss_soft_equivariance_lambda_O2x"] == 1.0 for r in early)
    columns = next(csv.reader(open(tmp_path / "run" / "metrics.csv")))
    assert "valid/mse" in columns and "ood/mse" not in columns  # the file has no ood split


@pytest.mark.slow
def test_resume_restores_the_tuner(tmp_path, data_file):
    make = lambda out: Trainer(config(out, data_file, TERM.replace("rule: per", "rule: continuous")))  # noqa: E731
    reference = make(tmp_path / "ref")
    reference.run()
    resumed = resumed_after_interrupt(lambda: make(tmp_path / "run"), 7)
    resumed.run()
    strip = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(reference.history)


def test_sampled_method_works_for_any_model_and_errors_are_named(tmp_path, data_file):
    trainer = Trainer(config(tmp_path / "s", data_file, "trainer.max_steps=2", "loss.terms=[{name: "
                             "soft_equivariance, groups: [O3, O2z], method: sampled, samples: 2}]"))
    trainer.run()
    assert trainer.history[0]["train_loss_soft_equivariance_R_O3"] > 0
    with pytest.raises(ValueError, match="group: expected one of O3, SO3"):
        config(tmp_path / "e", data_file, "loss.terms=[{name: soft_equivariance, groups: [U3]}]")
    with pytest.raises(ValueError, match="strengths: expected one per group \\(2\\), got 1"):
        config(tmp_path / "e", data_file, "loss.terms=[{name: soft_equivariance, groups: [O3, O2z], strengths: [1]}]")
    with pytest.raises(FileNotFoundError, match="data.path: .* does not exist; write it with `python -m datasets"):
        Trainer(config(tmp_path / "e", tmp_path / "missing.npz"))
    no_rep = tmp_path / "no_rep.npz"
    np.savez(no_rep, train_x=np.zeros((4, 8)), train_y=np.zeros((4, 9)), in_rep=np.array("2x0+2x1"))
    with pytest.raises(ValueError, match=r"data.path: .*no_rep.npz has no 'out_rep' \(keys: "):
        Trainer(config(tmp_path / "e", no_rep))
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_x=np.zeros((4, 7)), train_y=np.zeros((4, 9)), in_rep=np.array("2x0+2x1"),
             out_rep=np.array("1x2"))
    with pytest.raises(ValueError, match=r"train_x / train_y have shapes \(4, 7\) / \(4, 9\), expected \(N, 8\)"):
        Trainer(config(tmp_path / "e", bad))


@pytest.fixture(scope="module")
def se3_file(tmp_path_factory):
    """Three points and their mean distance plus |x0 - x1| (PER's SE3 with l1distance): translations exact, rotations
    broken."""
    path = tmp_path_factory.mktemp("se3") / "se3.npz"
    rng = np.random.default_rng(0)
    splits = {}
    for name, n in [("train", 64), ("valid", 32), ("test", 32)]:
        p = rng.standard_normal((n, 3, 3))
        d = sum(np.linalg.norm(p[:, i] - p[:, (i + 1) % 3], axis=-1) for i in range(3)) / 3
        splits[f"{name}_x"], splits[f"{name}_y"] = p.reshape(n, 9), (d + np.abs(p[:, 0, 0] - p[:, 1, 0]))[:, None]
    np.savez(path, **splits, in_rep=np.array("3x1"), out_rep=np.array("1x0"), space_dim=np.array(3),
             positions=np.array(True), true_symmetry=np.array("Translations"))
    return path


def test_translations_move_positions_and_centring_makes_the_model_invariant(tmp_path, se3_file):
    from equilib.groups import equivariance_error
    from equilib.soft import group_named

    def errors(*extra):
        trainer = Trainer(config(tmp_path / "t", se3_file, "trainer.max_steps=2", *extra))
        trainer.run()
        batch = next(trainer.eval_batches("test"))
        s = trainer.task.symmetry(trainer.model, batch)
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return trainer, {name: float(equivariance_error(s.fn, group_named(name), s.inputs, s.in_reps, s.out_reps,
                                                            samples=4, generator=gen))
                             for name in ("Translations", "SO3+Translations", "SO3")}

    trainer, free = errors("loss.terms=[{name: soft_equivariance, groups: [SO3+Translations, Translations], "
                           "method: sampled}]")
    assert trainer.history[0]["train_loss_soft_equivariance_R_Translations"] > 1e-3
    assert min(free.values()) > 1e-3  # the data file's positions flag: translations move the inputs
    _, centred = errors("model.centre=true")
    assert centred["Translations"] < 1e-12 < 1e-3 < centred["SO3"]
    _, exact = errors("model.centre=true", "model.mode=exact", "model.group=SO3")
    assert exact["SO3+Translations"] < 1e-12
    with pytest.raises(ValueError, match="groups: 'Translations' is not a linear group, so method 'projection'"):
        config(tmp_path / "e", se3_file, "loss.terms=[{name: soft_equivariance, groups: [O3, Translations]}]")
    with pytest.raises(ValueError, match="model.group: 'SO3\\+Translations' is not a linear group; .*model.centre"):
        Trainer(config(tmp_path / "e", se3_file, "model.mode=exact", "model.group=SO3+Translations"))

"""The Hamiltonian dynamics task: the flow of an O(2)z-exact energy is O(2)z-equivariant, RK4 is 4th-order on a
known system, training lowers the error, and bad files give clear errors."""

import math

import numpy as np
import pytest
import torch

from equilib.groups import O2, O3, CartesianTensors, Scalars, assert_equivariant, equivariance_error
from equilib.nn import HamiltonianFlow
from equilib.soft import SoftEquivariantMLP
from equilib.train import Trainer, load_config

F64 = torch.float64
STATE = CartesianTensors("4x1")


def test_flow_of_an_invariant_energy_is_equivariant():
    torch.manual_seed(0)
    energy = SoftEquivariantMLP(STATE, "1x0", "6x0+3x1+2x2", 2, mode="exact", group=O2(), dtype=F64)
    flow = HamiltonianFlow(energy, substeps=2).eval()
    z0 = torch.randn(4, 12, generator=torch.Generator().manual_seed(1), dtype=F64)
    ts = torch.tensor([0.0, 0.1, 0.3], dtype=F64)
    assert_equivariant(flow, O2(), (z0, ts), (STATE, Scalars()), STATE)
    gen = torch.Generator().manual_seed(2)
    assert float(equivariance_error(flow, O3(), (z0, ts), (STATE, Scalars()), STATE, generator=gen)) > 1e-4
    with pytest.raises(ValueError, match="z0: expected an even last axis"):
        flow(z0[:, :11], ts)
    with pytest.raises(ValueError, match="substeps: expected a positive int, got 0"):
        HamiltonianFlow(energy, substeps=0)


def test_rk4_converges_at_fourth_order():
    class Pendulum(torch.nn.Module):  # H = p^2 / 2 - cos q
        def forward(self, z):
            return 0.5 * z[..., 1] ** 2 - torch.cos(z[..., 0])

    z0, ts = torch.tensor([1.0, 0.0], dtype=F64), torch.tensor([0.0, 2.0], dtype=F64)
    reference = HamiltonianFlow(Pendulum(), substeps=400)(z0, ts)[-1]
    errors = [float((HamiltonianFlow(Pendulum(), substeps=n)(z0, ts)[-1] - reference).norm()) for n in (10, 20)]
    assert 3.6 < math.log2(errors[0] / errors[1]) < 4.4


@pytest.fixture(scope="module")
def pendulum_file(tmp_path_factory):
    """A small O(2)z-symmetric system: two unit masses on springs to the origin and gravity along -z."""
    class Springs(torch.nn.Module):
        def forward(self, z):
            q, p = z[..., :6].reshape(*z.shape[:-1], 2, 3), z[..., 6:].reshape(*z.shape[:-1], 2, 3)
            return (0.5 * p.square().sum((-1, -2)) + 0.5 * (q.norm(dim=-1) - 1).square().sum(-1)
                    + q[..., 2].sum(-1))

    gen = torch.Generator().manual_seed(0)
    ts = torch.tensor([0.0, 0.2, 0.4], dtype=F64)
    arrays = {"state_rep": np.array("4x1"), "true_symmetry": np.array("O2z")}
    for name, n in (("train", 40), ("valid", 20), ("test", 20)):
        z0 = 0.3 * torch.randn(n, 12, generator=gen, dtype=F64) + torch.tensor([0, 0, -1.0] * 2 + [0.0] * 6, dtype=F64)
        arrays.update({f"{name}_z0": z0.numpy(), f"{name}_ts": ts.numpy(),
                       f"{name}_zs": HamiltonianFlow(Springs(), 10).eval()(z0, ts).numpy()})
    path = tmp_path_factory.mktemp("ham") / "springs.npz"
    np.savez(path, **arrays)
    return path


def config(out, path, *extra):
    return load_config(None, [
        "task=hamiltonian", f"trainer.out_dir={out}", f"data.path={path}", "data.batch_size=20",
        "data.dtype=float64", "model={name: hamiltonian_mlp, hidden: 6x0+3x1+2x2, mode: exact, group: O2z}",
        "trainer.max_steps=40", "trainer.eval_every=20", "trainer.ema_decay=0.5", "optimizer.lr=0.03",
        "logging.progress=false", "logging.plots=false", *extra])


def test_training_lowers_the_forecast_error(tmp_path, pendulum_file):
    torch.manual_seed(0)
    trainer = Trainer(config(tmp_path / "run", pendulum_file,
                             "loss.terms=[{name: soft_equivariance, groups: [O3, O2z], method: projection}]"))
    start = trainer.evaluate("valid")["mse"]
    trainer.run()
    assert trainer.history[-1]["valid/mse"] < 0.7 * start
    assert trainer.history[-1]["train_loss_soft_equivariance_R_O2z"] < 1e-12  # exact O(2)z: no penalty
    assert trainer.history[-1]["train_loss_soft_equivariance_R_O3"] > 1e-6


def test_bad_files_are_named(tmp_path, pendulum_file):
    with pytest.raises(FileNotFoundError, match="python -m datasets.broken_dynamics"):
        Trainer(config(tmp_path / "e", tmp_path / "missing.npz"))
    with np.load(pendulum_file) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["test_ts"] = arrays["test_ts"] * 2
    bad = tmp_path / "bad.npz"
    np.savez(bad, **arrays)
    with pytest.raises(ValueError, match="the times of split 'test' differ from the training split's"):
        Trainer(config(tmp_path / "e", bad))

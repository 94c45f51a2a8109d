"""Hessian alignment: the penalty with exact diagonals against dense torch.func Hessians, Hutchinson's diagonal
unbiased, the penalty's gradient against central differences (an MLP and an equivariant potential's E+F loss),
identical domains give zero, OC20 structures grouped by their slab's metal, the hessian_alignment loss term in the
trainer with exact resume, errors."""

from collections import Counter

import pytest
import torch
from torch.func import functional_call, grad, hessian
from torch_geometric.data import Batch

from equilib.curvature import (
    ParameterSpace,
    hessian_alignment,
    hessian_diagonal,
    metal_domains,
    split_domains,
    task_loss,
)
from equilib.data import AtomicDataset
from equilib.train import Trainer
from tests.interrupted import resumed_after_interrupt
from tests.train.test_tasks import nbody_config
from tests.train.test_trainer import DATA
from tests.train.test_trainer import _config as potential_config

F64 = torch.float64
LABELS = torch.tensor([0, 1, 2, 0, 1, 2, 2, 0, 1, 2])


def mlp_and_batch(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()
    generator = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(len(LABELS), 2, generator=generator, dtype=F64)
    y = torch.randn(len(LABELS), 1, generator=generator, dtype=F64) + LABELS[:, None].to(F64)  # domains differ
    return model, (x, y)


def mse(model, batch):
    return (model(batch[0]) - batch[1]).pow(2).mean()


def dense(model, batch):
    """The loss's gradient and Hessian over the flat parameters, by torch.func."""
    space = ParameterSpace(model)

    def f(theta):
        values = dict(zip(space.names, space.unflatten(theta)))
        x, y = batch
        return (functional_call(model, values, (x,)) - y).pow(2).mean()

    theta = space.values()
    return grad(f)(theta), hessian(f)(theta)


def test_exact_penalty_equals_the_dense_hand_computation():
    model, batch = mlp_and_batch()
    parts = [(batch[0][LABELS == e], batch[1][LABELS == e]) for e in range(3)]
    gradients, diagonals = zip(*[(g, h.diagonal()) for g, h in (dense(model, part) for part in parts)])
    g_bar = sum(gradients) / 3
    d_bar = sum(diagonals) / 3
    spread = sum(float((g - g_bar) @ (g - g_bar)) for g in gradients) / 3
    curvature = sum(float((d - d_bar) @ (d - d_bar)) for d in diagonals) / 3
    assert spread > 1e-3 and curvature > 1e-3
    result = hessian_alignment(model, mse, batch, lambda b: LABELS, gradient_weight=0.3, hessian_weight=2.0,
                               probes=None)
    assert result.domains == 3
    assert result.gradient.item() == pytest.approx(spread, rel=1e-10)
    assert result.hessian.item() == pytest.approx(curvature, rel=1e-10)
    assert result.penalty.item() == pytest.approx(0.3 * spread + 2.0 * curvature, rel=1e-10)
    listed = hessian_alignment(model, mse, batch, lambda b: parts, gradient_weight=0.3, hessian_weight=2.0,
                               probes=None)
    assert listed.penalty.item() == pytest.approx(result.penalty.item(), rel=1e-13)
    gradient_only = hessian_alignment(model, mse, batch, lambda b: LABELS, hessian_weight=0.0, probes=None)
    assert gradient_only.penalty.item() == pytest.approx(spread, rel=1e-10) and gradient_only.hessian.item() == 0
    exact = hessian_diagonal(model, mse, batch, probes=None)
    assert torch.allclose(exact, dense(model, batch)[1].diagonal(), rtol=1e-10, atol=1e-14)
    assert not exact.requires_grad


def test_the_normalized_penalty_is_scale_free_and_bounded():
    model, batch = mlp_and_batch()
    parts = [(batch[0][LABELS == e], batch[1][LABELS == e]) for e in range(3)]
    gradients, diagonals = zip(*[(g, h.diagonal()) for g, h in (dense(model, part) for part in parts)])
    plain = hessian_alignment(model, mse, batch, lambda b: LABELS, probes=None)
    scaled = hessian_alignment(model, mse, batch, lambda b: LABELS, probes=None, normalize=True)
    g_scale = sum(float(g @ g) for g in gradients) / 3
    d_scale = sum(float(d @ d) for d in diagonals) / 3
    assert scaled.gradient.item() == pytest.approx(plain.gradient.item() / g_scale, rel=1e-10)
    assert scaled.hessian.item() == pytest.approx(plain.hessian.item() / d_scale, rel=1e-10)
    assert 0 < scaled.gradient.item() < 1 and 0 < scaled.hessian.item() < 1
    hundredfold = hessian_alignment(model, lambda m, b: 100 * mse(m, b), batch, lambda b: LABELS, probes=None,
                                    normalize=True)  # the loss's scale drops out; unnormalised it is 1e4 times more
    assert hundredfold.penalty.item() == pytest.approx(scaled.penalty.item(), rel=1e-10)
    # the scale is a constant of the step: the penalty's gradient is the plain one's divided by it
    only = dict(hessian_weight=0.0, probes=None)
    grads = [torch.autograd.grad(hessian_alignment(model, mse, batch, lambda b: LABELS, normalize=n, **only).penalty,
                                 list(model.parameters())) for n in (False, True)]
    for a, b in zip(*grads):
        assert torch.allclose(b, a / g_scale, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="normalize: expected True or False, got 1"):
        hessian_alignment(model, mse, batch, lambda b: LABELS, normalize=1)


def test_hutchinson_diagonal_is_unbiased():
    model, batch = mlp_and_batch(seed=1)
    h = dense(model, batch)[1]
    samples = torch.stack([hessian_diagonal(model, mse, batch, probes=1, generator=torch.Generator().manual_seed(s))
                           for s in range(400)])
    mean, stderr = samples.mean(0), samples.std(0) / 400**0.5
    off = (h.pow(2).sum(1) - h.diagonal().pow(2)).sqrt()
    assert bool((off > 1e-3).all()) and bool((stderr > 1e-4).all())  # every entry is noisy
    assert bool(((mean - h.diagonal()).abs() <= 3 * stderr).all()), ((mean - h.diagonal()) / stderr).tolist()
    # the probes are shared within a call: one call of 400 probes averages the same kind of samples
    many = hessian_diagonal(model, mse, batch, probes=400, generator=torch.Generator().manual_seed(0))
    assert bool(((many - h.diagonal()).abs() <= 4 * stderr).all())


def test_the_penalty_gradient_equals_central_differences():
    model, batch = mlp_and_batch(seed=2)
    space = ParameterSpace(model)

    def penalty():
        return hessian_alignment(model, mse, batch, lambda b: LABELS, gradient_weight=0.7, hessian_weight=1.3,
                                 probes=3, generator=torch.Generator().manual_seed(4)).penalty

    autograd = space.flatten(torch.autograd.grad(penalty(), space.parameters))
    theta, step = space.values(), 1e-5
    differences = torch.zeros_like(theta)
    for i in range(space.dim):
        values = []
        for sign in (1.0, -1.0):
            moved = theta.clone()
            moved[i] += sign * step
            with torch.no_grad():
                for p, piece in zip(space.parameters, space.unflatten(moved)):
                    p.copy_(piece)
            values.append(float(penalty().detach()))
        differences[i] = (values[0] - values[1]) / (2 * step)
    with torch.no_grad():
        for p, piece in zip(space.parameters, space.unflatten(theta)):
            p.copy_(piece)
    assert float(autograd.norm()) > 1e-2
    assert torch.allclose(autograd, differences, rtol=1e-6, atol=1e-8), (autograd - differences).abs().max()


def test_identical_domains_give_zero():
    model, batch = mlp_and_batch()
    twins = hessian_alignment(model, mse, batch, lambda b: [b, b], probes=5,
                              generator=torch.Generator().manual_seed(0))
    assert twins.domains == 2
    assert twins.penalty.item() == 0.0 and twins.gradient.item() == 0.0 and twins.hessian.item() == 0.0
    assert all(float(g.abs().max()) == 0.0 for g in torch.autograd.grad(twins.penalty, list(model.parameters())))
    single = hessian_alignment(model, mse, batch, lambda b: torch.zeros(len(LABELS), dtype=torch.int64))
    assert single.domains == 1 and single.penalty.item() == 0.0
    different = hessian_alignment(model, mse, batch, lambda b: LABELS, probes=5,
                                  generator=torch.Generator().manual_seed(0))
    assert different.gradient.item() > 1e-3 and different.hessian.item() > 1e-3


def test_structures_are_grouped_by_their_slab_metal():
    dataset = AtomicDataset(f"{DATA}/s2ef_train.lmdb", cutoff=5.0)
    batch = Batch.from_data_list([dataset[k] for k in range(0, 40, 5)])
    labels = metal_domains(batch)
    expected = []
    for k in range(batch.num_graphs):
        counts = Counter(int(z) for z in batch.atomic_numbers[batch.batch == k])
        metals = {z: n for z, n in counts.items() if z not in (1, 6, 7, 8)}
        expected.append(min(metals, key=lambda z: (-metals[z], z)))
    assert labels.tolist() == expected and len(set(expected)) >= 3
    parts = split_domains(batch, metal_domains)
    assert [int(metal_domains(p)[0]) for p in parts] == sorted(set(expected))
    for part in parts:
        rows = [k for k, z in enumerate(expected) if z == int(metal_domains(part)[0])]
        assert part.sid.tolist() == batch.sid[rows].tolist()
        one = Batch.from_data_list([batch.get_example(k) for k in rows])
        assert torch.equal(part.pos, one.pos) and torch.equal(part.edge_index, one.edge_index)


def _tiny(out_dir, *extra):
    return potential_config(out_dir, "trainer.max_steps=4", "trainer.checkpoint_every=2", "trainer.eval_every=2",
                            *extra)


TERM = "loss.terms=[{name: hessian_alignment, weight: 0.1, probes: 2}]"


@pytest.mark.slow
def test_the_loss_term_trains_and_resumes_exactly(tmp_path):
    reference = Trainer(_tiny(tmp_path / "ref", TERM))
    reference.run()
    # killed after the checkpoint of step 2
    resumed = resumed_after_interrupt(lambda: Trainer(_tiny(tmp_path / "run", TERM)), 3)
    assert resumed.step == 2 and int(resumed.terms[0].steps) == 2
    resumed.run()
    strip = [{k: v for k, v in row.items() if k != "seconds"} for row in reference.history]
    assert [{k: v for k, v in row.items() if k != "seconds"} for row in resumed.history] == strip
    assert all(torch.equal(a, b) for a, b in zip(resumed.model.parameters(), reference.model.parameters()))
    plain = Trainer(_tiny(tmp_path / "plain"))
    plain.run()
    assert not all(torch.equal(a, b) for a, b in zip(plain.model.parameters(), reference.model.parameters()))
    stats = reference.train_step(reference.batch(range(0, 40, 5)))
    assert stats["loss_hessian_alignment"] > 0


def test_the_penalty_of_an_equivariant_potential_has_the_gradient_of_central_differences(tmp_path):
    trainer = Trainer(_tiny(tmp_path, TERM))
    term, model = trainer.terms[0], trainer.model
    batch = trainer.batch(range(0, 40, 5))
    space = ParameterSpace(model)
    model.train()

    def penalty():
        return hessian_alignment(model, task_loss(trainer.task), batch, term.domains, probes=2,
                                 generator=torch.Generator().manual_seed(0)).penalty

    v = torch.randn(space.dim, generator=torch.Generator().manual_seed(1), dtype=F64)
    directional = float(space.flatten(torch.autograd.grad(penalty(), space.parameters)) @ v)
    theta, step, values = space.values(), 1e-5, []
    for sign in (1.0, -1.0):
        with torch.no_grad():
            for p, piece in zip(space.parameters, space.unflatten(theta + sign * step * v)):
                p.copy_(piece)
        values.append(float(penalty().detach()))
    with torch.no_grad():
        for p, piece in zip(space.parameters, space.unflatten(theta)):
            p.copy_(piece)
    assert abs(directional) > 1e-3
    assert directional == pytest.approx((values[0] - values[1]) / (2 * step), rel=1e-6)


def test_errors_name_the_argument(tmp_path):
    model, batch = mlp_and_batch()
    with pytest.raises(ValueError, match="hessian_weight: expected a finite number >= 0"):
        hessian_alignment(model, mse, batch, lambda b: LABELS, hessian_weight=-1.0)
    with pytest.raises(ValueError, match="probes: expected None"):
        hessian_alignment(model, mse, batch, lambda b: LABELS, probes=0)
    with pytest.raises(TypeError, match="domains: expected a callable"):
        hessian_alignment(model, mse, batch, LABELS)
    with pytest.raises(ValueError, match=r"domains: expected one integer label per element of the batch \(10\)"):
        hessian_alignment(model, mse, batch, lambda b: LABELS[:4])
    with pytest.raises(ValueError, match="domains: expected one integer label"):
        hessian_alignment(model, mse, batch, lambda b: LABELS.to(F64))
    with pytest.raises(ValueError, match="domains: returned an empty list"):
        hessian_alignment(model, mse, batch, lambda b: [])
    with pytest.raises(ValueError, match="batch: expected a batch of structures with atomic_numbers"):
        metal_domains(batch)
    with pytest.raises(ValueError, match="loss.terms: hessian_alignment needs the potential task"):
        Trainer(nbody_config(tmp_path / "nbody", TERM))
    with pytest.raises(ValueError, match="hessian_alignment: probes: expected a positive int"):
        Trainer(_tiny(tmp_path / "p", "loss.terms=[{name: hessian_alignment, probes: 0}]"))
    with pytest.raises(ValueError, match="hessian_alignment: normalize: expected true or false, got 'yes please'"):
        Trainer(_tiny(tmp_path / "n", "loss.terms=[{name: hessian_alignment, normalize: yes please}]"))
    trainer = Trainer(_tiny(tmp_path / "d", "loss.terms=[{name: hessian_alignment, domains: surface}]"))
    with pytest.raises(ValueError, match="domains: the batch has no per-structure attribute 'surface'"):
        trainer.train_step(trainer.batch(range(4)))
    sid = Trainer(_tiny(tmp_path / "s", "loss.terms=[{name: hessian_alignment, domains: sid, probes: 1}]"))
    assert sid.train_step(sid.batch(range(0, 40, 5)))["loss_hessian_alignment"] > 0  # any per-structure labels


def test_the_alignment_experiment_script_trains_and_reports(tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("alignment_compare", "scripts/alignment_compare.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    small = ["data.max_train_frames=40", "model.channels=4", "model.num_layers=1", "trainer.max_steps=2",
             "trainer.eval_every=2", "logging.plots=false"]
    assert script.main(["--runs", "none,gradient", "--out", str(tmp_path), *small]) == 0
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| no term") or line.startswith("| gradient")]
    assert len(rows) == 2 and all(" | 2 | " in row for row in rows)  # both ran their 2 steps
    maes = [float(cell) for cell in rows[0].strip("|").split("|")[3:]]
    assert len(maes) == 3 and all(0 < mae < 10 for mae in maes)
    config = torch.load(tmp_path / "gradient" / "seed0" / "checkpoint.pt", weights_only=False)["config"]
    assert [term["name"] for term in config["loss"]["terms"]] == ["hessian_alignment"]
    assert config["loss"]["terms"][0]["normalize"] and config["loss"]["terms"][0]["hessian_weight"] == 0.0
    assert script.main(["--runs", "none,gradient", "--time-steps", "1", "--out", str(tmp_path), *small]) == 0
    assert "gradient: " in capsys.readouterr().out

"""M-FAC (Frantar, Kurtic, Alistarh, NeurIPS 2021): the static and dynamic inverse-Fisher products and diagonal
against the dense float64 inverse of the damped empirical Fisher and the Sherman-Morrison recursion; the M-FAC
optimizer by hand, its exact resume, a quadratic it minimises faster than SGD, and its config path; errors."""

import copy
import io

import pytest
import torch

from equilib.curvature import MFAC, CurvatureOperator, DynamicMFAC, StaticMFAC
from equilib.train import Trainer
from tests.interrupted import resumed_after_interrupt
from tests.train.test_tasks import nbody_config

F64 = torch.float64


def gradients(m, d, seed=0):
    return torch.randn(m, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


def dense_fisher(gradients, damping, window=None):
    """``λ I + (1/window) GᵀG``, window defaulting to the number of rows."""
    window = window or gradients.shape[0]
    return damping * torch.eye(gradients.shape[1], dtype=F64) + gradients.T @ gradients / window


def sherman_morrison(gradients, damping):
    """The dense recursion F_0⁻¹ = I/λ, F_i⁻¹ = F_{i-1}⁻¹ − (F_{i-1}⁻¹ g)(F_{i-1}⁻¹ g)ᵀ / (m + gᵀ F_{i-1}⁻¹ g)."""
    m, d = gradients.shape
    inverse = torch.eye(d, dtype=F64) / damping
    for g in gradients:
        hg = inverse @ g
        inverse = inverse - torch.outer(hg, hg) / (m + g @ hg)
    return inverse


def relative(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize(("m", "d", "damping"), [(32, 1000, 1e-3), (1, 1, 0.5), (3, 5, 1e-2), (9, 4, 1e-4)])
def test_static_products_and_diagonal_match_the_dense_inverse(m, d, damping):
    grads = gradients(m, d)
    inverse = torch.linalg.inv(dense_fisher(grads, damping))
    fisher = StaticMFAC(grads, damping)
    x = gradients(3, d, seed=1).T
    assert relative(fisher.ihvp(x[:, 0]), inverse @ x[:, 0]) < 1e-8
    assert relative(fisher.ihvp(x), inverse @ x) < 1e-8
    assert relative(fisher.inverse_diagonal(), inverse.diagonal()) < 1e-8
    k = d // 2
    assert fisher.inverse_diagonal(k).shape == ()
    assert abs(float(fisher.inverse_diagonal(k)) - float(inverse[k, k])) < 1e-8 * float(inverse[k, k])
    indices = torch.tensor([d - 1, 0, k])
    assert relative(fisher.inverse_diagonal(indices), inverse.diagonal()[indices]) < 1e-8
    assert (fisher.dim, fisher.window, fisher.damping, fisher.dtype) == (d, m, damping, F64)


def test_the_sherman_morrison_reference_is_the_dense_inverse_and_static_matches_it():
    grads = gradients(8, 50, seed=2)
    reference = sherman_morrison(grads, 1e-2)
    assert relative(reference, torch.linalg.inv(dense_fisher(grads, 1e-2))) < 1e-10
    x = gradients(1, 50, seed=3)[0]
    assert relative(StaticMFAC(grads, 1e-2).ihvp(x), reference @ x) < 1e-8
    assert relative(sherman_morrison(grads[:4], 1e-2), torch.linalg.inv(dense_fisher(grads[:4], 1e-2))) < 1e-10
    assert relative(sherman_morrison(grads[:4], 1e-2), reference) > 1e-2  # the reference sees every gradient


def test_operators_of_the_inverse_and_of_the_fisher():
    grads = gradients(6, 40, seed=4)
    fisher = StaticMFAC(grads, 0.1)
    blocks = {"a": slice(0, 10), "b": slice(10, 40)}
    inverse, forward = fisher.inverse_operator(blocks), fisher.fisher_operator(blocks)
    assert isinstance(inverse, CurvatureOperator) and inverse.blocks == blocks and inverse.dim == 40
    x = gradients(40, 2, seed=5)
    dense = dense_fisher(grads, 0.1)
    assert relative(forward.matmat(x), dense @ x) < 1e-12
    assert relative(forward.matvec(x[:, 0]), dense @ x[:, 0]) < 1e-12
    assert relative(inverse.matmat(forward.matmat(x)), x) < 1e-10
    assert relative(inverse.matvec(x[:, 1]), torch.linalg.solve(dense, x[:, 1])) < 1e-8
    assert float(torch.linalg.eigvalsh(inverse.matmat(torch.eye(40, dtype=F64)))[-1]) == pytest.approx(10.0)  # 1/λ
    assert relative(torch.from_numpy(inverse.to_scipy() @ x.numpy()), inverse.matmat(x)) < 1e-15


def test_dynamic_window_equals_static_on_its_gradients_and_the_dense_inverse():
    m, d, damping = 32, 1000, 1e-3
    stream = gradients(m + 13, d, seed=6)
    fisher = DynamicMFAC(d, m, damping, dtype=F64)
    x = gradients(2, d, seed=7).T
    for t, g in enumerate(stream):
        fisher.update(g)
        if t in (0, 20, m + 12):  # before the window fills the empty slots are zeros, counted in the 1/m
            window = stream[max(0, t + 1 - m) : t + 1]
            padded = torch.cat([window, torch.zeros(m - len(window), d, dtype=F64)])
            static = StaticMFAC(padded, damping)
            assert relative(fisher.ihvp(x), static.ihvp(x)) < 1e-8
            assert relative(fisher.ihvp(x[:, 0]), torch.linalg.inv(dense_fisher(window, damping, m)) @ x[:, 0]) < 1e-8
    assert fisher.updates == m + 13
    assert relative(fisher.inverse_operator().matmat(x), StaticMFAC(stream[-m:], damping).ihvp(x)) < 1e-8
    assert relative(fisher.fisher_operator().matmat(x), dense_fisher(stream[-m:], damping) @ x) < 1e-12
    g = gradients(1, d, seed=8)[0]
    twin = copy.deepcopy(fisher)
    twin.update(g)
    assert relative(fisher.update_ihvp(g), twin.ihvp(g)) < 1e-12
    assert relative(fisher.ihvp(x), StaticMFAC(torch.cat([stream[-m + 1 :], g[None]]), damping).ihvp(x)) < 1e-8


def test_dynamic_state_dict_round_trip():
    fisher = DynamicMFAC(30, 4, 0.1, dtype=F64)
    for g in gradients(6, 30, seed=9):
        fisher.update(g)
    resumed = DynamicMFAC(30, 4, 0.1, dtype=F64)
    resumed.load_state_dict(copy.deepcopy(fisher.state_dict()))
    g = gradients(1, 30, seed=10)[0]
    assert torch.equal(resumed.update_ihvp(g), fisher.update_ihvp(g)) and resumed.updates == 7
    with pytest.raises(ValueError, match=r"state: gradients of shape \(4, 30\), expected \(window, dim\) = \(5, 30\)"):
        DynamicMFAC(30, 5, 0.1, dtype=F64).load_state_dict(fisher.state_dict())
    with pytest.raises(ValueError, match="state: saved with damping=0.1, this one has 0.2"):
        DynamicMFAC(30, 4, 0.2, dtype=F64).load_state_dict(fisher.state_dict())
    with pytest.raises(ValueError, match="state: missing gram"):
        DynamicMFAC(30, 4, 0.1, dtype=F64).load_state_dict({"gradients": None, "position": 0, "updates": 0,
                                                             "damping": 0.1})


def _model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).to(F64)


def _loss(model, seed):
    generator = torch.Generator().manual_seed(seed)
    x, y = torch.randn(8, 4, generator=generator, dtype=F64), torch.randn(8, 1, generator=generator, dtype=F64)
    return ((model(x) - y) ** 2).mean()


def _flat_gradient(model, seed):
    model.zero_grad()
    _loss(model, seed).backward()
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def test_optimizer_steps_by_hand():
    lr, damping, window, momentum, decay = 0.3, 0.05, 3, 0.5, 0.01
    model = _model()
    reference = copy.deepcopy(model)
    optimizer = MFAC(model.parameters(), lr=lr, damping=damping, window=window, momentum=momentum,
                     weight_decay=decay)
    seen, buffer = [], None
    for step in range(5):  # the window wraps at step 3
        w = torch.cat([p.detach().reshape(-1) for p in reference.parameters()])
        seen.append(_flat_gradient(reference, step) + decay * w)
        window_gradients = torch.stack(seen[-window:])
        u = torch.linalg.solve(dense_fisher(window_gradients, damping, window), seen[-1])
        buffer = (1 - momentum) * u if buffer is None else momentum * buffer + (1 - momentum) * u
        expected = w - lr * buffer
        optimizer.zero_grad()
        _loss(model, step).backward()
        optimizer.step()
        assert relative(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), expected) < 1e-10
        torch.nn.utils.vector_to_parameters(expected, reference.parameters())


def test_optimizer_groups_and_missing_gradients():
    a = torch.nn.Parameter(torch.tensor([1.0, 2.0], dtype=F64))
    b = torch.nn.Parameter(torch.tensor([3.0], dtype=F64))
    optimizer = MFAC([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=1.0, damping=1.0, window=2)
    a.grad = torch.tensor([1.0, 0.0], dtype=F64)  # b has no gradient: zeros in the window, b stays
    optimizer.step()
    u = torch.linalg.solve(dense_fisher(torch.tensor([[1.0, 0.0, 0.0]], dtype=F64), 1.0, 2),
                           torch.tensor([1.0, 0.0, 0.0], dtype=F64))
    assert torch.allclose(a.detach(), torch.tensor([1.0, 2.0], dtype=F64) - u[:2], rtol=0, atol=1e-15)
    assert b.item() == 3.0
    assert optimizer.step(lambda: 7.0) == 7.0


def _train(optimizer, model, steps, start):
    for step in range(start, start + steps):
        optimizer.zero_grad()
        _loss(model, step).backward()
        optimizer.step()


def test_optimizer_state_dict_resumes_bit_identically():
    model = _model()
    options = {"lr": 0.1, "damping": 0.01, "window": 4, "momentum": 0.9, "weight_decay": 1e-3}
    optimizer = MFAC(model.parameters(), **options)
    _train(optimizer, model, 6, 0)
    saved = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, saved)
    _train(optimizer, model, 5, 6)
    saved.seek(0)
    state = torch.load(saved, weights_only=True)
    resumed_model = _model(seed=1)
    resumed_model.load_state_dict(state["model"])
    resumed = MFAC(resumed_model.parameters(), **options)
    resumed.load_state_dict(state["optimizer"])
    _train(resumed, resumed_model, 5, 6)
    for p, q in zip(model.parameters(), resumed_model.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="state_dict: no 'mfac' entry"):
        resumed.load_state_dict(torch.optim.SGD(resumed_model.parameters(), lr=0.1).state_dict())
    with pytest.raises(ValueError, match="state: gradients of shape"):
        MFAC(resumed_model.parameters(), **{**options, "window": 5}).load_state_dict(state["optimizer"])


def test_mfac_minimises_an_ill_conditioned_quadratic_faster_than_sgd_at_equal_lr():
    """Least squares (condition 100, noisy labels, seeded minibatches of 8): the initial error carries equal loss in
    every eigendirection, so most of it lies along the flat ones, where SGD crawls. M-FAC's window damps the stiff
    directions, so it steps about lr/damping along the flat ones; plain SGD at that rate diverges."""
    d, n, batch, lr, damping = 10, 1024, 8, 0.03, 0.01
    generator = torch.Generator().manual_seed(0)
    curvatures = torch.logspace(-2, 0, d, dtype=F64)
    features = torch.randn(n, d, generator=generator, dtype=F64) * curvatures.sqrt()
    solution = torch.randn(d, generator=generator, dtype=F64)
    labels = features @ solution + torch.randn(n, generator=generator, dtype=F64)
    start = solution + torch.randn(d, generator=generator, dtype=F64) / curvatures.sqrt()

    def loss(x, rows=slice(None)):
        return 0.5 * ((features[rows] @ x - labels[rows]) ** 2).mean()

    best = float(loss(torch.linalg.lstsq(features, labels).solution))

    def excess_after(make_optimizer, steps=400):
        x = torch.nn.Parameter(start.clone())
        optimizer, order = make_optimizer([x]), torch.Generator().manual_seed(1)
        for _ in range(steps):
            optimizer.zero_grad()
            loss(x, torch.randint(n, (batch,), generator=order)).backward()
            optimizer.step()
        return float(loss(x.detach())) - best

    initial = float(loss(start)) - best
    sgd = excess_after(lambda p: torch.optim.SGD(p, lr=lr))
    mfac = excess_after(lambda p: MFAC(p, lr=lr, damping=damping, window=32))
    assert mfac < 0.1 * sgd and sgd < initial
    assert not excess_after(lambda p: torch.optim.SGD(p, lr=lr / damping)) < initial


def test_the_trainer_builds_mfac_from_the_config_and_resumes_it_exactly(tmp_path):
    def config(out):
        return nbody_config(out, "optimizer.kind=mfac", "optimizer.mfac_window=4", "optimizer.mfac_damping=0.01",
                            "optimizer.mfac_momentum=0.5", "optimizer.lr=0.001", "trainer.max_steps=6",
                            "trainer.eval_every=3", "trainer.checkpoint_every=3")

    reference = Trainer(config(tmp_path / "reference"))
    assert isinstance(reference.optimizer, MFAC) and reference.optimizer._fisher.window == 4
    assert reference.run()["train_loss"] > 0 and reference.optimizer._fisher.updates == 6
    resumed = resumed_after_interrupt(lambda: Trainer(config(tmp_path / "run")), 4)  # after the checkpoint of step 3
    assert resumed.step == 3 and resumed.optimizer._fisher.updates == 3
    resumed.run()
    for a, b in zip(resumed.model.parameters(), reference.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="optimizer.kind: expected 'adamw' or 'mfac', got 'sgd'"):
        nbody_config(tmp_path, "optimizer.kind=sgd")


def test_errors():
    with pytest.raises(ValueError, match=r"window: expected a positive int, got 0"):
        DynamicMFAC(10, 0, 0.1)
    with pytest.raises(ValueError, match=r"dim: expected a positive int, got 2.0"):
        DynamicMFAC(2.0, 3, 0.1)
    for damping in (0.0, -1.0, float("nan"), True):
        with pytest.raises(ValueError, match=r"damping: expected a positive finite number"):
            DynamicMFAC(10, 3, damping)
    with pytest.raises(ValueError, match=r"damping: expected a positive finite number, got 0"):
        StaticMFAC(gradients(2, 3), 0)
    with pytest.raises(ValueError, match=r"dtype: expected a floating torch dtype"):
        DynamicMFAC(10, 3, 0.1, dtype=torch.int64)
    fisher = DynamicMFAC(10, 3, 0.1, dtype=F64)
    with pytest.raises(ValueError, match=r"g: expected shape \(dim,\) with dim=10, got \(9,\)"):
        fisher.update(torch.zeros(9, dtype=F64))
    with pytest.raises(ValueError, match=r"g: expected dtype torch.float64 on cpu, got torch.float32 on cpu"):
        fisher.update_ihvp(torch.zeros(10))
    with pytest.raises(ValueError, match="g: expected finite entries"):
        fisher.update(torch.full((10,), float("inf"), dtype=F64))
    assert fisher.updates == 0
    with pytest.raises(ValueError, match=r"x: expected shape \(dim,\) or \(dim, k\) with dim=10, got \(10, 1, 1\)"):
        fisher.ihvp(torch.zeros(10, 1, 1, dtype=F64))
    with pytest.raises(ValueError, match=r"gradients: expected a non-empty 2-D \(m, d\) floating tensor, got \(3,\)"):
        StaticMFAC(torch.zeros(3, dtype=F64), 0.1)
    with pytest.raises(ValueError, match="gradients: expected finite entries"):
        StaticMFAC(torch.tensor([[float("nan")]], dtype=F64), 0.1)
    static = StaticMFAC(gradients(2, 3), 0.1)
    for bad in (3, -1, 0.5, [[0]]):
        with pytest.raises(ValueError, match=r"indices: expected integers in \[0, 3\)"):
            static.inverse_diagonal(bad)
    p = torch.nn.Parameter(torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="window: expected a positive int, got 0"):
        MFAC([p], lr=0.1, damping=0.1, window=0)
    with pytest.raises(ValueError, match="damping: expected a positive finite number, got -0.1"):
        MFAC([p], lr=0.1, damping=-0.1, window=2)
    with pytest.raises(ValueError, match=r"momentum: expected a number in \[0, 1\), got 1.0"):
        MFAC([p], lr=0.1, damping=0.1, window=2, momentum=1.0)
    with pytest.raises(ValueError, match="lr: expected a number >= 0"):
        MFAC([p], lr=-1.0, damping=0.1, window=2)
    with pytest.raises(ValueError, match="weight_decay: expected a number >= 0"):
        MFAC([p], lr=0.1, damping=0.1, window=2, weight_decay=-1.0)
    with pytest.raises(ValueError, match="params: expected one dtype and device"):
        MFAC([p, torch.nn.Parameter(torch.zeros(2))], lr=0.1, damping=0.1, window=2)
    optimizer = MFAC([p], lr=0.1, damping=0.1, window=2)
    with pytest.raises(ValueError, match="param_group: the M-FAC window spans the parameters given at construction"):
        optimizer.add_param_group({"params": [torch.nn.Parameter(torch.zeros(1, dtype=F64))]})

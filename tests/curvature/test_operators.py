"""The loss operators (Hessian, GGN, empirical Fisher) against dense float64 references: ``torch.func.hessian`` of
the loss as a function of the flat parameters, ``J^T H_L J`` from ``torch.autograd.functional.jacobian``, per-sample
gradient outer products, and central differences of gradients through an interatomic potential's energy+force
loss; parameter blocks, the exact loss over unequal batches, the SciPy view, determinism and errors."""

import numpy as np
import pytest
import scipy.sparse.linalg
import torch
from ase.build import bulk, molecule
from torch.func import functional_call
from torch_geometric.data import Batch

from equilib.curvature import GGN, EmpiricalFisher, Hessian, ParameterSpace, loss_mode, task_loss
from equilib.data import AtomicData
from equilib.frames import FrameAveraged
from equilib.groups import OnSet, Positions, Scalars
from equilib.nn import PlainPotential, PlainPotentialConfig
from equilib.train import LossConfig, compute_loss
from equilib.train._task import mean_loss
from tests.potentials import rattled

F64 = torch.float64


def mlp(seed=0, dropout=None):
    torch.manual_seed(seed)
    layers = [torch.nn.Linear(3, 5, dtype=F64), torch.nn.Tanh(), torch.nn.Linear(5, 2, dtype=F64)]
    if dropout is not None:
        layers.insert(2, dropout)
    return torch.nn.Sequential(*layers)


def regression(sizes=(4, 7, 3), seed=1):
    """Batches ``(x, y)`` of the given sizes."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(n, 3, generator=generator, dtype=F64), torch.randn(n, 2, generator=generator, dtype=F64))
            for n in sizes]


def concatenated(batches):
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


def mse(model, batch):
    x, y = batch
    return (model(x) - y).pow(2).mean()


class MeanTask:
    """A task whose loss is the mean squared error over the elements of all batches (``mean_loss``)."""

    def predict(self, model, batch):
        return {"y": model(batch[0])}

    def loss(self, prediction, batch, count_reducer=None):
        return mean_loss((prediction["y"] - batch[1]).pow(2), "y", "mse", count_reducer)


def flat_function(model, names, fn):
    """``fn(call)`` as a function of the named parameters concatenated; ``call(*args)`` runs ``model`` with them."""
    params = dict(model.named_parameters())
    shapes = [params[name].shape for name in names]
    sizes = [params[name].numel() for name in names]
    theta = torch.cat([params[name].detach().reshape(-1) for name in names])

    def function(vector):
        values = {name: piece.view(shape) for name, piece, shape in zip(names, vector.split(sizes), shapes)}
        return fn(lambda *args, **kwargs: functional_call(model, values, args, kwargs))

    return function, theta


def dense_hessian(model, batches, names=None):
    """The Hessian of the mean squared error over the union of ``batches``."""
    names = names or [name for name, _ in model.named_parameters()]
    x, y = concatenated(batches)
    function, theta = flat_function(model, names, lambda call: (call(x) - y).pow(2).mean())
    return torch.func.hessian(function)(theta)


def eye(n):
    return torch.eye(n, dtype=F64)


def close(a, b, rtol):
    a, b = a.detach(), b.detach()
    return float((a - b).norm()) <= rtol * float(b.norm())


def test_hessian_matvec_and_matmat_equal_the_dense_hessian(generator):
    model, batches = mlp(), regression()
    reference = dense_hessian(model, batches)
    hessian = Hessian(model, mse, [concatenated(batches)])
    assert hessian.dim == 32 and hessian.dtype == F64
    assert list(hessian.blocks) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    vectors = torch.randn(32, 3, generator=generator, dtype=F64)
    assert close(hessian.matmat(vectors), reference @ vectors, 1e-10)
    assert close(hessian.matvec(vectors[:, 0]), reference @ vectors[:, 0], 1e-10)
    assert close(hessian.matmat(eye(32)), reference, 1e-10)
    assert close(hessian.gradient(), torch.func.grad(flat_function(
        model, [n for n, _ in model.named_parameters()],
        lambda call: mse(call, concatenated(batches)))[0])(ParameterSpace(model).values()), 1e-12)
    assert float(reference.abs().max()) > 0.1 and float(torch.linalg.eigvalsh(reference)[0]) < 0  # indefinite


def test_finite_differences_agree_with_autograd(generator):
    model, batches = mlp(), regression()
    before = ParameterSpace(model).values()
    exact = Hessian(model, mse, batches)
    differences = Hessian(model, mse, batches, method="fd")
    vectors = torch.randn(32, 2, generator=generator, dtype=F64)
    assert close(differences.matmat(vectors), exact.matmat(vectors), 1e-6)
    assert close(differences.matvec(1e-3 * vectors[:, 0]), exact.matvec(1e-3 * vectors[:, 0]), 1e-6)  # any |v|
    assert torch.equal(ParameterSpace(model).values(), before)  # parameters restored bit for bit
    assert torch.equal(differences.matvec(torch.zeros(32, dtype=F64)), torch.zeros(32, dtype=F64))
    coarse = Hessian(model, mse, batches, method="fd", fd_eps=1e-2)  # a step far too large is visibly off
    assert not close(coarse.matvec(vectors[:, 0]), exact.matvec(vectors[:, 0]), 1e-6)


def test_kept_graphs_give_the_same_products_and_follow_parameter_changes(generator):
    model, batches = mlp(), regression()
    kept = Hessian(model, mse, batches, keep_graph=True)
    vectors = torch.randn(32, 2, generator=generator, dtype=F64)
    first = kept.matmat(vectors)
    graphs = kept._kept[1]
    assert len(graphs) == 3 and torch.equal(kept.matmat(vectors), first)  # reused: the same graphs, the same product
    assert kept._kept[1] is graphs
    assert close(first, Hessian(model, mse, batches).matmat(vectors), 1e-12)
    space = ParameterSpace(model)
    space.assign(space.values() + 0.3 * vectors[:, 0])  # in place: the kept graphs are stale
    moved = kept.matmat(vectors)
    assert kept._kept[1] is not graphs and not close(moved, first, 1e-3)
    assert close(moved, Hessian(model, mse, batches).matmat(vectors), 1e-12)
    with pytest.raises(ValueError, match="keep_graph"):
        Hessian(model, mse, batches, method="fd", keep_graph=True)


def test_a_block_of_parameters_is_the_dense_sub_block(generator):
    model, batches = mlp(), regression()
    full = dense_hessian(model, batches)
    weights = [b[0].shape[0] for b in batches]
    last = Hessian(model, mse, batches, params="2.", weights=weights)
    assert last.dim == 12 and list(last.blocks) == ["2.weight", "2.bias"]
    assert close(last.matmat(eye(12)), full[20:, 20:], 1e-10)
    assert close(last.matmat(eye(12)), dense_hessian(model, batches, ["2.weight", "2.bias"]), 1e-10)
    first = Hessian(model, mse, batches, params=[model[0]], weights=weights, blocks="module")
    assert first.blocks == {"0": slice(0, 20)}
    assert close(first.matmat(eye(20)), full[:20, :20], 1e-10)
    biases = Hessian(model, mse, batches, params=r".*\.bias", weights=weights)  # a regex, two blocks apart
    assert biases.blocks == {"0.bias": slice(0, 5), "2.bias": slice(5, 7)}
    index = [*range(15, 20), 30, 31]
    assert close(biases.matmat(eye(7)), full[index][:, index], 1e-10)
    model[0].weight.requires_grad_(False)  # frozen parameters are not among "all trainable"
    assert ParameterSpace(model, blocks="all").blocks == {"all": slice(0, 17)}


def test_several_batches_make_the_loss_of_their_union(generator):
    """Unequal batches: weights proportional to their sizes (plain loss) or the task's element counts give the
    Hessian of the concatenated data; equal weights do not."""
    model, batches = mlp(), regression(sizes=(2, 9, 4))
    reference = dense_hessian(model, batches)
    sizes = [x.shape[0] for x, _ in batches]
    by_size = Hessian(model, mse, batches, weights=sizes).matmat(eye(32))
    assert close(by_size, reference, 1e-10)
    by_counts = Hessian(model, task_loss(MeanTask()), batches)
    assert by_counts.loss.totals == {"y": 2 * sum(sizes)}
    assert close(by_counts.matmat(eye(32)), reference, 1e-10)
    one = Hessian(model, task_loss(MeanTask()), concatenated(batches))  # a tuple is one batch
    assert close(one.matmat(eye(32)), reference, 1e-10)
    per_batch = sum(dense_hessian(model, [b]) for b in batches) / 3
    assert close(Hessian(model, mse, batches).matmat(eye(32)), per_batch, 1e-10)
    assert not close(per_batch, reference, 1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*concatenated(batches)), batch_size=4)
    assert close(Hessian(model, task_loss(MeanTask()), loader).matmat(eye(32)), reference, 1e-10)


def outputs_jacobian(model, names, outputs_of_call):
    """``J`` of the concatenated flattened outputs with respect to the named parameters (reverse mode)."""
    function, theta = flat_function(model, names, lambda call: torch.cat(
        [t.reshape(-1) for t in outputs_of_call(call)]))
    return torch.autograd.functional.jacobian(function, theta), function(theta).detach()


def test_gauss_newton_equals_dense_jt_hl_j_and_is_psd():
    model, batches = mlp(), regression()
    names = [n for n, _ in model.named_parameters()]
    x, y = concatenated(batches)
    jacobian, prediction = outputs_jacobian(model, names, lambda call: [call(x)])
    loss_hessian = torch.autograd.functional.hessian(lambda out: (out - y.reshape(-1)).pow(2).mean(), prediction)
    reference = jacobian.T @ loss_hessian @ jacobian
    sizes = [b[0].shape[0] for b in batches]
    ggn = GGN(model, lambda model, batch: model(batch[0]), lambda out, batch: (out - batch[1]).pow(2).mean(), batches,
              weights=sizes)
    dense = ggn.matmat(eye(32))
    assert close(dense, reference, 1e-10)
    assert float(torch.linalg.eigvalsh(dense)[0]) > -1e-12
    assert not close(dense, dense_hessian(model, batches), 1e-2)  # a non-linear model: the GGN is not the Hessian
    task = GGN(model, None, task_loss(MeanTask()), batches)
    assert close(task.matmat(eye(32)), reference, 1e-10)


def test_empirical_fisher_is_the_average_outer_product_of_sample_gradients():
    model, batches = mlp(), regression()
    samples = [(x[i:i + 1], y[i:i + 1]) for x, y in batches for i in range(x.shape[0])]
    names = [n for n, _ in model.named_parameters()]
    rows = []
    for sample in samples:
        function, theta = flat_function(model, names, lambda call, s=sample: mse(call, s))
        rows.append(torch.func.grad(function)(theta))
    gradients = torch.stack(rows)
    fisher = EmpiricalFisher(model, mse, samples)
    assert fisher.num_samples == 14 and fisher.gradients.shape == (14, 32)
    assert close(fisher.gradients, gradients, 1e-12)
    assert close(fisher.matmat(eye(32)), gradients.T @ gradients / 14, 1e-12)
    by_task = EmpiricalFisher(model, task_loss(MeanTask()), samples)  # equal sizes: the same per-sample losses
    assert close(by_task.matmat(eye(32)), gradients.T @ gradients / 14, 1e-12)
    assert close(by_task.gradients.mean(0), Hessian(model, mse, [concatenated(batches)]).gradient(), 1e-12)


def test_float32_models_give_float32_operators(generator):
    model, batches = mlp(), regression()
    reference = dense_hessian(model, batches)
    model.float()
    batches32 = [(x.float(), y.float()) for x, y in batches]
    weights = [x.shape[0] for x, _ in batches]
    hessian = Hessian(model, mse, batches32, weights=weights)
    assert hessian.dtype == torch.float32
    v = torch.randn(32, generator=generator, dtype=F64)
    assert close(hessian.matvec(v.float()).double(), reference @ v, 1e-5)
    differences = Hessian(model, mse, batches32, weights=weights, method="fd").matvec(v.float()).double()
    assert close(differences, reference @ v, 1e-3)
    assert close(GGN(model, lambda m, b: m(b[0]), lambda out, b: (out - b[1]).pow(2).mean(), batches32,
                     weights=weights).matvec(v.float()).double(),
                 GGN(mlp(), lambda m, b: m(b[0]), lambda out, b: (out - b[1]).pow(2).mean(), batches,
                     weights=weights).matvec(v), 1e-5)


def test_scipy_eigsh_gives_the_dense_largest_eigenvalue():
    model, batches = mlp(), regression()
    reference = dense_hessian(model, batches)
    hessian = Hessian(model, mse, batches, weights=[b[0].shape[0] for b in batches])
    top = scipy.sparse.linalg.eigsh(hessian.to_scipy(), k=1, which="LA", return_eigenvectors=False)
    assert top[0] == pytest.approx(float(torch.linalg.eigvalsh(reference)[-1]), rel=1e-9)


class NoisyDropout(torch.nn.Module):
    """Dropout that no module check can see: a functional call in training mode."""

    def forward(self, x):
        return torch.nn.functional.dropout(x, 0.5, self.training)


def test_determinism_dropout_and_modes():
    batches = regression()
    plain = Hessian(mlp(), mse, batches)
    assert plain.check_deterministic() == 0.0
    with_dropout = mlp(dropout=torch.nn.Dropout(0.5)).train()  # a dropout module is switched off for products
    hessian = Hessian(with_dropout, mse, batches)
    assert hessian.check_deterministic() == 0.0
    assert close(hessian.matmat(eye(32)), plain.matmat(eye(32)), 1e-14)
    assert with_dropout.training and with_dropout[2].training  # the modes are restored
    noisy = Hessian(mlp(dropout=NoisyDropout()).eval(), mse, batches)
    with pytest.raises(RuntimeError, match="two products of the same vector differ"):
        noisy.check_deterministic()
    kept = Hessian(mlp(dropout=NoisyDropout()).eval(), mse, batches, keep_graph=True)
    kept.matvec(torch.ones(32, dtype=F64))  # a kept graph repeats its draw, but the check rebuilds the graphs
    with pytest.raises(RuntimeError, match="two products of the same vector differ"):
        kept.check_deterministic()
    assert kept.keep_graph
    backbone = torch.nn.Sequential(torch.nn.Linear(3, 4, dtype=F64), torch.nn.Tanh(), torch.nn.Linear(4, 1, dtype=F64))
    frames = FrameAveraged(backbone, OnSet(Positions()), OnSet(Scalars()), stochastic=True)  # invariant per point
    clouds = torch.randn(4, 6, 3, generator=torch.Generator().manual_seed(3), dtype=F64)

    def invariant_loss(model, x):
        return (model(x) - 1).pow(2).mean()

    averaged = Hessian(frames, invariant_loss, clouds)  # one random frame per cloud in training: all frames here
    assert averaged.check_deterministic() == 0.0 and frames.stochastic and frames.training
    frames.stochastic = False
    assert torch.equal(averaged.matmat(eye(21)), Hessian(frames, invariant_loss, clouds).matmat(eye(21)))
    frames.stochastic = True
    frames.train()
    assert not torch.equal(frames(clouds), frames(clouds))  # in training it does draw frames
    model = mlp(dropout=torch.nn.BatchNorm1d(5, dtype=F64)).train()
    with loss_mode(model):
        assert model.training and not model[2].training
    assert model[2].training


# -- an interatomic potential with an energy+force loss (third derivatives) ------------------------------------------


def potential():
    torch.manual_seed(0)
    return PlainPotential(PlainPotentialConfig(species=[1, 8, 29], cutoff=4.0, channels=4, num_layers=1,
                                               num_radial=4, avg_num_neighbors=4.0, e0s={29: -0.3, 8: -1.0},
                                               dtype="float64"))


def structures():
    """Three small labelled structures (3, 2 and 4 atoms; the Cu cell periodic), random targets."""
    rng = np.random.default_rng(0)
    frames = []
    for atoms in (rattled(molecule("H2O"), 1, 0.05), rattled(bulk("Cu", "fcc", a=3.6).repeat((2, 1, 1)), 2, 0.05),
                  rattled(molecule("H2O2"), 3, 0.05)):
        atoms.info["energy"] = float(rng.normal())
        atoms.arrays["forces"] = rng.normal(size=(len(atoms), 3))
        frames.append(AtomicData.from_ase(atoms, cutoff=4.0))
    return frames


class PotentialTask:
    """The potential task's energy+force loss (``compute_loss``) without its datasets."""

    config = LossConfig(energy_weight=1.0, forces_weight=10.0, energy_per_atom=False)

    def predict(self, model, batch):
        return model(batch, compute_forces=True)

    def loss(self, prediction, batch, count_reducer=None):
        return compute_loss(self.config, prediction, batch, count_reducer=count_reducer)


def gradient_of(model, loss, batch):
    with loss_mode(model):
        return torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss(model, batch), model.parameters())])


def test_potential_force_loss_hessian_against_differences_of_gradients(generator):
    model, frames = potential(), structures()
    model.eval()  # products still keep the graph of the forces
    union = Batch.from_data_list(frames)
    loss = task_loss(PotentialTask())
    hessian = Hessian(model, loss, [Batch.from_data_list(frames[:2]), Batch.from_data_list(frames[2:])])
    assert hessian.loss.totals == {"energy": 3, "forces": 27} and not model.training
    u, v = torch.randn(2, hessian.dim, generator=generator, dtype=F64)
    hv = hessian.matvec(v)
    theta, step = ParameterSpace(model).values(), 1e-5
    gradients = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, piece in zip(model.parameters(), ParameterSpace(model).unflatten(theta + sign * step * v)):
                p.copy_(piece)
        gradients.append(gradient_of(model, loss, union))
    with torch.no_grad():
        for p, piece in zip(model.parameters(), ParameterSpace(model).unflatten(theta)):
            p.copy_(piece)
    assert close(hv, (gradients[0] - gradients[1]) / (2 * step), 1e-6)
    assert float(u @ hv) == pytest.approx(float(v @ hessian.matvec(u)), rel=1e-9)
    assert close(Hessian(model, loss, union, method="fd").matvec(v), hv, 1e-6)
    assert close(Hessian(model, loss, [union]).matvec(v), hv, 1e-10)  # two batches make the loss of their union
    kept = Hessian(model, loss, union, keep_graph=True)  # the third-order graph kept between products
    assert close(kept.matvec(v), hv, 1e-10) and close(kept.matvec(u), hessian.matvec(u), 1e-10)
    forceless = Hessian(model, lambda m, b: m(b, compute_forces=False)["energy"].pow(2).sum(), union)
    assert not close(forceless.matvec(v), hv, 1e-2)
    hessian.check_deterministic()


def test_potential_gauss_newton_equals_dense_jt_hl_j():
    model, frames = potential(), structures()
    union = Batch.from_data_list(frames)
    names = [n for n, _ in model.named_parameters()]
    with loss_mode(model):
        jacobian, prediction = outputs_jacobian(model, names, lambda call: (
            (out := call(union, compute_forces=True))["energy"], out["forces"]))
    graphs = union.num_graphs
    config = PotentialTask.config

    def loss_of_flat(flat):
        outputs = {"energy": flat[:graphs], "forces": flat[graphs:].view(-1, 3)}
        return compute_loss(config, outputs, union)[0]

    reference = jacobian.T @ torch.autograd.functional.hessian(loss_of_flat, prediction) @ jacobian
    ggn = GGN(model, None, task_loss(PotentialTask()), [Batch.from_data_list(frames[:1]),
                                                        Batch.from_data_list(frames[1:])])
    dense = ggn.matmat(eye(ggn.dim))
    assert close(dense, reference, 1e-10)
    assert float(torch.linalg.eigvalsh(dense)[0]) > -1e-10 * float(dense.abs().max())
    energy_only = GGN(model, lambda m, b: m(b, compute_forces=True)["energy"],
                      lambda energy, b: (energy - b.energy).pow(2).sum(), union)
    forces_jacobian = jacobian[graphs:]
    assert not close(energy_only.matmat(eye(ggn.dim)), dense, 1e-2)
    assert float(forces_jacobian.abs().max()) > 0


# -- errors ----------------------------------------------------------------------------------------------------------


def test_errors():
    model, batches = mlp(), regression()
    with pytest.raises(ValueError, match="params: pattern 'decoder' selects no trainable parameter"):
        Hessian(model, mse, batches, params="decoder")
    with pytest.raises(ValueError, match="params: Linear is not a submodule of the model"):
        Hessian(model, mse, batches, params=torch.nn.Linear(2, 2))
    with pytest.raises(TypeError, match="params: expected None, a name pattern"):
        Hessian(model, mse, batches, params=[3])
    with pytest.raises(ValueError, match=r"params: '\(' is not a regular expression"):
        Hessian(model, mse, batches, params="(")
    with pytest.raises(ValueError, match="params: expected floating parameters of one dtype"):
        Hessian(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2, dtype=F64)), mse, batches)
    with pytest.raises(ValueError, match="blocks: expected one of"):
        Hessian(model, mse, batches, blocks="layer")
    with pytest.raises(TypeError, match="model: expected a torch.nn.Module"):
        Hessian(lambda x: x, mse, batches)
    with pytest.raises(ValueError, match="data: expected at least one batch, got none"):
        Hessian(model, mse, [])
    with pytest.raises(ValueError, match="data: expected at least one batch, got none"):
        Hessian(model, task_loss(MeanTask()), [])
    with pytest.raises(ValueError, match="data: .* one-shot iterator"):
        Hessian(model, mse, (b for b in batches))
    with pytest.raises(ValueError, match=r"weights: expected one weight per batch \(3\), got 2"):
        Hessian(model, mse, batches, weights=[1, 2])
    with pytest.raises(ValueError, match="weights: expected finite non-negative numbers"):
        Hessian(model, mse, batches, weights=[1, -1, 2])
    with pytest.raises(ValueError, match="weights: a task's loss weights the elements"):
        Hessian(model, task_loss(MeanTask()), batches, weights=[1, 1, 1])
    with pytest.raises(ValueError, match="method: expected one of"):
        Hessian(model, mse, batches, method="exact")
    with pytest.raises(ValueError, match="fd_eps: expected a positive number"):
        Hessian(model, mse, batches, method="fd", fd_eps=0.0)
    with pytest.raises(TypeError, match="task: expected an object with predict"):
        task_loss(object())
    with pytest.raises(ValueError, match="outputs: expected a callable outputs"):
        GGN(model, None, mse, batches)
    with pytest.raises(ValueError, match="outputs: a task_loss"):
        GGN(model, lambda m, b: m(b[0]), task_loss(MeanTask()), batches)
    with pytest.raises(TypeError, match="outputs: expected outputs"):
        GGN(model, lambda m, b: [m(b[0])], lambda out, b: out[0].sum(), batches).matvec(torch.zeros(32, dtype=F64))
    hessian = Hessian(model, mse, batches)
    with pytest.raises(ValueError, match=r"v: expected shape \(dim,\) with dim=32, got \(31,\)"):
        hessian.matvec(torch.zeros(31, dtype=F64))
    with pytest.raises(ValueError, match="v: expected dtype torch.float64"):
        hessian.matvec(torch.zeros(32))
    with pytest.raises(ValueError, match=r"loss: expected a 0-d tensor, got \(4, 2\)"):
        Hessian(model, lambda m, b: m(b[0]) - b[1], batches).matvec(torch.zeros(32, dtype=F64))

    class Unreduced(MeanTask):
        def loss(self, prediction, batch, count_reducer=None):
            return super().loss(prediction, batch)

    with pytest.raises(ValueError, match="loss: the task's loss never calls its count_reducer"):
        Hessian(model, task_loss(Unreduced()), batches)

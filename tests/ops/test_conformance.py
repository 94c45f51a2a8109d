"""The conformance suite every tensor-product backend passes (shared/ARCHITECTURE.md, the op contract)."""

import copy
import functools

import pytest
import torch
from e3nn import o3
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from equilib import so3
from equilib.groups import O3, SO3, GroupElement, Irreps, assert_equivariant
from equilib.ops import available_backends, coupling_paths, make_tensor_product
from tests.conftest import randn

# (irreps_in1, irreps_in2, irreps_out): multiplicities > 1, even and odd parities, pseudo-signals, L up to 6.
CONFIGS = {
    "uvu-L2": ("4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o+4x2e"),
    "mixed-parity": ("3x0e+3x1o+3x1e+3x0o+3x2e", "0e+1o+2e", "3x0e+3x1o+3x1e+3x0o+3x2e"),
    "mixed-mul": ("4x0e+2x1o+3x2e", "0e+1o+2e", "4x0e+2x1o+3x2e"),
    "pseudo": ("2x0o+2x1e+2x2o", "0e+1o+2e+1e", "2x0o+2x1e+2x2o+2x0e"),
    "uvu-L6": ("2x0e+2x1o+2x2e+2x3o+2x4e+2x5o+2x6e", "0e+1o+2e+3o+4e+5o+6e", "2x0e+2x1o+2x2e+2x3o+2x4e+2x5o+2x6e"),
    "uuu": ("3x0e+3x1o+3x2e", "3x0e+3x1o", "3x0e+3x1o+3x2e"),
    "out-subset": ("5x0e+5x1o+5x2e+5x3o", "0e+1o+2e+3o", "5x0e+5x2e"),
}
SMALL = {"small": ("2x0e+2x1o+2x2e", "0e+1o+2e", "2x0e+2x1o+2x2e")}
# Every registered backend with its defaults, each strategy of the grid backend, and in2 weighting. The cp backend
# runs here with a rank that makes its decomposition exact (one component per non-zero fiber), so the suite checks its
# plumbing at the exact tolerance; the fitted (approximate) ranks are tested in test_cp.py.
BACKENDS = available_backends() + ["grid:dense", "grid:separable", "grid:coupling", "grid:blocks", "grid:fused",
                                   "grid:in2-weighted", "gaunt:fft", "gaunt:direct", "gaunt:in2-weighted",
                                   "cp:per-path", "cp:parity-exact"]
EXACT_RANK = 10**6
VARIANT_OPTIONS = {
    "cp": {"rank": EXACT_RANK},
    "cp:per-path": {"rank": EXACT_RANK, "weight_sharing": "per-path"},
    "cp:parity-exact": {"rank": EXACT_RANK, "parity": "exact"},
    "grid:dense": {"transform": "dense"},
    "grid:separable": {"transform": "separable"},
    "grid:coupling": {"transform": "coupling"},
    "grid:blocks": {"transform": "blocks"},
    "grid:fused": {"transform": "fused"},
    "grid:in2-weighted": {"weighted": ("in1", "in2", "out")},
    "gaunt:fft": {"transform": "fft"},
    "gaunt:direct": {"transform": "direct"},
    "gaunt:in2-weighted": {"weighted": ("in1", "in2", "out")},
}
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
# How an op gets its dtype: built in it, or built in float32 and converted with .to(float64) (the tables must then be
# those of a float64 build, not float32's rounded copies).
PRECISIONS = {"float64": (torch.float64, None), "float32": (torch.float32, None),
              "float32->float64": (torch.float32, torch.float64)}


@functools.cache
def elements_of_seed(seed: int) -> torch.Tensor:
    """Four O(3) elements (float64 (4, 3, 3)): random rotations, the second and fourth composed with the inversion."""
    rotations = SO3().sample(4, generator=torch.Generator().manual_seed(seed)).linear
    return rotations * torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64).view(-1, 1, 1)


@functools.cache
def wigner_D(irreps: str, seed: int) -> torch.Tensor:
    """The D matrices (4, dim, dim) of the elements of ``seed`` on ``irreps``: computed once per (irreps, seed), as
    every backend and precision is checked on the same irreps and elements."""
    return so3.wigner_D(irreps, elements_of_seed(seed))


class SeededIrreps(Irreps):
    """An :class:`Irreps` representation whose action by the elements of ``seed`` uses the cached D matrices."""

    def __init__(self, irreps, seed: int) -> None:
        super().__init__(irreps)
        self.seed = seed

    def act(self, g, x):
        assert torch.allclose(g.linear.to(torch.float64), elements_of_seed(self.seed), atol=1e-6), "other elements"
        d = wigner_D(str(self.irreps), self.seed).to(x.dtype)
        return (x.reshape(x.shape[0], -1, x.shape[-1]) @ d.transpose(1, 2)).reshape(x.shape)


def build(backend, config, dtype=torch.float64, **options):
    if backend in ("grid:coupling", "grid:blocks") and config == "uuu":
        pytest.skip("the coupling strategy needs a single-channel x2 ('uvu')")
    if backend.endswith(":in2-weighted") and config == "mixed-mul":
        pytest.skip("'in2' weights need one multiplicity in x1")
    options = {**VARIANT_OPTIONS.get(backend, {}), **options}
    return make_tensor_product(backend.split(":")[0], *{**CONFIGS, **SMALL}[config], dtype=dtype, **options)


def inputs(tp, batch, generator, dtype=torch.float64):
    x1 = randn(*batch, tp.irreps_in1.dim, generator=generator, dtype=dtype)
    x2 = randn(*batch, tp.irreps_in2.dim, generator=generator, dtype=dtype)
    w = randn(*batch, tp.weight_numel, generator=generator, dtype=dtype)
    return x1, x2, w


def test_registry_lists_backends():
    assert {"cg", "cp", "gaunt", "grid"} <= set(available_backends())
    with pytest.raises(ValueError, match=r"backend: unknown tensor-product backend 'nope'; available: \['cg'"):
        make_tensor_product("nope", "0e", "0e", "0e")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_equivariance_under_rotations_and_inversion(backend, config, precision, generator):
    built, converted = PRECISIONS[precision]
    tp = build(backend, config, built)
    if converted is not None:
        tp = tp.to(converted)
    dtype = converted or built
    x1, x2, w = inputs(tp, (16,), generator, dtype)
    assert tp(x1, x2, w).abs().max() > 0.1  # a product that returned zeros would pass trivially
    seed = list(CONFIGS).index(config)  # each configuration its own elements, the same for every backend
    reps_in = (SeededIrreps(tp.irreps_in1, seed), SeededIrreps(tp.irreps_in2, seed))
    assert_equivariant(lambda a, b: tp(a, b, w), O3(), (x1, x2), reps_in, SeededIrreps(tp.irreps_out, seed),
                       tol=TOL[dtype], elements=GroupElement(linear=elements_of_seed(seed)))


def test_seeded_irreps_act_as_irreps(generator):
    """The cached action is the plain one (on the inverted elements too), and refuses elements of another seed."""
    irreps, seed = CONFIGS["mixed-parity"][0], 3
    x = randn(4, 2, Irreps(irreps).shape[0], generator=generator)
    g = GroupElement(linear=elements_of_seed(seed))
    moved = SeededIrreps(irreps, seed).act(g, x)
    assert torch.allclose(moved, Irreps(irreps).act(g, x), atol=1e-13) and (moved - x).abs().max() > 0.1
    assert wigner_D(irreps, seed) is wigner_D(str(Irreps(irreps).irreps), seed)  # one entry per irreps
    with pytest.raises(AssertionError, match="other elements"):
        SeededIrreps(irreps, seed + 1).act(g, x)


@functools.cache
def cg_paths(config):
    return frozenset(build("cg", config).paths)


@pytest.mark.parametrize("backend", BACKENDS)
def test_paths_are_a_subset_of_the_cg_paths(backend):
    checked = 0
    for config in CONFIGS:
        if (backend.endswith(":in2-weighted") and config == "mixed-mul"
                or backend in ("grid:coupling", "grid:blocks") and config == "uuu"):
            continue
        tp = build(backend, config)
        assert tp.paths and set(tp.paths) <= cg_paths(config)
        assert tp.exact is True  # every backend runs at an exact setting here (cp: EXACT_RANK)
        assert backend.split(":")[0] in repr(tp) and f"paths={len(tp.paths)}" in repr(tp) and "exact=True" in repr(tp)
        checked += 1
    assert checked >= len(CONFIGS) - 1


# cg (e3nn's double backward) takes seconds: in the slow lane
@pytest.mark.parametrize("backend", [pytest.param(b, marks=pytest.mark.slow) if b == "cg" else b for b in BACKENDS])
def test_gradcheck(backend, generator):
    tp = build(backend, "small")
    args = tuple(t.requires_grad_() for t in inputs(tp, (3,), generator))
    assert torch.autograd.gradcheck(tp, args)
    assert torch.autograd.gradgradcheck(tp, args)


def _force_loss(tp, x1, x2, w, proj):
    """A force-training loss: energy E = <proj, out>, force = -dE/dx2, loss = |force|^2."""
    energy = (tp(x1, x2, w) * proj).sum()
    (force,) = torch.autograd.grad(-energy, x2, create_graph=True)
    return force.pow(2).sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_double_and_triple_backward_agree_with_finite_differences(backend, generator):
    tp = build(backend, "uvu-L2")
    x1, x2, w = inputs(tp, (5,), generator)
    proj = randn(5, tp.irreps_out.dim, generator=generator)
    x2.requires_grad_()
    w.requires_grad_()

    # Double backward: d(loss)/dw against central differences of the loss.
    (grad_w,) = torch.autograd.grad(_force_loss(tp, x1, x2, w, proj), w, create_graph=True)
    v = randn(*w.shape, generator=generator)
    eps = 1e-5
    fd = (_force_loss(tp, x1, x2, (w + eps * v).detach().requires_grad_(), proj)
          - _force_loss(tp, x1, x2, (w - eps * v).detach().requires_grad_(), proj)) / (2 * eps)
    assert torch.allclose((grad_w * v).sum(), fd, rtol=1e-6, atol=1e-8)

    # Triple backward: Hessian-vector product of the loss w.r.t. w against differences of its gradient.
    (hvp,) = torch.autograd.grad((grad_w * v).sum(), w)

    def grad_at(weights):
        weights = weights.detach().requires_grad_()
        return torch.autograd.grad(_force_loss(tp, x1, x2, weights, proj), weights)[0]

    fd_hvp = (grad_at(w + eps * v) - grad_at(w - eps * v)) / (2 * eps)
    assert hvp.abs().max() > 1e-3
    assert torch.allclose(hvp, fd_hvp, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_samples_give_the_same_values_and_gradients(backend, generator):
    """On a CPU an op with a ``_row_size`` runs its samples in chunks of ``CHUNK_BYTES``: chunks of 3 of 10 samples
    change no value, gradient or second derivative (the forces' double backward), per-sample or shared weights."""
    for shared in (False, True):
        tp = build(backend, "uvu-L2", shared_weights=shared)
        if not tp._row_size:
            pytest.skip(f"{backend} runs in one piece")
        x1, x2, w = (t.requires_grad_() for t in inputs(tp, (10,), generator))
        w = None if shared else w
        params = [x1, x2, tp.weight if shared else w]
        results = []
        for chunk_bytes in (10**9, 3 * tp._row_size * 8):
            tp.CHUNK_BYTES = chunk_bytes
            out = tp(x1, x2, w)
            grads = torch.autograd.grad(out.sin().sum(), params, create_graph=True)
            results.append([out, *grads, *torch.autograd.grad(grads[1].pow(2).sum(), [x1, x2])])
        for full, chunked in zip(*results):  # relative: second derivatives reach 10+, and MKL's summation order
            assert (full - chunked).abs().max() < 1e-12 * max(1.0, full.abs().max())  # depends on alignment


@pytest.mark.parametrize("batch", [(), (0,), (7,), (3, 5)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_leading_batch_shapes(backend, batch, generator):
    tp = build(backend, "uvu-L2")
    x1, x2, w = inputs(tp, batch, generator)
    out = tp(x1, x2, w)
    assert out.shape == batch + (tp.irreps_out.dim,)
    if batch and batch[0]:  # each sample is computed on its own
        flat = tp(x1.reshape(-1, x1.shape[-1])[:1], x2.reshape(-1, x2.shape[-1])[:1], w.reshape(-1, w.shape[-1])[:1])
        assert torch.allclose(out.reshape(-1, out.shape[-1])[:1], flat, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_broadcasting_and_weights_shared_across_the_batch(backend, generator):
    tp = build(backend, "uvu-L2")
    x1, x2, w = inputs(tp, (6,), generator)
    out = tp(x1, x2[:1], w[0])  # one x2 and one weight vector for every sample
    ref = tp(x1, x2[:1].expand(6, -1), w[:1].expand(6, -1))
    assert torch.allclose(out, ref, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_dtypes_and_module_to(backend, generator):
    tp64 = build(backend, "uvu-L2", torch.float64)
    x1, x2, w = inputs(tp64, (4,), generator)
    ref = tp64(x1, x2, w)
    tp32 = build(backend, "uvu-L2", torch.float64).to(torch.float32)
    out32 = tp32(x1.float(), x2.float(), w.float())
    assert out32.dtype == torch.float32
    assert torch.allclose(out32.double(), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match=r"x1: dtype torch.float64 does not match the module's torch.float32"):
        tp32(x1, x2, w)


def _tables(tp):
    return {name: t for name, t in tp.named_buffers() if t.is_floating_point()}


@pytest.mark.parametrize("config", ["mixed-parity", "uuu"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_converting_the_dtype_gives_the_tables_of_building_in_it(backend, config):
    """.to(dtype) and dtype= give the same tables bit for bit, both ways and after a round trip."""
    built = {dtype: build(backend, config, dtype) for dtype in (torch.float32, torch.float64)}
    assert _tables(built[torch.float64])
    for source, target in ((torch.float32, torch.float64), (torch.float64, torch.float32)):
        converted = copy.deepcopy(built[source]).to(target)
        reference = _tables(built[target])
        assert _tables(converted).keys() == reference.keys()
        for name, table in _tables(converted).items():
            assert table.dtype == target and torch.equal(table, reference[name]), f"{backend}: table {name}"
    round_trip = copy.deepcopy(built[torch.float64]).float().double().to(torch.float32).to(torch.float64)
    for name, table in _tables(round_trip).items():
        assert torch.equal(table, _tables(built[torch.float64])[name])


@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_weights_are_a_trainable_parameter(backend, generator):
    tp = build(backend, "uvu-L2", shared_weights=True)
    assert isinstance(tp.weight if backend != "cg" else tp.tp.weight, torch.nn.Parameter)
    x1, x2, _ = inputs(tp, (4,), generator)
    tp(x1, x2).pow(2).sum().backward()
    params = [p for p in tp.parameters() if p.grad is not None]
    assert params and all(p.grad.abs().max() > 0 for p in params)
    with pytest.raises(ValueError, match="weight: this tensor product has internal weights"):
        tp(x1, x2, torch.zeros(4, tp.weight_numel, dtype=torch.float64))


@pytest.mark.parametrize("backend", BACKENDS)
def test_clear_errors_for_bad_input(backend, generator):
    tp = build(backend, "uvu-L2")
    x1, x2, w = inputs(tp, (4,), generator)
    with pytest.raises(ValueError, match=r"x1: expected shape \(\.\.\., 36\) for irreps 4x0e\+4x1o\+4x2e, "
                                         r"got \(4, 35\)"):
        tp(x1[:, :-1], x2, w)
    with pytest.raises(ValueError, match=r"x2: expected shape \(\.\.\., 9\)"):
        tp(x1, x2[:, :3], w)
    with pytest.raises(ValueError, match=r"x1, x2, weight: batch shapes \(4,\), \(3,\)"):
        tp(x1, x2[:3], w)
    with pytest.raises(ValueError, match=rf"weight: expected shape \(\.\.\., {tp.weight_numel}\), got \(4, 2\)"):
        tp(x1, x2, w[:, :2])
    with pytest.raises(ValueError, match="weight: expected a tensor of shape"):
        tp(x1, x2)
    with pytest.raises(TypeError, match="x1: expected a torch.Tensor, got list"):
        tp(x1.tolist(), x2, w)
    with pytest.raises(TypeError, match="x2: expected a torch.Tensor, got ndarray"):
        tp(x1, x2.numpy(), w)
    with pytest.raises(ValueError, match="x1, x2: expected one floating dtype"):
        tp(x1, x2.float(), w)
    with pytest.raises(ValueError, match="irreps_in1: expected an irreps string"):
        make_tensor_product(backend.split(":")[0], "4x0e+banana", "0e", "4x0e")
    with pytest.raises(TypeError, match="irreps_out: expected an irreps string"):
        make_tensor_product(backend.split(":")[0], "4x0e", "0e", 3.0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_unreachable_output_is_an_error(backend):
    with pytest.raises(ValueError, match=r"irreps_out: .*4x3e \(entry 1\) is reached by no coupling"):
        make_tensor_product(backend.split(":")[0], "4x1o", "1o", "4x0e+4x3e", **VARIANT_OPTIONS.get(backend, {}))


@pytest.mark.parametrize("backend", BACKENDS)
def test_state_dict_round_trip(backend, generator):
    tp = build(backend, "uvu-L2", shared_weights=True)
    x1, x2, _ = inputs(tp, (4,), generator)
    fresh = build(backend, "uvu-L2", shared_weights=True)
    assert not torch.allclose(fresh(x1, x2), tp(x1, x2))
    fresh.load_state_dict(tp.state_dict())
    assert torch.equal(fresh(x1, x2), tp(x1, x2))


@st.composite
def random_configuration(draw):
    """Random irreps: one multiplicity, mixed parities, degrees up to 4; outputs every backend can reach."""
    mul = draw(st.integers(1, 3))

    def entries(lmax, channels):
        ls = draw(st.lists(st.integers(0, lmax), min_size=1, max_size=lmax + 1, unique=True))
        return o3.Irreps([(channels, (l, draw(st.sampled_from([1, -1])))) for l in sorted(ls)])

    in1, in2 = entries(4, mul), entries(3, 1)
    candidates = o3.Irreps([(mul, (l, p)) for l in range(5) for p in (1, -1)])
    reachable = sorted({p.i_out for p in coupling_paths(in1, in2, candidates) if p.gaunt_allowed})
    if not reachable:
        return None
    chosen = draw(st.lists(st.sampled_from(reachable), min_size=1, unique=True))
    return str(in1), str(in2), str(o3.Irreps([candidates[i] for i in sorted(chosen)]))


RANDOM_SEED = 100  # the elements of test_equivariance_on_random_configurations


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(config=random_configuration())
def test_equivariance_on_random_configurations(backend, config):
    assume(config is not None)
    options = VARIANT_OPTIONS.get(backend, {})
    tp = make_tensor_product(backend.split(":")[0], *config, dtype=torch.float64, **options)
    generator = torch.Generator().manual_seed(7)
    x1, x2, w = inputs(tp, (5,), generator)
    out = tp(x1, x2, w)  # (5, dim_out); rotated: (4 elements, 5, dim), two of the elements improper
    d1, d2, d3 = (wigner_D(str(irreps), RANDOM_SEED) for irreps in (tp.irreps_in1, tp.irreps_in2, tp.irreps_out))
    moved = tp(x1 @ d1.transpose(1, 2), x2 @ d2.transpose(1, 2), w.expand(4, *w.shape))
    err = (moved - out @ d3.transpose(1, 2)).abs().max() / out.abs().max().clamp(min=1e-300)
    assert out.abs().max() > 0 and err < 1e-10, f"{config}: {err:.2e}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_convolution_sums_the_messages_of_each_node(backend, generator):
    """tp.convolution(x, x2, w, source, target) is the sum over a node's incoming edges of tp(x[source], x2, w),
    in values, gradients and the second derivatives of force training."""
    tp = build(backend, "uvu-L2")
    nodes, edges = 5, 17
    x = randn(nodes, tp.irreps_in1.dim, generator=generator).requires_grad_()
    x2 = randn(edges, tp.irreps_in2.dim, generator=generator).requires_grad_()
    w = randn(edges, tp.weight_numel, generator=generator).requires_grad_()
    source = torch.randint(0, nodes, (edges,), generator=generator)
    target = torch.randint(0, nodes - 1, (edges,), generator=generator)  # the last node receives nothing
    results = []
    for convolve in (lambda: tp.convolution(x, x2, w, source, target),
                     lambda: torch.zeros(nodes, tp.irreps_out.dim, dtype=torch.float64).index_add(
                         0, target, tp(x[source], x2, w))):
        out = convolve()
        grads = torch.autograd.grad(out.sin().sum(), [x, x2, w], create_graph=True)
        results.append([out, *grads, *torch.autograd.grad(grads[1].pow(2).sum(), [x, x2, w])])
    assert results[1][0].abs().max() > 0.1 and results[0][0][-1].abs().max() == 0
    for ours, reference in zip(*results):
        assert (ours - reference).abs().max() < 1e-12 * max(1.0, reference.abs().max())
    with pytest.raises(ValueError, match=r"source: expected a torch.long tensor of shape \(17,\)"):
        tp.convolution(x, x2, w, source[:-1], target)
    with pytest.raises(ValueError, match=r"x: expected node features of shape \(nodes, "):
        tp.convolution(x[:, :-1], x2, w, source, target)
    with pytest.raises(ValueError, match=r"weight: expected one row per edge"):
        tp.convolution(x, x2, w[:-1], source, target)

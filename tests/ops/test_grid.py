"""The grid backend: agreement with e3nn's CG product restricted to Gaunt paths, honesty about paths, grid sizing."""

import pytest
import torch
from e3nn import o3

from equilib import so3
from equilib.ops import make_tensor_product
from equilib.ops._blocks import _ContractChannels, _ContractLast, _Outer, concat
from equilib.utils._tables import _WIGNER_3J
from tests.conftest import randn

CASES = [
    ("4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o+4x2e"),
    ("3x0e+3x1o+3x1e+3x0o+3x2e", "0e+1o+2e+1e", "3x0e+3x1o+3x1e+3x0o+3x2e+3x1o"),
    ("2x0e+2x1o+2x2e+2x3o+2x4e+2x5o+2x6e", "0e+1o+2e+3o+4e+5o+6e", "2x0e+2x1o+2x2e+2x3o+2x4e+2x5o+2x6e"),
    ("3x0e+3x1o+3x2e", "3x0e+3x1o", "3x1o+3x2e"),  # 'uuu'
]
WEIGHTINGS = [("in1", "out"), ("in1", "in2", "out"), ("out",), ()]


def e3nn_gaunt_reference(tp, x1, x2, weight):
    """e3nn's CG product on the same paths, each with the Gaunt scaling, and per-path weights from tp.path_weights."""
    instructions = [(p.i_in1, p.i_in2, p.i_out, p.mode, True,
                     (so3.gaunt_w3j_factor(p.l1, p.l2, p.l3) * tp.output_scale[p.i_out]) ** 2) for p in tp.paths]
    ref = o3.TensorProduct(tp.irreps_in1, tp.irreps_in2, tp.irreps_out, instructions, irrep_normalization="none",
                           path_normalization="none", internal_weights=False, shared_weights=False)
    ref.to(x1.dtype)
    for path, buffer in ref.named_buffers():  # e3nn's 3j tables are made in float32: put float64 symbols in
        match = _WIGNER_3J.fullmatch(path.rpartition(".")[2])
        if match is not None:
            buffer.copy_(o3.wigner_3j(*map(int, match.groups()), dtype=torch.float64))
    return ref(x1, x2, tp.path_weights(weight))


@pytest.mark.parametrize("normalization", ["none", "component"])
@pytest.mark.parametrize("transform", ["dense", "separable", "coupling", "blocks", "fused"])
@pytest.mark.parametrize("weighted", WEIGHTINGS, ids=lambda w: "+".join(w) or "unweighted")
@pytest.mark.parametrize("case", range(len(CASES)))
def test_equals_cg_restricted_to_gaunt_paths(case, weighted, transform, normalization, generator):
    irreps = CASES[case]
    if transform in ("coupling", "blocks") and ("in2" in weighted or irreps[1].startswith("3x")):
        pytest.skip("coupling needs a single-channel, unweighted x2")
    tp = make_tensor_product("grid", *irreps, weighted=weighted, transform=transform, normalization=normalization,
                             dtype=torch.float64)
    assert normalization == "component" or set(tp.output_scale) == {1.0}
    x1 = randn(6, tp.irreps_in1.dim, generator=generator)
    x2 = randn(6, tp.irreps_in2.dim, generator=generator)
    w = randn(6, tp.weight_numel, generator=generator)
    out = tp(x1, x2, w if tp.weight_numel else None)
    ref = e3nn_gaunt_reference(tp, x1, x2, w)
    assert ref.abs().max() > 0.1
    assert (out - ref).abs().max() < 1e-12


def test_paths_are_exactly_the_even_cg_paths():
    irreps = ("3x0e+3x1o+3x1e+3x2e", "0e+1o+2e", "3x0e+3x1o+3x1e+3x2e")
    cg = make_tensor_product("cg", *irreps)
    grid = make_tensor_product("grid", *irreps)
    assert set(grid.paths) == {p for p in cg.paths if (p.l1 + p.l2 + p.l3) % 2 == 0}
    assert set(grid.missing_paths) == set(cg.paths) - set(grid.paths)
    assert any(p.l1 == 1 and p.l2 == 1 and p.l3 == 1 for p in grid.missing_paths)  # 1o x 1o -> 1e


def test_cross_product_is_a_clear_error():
    with pytest.raises(ValueError,
                       match=r"1x1e \(entry 0\) is reached only by 1o x 1o -> 1e, which have l1 \+ l2 \+ l3 odd"):
        make_tensor_product("grid", "1x1o", "1o", "1x1e")
    make_tensor_product("cg", "1x1o", "1o", "1x1e")  # the CG product has it


@pytest.mark.parametrize(
    "irreps, shape",
    [
        (("4x0e+4x1o+4x2e+4x3o+4x4e", "0e+1o+2e+3o+4e", "4x0e+4x1o+4x2e+4x3o+4x4e"), (7, 13)),  # D = 12
        (("4x0e+4x1o+4x2e+4x3o+4x4e", "0e+1o+2e+3o+4e", "4x0e"), (5, 9)),  # D = 8: sized from D, not max(L)
        (("2x0e+2x1o", "0e+1o", "2x0e+2x1o+2x2e"), (3, 5)),  # D = 4
    ],
)
def test_grid_is_sized_from_the_total_degree(irreps, shape):
    assert make_tensor_product("grid", *irreps).grid_shape == shape


def test_auto_picks_a_strategy_and_options_are_checked():
    hidden, sh = "8x0e+8x1o+8x2e+8x3o", "0e+1o+2e+3o"
    assert make_tensor_product("grid", hidden, sh, hidden).transform == "coupling"  # every degree on both sides
    assert make_tensor_product("grid", "8x0e", sh, hidden).transform == "blocks"  # scalars in (a first layer)
    assert make_tensor_product("grid", hidden, sh, "8x0e").transform == "blocks"  # scalars out (a last layer)
    assert make_tensor_product("grid", "3x0e+3x1o", "3x0e+3x1o", "3x0e+3x1o").transform == "dense"  # 'uuu'
    with pytest.raises(ValueError, match="transform: expected one of"):
        make_tensor_product("grid", "2x0e", "0e", "2x0e", transform="fft")
    for transform in ("coupling", "blocks"):
        with pytest.raises(ValueError, match=f"transform: '{transform}' needs x2 entries of multiplicity 1"):
            make_tensor_product("grid", "2x0e", "0e", "2x0e", transform=transform, weighted=("in1", "in2"))
    with pytest.raises(ValueError, match="weighted: expected distinct names among"):
        make_tensor_product("grid", "2x0e", "0e", "2x0e", weighted=("in1", "in1"))
    with pytest.raises(ValueError, match=r"weighted: 'in2' needs one multiplicity .* got \[2, 3\]"):
        make_tensor_product("grid", "2x0e+3x1o", "0e+1o", "2x0e+3x1o", weighted=("in2",))


def test_weight_blocks_have_the_documented_sizes():
    tp = make_tensor_product("grid", "4x0e+4x1o+4x2e", "0e+1o+2e", "4x0e+4x1o", weighted=("in1", "in2", "out"))
    # in1: 3 entries x 4 channels; in2: 3 entries x 4 channels; out: 2 entries x 4 channels
    assert tp.weight_numel == 12 + 12 + 8
    assert make_tensor_product("grid", "4x0e", "0e", "4x0e", weighted=()).weight_numel == 0


def test_path_weights_decode_the_documented_layout():
    """Path p, channel u: w_in1[i_in1, u] * w_in2[i_in2, u] * w_out[i_out, u], blocks in1, in2, out entry-major."""
    tp = make_tensor_product("grid", "2x0e+2x1o", "0e+1o", "2x0e+2x1o", weighted=("in1", "in2", "out"))
    w = torch.arange(1.0, tp.weight_numel + 1).expand(3, -1)  # in1: 1..4, in2: 5..8, out: 9..12
    expected = []
    for p in tp.paths:
        for u in range(2):
            expected.append((1 + 2 * p.i_in1 + u) * (5 + 2 * p.i_in2 + u) * (9 + 2 * p.i_out + u))
    assert torch.equal(tp.path_weights(w), torch.tensor(expected).expand(3, -1).float())
    unweighted = make_tensor_product("grid", "2x0e+2x1o", "0e+1o", "2x0e+2x1o", weighted=())
    assert torch.equal(unweighted.path_weights(torch.zeros(5, 0)), torch.ones(5, 2 * len(unweighted.paths)))
    with pytest.raises(ValueError, match=rf"weight: expected shape \(\.\.\., {tp.weight_numel}\), got \(3, 2\)"):
        tp.path_weights(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="weight: expected a torch.Tensor, got list"):
        tp.path_weights([1.0])


def test_component_normalization_gives_unit_variance(generator):
    tp = make_tensor_product("grid", "16x0e+16x1o+16x2e+16x3o", "0e+1o+2e+3o", "16x0e+16x1o+16x2e+16x3o",
                             weighted=(), dtype=torch.float64)
    x1 = randn(4000, tp.irreps_in1.dim, generator=generator)
    x2 = randn(4000, tp.irreps_in2.dim, generator=generator)
    variance = tp(x1, x2).pow(2).mean(0)
    for i, (_, ir) in enumerate(tp.irreps_out):
        block = variance[tp.irreps_out.slices()[i]]
        assert 0.85 < float(block.mean()) < 1.15, f"{ir}: {float(block.mean()):.3f}"
    with pytest.raises(ValueError, match="normalization: expected 'component' or 'none'"):
        make_tensor_product("grid", "2x0e", "0e", "2x0e", normalization="norm")


def test_block_products_are_exact_to_third_order(generator):
    """The outer product and contractions of the 'blocks' strategy have hand-written derivatives (each in terms of
    the others): values and first and second derivatives against autograd's finite differences, float64."""
    x = randn(3, 4, 1, generator=generator).requires_grad_()
    m = randn(3, 1, 5, generator=generator).requires_grad_()
    g = randn(3, 4, 5, generator=generator).requires_grad_()
    for f, args, reference in ((_Outer.apply, (x, m), x * m), (_ContractLast.apply, (g, m), (g * m).sum(-1, True)),
                               (_ContractChannels.apply, (x, g), (x * g).sum(1, True))):
        assert torch.allclose(f(*args), reference, atol=1e-14)
        assert torch.autograd.gradcheck(f, args) and torch.autograd.gradgradcheck(f, args)
    a, b = randn(3, 2, generator=generator).requires_grad_(), randn(3, 6, generator=generator).requires_grad_()
    joined = lambda a, b: concat([a.sin(), b * b]).pow(3)  # noqa: E731
    assert torch.equal(concat([a, b]), torch.cat([a, b], dim=-1))
    assert torch.autograd.gradcheck(joined, (a, b)) and torch.autograd.gradgradcheck(joined, (a, b))


def test_block_products_work_under_torch_func(generator):
    """The block functions support torch.func: forward-mode derivatives (jvp), batched gradients (vmap), and a whole
    'blocks' product (outer products, a contraction and a concatenation) has jvp and vjp that agree with autograd's
    and a vmap over samples equal to the batched call."""
    x = randn(3, 4, 1, generator=generator).requires_grad_()
    m = randn(3, 1, 5, generator=generator).requires_grad_()
    g = randn(3, 4, 5, generator=generator).requires_grad_()
    for f, args in ((_Outer.apply, (x, m)), (_ContractLast.apply, (g, m)), (_ContractChannels.apply, (x, g))):
        assert torch.autograd.gradcheck(f, args, check_forward_ad=True, check_batched_grad=True,
                                        check_batched_forward_grad=True)
    a, b = randn(3, 2, generator=generator).requires_grad_(), randn(3, 6, generator=generator).requires_grad_()
    assert torch.autograd.gradcheck(lambda a, b: concat([a, b]), (a, b), check_forward_ad=True,
                                    check_batched_grad=True, check_batched_forward_grad=True)
    tp = make_tensor_product("grid", "2x0e+2x1o+2x2e", "0e+1o+2e", "2x0e+2x1o+2x2e", transform="blocks",
                             dtype=torch.float64)
    x1, x2 = randn(5, tp.irreps_in1.dim, generator=generator), randn(5, tp.irreps_in2.dim, generator=generator)
    w, t = randn(tp.weight_numel, generator=generator), randn(tp.irreps_in1.dim, generator=generator)
    weight = w.expand(5, -1)
    tangent = t.expand(5, -1)
    value, derivative = torch.func.jvp(lambda a: tp(a, x2, weight), (x1,), (tangent,))
    x1r = x1.clone().requires_grad_()
    out = tp(x1r, x2, weight)
    cotangent = randn(*out.shape, generator=generator)
    (pulled,) = torch.autograd.grad(out, x1r, cotangent)
    assert torch.allclose(value, out.detach(), atol=1e-14)
    assert torch.allclose((derivative * cotangent).sum(), (pulled * tangent).sum(), rtol=1e-12)  # <Jt, c> = <t, J^T c>
    _, vjp = torch.func.vjp(lambda a: tp(a, x2, weight), x1)
    assert torch.allclose(vjp(cotangent)[0], pulled, rtol=1e-12)
    weights = weight * torch.arange(1.0, 6.0, dtype=torch.float64)[:, None]  # a weight per sample
    stacked = torch.func.vmap(lambda a, b, c: tp(a[None], b[None], c[None])[0])(x1, x2, weights)
    assert torch.allclose(stacked, tp(x1, x2, weights), atol=1e-12)

"""The lifting and group convolutions, pooling and normalisation of equilib.lie.

Equivariance in the left-translation sense: transform the input by an affine element (a, t) and left-translate the
elements (a g_k), and the output moves by (a, t). Exact (to round-off) for quarter turns, which permute the pixel and
kernel grids; otherwise up to the discretisation of the plane, checked with smooth inputs inside a central disc and
kernels that fit their grid (small smooth mask, low SIREN frequency), against a control that does not translate the
elements; for the paper's hard mask the error falls as the resolution grows.
"""

import pytest
import torch
import torch.nn.functional as F

from equilib.lie import (
    GlobalPool,
    GroupConv2d,
    GroupFeatures,
    GroupLayerNorm,
    GroupPool,
    GroupSamples,
    LiftingConv2d,
    SpatialMaxPool,
)

from ._helpers import F64, QUARTER_TURN, affine, blobs, disc, move, move_features, relative_error, rotation

GROUPS = ["SL2", "GL2", "SO2"]
SMOOTH = dict(padding="same", omega0=3.0, mask="smooth", mask_slope=12.0, mask_radius=0.5)


def _element(group: str):
    """An affine element of R^2 x| G: a rotation, a shear and (GL+) a scaling, and a translation."""
    if group == "SO2":
        return affine(rotation(0.5))
    linear = rotation(0.5) @ torch.tensor([[1.1, 0.2], [0.0, 1 / 1.1]], dtype=F64)
    return affine(0.9 * linear if group == "GL2" else linear)


def test_lifting_shapes():
    torch.manual_seed(0)
    lift = LiftingConv2d(2, 3, 5, group="GL2", samples=4)
    out = lift(torch.randn(5, 2, 20, 18))
    assert out.features.shape == (5, 3, 4, 16, 14) and len(out.samples) == 4
    samples = GroupSamples.from_linear(torch.eye(2, dtype=F64).expand(6, 2, 2).clone())
    same_padding = LiftingConv2d(2, 3, 5, samples=4, padding="same")
    same = same_padding(torch.randn(1, 2, 20, 18), samples=samples)
    assert same.features.shape == (1, 3, 6, 20, 18) and same.samples is samples
    assert torch.allclose(same.features[:, :, 0], same.features[:, :, 5])  # identical elements, identical maps
    assert "group='GL2'" in repr(lift) and lift.mask == "smooth" and same_padding.mask == "hard"


@pytest.mark.parametrize("group", GROUPS)
def test_lifting_quarter_turn_is_exact(group):
    torch.manual_seed(0)
    lift = LiftingConv2d(1, 3, 5, group=group, samples=6, padding="same", seed=1).double()  # the paper's masks
    f = blobs(41)
    with torch.no_grad():
        out = lift(f)
        turned = lift(torch.rot90(f, 1, (-2, -1)), out.samples.left_translate(QUARTER_TURN))
    torch.testing.assert_close(turned.features, torch.rot90(out.features, 1, (-2, -1)), atol=1e-12, rtol=0)


@pytest.mark.parametrize("group", GROUPS)
def test_lifting_affine_equivariance(group):
    torch.manual_seed(0)
    lift = LiftingConv2d(1, 2, 9, group=group, samples=4, seed=1, **SMOOTH).double()
    f, a, inside = blobs(41), _element(group), disc(41, 0.5)
    with torch.no_grad():
        out = lift(f)
        moved_input = move(a, f)
        translated = lift(moved_input, out.samples.left_translate(a.linear)).features
        control = lift(moved_input, out.samples).features  # elements not translated
    expected = move(a, out.features)
    error = relative_error(translated, expected, inside)
    assert error < 0.02
    assert relative_error(control, expected, inside) > 5 * error


def test_lifting_discretisation_error_falls_with_resolution():
    """The paper's hard mask (radius 0.7, so that the stretched discs stay on the grid): the error is
    discretisation, falling as the same images and kernels are sampled finer."""
    errors = []
    for size, kernel_size in [(41, 9), (161, 33)]:
        torch.manual_seed(0)
        lift = LiftingConv2d(1, 2, kernel_size, group="SL2", samples=4, padding="same", omega0=3.0, mask="hard",
                             mask_radius=0.7, seed=1).double()
        f, a = blobs(size), _element("SL2")
        with torch.no_grad():
            out = lift(f)
            translated = lift(move(a, f), out.samples.left_translate(a.linear)).features
        errors.append(relative_error(translated, move(a, out.features), disc(size, 0.5)))
    assert errors[1] < errors[0] / 4 and errors[1] < 0.02, errors


def _stack(group: str, kernel_size: int = 9, **options):
    torch.manual_seed(0)
    lift = LiftingConv2d(1, 2, kernel_size, group=group, samples=4, seed=1, **options).double()
    conv = GroupConv2d(2, 3, kernel_size, group=group, samples=5, seed=2, **options).double()
    return lift, conv


@pytest.mark.parametrize("group", GROUPS)
def test_group_conv_affine_equivariance(group):
    lift, conv = _stack(group, **SMOOTH)
    a, inside = _element(group), disc(41, 0.4)
    with torch.no_grad():
        h = lift(blobs(41))
        out = conv(h)
        moved = move_features(a, h)
        translated = conv(moved, out.samples.left_translate(a.linear)).features
        control = conv(moved, out.samples).features
    expected = move(a, out.features)
    assert out.features.shape == (1, 3, 5, 41, 41)
    error = relative_error(translated, expected, inside)
    assert error < 0.03
    assert relative_error(control, expected, inside) > 5 * error


@pytest.mark.parametrize("group", GROUPS)
def test_group_conv_quarter_turn_is_exact(group):
    lift, conv = _stack(group, kernel_size=5, padding="same")  # the paper's masks and frequency
    with torch.no_grad():
        h = lift(blobs(41))
        out = conv(h)
        turned = conv(GroupFeatures(torch.rot90(h.features, 1, (-2, -1)), h.samples.left_translate(QUARTER_TURN)),
                      out.samples.left_translate(QUARTER_TURN))
    torch.testing.assert_close(turned.features, torch.rot90(out.features, 1, (-2, -1)), atol=1e-12, rtol=0)


def _closed_under_quarter_turns(group: str) -> GroupSamples:
    """Eight elements, closed (to round-off) under left multiplication by the quarter turn."""
    if group == "SO2":
        base = torch.stack([rotation(0.3), rotation(1.1)])
    else:
        base = torch.stack([rotation(0.3) @ torch.tensor([[1.2, 0.3], [0.0, 1 / 1.2]], dtype=F64), rotation(-0.4)])
    turns = [torch.linalg.matrix_power(QUARTER_TURN, m) for m in range(4)]
    return GroupSamples.from_linear(torch.stack([turn @ g for turn in turns for g in base]))


@pytest.mark.parametrize("group", ["SO2", "SL2"])
def test_quarter_turn_invariance_with_closed_samples(group):
    """With the same element set, closed under quarter turns, for the input and its quarter turn, the invariant
    projection of lift -> group conv is unchanged (the group axis is permuted, the plane turned)."""
    torch.manual_seed(0)
    lift = LiftingConv2d(1, 3, 5, group=group, samples=8).double()
    conv = GroupConv2d(3, 4, 5, group=group, samples=8, padding="same").double()
    pool, samples = GlobalPool("max"), _closed_under_quarter_turns(group)

    def invariant(x):
        h = lift(x, samples)
        return pool(conv(GroupFeatures(F.gelu(h.features), h.samples), samples))

    f = blobs(24, batch=2)
    with torch.no_grad():
        reference, turned = invariant(f), invariant(torch.rot90(f, 1, (-2, -1)))
        other = invariant(torch.rot90(f, 1, (-2, -1)).mT)  # a reflection is not in the group
    torch.testing.assert_close(turned, reference, atol=1e-12, rtol=0)
    assert relative_error(other, reference) > 1e-3


def test_pooling():
    samples = GroupSamples.from_linear(torch.eye(2, dtype=F64).expand(3, 2, 2).clone())
    x = GroupFeatures(torch.randn(2, 4, 3, 6, 8, dtype=F64), samples)
    assert torch.equal(GroupPool("max")(x), x.features.amax(2))
    assert torch.allclose(GroupPool("mean")(x.features), x.features.mean(2))
    pooled = SpatialMaxPool(2)(x)
    assert pooled.features.shape == (2, 4, 3, 3, 4) and pooled.samples is samples
    assert torch.equal(pooled.features[:, :, 1], F.max_pool2d(x.features[:, :, 1], 2))
    assert SpatialMaxPool(3, stride=1)(x.features).shape == (2, 4, 3, 4, 6)
    assert torch.equal(GlobalPool()(x), x.features.amax((2, 3, 4)))
    assert GlobalPool("mean")(x).shape == (2, 4)
    with pytest.raises(ValueError, match="reduction"):
        GlobalPool("sum")
    with pytest.raises(ValueError, match=r"\(B, C, K, H, W\)"):
        GroupPool()(torch.zeros(2, 3, 4, 5))
    with pytest.raises(ValueError, match="kernel_size"):
        SpatialMaxPool(0)


def test_layer_norm():
    norm = GroupLayerNorm(4)
    samples = GroupSamples.from_linear(torch.eye(2).expand(3, 2, 2).clone())
    out = norm(GroupFeatures(3 + 2 * torch.randn(2, 4, 3, 5, 5), samples))
    flat = out.features.reshape(2, -1)
    assert out.samples is samples
    torch.testing.assert_close(flat.mean(1), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.var(1, unbiased=False), torch.ones(2), atol=1e-3, rtol=0)
    assert norm(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)  # (C, H, W) on the plane
    with pytest.raises(ValueError, match=r"\(B, 4, \.\.\.\)"):
        norm(torch.randn(2, 3, 5, 5))


def test_layer_errors():
    lift = LiftingConv2d(1, 2, 5, samples=3)
    conv = GroupConv2d(2, 2, 3, samples=3)
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, H, W\)"):
        lift(torch.zeros(2, 3, 20, 20))
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, H, W\)"):
        lift(torch.zeros(20, 20))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        lift(torch.zeros(1, 1, 4, 4))
    with pytest.raises(TypeError, match="GroupSamples"):
        lift(torch.zeros(1, 1, 8, 8), samples=torch.eye(2).expand(3, 2, 2))
    with pytest.raises(TypeError, match="GroupFeatures"):
        conv(torch.zeros(1, 2, 3, 8, 8))
    h = lift(torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 2, 3, H, W\)"):
        conv(GroupFeatures(h.features[:, :, :2], h.samples))
    with pytest.raises(ValueError, match="odd positive int"):
        LiftingConv2d(1, 2, 4)
    with pytest.raises(ValueError, match="odd positive int"):
        GroupConv2d(1, 2, 0)
    with pytest.raises(ValueError, match="samples: expected an int of at least 1"):
        GroupConv2d(1, 2, 3, samples=0)
    with pytest.raises(ValueError, match="unknown group name"):
        LiftingConv2d(1, 2, 3, group="Sp4")
    with pytest.raises(ValueError, match="padding"):
        GroupConv2d(1, 2, 3, padding="full")
    with pytest.raises(ValueError, match="mask"):
        LiftingConv2d(1, 2, 3, mask="soft")
    with pytest.raises(ValueError, match="mask_radius"):
        LiftingConv2d(1, 2, 3, mask_radius=0.0)


def test_under_autocast_kernels_are_made_in_float32_and_only_the_convolutions_run_in_bfloat16():
    torch.manual_seed(0)
    lift = LiftingConv2d(1, 3, 5, group="GL2", samples=3, padding="same")
    conv = GroupConv2d(3, 4, 5, group="GL2", samples=3, padding="same")
    images = torch.randn(2, 1, 12, 12)
    elements = lift.sampler.draw(3)
    features = lift(images, elements)
    reference = conv(features, elements).features
    with torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = conv.kernel(elements, elements)  # the SIREN in bfloat16: what the layers avoid
        kernel = conv._full_precision_kernel(elements, elements)
        mixed = conv(lift(images, elements), elements).features
    exact = conv.kernel(elements, elements)
    assert kernel.dtype == torch.float32 and torch.equal(kernel, exact)
    assert relative_error(rounded.double(), exact.double()) > 1e-3
    assert mixed.dtype == torch.bfloat16
    assert relative_error(mixed.double(), reference.double()) < 2e-2

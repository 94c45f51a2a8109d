"""Images as a representation of 2 x 2 linear maps and 2-d translations: the identity, exact grid permutations
(torch.rot90 and flips), agreement with Positions(2), inverses and composition up to interpolation error, exact
equivariance of channel mixing, errors."""

import math

import pytest
import torch

from equilib.groups import (
    SL,
    SO3,
    GLPlus,
    GroupElement,
    Images,
    Permutations,
    Positions,
    Translations,
    assert_equivariant,
    equivariance_error,
)

F64 = torch.float64
QUARTER_TURN = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=F64)  # +90 degrees with x right, y up


def _coordinates(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, y) of the pixel centres of a size x size image: x from -1 (left) to 1, y from 1 (top row) to -1."""
    c = torch.linspace(-1, 1, size, dtype=F64)
    y, x = torch.meshgrid(-c, c, indexing="ij")
    return x, y


def _blob(size: int, centre=(0.0, 0.0), width: float = 0.15) -> torch.Tensor:
    x, y = _coordinates(size)
    return torch.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * width**2))


def _centroid(image: torch.Tensor) -> torch.Tensor:
    x, y = _coordinates(image.shape[-1])
    mass = image.sum((-2, -1))
    return torch.stack([(image * x).sum((-2, -1)) / mass, (image * y).sum((-2, -1)) / mass], -1)


def _affine(count: int, generator: torch.Generator, scale: float = 0.2, shift: float = 0.1) -> GroupElement:
    g = (GLPlus(2, scale=scale) * Translations(2, shift)).sample(count, generator=generator)
    return g


def test_the_identity_returns_the_image(generator):
    x = torch.randn(4, 3, 10, 10, generator=generator, dtype=F64)
    rep = Images(3, 10)
    assert torch.allclose(rep.act(GLPlus(2).identity(4), x), x, atol=1e-13)
    identity = GroupElement(linear=torch.eye(2, dtype=F64).expand(4, 2, 2), translation=torch.zeros(4, 2, dtype=F64))
    assert torch.allclose(rep.act(identity, x), x, atol=1e-13)
    assert rep.act(Permutations(3).sample(4, generator=generator), x) is x  # no linear part, no translation
    rect = torch.randn(2, 1, 8, 12, generator=generator, dtype=F64)
    assert torch.allclose(Images(1, (8, 12)).act(GLPlus(2).identity(2), rect), rect, atol=1e-13)


@pytest.mark.parametrize("size", [9, 10])
def test_quarter_turns_are_rot90_and_mirrors_are_flips(size, generator):
    """With x to the right and y up, the rotation by +90 degrees turns the image counterclockwise as displayed, as
    torch.rot90(image, 1, dims=(-2, -1)) does; the mirrors x -> -x and y -> -y flip the columns and the rows."""
    x = torch.randn(3, 2, size, size, generator=generator, dtype=F64)
    rep = Images(2, size)
    turns = torch.stack([torch.linalg.matrix_power(QUARTER_TURN, k) for k in (1, 2, 3)])
    moved = rep.act(GroupElement(linear=turns), x)
    for k in (1, 2, 3):
        assert torch.allclose(moved[k - 1], torch.rot90(x[k - 1], k, dims=(-2, -1)), atol=1e-12), k
    assert GLPlus(2).contains(GroupElement(linear=turns)).all() and SL(2).contains(GroupElement(linear=turns)).all()
    mirrors = torch.stack([torch.diag(torch.tensor(d, dtype=F64)) for d in ([-1.0, 1.0], [1.0, -1.0])])
    flipped = rep.act(GroupElement(linear=mirrors), x[:2])
    assert torch.allclose(flipped[0], x[0].flip(-1), atol=1e-12)
    assert torch.allclose(flipped[1], x[1].flip(-2), atol=1e-12)
    rect = torch.randn(1, 1, 6, size, generator=generator, dtype=F64)
    assert torch.allclose(Images(1, (6, size)).act(GroupElement(linear=mirrors[:1]), rect), rect.flip(-1), atol=1e-12)
    # a translation by one pixel (2 / (size - 1)) to the right shifts the columns, with a zero column entering
    shift = GroupElement(translation=torch.tensor([[2 / (size - 1), 0.0]], dtype=F64))
    shifted = rep.act(shift, x[:1])
    assert torch.allclose(shifted[..., 1:], x[:1, ..., :-1], atol=1e-12) and shifted[..., 0].abs().max() < 1e-12


def test_an_image_of_a_point_moves_like_the_point(generator):
    """The centroid of ``g.f`` is ``A p + t`` for a blob ``f`` at ``p``: images and Positions(2) agree."""
    p = torch.tensor([0.25, -0.15], dtype=F64)
    image = _blob(97, centre=p.tolist(), width=0.08).expand(8, 1, 97, 97)
    g = _affine(8, generator)
    moved = Images(1, 97).act(g, image)
    expected = Positions(2).act(g, p.expand(8, 2))
    assert (_centroid(moved[:, 0]) - expected).abs().max() < 2e-3
    assert (_centroid(image[:, 0]) - expected).abs().max() > 5e-2  # the elements move it


def _interpolation_errors(size: int, generator: torch.Generator) -> tuple[float, float]:
    """The largest errors of ``g^-1.(g.f) = f`` and ``(g h).f = g.(h.f)`` on a centred blob, inside the disk of
    radius 0.6 (away from the border), relative to the blob's maximum 1."""
    rep = Images(1, size)
    f = _blob(size).expand(6, 1, size, size)
    g, h = _affine(6, generator), _affine(6, generator)
    x, y = _coordinates(size)
    inside = (x**2 + y**2) < 0.6**2
    back = rep.act(g.inverse(), rep.act(g, f))
    composed = rep.act(g.compose(h), f) - rep.act(g, rep.act(h, f))
    return float((back - f)[..., inside].abs().max()), float(composed[..., inside].abs().max())


def test_inverse_and_composition_up_to_interpolation_error():
    coarse = _interpolation_errors(33, torch.Generator().manual_seed(5))
    fine = _interpolation_errors(129, torch.Generator().manual_seed(5))
    assert max(fine) < 1e-2, fine  # 6e-3 and 4e-3 here, a pixel of 1/64
    assert fine[0] < coarse[0] / 8 and fine[1] < coarse[1] / 8, (coarse, fine)  # bilinear: O(pixel^2), 16x expected
    assert min(coarse) > 1e-2  # the action of a non-grid element is not exact


def test_channel_mixing_is_exactly_equivariant(generator):
    """Resampling acts on every channel alike, so a 1 x 1 convolution commutes with it to round-off."""
    mixing = torch.randn(2, 3, generator=generator, dtype=F64)
    image = torch.randn(3, 12, 12, generator=generator, dtype=F64)

    def mix(x):
        return torch.einsum("oc,chw->ohw", mixing, x)

    group = GLPlus(2, scale=0.3) * Translations(2, 0.3)
    assert assert_equivariant(mix, group, image, Images(3, 12), Images(2, 12), generator=generator) < 1e-12
    assert assert_equivariant(mix, SL(2), image, Images(3, 12), Images(2, 12), generator=generator) < 1e-12

    def transpose(x):
        return x.transpose(-2, -1)

    assert equivariance_error(transpose, group, image, Images(3, 12), Images(3, 12), generator=generator) > 0.1


def test_batches_dtypes_and_leading_axes(generator):
    g = _affine(4, generator)
    x = torch.randn(4, 5, 2, 9, 9, generator=generator, dtype=F64)  # (elements, batch, C, H, W)
    rep = Images(2, 9)
    moved = rep.act(g, x)
    for b in range(5):
        assert torch.allclose(moved[:, b], rep.act(g, x[:, b]), atol=1e-14)
    single = torch.stack([rep.act(g[k], x[k : k + 1])[0] for k in range(4)])
    assert torch.allclose(moved, single, atol=1e-14)
    float32 = rep.act(g, x.float())
    assert float32.dtype == torch.float32 and torch.allclose(float32.double(), moved, atol=1e-5)


def test_repr_and_clear_errors(generator):
    assert repr(Images(3, 16)) == "Images(3, 16)" and repr(Images(1, (8, 12))) == "Images(1, (8, 12))"
    assert Images(3, 16).shape == (3, 16, 16)
    Images(3, 16).check((5, 3, 16, 16), "x")
    message = r"inputs\[0\]: Images\(3, 16\) acts on tensors of shape \(\.\.\., 3, 16, 16\), got shape \(3, 16, 15\)"
    with pytest.raises(ValueError, match=message):
        assert_equivariant(lambda t: t, GLPlus(2), torch.zeros(3, 16, 15, dtype=F64), Images(3, 16), Images(3, 16))
    with pytest.raises(ValueError, match="channels: expected a positive int"):
        Images(0, 8)
    with pytest.raises(ValueError, match=r"size: expected an int or a pair \(H, W\) of ints of at least 2"):
        Images(1, 1)
    with pytest.raises(ValueError, match=r"size: expected an int or a pair"):
        Images(1, (4, 5, 6))
    x = torch.zeros(2, 3, 8, 8, dtype=F64)
    with pytest.raises(ValueError, match="needs a 2 x 2 linear part"):
        Images(3, 8).act(SO3().sample(2, generator=generator), x)
    with pytest.raises(ValueError, match="needs a 2-dimensional translation"):
        Images(3, 8).act(Translations(3).sample(2, generator=generator), x)
    with pytest.raises(ValueError, match=r"x: Images\(3, 8\) acts on tensors of shape \(2, \.\.\., 3, 8, 8\)"):
        Images(3, 8).act(GLPlus(2).sample(2, generator=generator), x[:, :2])
    with pytest.raises(ValueError, match=r"x: Images\(3, 8\) acts on tensors of shape \(3, \.\.\., 3, 8, 8\)"):
        Images(3, 8).act(GLPlus(2).sample(3, generator=generator), x)
    assert math.isfinite(float(Images(3, 8).act(GLPlus(2).sample(2, generator=generator), x).sum()))

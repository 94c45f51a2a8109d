"""Group elements of the equilib.lie layers: draws of SL(2), GL+(2), SO(2) with closed-form inverses, seeds and fixed
draws, Monte Carlo weights (checked against equilib.groups.monte_carlo_integral on the same draws), left
translations, chart coordinates, and input checks."""

import math

import pytest
import torch

from equilib.groups import SL, SO2, SO3, GLPlus, GroupElement, monte_carlo_integral, unchart
from equilib.lie import GroupSampler, GroupSamples

from ._helpers import F64, QUARTER_TURN, rotation

EYE = torch.eye(2, dtype=F64)


@pytest.mark.parametrize("name", ["SL2", "GL2", "SO2"])
def test_draws_are_group_elements_with_inverses(name):
    samples = GroupSampler(name, seed=0).draw(64)
    assert samples.linear.shape == (64, 2, 2) and samples.weights.shape == (64,) and len(samples) == 64
    assert samples.linear.dtype == F64
    torch.testing.assert_close(samples.linear @ samples.inverse, EYE.expand(64, 2, 2), atol=1e-12, rtol=0)
    det = samples.determinant()
    if name == "GL2":
        assert (det > 0).all() and det.std() > 0.05
    else:
        torch.testing.assert_close(det, torch.ones(64, dtype=F64), atol=1e-12, rtol=0)
    if name == "SO2":
        torch.testing.assert_close(samples.inverse, samples.linear.mT)
        torch.testing.assert_close(samples.weights, torch.full((64,), 1 / 64, dtype=F64))
    else:
        assert (samples.weights >= 1 / 64 - 1e-15).all() and samples.weights.std() > 0


def test_uniform_weighting_and_names():
    sampler = GroupSampler("gl2", weighting="uniform", seed=0)
    assert sampler.name == "GL2" and sampler.dim == 4 and not sampler.volume_preserving and sampler.scale == 0.2
    torch.testing.assert_close(sampler.draw(5).weights, torch.full((5,), 0.2, dtype=F64))
    assert GroupSampler(SL(2, scale=0.3)).scale == 0.3 and GroupSampler(SL(2)).dim == 3
    assert GroupSampler(SO2()).name == "SO2" and GroupSampler(SO2(axis=(0.0, 0.0, -2.0))).dim == 1
    assert "SL2" in repr(GroupSampler("SL2"))


def test_seeds_fresh_and_fixed_draws():
    first, again = GroupSampler("SL2", seed=3), GroupSampler("SL2", seed=3)
    a, b = first.draw(4), first.draw(4)
    assert not torch.equal(a.linear, b.linear)  # fresh elements at every call
    torch.testing.assert_close(again.draw(4).linear, a.linear, rtol=0, atol=0)  # the same sequence
    fixed = GroupSampler("SL2", seed=3, fixed=True)
    torch.testing.assert_close(fixed.draw(4).linear, fixed.draw(4).linear, rtol=0, atol=0)
    torch.manual_seed(5)
    c = GroupSampler("SO2").draw(3)
    torch.manual_seed(5)
    torch.testing.assert_close(GroupSampler("SO2").draw(3).linear, c.linear, rtol=0, atol=0)  # the global generator


@pytest.mark.parametrize("group", [SL(2, scale=0.3), GLPlus(2, scale=0.25)], ids=["SL2", "GL2"])
def test_haar_weights_are_the_importance_weights_of_monte_carlo_integral(group):
    """Same seed, same draws: the layer's weights are those of equilib.groups.monte_carlo_integral times the
    sampling density at the identity q(0) (the stated normalisation)."""
    count, variance = 50, group.scale**2
    q0 = math.sqrt(2) / (2 * math.pi * variance) if isinstance(group, SL) else (2 * math.pi * variance) ** -1.5
    samples = GroupSampler(group, seed=11).draw(count)
    seen = []

    def per_sample(g: GroupElement) -> torch.Tensor:
        seen.append(g.linear)
        return torch.eye(count, dtype=F64)  # the estimate's entry j is weight_j / count

    estimate, _ = monte_carlo_integral(per_sample, group, count, torch.Generator().manual_seed(11))
    torch.testing.assert_close(seen[0], samples.linear, atol=1e-12, rtol=0)
    torch.testing.assert_close(samples.weights / q0, estimate, rtol=1e-10, atol=0)


def test_left_translation_keeps_weights():
    samples = GroupSampler("GL2", seed=1).draw(5)
    a = rotation(0.3) @ torch.tensor([[1.2, 0.4], [0.0, 0.9]], dtype=F64)
    moved = samples.left_translate(a)
    torch.testing.assert_close(moved.linear, a @ samples.linear)
    torch.testing.assert_close(moved.linear @ moved.inverse, EYE.expand(5, 2, 2), atol=1e-12, rtol=0)
    assert moved.weights is samples.weights
    element = GroupElement(linear=QUARTER_TURN.unsqueeze(0))
    torch.testing.assert_close(samples.left_translate(element).linear, QUARTER_TURN @ samples.linear)
    assert samples.element().linear is samples.linear
    assert samples.to(torch.float32).linear.dtype == torch.float32 and samples.to(F64) is samples


def test_from_linear_inverse_and_uniform_weights():
    linear = torch.stack([EYE, 2 * rotation(1.0), torch.tensor([[1.0, 3.0], [0.0, 0.5]], dtype=F64)])
    samples = GroupSamples.from_linear(linear)
    torch.testing.assert_close(samples.inverse, torch.linalg.inv(linear))
    torch.testing.assert_close(samples.weights, torch.full((3,), 1 / 3, dtype=F64))


@pytest.mark.parametrize("name", ["SL2", "GL2", "SO2"])
def test_chart_coordinates(name):
    sampler = GroupSampler(name)
    t = torch.tensor([0.4, -2.0, 3.0], dtype=F64)
    A = torch.zeros(3, 2, 2, dtype=F64)
    A[:, 1, 0], A[:, 0, 1] = t, -t
    S = torch.zeros(3, 2, 2, dtype=F64)
    if name != "SO2":
        S[:, 0, 0] = torch.tensor([0.3, -0.1, 0.2], dtype=F64)
        S[:, 0, 1] = S[:, 1, 0] = torch.tensor([0.05, 0.2, -0.3], dtype=F64)
        S[:, 1, 1] = -S[:, 0, 0] if name == "SL2" else torch.tensor([0.1, 0.4, -0.2], dtype=F64)
    coordinates = sampler.coordinates(unchart(S, A))
    expected = {"SL2": [S[:, 0, 0], S[:, 0, 1], t / math.pi], "GL2": [S[:, 0, 0], S[:, 0, 1], S[:, 1, 1], t / math.pi],
                "SO2": [t / math.pi]}[name]
    torch.testing.assert_close(coordinates, torch.stack(expected, -1), atol=1e-12, rtol=0)
    half_turn = QUARTER_TURN @ QUARTER_TURN
    assert float(sampler.coordinates(half_turn)[-1]) == pytest.approx(1.0)  # the edge of the chart: +pi


@pytest.mark.parametrize("group, error, match", [
    ("SE2", ValueError, "unknown group name"),
    (SL(3), ValueError, "2 x 2"),
    (SO2(axis=(1.0, 0.0, 0.0)), ValueError, "z axis"),
    (SO3(), TypeError, "expected one of"),
])
def test_invalid_groups(group, error, match):
    with pytest.raises(error, match=match):
        GroupSampler(group)


def test_invalid_options_and_counts():
    with pytest.raises(ValueError, match="weighting"):
        GroupSampler("SL2", weighting="haar-ish")
    with pytest.raises(ValueError, match="need a seed"):
        GroupSampler("SL2", fixed=True)
    with pytest.raises(ValueError, match="seed"):
        GroupSampler("SL2", seed=1.5)
    with pytest.raises(ValueError, match="at least 1"):
        GroupSampler("SL2").draw(0)
    with pytest.raises(ValueError, match=r"shape \(\.\.\., 2, 2\)"):
        GroupSampler("SL2").coordinates(torch.zeros(3, 3, dtype=F64))


def test_invalid_samples():
    with pytest.raises(ValueError, match="positive determinant"):
        GroupSamples.from_linear(torch.diag(torch.tensor([1.0, -1.0], dtype=F64)).unsqueeze(0))
    with pytest.raises(ValueError, match=r"shape \(K, 2, 2\)"):
        GroupSamples.from_linear(torch.zeros(2, 3, 3, dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        GroupSamples(EYE.expand(2, 2, 2), EYE.expand(2, 2, 2), torch.ones(3, dtype=F64))
    with pytest.raises(ValueError, match="positive determinant"):
        GroupSamples.from_linear(EYE.unsqueeze(0)).left_translate(-QUARTER_TURN @ torch.diag(torch.tensor(
            [1.0, -1.0], dtype=F64)))
    with pytest.raises(ValueError, match="2 x 2 matrix"):
        GroupSamples.from_linear(EYE.unsqueeze(0)).left_translate(torch.eye(3, dtype=F64))


@pytest.mark.parametrize("name", ["SL2", "GL2", "SO2"])
def test_stratified_rotations_are_an_even_grid_whose_elements_are_each_haar(name):
    """Each draw's angles are t_0 + 2 pi k / K; over draws, the first element's angle is uniform (chi-square on 10
    bins), and the positive factor keeps its law (the same generator stream draws it first)."""
    K, draws = 6, 1000
    stratified = GroupSampler(name, seed=1, rotations="stratified")
    independent = GroupSampler(name, seed=1)
    first = []
    for _ in range(draws):
        samples = stratified.draw(K)
        angle = stratified.coordinates(samples.linear)[:, -1] * math.pi
        steps = torch.remainder(angle.roll(-1) - angle, 2 * math.pi)
        torch.testing.assert_close(steps, torch.full((K,), 2 * math.pi / K, dtype=F64), atol=1e-9, rtol=0)
        first.append(float(angle[0]))
    counts = torch.histc(torch.tensor(first), bins=10, min=-math.pi, max=math.pi)
    chi2 = float(((counts - draws / 10) ** 2 / (draws / 10)).sum())
    assert chi2 < 27.9  # the 0.999 quantile of chi-square with 9 degrees of freedom
    if name != "SO2":  # same positive factors as the independent draws of the same seed
        a, b = GroupSampler(name, seed=2, rotations="stratified").draw(K), GroupSampler(name, seed=2).draw(K)
        pa, pb = (s.linear @ s.linear.mT for s in (a, b))
        torch.testing.assert_close(pa, pb, atol=1e-12, rtol=0)
    assert "rotations='stratified'" in repr(stratified) and independent.rotations == "haar"
    with pytest.raises(ValueError, match="rotations: expected one of"):
        GroupSampler(name, rotations="grid")

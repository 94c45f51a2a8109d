"""Segment reductions against a brute-force loop; errors name the argument."""

import pytest
import torch

from equilib.utils import scatter, scatter_max, scatter_mean, scatter_sum


def brute_force(src, index, dim_size, reduce):
    out = torch.zeros((dim_size,) + src.shape[1:], dtype=src.dtype)
    for k in range(dim_size):
        rows = src[index == k]
        if len(rows):
            out[k] = {"sum": rows.sum(0), "mean": rows.mean(0), "max": rows.max(0).values}[reduce]
    return out


@pytest.mark.parametrize("reduce", ["sum", "mean", "max"])
def test_matches_brute_force_with_empty_segments(reduce, generator):
    src = torch.randn(40, 3, 2, generator=generator, dtype=torch.float64)
    index = torch.randint(0, 9, (40,), generator=generator)
    index[index == 4] = 5  # segment 4 is empty
    out = scatter(src, index, dim_size=11, reduce=reduce)
    assert torch.allclose(out, brute_force(src, index, 11, reduce), atol=1e-12)
    assert out[4].abs().max() == 0 and out[10].abs().max() == 0


def test_other_dim_and_named_helpers(generator):
    src = torch.randn(3, 10, generator=generator, dtype=torch.float64)
    index = torch.tensor([0, 0, 1, 2, 2, 2, 1, 0, 3, 3])
    ref = brute_force(src.T, index, 4, "sum").T
    assert torch.allclose(scatter_sum(src, index, dim=1), ref)
    assert torch.allclose(scatter_sum(src, index, dim=-1), ref)
    assert torch.allclose(scatter_mean(src.T, index), brute_force(src.T, index, 4, "mean"))
    assert torch.allclose(scatter_max(src.T, index), brute_force(src.T, index, 4, "max"))


def test_gradients(generator):
    src = torch.randn(12, 2, generator=generator, dtype=torch.float64, requires_grad=True)
    index = torch.tensor([0, 1, 1, 2, 0, 2, 2, 3, 3, 3, 1, 0])
    for reduce in ("sum", "mean"):
        assert torch.autograd.gradcheck(lambda s, reduce=reduce: scatter(s, index, reduce=reduce), (src,))


def test_errors():
    src = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"index: expected 4 entries \(src.shape\[0\]\), got 3"):
        scatter(src, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="index: expected a 1-D torch.long tensor"):
        scatter(src, torch.tensor([0.0, 1, 2, 3]))
    with pytest.raises(ValueError, match="index: expected non-negative entries"):
        scatter(src, torch.tensor([0, -1, 2, 3]))
    with pytest.raises(ValueError, match=r"dim_size: expected at least max\(index\) \+ 1 = 4, got 2"):
        scatter(src, torch.tensor([0, 1, 2, 3]), dim_size=2)
    with pytest.raises(ValueError, match="reduce: expected one of"):
        scatter(src, torch.tensor([0, 1, 2, 3]), reduce="min")
    with pytest.raises(TypeError, match="src: expected a torch.Tensor"):
        scatter([1.0], torch.tensor([0]))
    with pytest.raises(ValueError, match=r"dim: expected an axis of src \(from -2 to 1\), got 2"):
        scatter(src, torch.tensor([0, 1]), dim=2)

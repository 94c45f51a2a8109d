"""AffineResNet (the paper's GResNet on SL(2), GL+(2), SO(2)) and its plain-CNN baseline: shapes, forward and
backward on a (2, 1, 40, 40) batch, parameter counts within 5% at the defaults, sampling options, errors."""

import pytest
import torch

from equilib.lie import AffineResNet, GroupFeatures, PlainCNN


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("group", ["SL2", "GL2", "SO2"])
def test_affine_resnet_forward_backward(group):
    torch.manual_seed(0)
    model = AffineResNet(1, 10, group=group)
    x = torch.randn(2, 1, 40, 40)
    logits = model(x)
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    logits.square().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.lift.siren.sines[0].weight.grad.abs().sum() > 0
    features = model.group_features(x)
    assert isinstance(features, GroupFeatures) and features.features.shape == (2, 16, 8, 14, 14)


def test_plain_cnn_forward_backward():
    torch.manual_seed(0)
    model = PlainCNN(1, 10)
    logits = model(torch.randn(2, 1, 40, 40))
    assert logits.shape == (2, 10)
    logits.square().sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_parameter_counts_match_at_the_defaults():
    counts = {group: _count(AffineResNet(1, 10, group=group)) for group in ("SL2", "GL2", "SO2")}
    plain = _count(PlainCNN(1, 10))
    for count in counts.values():
        assert abs(count / plain - 1) < 0.05, (counts, plain)


def test_sampling_options():
    x = torch.randn(2, 1, 32, 32)
    torch.manual_seed(0)
    model = AffineResNet(1, 4, channels=4, samples=3, hidden=8, seed=7, fixed=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)  # deterministic evaluation
        model.lift.sampler.fixed = model.final.sampler.fixed = False
        assert not torch.equal(model(x), model(x))  # fresh elements at every forward, also in evaluation
    double = AffineResNet(1, 4, group="GL2", channels=4, samples=3, hidden=8, weighting="haar").double()
    assert double(x.double()).dtype == torch.float64


def test_errors():
    model = AffineResNet(1, 10, channels=4, samples=2, hidden=8)
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, H, W\)"):
        model(torch.zeros(2, 40, 40))
    with pytest.raises(ValueError, match=r"images of shape \(B, 1, H, W\)"):
        PlainCNN(1, 10)(torch.zeros(2, 3, 40, 40))
    with pytest.raises(ValueError, match="unknown group name"):
        AffineResNet(group="Aff2")
    with pytest.raises(ValueError, match="odd positive int"):
        AffineResNet(kernel_size=4)
    with pytest.raises(ValueError, match="odd positive int"):
        PlainCNN(kernel_size=6)
    with pytest.raises(ValueError, match="samples: expected an int of at least 1"):
        AffineResNet(samples=0)
    with pytest.raises(ValueError, match="dropout"):
        PlainCNN(dropout=1.0)
    with pytest.raises(ValueError, match="channels"):
        AffineResNet(channels=0)


def test_torch_compile_with_static_shapes_matches_eager():
    """The draws run eagerly (``torch.compiler.disable``), the rest compiles; logits and gradients as in eager mode.
    With dynamic shapes inductor (torch 2.13) fails on the reshaped group convolution, hence ``dynamic=False``."""
    torch.manual_seed(0)
    model = AffineResNet(1, 10, group="GL2", channels=4, samples=3, hidden=8, seed=0, fixed=True).eval()
    x = torch.randn(2, 1, 24, 24)
    compiled = torch.compile(model, dynamic=False)
    eager_logits = model(x)
    eager_grads = torch.autograd.grad(eager_logits.square().sum(), list(model.parameters()))
    logits = compiled(x)
    grads = torch.autograd.grad(logits.square().sum(), list(model.parameters()))
    torch.testing.assert_close(logits, eager_logits, rtol=1e-4, atol=1e-5)
    for grad, eager in zip(grads, eager_grads):
        torch.testing.assert_close(grad, eager, rtol=1e-3, atol=1e-5)

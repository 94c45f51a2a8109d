"""Equivariance in use: a lift -> GELU -> group conv -> invariant pooling stack draws fresh, independent elements at
every forward, so it is invariant only approximately; the error under random group elements falls as the number of
samples K grows (the Monte Carlo error of the group integrals), down to the floor of the plane's discretisation.

Measured (mean over 6 seeded draws of the weights, the image and the element; 25 x 25 images, 5 x 5 kernels, the
paper's masks and SIREN frequency, mean pooling), K = 4 / 32 / 128: SO(2) 0.138 / 0.044 / 0.029; SL(2) with uniform
weights 0.251 / 0.064 / 0.031 (both asserted). Not asserted: SL(2) with Haar weights 0.785 / 0.545 / 0.769 (the
importance weights are heavy tailed, see equilib.lie.GroupSampler); GL+(2) uniform 0.414 / 0.273 / 0.282 (a floor:
the smooth mask is cut off by the kernel grid, and the sampling law is not invariant); GL+(2) Haar 1.48 / 0.96 / 0.53.
"""

import pytest
import torch
import torch.nn.functional as F

from equilib.groups import GroupElement
from equilib.lie import GlobalPool, GroupConv2d, GroupFeatures, LiftingConv2d

from ._helpers import blobs, move, relative_error

SAMPLES = (4, 32, 128)


def _invariant(lift: LiftingConv2d, conv: GroupConv2d, x: torch.Tensor) -> torch.Tensor:
    h = lift(x)  # fresh elements at every call, as in use
    return GlobalPool("mean")(conv(GroupFeatures(F.gelu(h.features), h.samples)))


def _mean_error(group: str, samples: int, weighting: str, seeds: int = 6, size: int = 25) -> float:
    errors = []
    for seed in range(seeds):
        torch.manual_seed(100 + seed)  # the weights and every draw of elements (torch's global generator)
        options = dict(group=group, samples=samples, padding="same", hidden=16, weighting=weighting)
        lift = LiftingConv2d(1, 4, 5, **options).double()
        conv = GroupConv2d(4, 4, 5, **options).double()
        f = blobs(size, seed=seed)
        a = GroupElement(linear=lift.sampler.draw(1).linear)
        with torch.no_grad():
            errors.append(relative_error(_invariant(lift, conv, move(a, f)), _invariant(lift, conv, f)))
    return sum(errors) / len(errors)


@pytest.mark.parametrize("group, weighting", [("SO2", "haar"), ("SL2", "uniform")])
def test_invariance_error_falls_with_samples(group, weighting):
    errors = [_mean_error(group, k, weighting) for k in SAMPLES]
    assert errors[1] < 0.8 * errors[0] and errors[2] < 0.9 * errors[1], dict(zip(SAMPLES, errors))
    assert errors[2] < 0.05, dict(zip(SAMPLES, errors))

"""Shared fixtures: a seeded generator per test, so every test is deterministic."""

import pytest
import torch


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def randn(*shape, generator, dtype=torch.float64):
    """Seeded normal samples in float64, then cast (the same numbers whatever the dtype)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

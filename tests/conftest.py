"""Shared fixtures: a seeded generator per test (every test is deterministic), a private cache directory."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def equilib_cache(tmp_path_factory):
    """Fitted decompositions (the cp backend) go to a fresh directory, not the user's ~/.cache/equilib."""
    patch = pytest.MonkeyPatch()
    patch.setenv("EQUILIB_CACHE", str(tmp_path_factory.mktemp("equilib-cache")))
    yield
    patch.undo()


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def randn(*shape, generator, dtype=torch.float64):
    """Seeded normal samples in float64, then cast (the same numbers whatever the dtype)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

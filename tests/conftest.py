"""Shared fixtures: a seeded generator per test (every test is deterministic), a private cache directory, and a check
that no test leaves torch's default dtype changed."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def equilib_cache(tmp_path_factory):
    """Fitted decompositions (the cp backend) go to a fresh directory, not the user's ~/.cache/equilib."""
    patch = pytest.MonkeyPatch()
    patch.setenv("EQUILIB_CACHE", str(tmp_path_factory.mktemp("equilib-cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def default_dtype_unchanged():
    """No test may leave torch's global default dtype changed (tests pass dtype= explicitly); one that does fails,
    and the default is restored for the tests after it."""
    before = torch.get_default_dtype()
    yield
    after = torch.get_default_dtype()
    if after != before:
        torch.set_default_dtype(before)
        pytest.fail(f"the test changed torch's default dtype from {before} to {after}: pass dtype= instead")


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(1234)


def randn(*shape, generator, dtype=torch.float64):
    """Seeded normal samples in float64, then cast (the same numbers whatever the dtype)."""
    return torch.randn(*shape, generator=generator, dtype=torch.float64).to(dtype)

"""Modules that draw random numbers in training mode (one random frame per forward, ...), and a context that makes
them use every sample instead, for code that needs the training loss to be a deterministic function (curvature)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


class SamplingModule:
    """Mixin of a module that, when its ``stochastic`` attribute is true and it is in training mode, evaluates a
    random sample of an average (e.g. one random frame of a frame average) instead of the whole average.

    :func:`all_samples` sets ``stochastic`` to False for the duration of a block, so that such a module computes the
    whole average, as in evaluation mode, while staying in training mode.
    """

    stochastic: bool = False


@contextlib.contextmanager
def all_samples(model: torch.nn.Module) -> Iterator[None]:
    """Within the block, every :class:`SamplingModule` of ``model`` computes its whole average (``stochastic``
    False); the flags are restored on exit.

    Args:
        model: The model.

    Yields:
        Nothing.

    Examples:
        >>> class Noisy(torch.nn.Module, SamplingModule):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.stochastic = True
        >>> model = torch.nn.Sequential(Noisy())
        >>> with all_samples(model):
        ...     model[0].stochastic
        False
        >>> model[0].stochastic
        True
    """
    sampled = [m for m in model.modules() if isinstance(m, SamplingModule) and m.stochastic]
    try:
        for module in sampled:
            module.stochastic = False
        yield
    finally:
        for module in sampled:
            module.stochastic = True

"""Small shared utilities: segment reductions (torch-scatter when installed, plain torch otherwise)."""

from ._scatter import has_torch_scatter, scatter, scatter_max, scatter_mean, scatter_sum

__all__ = ["has_torch_scatter", "scatter", "scatter_max", "scatter_mean", "scatter_sum"]

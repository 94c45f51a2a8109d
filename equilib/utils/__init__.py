"""Small shared utilities: segment reductions (torch-scatter when installed, plain torch otherwise), modules whose
precomputed tables follow their dtype exactly."""

from ._scatter import has_torch_scatter, scatter, scatter_max, scatter_mean, scatter_sum
from ._tables import TableModule

__all__ = ["TableModule", "has_torch_scatter", "scatter", "scatter_max", "scatter_mean", "scatter_sum"]

"""Small shared utilities: segment reductions (torch-scatter when installed, plain torch otherwise), modules whose
precomputed tables follow their dtype exactly, atomic file writes (temporary name, then rename)."""

from ._atomic import atomic_path, atomic_save, atomic_write
from ._scatter import has_torch_scatter, scatter, scatter_max, scatter_mean, scatter_sum
from ._tables import TableModule

__all__ = ["TableModule", "atomic_path", "atomic_save", "atomic_write", "has_torch_scatter", "scatter", "scatter_max",
           "scatter_mean", "scatter_sum"]

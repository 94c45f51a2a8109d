"""Small shared utilities: segment reductions (PyTorch Geometric's, with checked inputs), modules whose precomputed
tables follow their dtype exactly, atomic file writes (temporary name, then rename), modules that sample in training
and a context that makes them average every sample."""

from ._atomic import atomic_path, atomic_save, atomic_savefig, atomic_write, atomic_write_csv
from ._sampling import SamplingModule, all_samples
from ._scatter import scatter, scatter_max, scatter_mean, scatter_sum
from ._tables import TableModule

__all__ = ["SamplingModule", "TableModule", "all_samples", "atomic_path", "atomic_save", "atomic_savefig",
           "atomic_write", "atomic_write_csv", "scatter", "scatter_max", "scatter_mean", "scatter_sum"]

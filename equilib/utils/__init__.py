"""Small shared utilities: segment reductions (torch-scatter when installed, plain torch otherwise), e3nn helpers."""

from ._e3nn import exact_wigner_3j
from ._scatter import has_torch_scatter, scatter, scatter_max, scatter_mean, scatter_sum

__all__ = ["exact_wigner_3j", "has_torch_scatter", "scatter", "scatter_max", "scatter_mean", "scatter_sum"]

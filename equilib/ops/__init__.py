"""Equivariant tensor products behind one interface.

>>> import torch
>>> from equilib.ops import make_tensor_product
>>> tp = make_tensor_product("grid", "8x0e+8x1o+8x2e", "0e+1o+2e", "8x0e+8x1o+8x2e")
>>> g = torch.Generator().manual_seed(0)
>>> x1, x2 = torch.randn(100, tp.irreps_in1.dim, generator=g), torch.randn(100, tp.irreps_in2.dim, generator=g)
>>> out = tp(x1, x2, torch.randn(100, tp.weight_numel, generator=g))  # weight: (..., tp.weight_numel)
>>> out.shape
torch.Size([100, 72])

Backends: ``cg`` (exact Clebsch-Gordan, all paths, e3nn underneath), ``grid`` (Gaunt product on an exact
S^2 quadrature grid, l1 + l2 + l3 even paths only) and ``gaunt`` (the same Gaunt product through 2D Fourier
coefficients and FFTs on the torus), ``cp`` (the CG product over all paths through a rank-R CP decomposition with
path-weight sharing, TDN; approximately equivariant). ``grid`` and ``gaunt`` weight per (channel, l), one weight
layout; ``tp.path_weights(weight)`` gives the per-path weights it amounts to.
"""

from . import cg, cp, gaunt, grid  # noqa: F401  (registers the backends)
from .base import Path, TensorProduct, available_backends, coupling_paths, make_tensor_product, register_backend
from .expressivity import Expressivity, expressivity

__all__ = ["Expressivity", "Path", "TensorProduct", "available_backends", "coupling_paths", "expressivity",
           "make_tensor_product", "register_backend"]

"""Soft equivariance under mixed symmetries: projection regularisers per candidate group with automatically tuned
strengths (PER, Kim et al. ICML 2023), residual pathway priors (RPP, Finzi et al. NeurIPS 2021), and the sampled
equivariance error of any model (:func:`equilib.groups.equivariance_error`) as a per-group penalty.

:class:`EquivariantProjector` projects weight matrices between sums of Cartesian tensors
(:class:`equilib.groups.CartesianTensors`) onto the maps that commute with a group, from the group's generators.
"""

from ._projector import EquivariantProjector, equivariant_basis, tensor_algebra, tensor_power

__all__ = ["EquivariantProjector", "equivariant_basis", "tensor_algebra", "tensor_power"]

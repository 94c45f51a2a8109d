"""Soft equivariance under mixed symmetries: projection regularisers per candidate group with automatically tuned
strengths (PER, Kim et al. ICML 2023), residual pathway priors (RPP, Finzi et al. NeurIPS 2021), and the sampled
equivariance error of any model (:func:`equilib.groups.equivariance_error`) as a per-group penalty.

:class:`EquivariantProjector` projects weight matrices between sums of Cartesian tensors
(:class:`equilib.groups.CartesianTensors`) onto the maps that commute with a group, from the group's generators.
:class:`SoftEquivariantMLP` is PER's model on such tensors: free linear layers between exactly O(3)-equivariant
nonlinear steps, its penalty per candidate group, and the exact and RPP variants of the same network.
:class:`StrengthTuner` sets the strength of each group's penalty from the penalties' values (PER's rule, once or
continuously); :func:`group_named` reads candidate groups (``"O3"``, ``"O2z"``, ...) from configs.
"""

from ._mlp import SoftEquivariantMLP, TensorLinear, TensorNonlinearity
from ._names import group_named
from ._projector import EquivariantProjector, JointPenalty, equivariant_basis, tensor_algebra, tensor_power
from ._tuning import StrengthTuner

__all__ = ["EquivariantProjector", "JointPenalty", "SoftEquivariantMLP", "StrengthTuner", "TensorLinear",
           "TensorNonlinearity", "equivariant_basis", "group_named", "tensor_algebra", "tensor_power"]

"""Clebsch-Gordan tensor product over every O(3)-allowed channel-wise path: the exact reference backend.

Built on e3nn's ``o3.TensorProduct`` (Geiger and Smidt, "e3nn: Euclidean Neural Networks", 2022), with
one instruction per path in the order of :attr:`paths`. Weight layout (e3nn's): for each path in order, ``mul``
weights, one per channel; ``weight_numel = sum(mul)``. Normalisation options are e3nn's
(``irrep_normalization`` 'component' | 'norm' | 'none', ``path_normalization`` 'element' | 'path' | 'none').
"""

from __future__ import annotations

import torch
from e3nn import o3

from .base import TensorProduct, check_outputs_reached, coupling_paths, register_backend


@register_backend("cg")
class CGTensorProduct(TensorProduct):
    """Exact CG product on all parity-allowed paths ('uvu' for single-channel x2, 'uuu' for equal channels).

    Args:
        irreps_in1: Irreps of x1.
        irreps_in2: Irreps of x2; entries of multiplicity 1 ('uvu') or equal to x1's ('uuu').
        irreps_out: Irreps of the output; every entry must be reached by an allowed path.
        shared_weights: Hold the weights inside the e3nn module instead of taking them per call.
        irrep_normalization: e3nn's ``"component"``, ``"norm"`` or ``"none"``.
        path_normalization: e3nn's ``"element"``, ``"path"`` or ``"none"``.
        dtype: Dtype of the module; default torch's default dtype.

    Raises:
        ValueError: If an output entry is reached by no allowed path, or e3nn rejects a normalisation.
        TypeError: If an irreps argument is not irreps-like or ``shared_weights`` is not a bool.
    """

    exact = True

    def __init__(
        self,
        irreps_in1,
        irreps_in2,
        irreps_out,
        *,
        shared_weights: bool = False,
        irrep_normalization: str = "component",
        path_normalization: str = "element",
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(irreps_in1, irreps_in2, irreps_out, shared_weights=shared_weights)
        paths = coupling_paths(self.irreps_in1, self.irreps_in2, self.irreps_out)
        check_outputs_reached("cg", self.irreps_out, paths, paths, "")
        self.paths = tuple(paths)
        self.tp = o3.TensorProduct(
            self.irreps_in1,
            self.irreps_in2,
            self.irreps_out,
            [(p.i_in1, p.i_in2, p.i_out, p.mode, True) for p in paths],
            irrep_normalization=irrep_normalization,
            path_normalization=path_normalization,
            internal_weights=shared_weights,
            shared_weights=shared_weights,
        ).to(dtype or torch.get_default_dtype())
        self.adopt_wigner_3j(self.tp)  # e3nn made them in the global default dtype
        self.weight_numel = self.tp.weight_numel

    def _forward(self, x1: torch.Tensor, x2: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
        if self.shared_weights:
            return self.tp(x1, x2)
        if weight.dim() == 1:
            weight = weight.expand(x1.shape[0], -1)
        return self.tp(x1, x2, weight)

    def _check_weight(self, weight, dtype):
        if self.shared_weights:  # the weights live inside the e3nn module
            if weight is not None:
                raise ValueError("weight: this tensor product has internal weights (shared_weights=True); pass none")
            return None
        return super()._check_weight(weight, dtype)

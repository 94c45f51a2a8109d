"""Helpers around e3nn modules."""

from __future__ import annotations

import re

import torch
from e3nn import o3


def exact_wigner_3j(module: torch.nn.Module) -> torch.nn.Module:
    """Recompute the Wigner-3j buffers of e3nn tensor products inside ``module`` in their own dtype.

    e3nn builds them in the global default dtype, so a float64 module made under a float32 default carries 3j
    symbols rounded to float32 (errors ~1e-8); library code must not change the global default instead.
    Call it after moving the module to its final dtype. Returns ``module``.
    """
    for sub in module.modules():
        for name, buf in list(sub._buffers.items()):
            match = re.fullmatch(r"_w3j_(\d+)_(\d+)_(\d+)", name)
            if match is not None and buf is not None:
                l1, l2, l3 = map(int, match.groups())
                sub._buffers[name] = o3.wigner_3j(l1, l2, l3, dtype=buf.dtype, device=buf.device)
    return module
